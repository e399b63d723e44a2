"""The symbolic request: every field of a request as solver variables.

One :class:`RequestSpace` is shared by every policy set in a question (both sides
of a diff see the same request). Fields that conditions read deeper
(``args.amount``, ``principal.owner``, ``task.ticket.priority``) get a node per
path, made when first read: a presence bit, a kind, a string, a number, a boolean,
and for lists a length and up to ``bounds.list_items`` items. A child can be
present only when its parent is a present object, which is what request
validation and attribute lookup require.

:meth:`RequestSpace.request` turns a solver model back into a request object.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction

import z3

from .symbolic import BOOL, FALSE, LIST, NULL, NUM, OBJ, OTHER, STR, TRUE, Sym

# Root fields that hold an object of any shape (their own rules for a few keys below).
OBJECT_ROOTS = ("args", "task", "context", "provenance", "credential", "approval")
# Keys whose type request validation fixes.
_TYPED = {
    "task.id": STR,
    "task.intent": STR,
    "task.owner": STR,
    "credential.id": STR,
    "credential.issued_at": NUM,
    "credential.ttl": NUM,
    "approval.granted": BOOL,
    "approval.by": STR,
    "principal.max_credential_ttl": NUM,
}


# objects whose `null` members validation drops (principal attributes have no parent node)
_NULL_MEANS_ABSENT = frozenset({"task", "credential", "approval"})


@dataclass(frozen=True)
class Bounds:
    """How far the encoding looks: requests beyond these bounds are not covered."""

    chain: int = 3  # delegators in `delegation.chain`
    list_items: int = 3  # items of a list-valued request attribute


class Node(ABC):
    """A request value reached by a path; ``child(name)`` is its attribute ``name``."""

    __slots__ = ()

    @abstractmethod
    def value(self) -> Sym:
        """The value as a symbolic term."""

    @abstractmethod
    def child(self, name: str) -> "Node":
        """The attribute ``name`` of this value."""


class ConstNode(Node):
    """A value known in advance (a declared attribute), or nothing (``MISSING``)."""

    __slots__ = ("data", "present")

    def __init__(self, data: object, present: bool = True):
        self.data = data
        self.present = present

    def value(self) -> Sym:
        from .symbolic import MISSING, const

        return const(self.data) if self.present else MISSING

    def child(self, name: str) -> Node:
        if self.present and isinstance(self.data, dict) and name in self.data:
            return ConstNode(self.data[name])
        return ConstNode(None, present=False)


ABSENT = ConstNode(None, present=False)


class IteNode(Node):
    __slots__ = ("cond", "then", "other")

    def __init__(self, cond, then: Node, other: Node):
        self.cond, self.then, self.other = cond, then, other

    def value(self) -> Sym:
        from .symbolic import ite

        return ite(self.cond, self.then.value(), self.other.value())

    def child(self, name: str) -> Node:
        return IteNode(self.cond, self.then.child(name), self.other.child(name))


def ite_node(cond, then: Node, other: Node) -> Node:
    if z3.is_true(cond):
        return then
    if z3.is_false(cond):
        return other
    return IteNode(cond, then, other)


class FixedNode(Node):
    """An object whose attributes are given (``tool``, ``delegation``, merged ``principal``)."""

    __slots__ = ("children", "fallback", "sym")

    def __init__(self, children: dict, fallback=None, sym: Sym | None = None):
        self.children = children
        self.fallback = fallback
        self.sym = sym

    def value(self) -> Sym:
        return self.sym if self.sym is not None else Sym(TRUE, OBJ)

    def child(self, name: str) -> Node:
        if name in self.children:
            return self.children[name]
        if self.fallback is not None:
            return self.fallback(name)
        return ABSENT


class ValueNode(Node):
    """A scalar or list value with no attributes (``tool.name``, ``delegation.depth``)."""

    __slots__ = ("sym",)

    def __init__(self, sym: Sym):
        self.sym = sym

    def value(self) -> Sym:
        return self.sym

    def child(self, name: str) -> Node:
        return ABSENT


class RequestNode(Node):
    """A request value chosen by the solver."""

    __slots__ = ("space", "path", "sym", "children", "parent")

    def __init__(self, space: "RequestSpace", path: str, parent: "RequestNode | None"):
        self.space = space
        self.path = path
        self.parent = parent
        self.children: dict[str, RequestNode] = {}
        v = space.var
        items = tuple(
            Sym(TRUE, v(z3.Int, f"{path}[{i}]?kind"), v(z3.String, f"{path}[{i}]"), v(z3.Real, f"{path}[{i}]#"), v(z3.Bool, f"{path}[{i}]!"))
            for i in range(space.bounds.list_items)
        )
        self.sym = Sym(
            v(z3.Bool, f"{path}?present"),
            v(z3.Int, f"{path}?kind"),
            v(z3.String, path),
            v(z3.Real, f"{path}#"),
            v(z3.Bool, f"{path}!"),
            v(z3.Int, f"{path}?length"),
            items,
        )
        s = self.sym
        axioms = [s.kind >= STR, s.kind <= OBJ, s.length >= 0, s.length <= len(items)]
        for item in items:
            axioms.append(z3.Or([item.kind == k for k in (STR, NUM, BOOL, NULL, OTHER)]))
        if parent is not None:
            axioms.append(z3.Implies(s.present, z3.And(parent.sym.present, parent.sym.kind == OBJ)))
        space.axioms.extend(axioms)
        space.preferences += [z3.Not(s.present), z3.Or(s.kind != LIST, s.length <= 1)]

    def value(self) -> Sym:
        return self.sym

    def child(self, name: str) -> Node:
        node = self.children.get(name)
        if node is None:
            node = RequestNode(self.space, f"{self.path}.{name}", self)
            self.children[name] = node
            self.space.on_new_node(node)
        return node


class RequestSpace:
    """The request every policy set in a question is asked about."""

    def __init__(self, bounds: Bounds = Bounds()):
        self.bounds = bounds
        self.axioms: list = []
        self.notes: set[str] = set()
        self._vars: dict[str, z3.ExprRef] = {}
        self.numbers: list = []
        # what a tidy request looks like: each given up only when the question needs it
        self.preferences: list = []
        var = self.var
        self.principal_id = var(z3.String, "principal")
        self.action = var(z3.String, "action")
        self.tool = var(z3.String, "tool")
        self.resource = var(z3.String, "resource")
        self.has_resource = var(z3.Bool, "resource?present")
        self.now = var(z3.Real, "now")
        self.has_now = var(z3.Bool, "now?present")
        self.chain_length = var(z3.Int, "delegation.chain?length")
        self.chain = tuple(var(z3.String, f"delegation.chain[{i}]") for i in range(bounds.chain))
        self.axioms += [self.chain_length >= 0, self.chain_length <= bounds.chain]
        self.preferences += [self.chain_length == 0, z3.Not(self.has_resource), z3.Not(self.has_now), self.action == z3.StringVal("call")]
        # attributes the request's principal object gives (principal.<name>)
        self.principal_attrs: dict[str, RequestNode] = {}
        self.roots: dict[str, RequestNode] = {}
        for root in OBJECT_ROOTS:
            node = RequestNode(self, root, None)
            self.axioms.append(node.sym.kind == OBJ)
            self.roots[root] = node

    def var(self, sort, name: str):
        v = self._vars.get(name)
        if v is None:
            v = sort(name)
            self._vars[name] = v
            if sort is z3.Real:
                self.numbers.append(v)
        return v

    def on_new_node(self, node: RequestNode) -> None:
        kind = _TYPED.get(node.path)
        if kind is not None:
            self.axioms.append(node.sym.kind == kind)
        if node.parent is None or node.parent.path in _NULL_MEANS_ABSENT:
            # validation drops a `null` here: the field is simply absent
            self.axioms.append(node.sym.kind != NULL)
        root = node.path.split(".", 1)[0]
        if root == "provenance" and node.parent is self.roots["provenance"]:
            self.axioms.append(node.sym.kind == STR)
        if node.path == "credential.age":
            self.axioms.append(z3.Not(node.sym.present))  # derived, never given
        if node.path == "principal.groups":
            s = node.sym
            self.axioms.append(s.kind == LIST)
            self.axioms.extend(item.kind == STR for item in s.items)

    def principal_attr(self, name: str) -> RequestNode:
        """``principal.<name>`` as given in the request's principal object."""
        node = self.principal_attrs.get(name)
        if node is None:
            node = RequestNode(self, f"principal.{name}", None)
            self.principal_attrs[name] = node
            self.on_new_node(node)
        return node

    # -- models back to requests ----------------------------------------------------------
    def request(self, model: z3.ModelRef) -> dict:
        """The request object (the fields an enforcement point sends) a model describes."""
        ev = _Reader(model)
        req: dict = {}
        pid = ev.string(self.principal_id)
        attrs = {name: ev.node(node) for name, node in sorted(self.principal_attrs.items()) if ev.true(node.sym.present)}
        attrs.pop("id", None)
        req["principal"] = {"id": pid, **attrs} if attrs else pid
        req["action"] = ev.string(self.action)
        req["tool"] = ev.string(self.tool)
        if ev.true(self.has_resource):
            req["resource"] = ev.string(self.resource)
        for root, node in self.roots.items():
            if ev.true(node.sym.present):
                value = ev.node(node)
                if root == "credential":
                    value.pop("age", None)
                req[root] = value
        length = ev.int(self.chain_length)
        if length:
            req["delegation"] = {"chain": [ev.string(self.chain[i]) for i in range(length)]}
        if ev.true(self.has_now):
            req["now"] = ev.number(self.now)
        return req


class _Reader:
    def __init__(self, model: z3.ModelRef):
        self.model = model

    def true(self, b) -> bool:
        return z3.is_true(self.model.eval(b, model_completion=True))

    def int(self, x) -> int:
        return self.model.eval(x, model_completion=True).as_long()

    def string(self, s) -> str:
        m = self.model
        n = m.eval(z3.Length(s), model_completion=True).as_long()
        return "".join(chr(m.eval(z3.StrToCode(z3.SubString(s, i, 1)), model_completion=True).as_long()) for i in range(n))

    def number(self, x):
        value = self.model.eval(x, model_completion=True)
        frac = Fraction(value.as_fraction()) if z3.is_rational_value(value) else Fraction(str(value.as_decimal(20)).rstrip("?"))
        return frac.numerator if frac.denominator == 1 else float(frac)

    def scalar(self, sym: Sym):
        kind = self.int(sym.kind)
        if kind == STR:
            return self.string(sym.s)
        if kind == NUM:
            return self.number(sym.n)
        if kind == BOOL:
            return self.true(sym.b)
        if kind == NULL:
            return None
        return {}  # OTHER: some compound value

    def node(self, node: RequestNode):
        sym = node.sym
        kind = self.int(sym.kind)
        if kind == OBJ:
            return {name: self.node(child) for name, child in sorted(node.children.items()) if self.true(child.sym.present)}
        if kind == LIST:
            return [self.scalar(item) for item in sym.items[: self.int(sym.length)]]
        return self.scalar(sym)
