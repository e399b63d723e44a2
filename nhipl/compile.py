"""The compiled evaluator: indexes and compiled conditions.

* Rules are indexed by action, then by target: exact targets in a hash map,
  glob targets by their literal prefix (looked up for every prefix of the tool
  name), by their literal suffix when the prefix is empty, and the rest (``*``)
  in one short list. The candidate rules for an (action, tool) pair are worked
  out once and cached (a :class:`_Bucket`); so are, for an (action, tool,
  principal id) triple when the principal's attributes come from declarations,
  the rules of that bucket whose subject the principal matches, in rule order
  (a *fit*). A decision is then one hash lookup and a walk over one to three
  rules at any policy size. Buckets of the tools rules name exactly, and the
  identities of declared agents, are built at compile time; fits as requests
  arrive. The caches are bounded; a request that brings its own principal
  attributes is matched afresh.
* Conditions are compiled once into closures. No text from a policy is ever
  turned into code.

It must agree with :mod:`nhipl.interpret` on every policy and request; the
differential test holds it to that.
"""

from __future__ import annotations

import operator
import sys
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Callable

from . import ast as A
from .decision import (
    ALLOW,
    DENY,
    RESTRICTIVENESS,
    Decision,
    EvalError,
    Reasons,
    allow_lines,
    combine,
    default_deny_lines,
    explain,
    make_decision,
)
from .request import _NO_APPROVAL, Request, parse_request
from .request import _parse as parse_one  # parse_request without an index to report
from .values import Glob, a_type, equal, glob

_new_tuple = tuple.__new__

# Each cache (buckets per action, identities, tools, fits) holds at most this many
# entries and starts over when full; 100,000 fits take about 20 MB.
_CACHE_LIMIT = 100_000
_FORBID, _PERMIT, _APPROVAL = 0, 1, 2
_KIND = {A.FORBID: _FORBID, A.PERMIT: _PERMIT, A.APPROVAL: _APPROVAL}


class _Failure(Exception):
    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


# A compiled condition reads the request through a *scope*, the tuple
# ``(request, principal, chain, compiled)``: no per-request dict is built; the
# request paths are read straight from the Request (DESIGN §1: a null field is
# absent, so None means absent).
Cond = Callable[[tuple], object]


# ---- conditions ------------------------------------------------------------------------


def _describe_missing(scope: tuple, root: str, attrs: tuple[str, ...]) -> str:
    req, principal, chain, compiled = scope
    env = compiled._env(req, principal, chain)
    if root not in env:
        return f"the request has no `{root}`"
    value, walked = env[root], root
    for attr in attrs:
        if value.__class__ is not dict:
            return f"`{walked}` is {a_type(value)}, it has no attribute `{attr}`"
        if attr not in value:
            return f"`{walked}` has no attribute `{attr}`"
        value, walked = value[attr], f"{walked}.{attr}"
    return f"cannot read `{walked}`"


def _root_getter(root: str) -> Callable[[tuple], object]:
    """``scope -> value of the request path root``, None when the request has none."""
    if root == "principal":
        return itemgetter(1)
    if root == "tool":
        return lambda scope: scope[3]._tool(scope[0].tool)
    if root == "delegation":
        return lambda scope: {"chain": scope[2], "depth": len(scope[2])}
    if root == "approval":

        def approval(scope):
            value = scope[0].approval
            return value if value is not None else _NO_APPROVAL

        return approval
    if root not in _REQUEST_ROOTS:  # refused by check; like the reference, absent
        return lambda scope: None
    get = attrgetter(root)
    return lambda scope: get(scope[0])


# Roots read as the Request attribute of the same name.
_REQUEST_ROOTS = frozenset({"action", "resource", "args", "task", "credential", "context", "provenance", "now"})


def _compile_path(node: A.Path) -> Cond:
    root, attrs = node.root, node.attrs
    if root == "delegation" and attrs == ("depth",):
        return lambda scope: len(scope[2])
    if root == "delegation" and attrs == ("chain",):
        return itemgetter(2)
    if root == "tool" and attrs == ("name",):
        return lambda scope: scope[0].tool
    get_root = _root_getter(root)
    if not attrs:

        def get0(scope):
            value = get_root(scope)
            if value is None:
                raise _Failure(f"the request has no `{root}`")
            return value

        return get0
    if len(attrs) == 1:
        (attr,) = attrs
        if root in _REQUEST_ROOTS or root == "principal":
            # one C-level read of the root instead of a call to get_root
            read = attrgetter(root) if root != "principal" else None

            def get1_direct(scope):
                value = read(scope[0]) if read is not None else scope[1]
                if value.__class__ is dict:
                    try:
                        return value[attr]
                    except KeyError:
                        pass
                raise _Failure(_describe_missing(scope, root, attrs))

            return get1_direct

        def get1(scope):
            value = get_root(scope)
            if value.__class__ is dict:
                try:
                    return value[attr]
                except KeyError:
                    pass
            raise _Failure(_describe_missing(scope, root, attrs))

        return get1

    def get_n(scope):
        value = get_root(scope)
        try:
            for attr in attrs:
                if value.__class__ is not dict:
                    break
                value = value[attr]
            else:
                return value
        except KeyError:
            pass
        raise _Failure(_describe_missing(scope, root, attrs))

    return get_n


def _boolean(value: object, what: str) -> bool:
    if value is True or value is False:
        return value
    raise _Failure(f"{what} is {a_type(value)}, not a boolean")


def _is_const(node: A.Expr) -> bool:
    if isinstance(node, (A.Literal, A.Duration)):
        return True
    return isinstance(node, A.ListExpr) and all(_is_const(i) for i in node.items)


def _const(node: A.Expr) -> object:
    if isinstance(node, A.Literal):
        return node.value
    if isinstance(node, A.Duration):
        return node.seconds
    return [_const(i) for i in node.items]  # type: ignore[union-attr]


def _compile_equal(left: A.Expr, right: A.Expr) -> Cond:
    if _is_const(left) and not _is_const(right):
        left, right = right, left
    get = compile_expr(left)
    if _is_const(right):
        const = _const(right)
        cls = const.__class__
        if cls is str:
            if isinstance(left, A.Path) and len(left.attrs) == 1 and left.root in _REQUEST_ROOTS:
                return _request_attr_equals_string(left, const)
            return lambda env: (v := get(env)).__class__ is str and v == const
        if cls is bool or const is None:
            return lambda env: get(env) is const
        if cls is int or cls is float:
            return lambda env: ((c := (v := get(env)).__class__) is int or c is float) and v == const
        return lambda env: equal(get(env), const)
    other = compile_expr(right)
    return lambda env: equal(get(env), other(env))


def _request_attr_equals_string(path: A.Path, const: str) -> Cond:
    """``task.intent == "x"`` and the like in one closure: the commonest condition."""
    root, attrs = path.root, path.attrs
    (attr,) = attrs
    read = attrgetter(root)

    def equals(scope):
        value = read(scope[0])
        if value.__class__ is dict:
            try:
                v = value[attr]
            except KeyError:
                pass
            else:
                return v.__class__ is str and v == const
        raise _Failure(_describe_missing(scope, root, attrs))

    return equals


def _compile_order(op: str, left: A.Expr, right: A.Expr) -> Cond:
    get_l = compile_expr(left)
    compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]
    if isinstance(right, (A.Literal, A.Duration)) and (const := _const(right)).__class__ in (int, float):
        if isinstance(left, A.Path) and left.root == "delegation" and left.attrs == ("depth",):
            return lambda scope: compare(len(scope[2]), const)  # the depth is always a number

        def order_const(env):
            a = get_l(env)
            ca = a.__class__
            if ca is int or ca is float:
                return compare(a, const)
            raise _Failure(f"cannot order {a_type(a)} and a number with `{op}`")

        return order_const
    get_r = compile_expr(right)

    def order(env):
        a = get_l(env)
        b = get_r(env)
        ca, cb = a.__class__, b.__class__
        if (ca is int or ca is float) and (cb is int or cb is float):
            return compare(a, b)
        raise _Failure(f"cannot order {a_type(a)} and {a_type(b)} with `{op}`")

    return order


def _compile_in(node: A.In) -> Cond:
    get_item = compile_expr(node.item)
    if _is_const(node.container) and isinstance(node.container, A.ListExpr):
        members = _const(node.container)
        strings = frozenset(m for m in members if m.__class__ is str)
        numbers = frozenset(m for m in members if m.__class__ is int or m.__class__ is float)
        others = [m for m in members if m.__class__ not in (str, int, float)]

        def in_const(env):
            v = get_item(env)
            c = v.__class__
            if c is str:
                return v in strings
            if c is int or c is float:
                return v in numbers
            return any(equal(v, m) for m in others)

        return in_const
    get_container = compile_expr(node.container)

    def in_dynamic(env):
        v = get_item(env)
        container = get_container(env)
        if container.__class__ is not list:
            raise _Failure(f"`in` needs a list on the right, not {a_type(container)}")
        return any(equal(v, m) for m in container)

    return in_dynamic


def _compile_strtest(node: A.StringTest) -> Cond:
    get_l, get_r = compile_expr(node.left), compile_expr(node.right)
    op = node.op

    def fail(a, b):
        return _Failure(f"`{op}` needs two strings, not {a_type(a)} and {a_type(b)}")

    if isinstance(node.right, A.Literal) and node.right.value.__class__ is str:
        lit = node.right.value
        if op == "startswith":
            test = lambda s: s.startswith(lit)  # noqa: E731
        elif op == "endswith":
            test = lambda s: s.endswith(lit)  # noqa: E731
        elif op == "contains":
            test = lambda s: lit in s  # noqa: E731
        else:
            test = glob(lit).match

        def strtest_const(env):
            v = get_l(env)
            if v.__class__ is not str:
                raise fail(v, lit)
            return test(v)

        return strtest_const

    def strtest(env):
        a = get_l(env)
        b = get_r(env)
        if a.__class__ is not str or b.__class__ is not str:
            raise fail(a, b)
        if op == "matches":
            return glob(b).match(a)
        if op == "startswith":
            return a.startswith(b)
        if op == "endswith":
            return a.endswith(b)
        return b in a

    return strtest


def _compile_has(node: A.Has) -> Cond:
    root, attrs, name = node.path.root, node.path.attrs, node.name

    get_root = _root_getter(root)

    def has(scope):
        value = get_root(scope)
        if value is None:
            return False
        for attr in attrs:
            if value.__class__ is not dict or attr not in value:
                return False
            value = value[attr]
        return value.__class__ is dict and name in value

    return has


def compile_expr(node: A.Expr) -> Cond:
    """Compile an expression into a closure ``scope -> value`` that raises
    ``_Failure`` where the reference interpreter reports an error."""
    if _is_const(node):
        const = _const(node)
        if isinstance(const, list):
            return lambda env: list(const)  # type: ignore[arg-type]
        return lambda env: const
    if isinstance(node, A.Path):
        return _compile_path(node)
    if isinstance(node, A.ListExpr):
        items = [compile_expr(i) for i in node.items]
        return lambda env: [f(env) for f in items]
    if isinstance(node, A.Not):
        inner = compile_expr(node.operand)
        if _is_boolean(node.operand):
            return lambda env: not inner(env)

        def not_(env):
            v = inner(env)
            if v is True:
                return False
            if v is False:
                return True
            raise _Failure(f"the operand of `not` is {a_type(v)}, not a boolean")

        return not_
    if isinstance(node, A.And):
        ops = tuple(compile_expr(o) for o in node.operands)
        if all(_is_boolean(o) for o in node.operands):
            if len(ops) == 2:
                first, second = ops
                return lambda env: first(env) and second(env)

            def and_boolean(env):
                for f in ops:
                    if not f(env):
                        return False
                return True

            return and_boolean

        def and_(env):
            for f in ops:
                v = f(env)
                if v is False:
                    return False
                if v is not True:
                    raise _Failure(f"an operand of `and` is {a_type(v)}, not a boolean")
            return True

        return and_
    if isinstance(node, A.Or):
        ops = tuple(compile_expr(o) for o in node.operands)
        if all(_is_boolean(o) for o in node.operands):
            if len(ops) == 2:
                first, second = ops
                return lambda env: first(env) or second(env)

            def or_boolean(env):
                for f in ops:
                    if f(env):
                        return True
                return False

            return or_boolean

        def or_(env):
            for f in ops:
                v = f(env)
                if v is True:
                    return True
                if v is not False:
                    raise _Failure(f"an operand of `or` is {a_type(v)}, not a boolean")
            return False

        return or_
    if isinstance(node, A.Compare):
        if node.op == "==":
            return _compile_equal(node.left, node.right)
        if node.op == "!=":
            eq = _compile_equal(node.left, node.right)
            return lambda env: not eq(env)
        return _compile_order(node.op, node.left, node.right)
    if isinstance(node, A.In):
        return _compile_in(node)
    if isinstance(node, A.StringTest):
        return _compile_strtest(node)
    if isinstance(node, A.Has):
        return _compile_has(node)
    raise TypeError(f"unknown expression node {node!r}")


def _is_boolean(node: A.Expr) -> bool:
    """True when the compiled closure of ``node`` returns exactly True or False
    (or raises): every operator does; only paths and literals may not."""
    return isinstance(node, (A.Compare, A.In, A.StringTest, A.Has, A.And, A.Or, A.Not))


def _checked(f: Cond, node: A.Expr, what: str) -> Cond:
    if _is_boolean(node):
        return f

    def boolean(env):
        v = f(env)
        if v is True or v is False:
            return v
        raise _Failure(f"{what} is {a_type(v)}, not a boolean")

    return boolean


def compile_condition(when: A.Expr | None, unless: A.Expr | None) -> Cond | None:
    """One closure for a rule's ``when``/``unless``: True when the rule matches.
    ``unless`` is evaluated only when ``when`` is true (or absent)."""
    w = _checked(compile_expr(when), when, "the `when` condition") if when is not None else None
    u = _checked(compile_expr(unless), unless, "the `unless` condition") if unless is not None else None
    if u is None:
        return w
    if w is None:
        return lambda env: not u(env)
    return lambda env: w(env) and not u(env)


# ---- rule indexes -----------------------------------------------------------------------


def _shape(node: A.Expr | None) -> object:
    """What an expression computes, as a hashable value: equal shapes compile to
    interchangeable closures. Literals keep their type (``1``, ``1.0`` and
    ``true`` differ), spans are left out."""
    if node is None:
        return None
    if isinstance(node, A.Literal):
        return ("literal", node.value.__class__, node.value)
    if isinstance(node, A.Duration):
        return ("duration", node.seconds)
    if isinstance(node, A.Path):
        return ("path", node.root, node.attrs)
    if isinstance(node, A.ListExpr):
        return ("list", tuple(_shape(i) for i in node.items))
    if isinstance(node, A.Not):
        return ("not", _shape(node.operand))
    if isinstance(node, (A.And, A.Or)):
        return (node.__class__.__name__, tuple(_shape(o) for o in node.operands))
    if isinstance(node, (A.Compare, A.StringTest)):
        return (node.__class__.__name__, node.op, _shape(node.left), _shape(node.right))
    if isinstance(node, A.In):
        return ("in", _shape(node.item), _shape(node.container))
    if isinstance(node, A.Has):
        return ("has", _shape(node.path), node.name)
    raise TypeError(f"unknown expression node {node!r}")


def _near_miss_lines(pid: str, action: str, tool: str, candidates: tuple, intent: str | None, resource: str | None) -> tuple[str, ...]:
    """The reasons of a default deny with candidates: the deny, then why each permit
    that covers the call (its subject, action and targets match) did not apply, since
    a decision that explains itself says what was close."""
    lines = list(default_deny_lines(pid, action, tool, ()))
    for cr in candidates:
        if cr.kind != _PERMIT:
            continue
        if cr.intent is not None and cr.intent != intent:
            have = f"`{intent}`" if intent is not None else "none"
            lines.append(f"permit `{cr.id}` applies only to tasks with intent `{cr.intent}` (this request's: {have})")
        elif cr.want is not None and intent is not None and cr.want != intent:
            lines.append(f"permit `{cr.id}` has a condition `task.intent == \"{cr.want}\"` (this request's intent: `{intent}`)")
        elif cr.resources is not None and (resource is None or not any(g.match(resource) for g in cr.resources)):
            want = ", ".join(f"`{g.pattern}`" for g in cr.resources)
            have = f"`{resource}`" if resource is not None else "none"
            lines.append(f"permit `{cr.id}` needs a resource matching {want} (this request's: {have})")
        else:
            lines.append(f"permit `{cr.id}` covers this call, but its conditions do not hold for this request")
    return tuple(lines)


def _intent_guard(when: A.Expr | None) -> tuple[str | None, A.Expr | None]:
    """``(x, rest)`` when ``when`` is ``task.intent == "x"`` or starts with that
    conjunct (``rest`` is what remains, None when nothing), else ``(None, when)``.

    A request whose intent is a string other than ``x`` makes such a condition
    false without reading anything else (``and`` stops at its first false
    operand), so the rule is skipped as cheaply as one under a task scope; a
    request with intent ``x`` makes the conjunct true, so only ``rest`` runs."""
    first, rest = when, None
    if isinstance(when, A.And):
        first = when.operands[0]
        rest = A.And(when.operands[1:])  # still an `and`: same checks, same messages
    if isinstance(first, A.Compare) and first.op == "==":
        left, right = first.left, first.right
        if isinstance(left, A.Literal):
            left, right = right, left
        if (
            isinstance(left, A.Path)
            and left.root == "task"
            and left.attrs == ("intent",)
            and isinstance(right, A.Literal)
            and right.value.__class__ is str
        ):
            return right.value, rest
    return None, when


def _condition(conditions: dict, when: A.Expr | None, unless: A.Expr | None) -> Cond | None:
    """The compiled condition, one closure per distinct (when, unless) shape."""
    key = (_shape(when), _shape(unless))
    cond = conditions.get(key)
    if cond is None and key not in conditions:
        cond = conditions[key] = compile_condition(when, unless)
    return cond


class _CRule:
    """A rule as the evaluator reads it.

    ``want`` is the task intent the rule needs: its task scope's, or the one its
    ``when`` starts by testing (``guarded``). ``rest`` is the condition left to
    check once the request's intent equals ``want`` (``cond`` itself when there
    is no guard); ``cond`` is the whole condition."""

    # What the candidate loop reads comes first: at 10,000 rules the evaluator's
    # time goes to cache misses, and these fit one 64-byte line with the header.
    __slots__ = (
        "want", "rest", "resources", "kind", "allowed", "scoped",
        "cond", "index", "rule", "id", "ids", "intent", "ttl", "ttl_seconds", "because",
    )  # fmt: skip

    def __init__(self, index: int, rule: A.Rule, conditions: dict):
        self.index = index
        self.rule = rule
        self.id = rule.id
        self.kind = _KIND[rule.effect]
        self.intent = rule.task_intent
        self.resources = tuple(glob(r) for r in rule.resources) if rule.resources is not None else None
        self.cond = _condition(conditions, rule.when, rule.unless)
        guard, rest = _intent_guard(rule.when) if rule.task_intent is None else (None, None)
        if guard is not None:
            self.want, self.scoped, self.rest = sys.intern(guard), False, _condition(conditions, rest, rule.unless)
        else:
            scope = rule.task_intent
            self.want, self.scoped, self.rest = sys.intern(scope) if scope is not None else None, True, self.cond
        self.ttl = rule.ttl
        self.ttl_seconds = rule.ttl.seconds if rule.ttl is not None else None
        self.ids = (rule.id,)
        self.because = rule.because
        # The decision when this permit alone allows and no ttl ceiling applies:
        # immutable, so built once and shared.
        self.allowed = (
            _new_tuple(Decision, (ALLOW, self.ids, self.ttl_seconds, (), Reasons(allow_lines, self.ids, (), None, self.ttl_seconds, ()), None))
            if self.kind == _PERMIT
            else None
        )


class _TargetIndex:
    """Rules of one action, found by tool name without scanning them all."""

    def __init__(self) -> None:
        self.exact: dict[str, list[_CRule]] = {}
        self.prefix: dict[str, list[tuple[Glob, _CRule]]] = {}
        self.suffix: dict[str, list[tuple[Glob, _CRule]]] = {}
        self.rest: list[tuple[Glob, _CRule]] = []
        self.prefix_lengths: list[int] = []

    def add(self, target: str, crule: _CRule) -> None:
        g = glob(target)
        if g.exact:
            self.exact.setdefault(target, []).append(crule)
        elif g.prefix:
            self.prefix.setdefault(g.prefix, []).append((g, crule))
        elif g.suffix:
            self.suffix.setdefault(g.suffix, []).append((g, crule))
        else:
            self.rest.append((g, crule))

    def freeze(self) -> None:
        self.prefix_lengths = sorted({len(p) for p in self.prefix})
        self.suffix_lengths = sorted({len(s) for s in self.suffix})

    def lookup(self, tool: str) -> list[_CRule]:
        found: dict[int, _CRule] = {}
        for cr in self.exact.get(tool, ()):
            found[cr.index] = cr
        n = len(tool)
        for length in self.prefix_lengths:
            if length > n:
                break
            for g, cr in self.prefix.get(tool[:length], ()):
                if g.match(tool):
                    found[cr.index] = cr
        for length in self.suffix_lengths:
            if length > n:
                break
            for g, cr in self.suffix.get(tool[n - length :], ()):
                if g.match(tool):
                    found[cr.index] = cr
        for g, cr in self.rest:
            if g.match(tool):
                found[cr.index] = cr
        return [found[i] for i in sorted(found)]


class _Bucket:
    """The rules that can apply to one (action, tool), split by subject. Every
    rule sits in exactly one of ``any``, ``ids`` (once per agent id), ``groups``
    or ``id_globs``, so gathering never yields a rule twice. Read only when a fit
    is worked out, not per decision."""

    __slots__ = ("any", "ids", "groups", "id_globs")

    def __init__(self, rules: list[_CRule]):
        any_: list[_CRule] = []
        ids: dict[str, list[_CRule]] = {}
        groups: dict[str, list[_CRule]] = {}
        id_globs = []
        for cr in rules:
            subject = cr.rule.subject
            if isinstance(subject, A.AnyAgent):
                any_.append(cr)
            elif isinstance(subject, A.AgentGroup):
                groups.setdefault(subject.group, []).append(cr)
            else:
                globs = tuple(glob(i) for i in subject.ids)
                if all(g.exact for g in globs):
                    for i in dict.fromkeys(subject.ids):
                        ids.setdefault(i, []).append(cr)
                else:
                    id_globs.append((globs, cr))
        self.any = tuple(any_)
        self.ids = {k: tuple(v) for k, v in ids.items()}
        self.groups = {k: tuple(v) for k, v in groups.items()}
        self.id_globs = tuple(id_globs)

    def fit(self, identity: tuple) -> tuple:
        """The identity with its groups replaced by the rules of this bucket whose
        subject it matches, in rule order: ``(id, attributes, candidates, ttl
        ceiling)``."""
        pid, principal, groups, ceiling = identity
        found = [*self.any, *self.ids.get(pid, ())]
        for g in groups:
            found += self.groups.get(g, ())
        for globs, cr in self.id_globs:
            if any(g.match(pid) for g in globs):
                found.append(cr)
        found.sort(key=_BY_INDEX)
        return (pid, principal, tuple(found), ceiling)


_NO_RULES = _Bucket([])


def _identity(principal: dict) -> tuple:
    """What a fit needs to know of an identity, in one tuple: its id, its
    attributes, its distinct groups and its credential ttl ceiling (or None)."""
    ceiling = principal.get("max_credential_ttl")
    if not (ceiling.__class__ is int or ceiling.__class__ is float):
        ceiling = None
    groups = principal.get("groups")
    groups = tuple(dict.fromkeys(g for g in groups if g.__class__ is str)) if groups.__class__ is list else ()
    return (principal["id"], principal, groups, ceiling)


_BY_INDEX = attrgetter("index")


class CompiledPolicies:
    """Fast evaluation of a :class:`~nhipl.policies.Policies`."""

    def __init__(self, policies) -> None:
        self.policies = policies
        self.attenuate = policies.attenuate
        self._by_action: dict[str, _TargetIndex] = {}
        conditions: dict = {}  # one closure per distinct condition, shared by the rules
        for i, rule in enumerate(policies.rules):
            cr = _CRule(i, rule, conditions)
            index = self._by_action.setdefault(rule.action, _TargetIndex())
            for target in rule.targets:
                index.add(target, cr)
        for index in self._by_action.values():
            index.freeze()
        # action -> tool -> bucket, filled as tools are seen; an action no rule
        # names has no entry (its bucket is always empty)
        self._buckets: dict[str, dict[str, _Bucket]] = {action: {} for action in self._by_action}
        self._principals: dict[str, tuple[dict, tuple[str, ...]]] = {}
        # (action, tool, principal id) -> _Bucket.fit of the declared principal: one
        # hash lookup per decision finds the rules that can apply, in rule order
        self._fits: dict[tuple[str, str, str], tuple] = {}
        self._tools: dict[str, dict] = {}
        # What can be known before the first request is built now, so that a
        # first sight only works out its fit: the bucket of every tool a rule
        # names exactly, and the identity of every declared agent.
        # (Each within its cache's bound.)
        for action, index in self._by_action.items():
            for tool in islice(index.exact, _CACHE_LIMIT):
                self._bucket(action, tool)
        for pid in islice(policies.agents, _CACHE_LIMIT):
            self._declared_principal(pid)

    # -- caches ---------------------------------------------------------------------
    def _bucket(self, action: str, tool: str) -> _Bucket:
        by_tool = self._buckets.get(action)
        if by_tool is None:
            return _NO_RULES
        bucket = by_tool.get(tool)
        if bucket is None:
            bucket = _Bucket(self._by_action[action].lookup(tool))
            if len(by_tool) >= _CACHE_LIMIT:
                by_tool.clear()
            by_tool[tool] = bucket
        return bucket

    def _declared_principal(self, pid: str) -> tuple:
        """:func:`_identity` of ``pid`` with its declared attributes."""
        entry = self._principals.get(pid)
        if entry is None:
            entry = _identity(self.policies.principal(pid, None))
            if len(self._principals) >= _CACHE_LIMIT:
                self._principals.clear()
            self._principals[pid] = entry
        return entry

    def _declared_fit(self, action: str, tool: str, pid: str) -> tuple:
        key = (action, tool, pid)
        return self._fits.get(key) or self._fit(key)

    def _fit(self, key: tuple[str, str, str]) -> tuple:
        """:meth:`_Bucket.fit` of the declared principal for ``key``, an (action,
        tool, principal id) triple the memo does not hold yet; remembered."""
        action, tool, pid = key
        bucket = self._bucket(action, tool)
        fit = bucket.fit(self._declared_principal(pid))
        if bucket is not _NO_RULES:  # an action no rule names: nothing worth keeping
            if len(self._fits) >= _CACHE_LIMIT:
                self._fits.clear()
            self._fits[key] = fit
        return fit

    def _tool(self, name: str) -> dict:
        tool = self._tools.get(name)
        if tool is None:
            tool = {**self.policies.tool_attrs(name), "name": name}
            if len(self._tools) >= _CACHE_LIMIT:
                self._tools.clear()
            self._tools[name] = tool
        return tool

    # -- evaluation -------------------------------------------------------------------
    def _decide(self, req: Request, fit: tuple, chain) -> Decision:
        # The rules whose subject matches, in rule order (see _Bucket.fit).
        # Only what this decision needs is read from the fit: at 10,000 rules every
        # object touched is likely a cache miss.
        candidates = fit[2]
        if not candidates:
            return _new_tuple(Decision, (DENY, (), None, (), Reasons(default_deny_lines, fit[0], req.action, req.tool, ()), None))
        permits: list[_CRule] = []
        forbids = approvals = errors = None  # rare: made when first needed
        task = req.task
        intent = task.get("intent") if task is not None else None
        resource = req.resource
        env = None
        for cr in candidates:
            want = cr.want
            if want is None:
                cond = cr.cond
            elif want == intent:
                cond = cr.rest
            elif cr.scoped or intent is not None:
                continue  # another task's rule, or a condition that is false for this intent
            else:
                cond = cr.cond  # the condition reads a task intent this request lacks: it fails closed
            if cr.resources is not None:
                if resource is None:
                    continue
                for g in cr.resources:
                    if g.match(resource):
                        break
                else:
                    continue
            if cond is not None:
                if env is None:
                    env = (req, fit[1], chain, self)
                try:
                    if not cond(env):
                        continue
                except _Failure as failure:
                    if errors is None:
                        errors = []
                    errors.append(EvalError(cr.id, failure.message))
                    if cr.kind == _PERMIT:
                        continue
            kind = cr.kind
            if kind == _PERMIT:
                permits.append(cr)
            elif kind == _FORBID:
                if forbids is None:
                    forbids = []
                forbids.append(cr)
            else:
                if approvals is None:
                    approvals = []
                approvals.append(cr)
        if forbids is None and approvals is None and errors is None:
            if not permits:
                return _new_tuple(
                    Decision, (DENY, (), None, (), Reasons(_near_miss_lines, fit[0], req.action, req.tool, candidates, intent, resource), None)
                )
            ceiling = fit[3]
            if ceiling is None and len(permits) == 1:
                return permits[0].allowed
            return self._allow(permits, ceiling)
        return explain(req, fit[1], forbids or (), permits, approvals or (), errors or ())

    @staticmethod
    def _allow(permits: list[_CRule], ceiling: int | float | None) -> Decision:
        if len(permits) == 1:
            cr = permits[0]
            ttl, rules = cr.ttl_seconds, cr.ids
        else:
            ttl = None
            for cr in permits:
                seconds = cr.ttl_seconds
                if seconds is not None and (ttl is None or seconds < ttl):
                    ttl = seconds
            rules = tuple([cr.id for cr in permits])
        if ceiling is not None and (ttl is None or ceiling < ttl):
            ttl = ceiling
        return _new_tuple(Decision, (ALLOW, rules, ttl, (), Reasons(allow_lines, rules, (), None, ttl, ()), None))

    def _env(self, req: Request, principal: dict, chain) -> dict:
        # Conditions only read the env, so the request's own objects are shared.
        env = {
            "principal": principal,
            "action": req.action,
            "tool": self._tool(req.tool),
            "delegation": {"chain": chain, "depth": len(chain)},
            "approval": req.approval if req.approval is not None else _NO_APPROVAL,
        }
        if req.resource is not None:
            env["resource"] = req.resource
        if req.args is not None:
            env["args"] = req.args
        if req.task is not None:
            env["task"] = req.task
        if req.credential is not None:
            env["credential"] = req.credential
        if req.context is not None:
            env["context"] = req.context
        if req.provenance is not None:
            env["provenance"] = req.provenance
        if req.now is not None:
            env["now"] = req.now
        return env

    def evaluate(self, request) -> Decision:
        """Decide one request: a dict (validated here) or a :class:`Request`."""
        req = request if request.__class__ is Request else parse_one(request)
        if req.principal_attrs is None:
            key = (req.action, req.tool, req.principal_id)
            fit = self._fits.get(key)
            if fit is None:
                fit = self._fit(key)
        else:
            principal = self.policies.principal(req.principal_id, req.principal_attrs)
            fit = self._bucket(req.action, req.tool).fit(_identity(principal))
        chain = req.chain
        own = self._decide(req, fit, chain)
        if not (chain and self.attenuate):
            return own
        members = [
            (delegator, self._decide(req, self._declared_fit(req.action, req.tool, delegator), chain[:i]))
            for i, delegator in enumerate(chain)
        ]
        if own.effect == ALLOW and all(d.effect == ALLOW and not d.errors and d.credential_ttl is None for _, d in members):
            return own
        return combine(req.principal_id, own, members)

    evaluate_request = evaluate

    def evaluate_many(self, requests) -> list[Decision]:
        evaluate = self.evaluate_request
        out = []
        append = out.append
        for i, raw in enumerate(requests):
            append(evaluate(raw if isinstance(raw, Request) else parse_request(raw, i)))
        return out


__all__ = ["CompiledPolicies", "compile_expr", "compile_condition", "RESTRICTIVENESS"]
