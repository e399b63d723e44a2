"""The condition compiler: each rule's ``when``/``unless`` compiled once into a
closure. No text from a policy is ever turned into code.

A compiled condition reads the request through a :class:`Scope`: no per-request
dict is built; the request paths are read straight from the
:class:`~nhipl.request.Request` (a null field is absent, so None means absent).
Where a condition cannot be evaluated it raises
:class:`~nhipl.semantics.EvalFailure` with the reference interpreter's message.
"""

from __future__ import annotations

import operator
from operator import attrgetter
from typing import Callable, assert_never

from . import ast as A
from . import semantics as S
from .loops import compile_loop
from .request import _NO_APPROVAL, ROOTS, Request
from .values import ListView, a_type, equal, glob


class Scope:
    """What a compiled condition reads: the request, the merged attributes of the
    identity being decided, how much of the request's delegation chain is that
    identity's (its depth: the whole chain for the principal, the part before it
    for a delegator) and ``tool``, which gives a tool's attributes with its name.

    A slotted class rather than a named tuple: its fields are read on every
    condition, and slot reads are the interpreter's fastest attribute access. Made
    empty (``Scope()``) and then filled, which is cheaper than an ``__init__``."""

    __slots__ = ("request", "principal", "depth", "tool", "bound")

    request: Request
    principal: dict
    depth: int
    tool: Callable[[str], dict]
    bound: dict  # quantifier names -> the element being tested; set by the first quantifier


Cond = Callable[[Scope], object]

def _chain(scope: Scope) -> list:
    chain = scope.request.chain
    depth = scope.depth
    return chain if depth == len(chain) else chain[:depth]


def _describe_missing(scope: Scope, root: str, attrs: tuple[str, ...]) -> str:
    req = scope.request
    env = req.env(scope.principal, scope.tool(req.tool), _chain(scope))
    try:
        S.lookup(root, attrs, env)
    except S.EvalFailure as failure:
        return failure.message
    return f"cannot read `{'.'.join((root,) + attrs)}`"


def _root_getter(root: str) -> Callable[[tuple], object]:
    """``scope -> value of the request path root``, None when the request has none."""
    if root == "principal":
        return attrgetter("principal")
    if root == "tool":
        return lambda scope: scope.tool(scope.request.tool)
    if root == "delegation":
        return lambda scope: {"chain": _chain(scope), "depth": scope.depth}
    if root == "approval":

        def approval(scope):
            value = scope.request.approval
            return value if value is not None else _NO_APPROVAL

        return approval
    if root not in _REQUEST_ROOTS:  # refused by check; like the reference, absent
        return lambda scope: None
    return attrgetter("request." + root)


# Roots read as the Request attribute of the same name.
_REQUEST_ROOTS = frozenset({"action", "resource", "args", "task", "credential", "context", "provenance", "now", "history"})


def _compile_path(node: A.Path) -> Cond:
    root, attrs = node.root, node.attrs
    if root not in ROOTS:  # a quantifier's name (check refuses any other)
        return _compile_bound(root, attrs)
    if root == "delegation" and attrs == ("depth",):
        return attrgetter("depth")
    if root == "delegation" and attrs == ("chain",):
        return _chain
    if root == "tool" and attrs == ("name",):
        return attrgetter("request.tool")
    get_root = _root_getter(root)
    if not attrs:

        def get0(scope):
            value = get_root(scope)
            if value is None:
                raise S.no_root(root)
            return value

        return get0
    if len(attrs) == 1:
        (attr,) = attrs
        if root in _REQUEST_ROOTS or root == "principal":
            # one C-level read of the root instead of a call to get_root
            read = attrgetter("request." + root) if root != "principal" else attrgetter("principal")

            def get1_direct(scope):
                value = read(scope)
                if value.__class__ is dict:
                    try:
                        return value[attr]
                    except KeyError:
                        pass
                raise S.EvalFailure(_describe_missing(scope, root, attrs))

            return get1_direct

        def get1(scope):
            value = get_root(scope)
            if value.__class__ is dict:
                try:
                    return value[attr]
                except KeyError:
                    pass
            raise S.EvalFailure(_describe_missing(scope, root, attrs))

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
        raise S.EvalFailure(_describe_missing(scope, root, attrs))

    return get_n


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
    read = attrgetter("request." + root)

    def equals(scope):
        value = read(scope)
        if value.__class__ is dict:
            try:
                v = value[attr]
            except KeyError:
                pass
            else:
                return v.__class__ is str and v == const
        raise S.EvalFailure(_describe_missing(scope, root, attrs))

    return equals


def _compile_order(op: str, left: A.Expr, right: A.Expr) -> Cond:
    get_l = compile_expr(left)
    compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]
    if isinstance(right, (A.Literal, A.Duration)) and (const := _const(right)).__class__ in (int, float):
        if isinstance(left, A.Path) and left.root == "delegation" and left.attrs == ("depth",):
            return lambda scope: compare(scope.depth, const)  # the depth is always a number

        def order_const(env):
            a = get_l(env)
            ca = a.__class__
            if ca is int or ca is float:
                return compare(a, const)
            raise S.cannot_order(op, a, const)

        return order_const
    get_r = compile_expr(right)

    def order(env):
        a = get_l(env)
        b = get_r(env)
        ca, cb = a.__class__, b.__class__
        if (ca is int or ca is float) and (cb is int or cb is float):
            return compare(a, b)
        raise S.cannot_order(op, a, b)

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
        if container.__class__ is not list and container.__class__ is not ListView:
            raise S.not_a_list(container)
        return any(equal(v, m) for m in container)

    return in_dynamic


def _compile_strtest(node: A.StringTest) -> Cond:
    get_l, get_r = compile_expr(node.left), compile_expr(node.right)
    op = node.op

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
                raise S.not_strings(op, v, lit)
            return test(v)

        return strtest_const

    def strtest(env):
        a = get_l(env)
        b = get_r(env)
        if a.__class__ is not str or b.__class__ is not str:
            raise S.not_strings(op, a, b)
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

    get_root = _root_getter(root) if root in ROOTS else _bound_getter(root)

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
    :class:`~nhipl.semantics.EvalFailure` where the reference interpreter reports an error."""
    if _is_const(node):
        const = _const(node)
        if isinstance(const, list):
            return lambda env: list(const)  # type: ignore[arg-type]
        return lambda env: const
    match node:
        case A.Literal() | A.Duration():
            raise AssertionError("unreachable: literals are constants")
        case A.Path():
            return _compile_path(node)
        case A.ListExpr(items=items):
            compiled = [compile_expr(i) for i in items]
            return lambda env: [f(env) for f in compiled]
        case A.Not(operand=operand):
            return _compile_not(operand)
        case A.And(operands=operands):
            return _compile_and(operands)
        case A.Or(operands=operands):
            return _compile_or(operands)
        case A.Compare(op="==", left=left, right=right):
            return _compile_equal(left, right)
        case A.Compare(op="!=", left=left, right=right):
            eq = _compile_equal(left, right)
            return lambda env: not eq(env)
        case A.Compare(op=op, left=left, right=right):
            return _compile_order(op, left, right)
        case A.In():
            return _compile_in(node)
        case A.StringTest():
            return _compile_strtest(node)
        case A.Has():
            return _compile_has(node)
        case A.Quantifier():
            return _compile_quantifier(node)
        case A.Call(name=name, args=(arg,)):
            return _compile_call(name, compile_expr(arg))
        case A.Call():
            raise AssertionError("unreachable: lowering gives every function one argument")
        case A.Arith(op=op, left=left, right=right):
            return _compile_arith(op, left, right)
        case unknown:
            assert_never(unknown)


# ---- version 2: quantifiers, functions, arithmetic ------------------------------------


def _bound_getter(name: str) -> Cond:
    def get(scope):
        try:
            return scope.bound[name]
        except (AttributeError, KeyError):
            return None  # unreachable for a checked policy: names are read inside their quantifier

    return get


def _compile_bound(name: str, attrs: tuple[str, ...]) -> Cond:
    """``x``, ``x.a.b`` where a quantifier binds ``x``: read from ``scope.bound``."""
    if not attrs:

        def get0(scope):
            return scope.bound[name]

        return get0
    if len(attrs) == 1:
        (attr,) = attrs

        def get1(scope):
            value = scope.bound[name]
            if value.__class__ is dict:
                try:
                    return value[attr]
                except KeyError:
                    pass
            raise S.missing(name, value, attr)

        return get1

    def get_n(scope):
        value = scope.bound[name]
        walked = name
        for attr in attrs:
            if value.__class__ is not dict or attr not in value:
                raise S.missing(walked, value, attr)
            value, walked = value[attr], f"{walked}.{attr}"
        return value

    return get_n


def _compile_quantifier(node: A.Quantifier) -> Cond:
    """One closure per quantifier: the loop over the list, with the element stored in
    ``scope.bound`` under the quantifier's name for the condition to read."""
    kind, name, source = node.kind, node.name, compile_expr(node.source)

    def items_of(scope):
        items = source(scope)
        cls = items.__class__
        if cls is not list and cls is not ListView:
            raise S.not_a_list_for(kind, items)
        return items

    if node.where is None:  # count(x in LIST)
        return lambda scope: len(items_of(scope))
    loop = compile_loop(node, source, compile_expr)
    if loop is not None:
        return loop
    holds = _checked(compile_expr(node.where), node.where, S.where(kind))

    def elements(scope):
        items = items_of(scope)
        try:
            bound = scope.bound
        except AttributeError:
            bound = scope.bound = {}
        return items, bound

    if kind == "any":

        def any_(scope):
            items, bound = elements(scope)
            for item in items:
                bound[name] = item
                if holds(scope):
                    return True
            return False

        return any_
    if kind == "all":

        def all_(scope):
            items, bound = elements(scope)
            for item in items:
                bound[name] = item
                if not holds(scope):
                    return False
            return True

        return all_

    def count(scope):
        items, bound = elements(scope)
        n = 0
        for item in items:
            bound[name] = item
            if holds(scope):
                n += 1
        return n

    return count


def _compile_call(function: str, arg: Cond) -> Cond:
    call = S.call
    if function == "len":

        def len_(scope):
            value = arg(scope)
            cls = value.__class__
            if cls is list or cls is str or cls is dict or cls is ListView:
                return len(value)
            raise S.bad_argument(function, value)

        return len_
    return lambda scope: call(function, arg(scope))


def _compile_arith(op: str, left: A.Expr, right: A.Expr) -> Cond:
    get_l, get_r, arith = compile_expr(left), compile_expr(right), S.arith
    return lambda scope: arith(op, get_l(scope), get_r(scope))


def _compile_not(operand: A.Expr) -> Cond:
    inner = compile_expr(operand)
    if _is_boolean(operand):
        return lambda env: not inner(env)

    def not_(env):
        v = inner(env)
        if v is True:
            return False
        if v is False:
            return True
        raise S.not_boolean(S.NOT_OPERAND, v)

    return not_


def _compile_and(operands: tuple[A.Expr, ...]) -> Cond:
    ops = tuple(compile_expr(o) for o in operands)
    if all(_is_boolean(o) for o in operands):
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
                raise S.not_boolean(S.AND_OPERAND, v)
        return True

    return and_


def _compile_or(operands: tuple[A.Expr, ...]) -> Cond:
    ops = tuple(compile_expr(o) for o in operands)
    if all(_is_boolean(o) for o in operands):
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
                raise S.not_boolean(S.OR_OPERAND, v)
        return False

    return or_


def _is_boolean(node: A.Expr) -> bool:
    """True when the compiled closure of ``node`` returns exactly True or False
    (or raises): every operator does; only paths and literals may not."""
    return isinstance(node, (A.Compare, A.In, A.StringTest, A.Has, A.And, A.Or, A.Not)) or (
        isinstance(node, A.Quantifier) and node.kind != "count"
    )


def _checked(f: Cond, node: A.Expr, what: str) -> Cond:
    if _is_boolean(node):
        return f

    def boolean(env):
        v = f(env)
        if v is True or v is False:
            return v
        raise S.not_boolean(what, v)

    return boolean


def compile_condition(when: A.Expr | None, unless: A.Expr | None) -> Cond | None:
    """One closure for a rule's ``when``/``unless``: True when the rule matches.
    ``unless`` is evaluated only when ``when`` is true (or absent)."""
    w = _checked(compile_expr(when), when, S.WHEN) if when is not None else None
    u = _checked(compile_expr(unless), unless, S.UNLESS) if unless is not None else None
    if u is None:
        return w
    if w is None:
        return lambda env: not u(env)
    return lambda env: w(env) and not u(env)



def shape(node: A.Expr | None) -> object:
    """What an expression computes, as a hashable value: equal shapes compile to
    interchangeable closures. Literals keep their type (``1``, ``1.0`` and
    ``true`` differ), spans are left out."""
    match node:
        case None:
            return None
        case A.Literal(value=value):
            return ("literal", value.__class__, value)
        case A.Duration():
            return ("duration", node.seconds)
        case A.Path(root=root, attrs=attrs):
            return ("path", root, attrs)
        case A.ListExpr(items=items):
            return ("list", tuple(shape(i) for i in items))
        case A.Not(operand=operand):
            return ("not", shape(operand))
        case A.And(operands=operands) | A.Or(operands=operands):
            return (node.__class__.__name__, tuple(shape(o) for o in operands))
        case A.Compare(op=op, left=left, right=right) | A.StringTest(op=op, left=left, right=right):
            return (node.__class__.__name__, op, shape(left), shape(right))
        case A.In(item=item, container=container):
            return ("in", shape(item), shape(container))
        case A.Has(path=path, name=name):
            return ("has", shape(path), name)
        case A.Quantifier(kind=kind, name=name, source=source, where=where):
            return ("quantifier", kind, name, shape(source), shape(where))
        case A.Call(name=name, args=args):
            return ("call", name, tuple(shape(a) for a in args))
        case A.Arith(op=op, left=left, right=right):
            return ("arith", op, shape(left), shape(right))
        case unknown:
            assert_never(unknown)


def condition(conditions: dict, when: A.Expr | None, unless: A.Expr | None) -> Cond | None:
    """The compiled condition, one closure per distinct (when, unless) shape."""
    key = (shape(when), shape(unless))
    cond = conditions.get(key)
    if cond is None and key not in conditions:
        cond = conditions[key] = compile_condition(when, unless)
    return cond

