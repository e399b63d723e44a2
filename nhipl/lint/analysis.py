"""What the lint rules reason with: glob overlap and containment, rule scopes,
and conditions whose value does not depend on the request.

Every answer here is conservative in the direction that avoids false findings:
``covers`` says yes only when containment is certain, ``overlaps`` says no only
when no request can reach both.
"""

from __future__ import annotations

from functools import lru_cache
from typing import assert_never

from .. import ast as A
from ..values import equal, glob, is_number

# ---- globs -------------------------------------------------------------------------------

_STAR = "\x00"  # stands for a `*` of the inner glob; no policy string holds a NUL


@lru_cache(maxsize=65536)
def glob_covers(outer: str, inner: str) -> bool:
    """Every string ``inner`` matches, ``outer`` matches too (``*`` only globs).

    ``outer`` is matched against ``inner`` with each of ``inner``'s stars as a
    symbol that only a star of ``outer`` can absorb."""
    return glob(outer).match(inner.replace("*", _STAR))


@lru_cache(maxsize=65536)
def globs_overlap(a: str, b: str) -> bool:
    """Some string matches both globs."""
    la, lb = len(a), len(b)
    seen = set()
    stack = [(0, 0)]
    while stack:
        state = stack.pop()
        if state in seen:
            continue
        seen.add(state)
        i, j = state
        if i == la and j == lb:
            return True
        if i < la and a[i] == "*":
            stack.append((i + 1, j))
            if j < lb:
                stack.append((i, j + 1))
        if j < lb and b[j] == "*":
            stack.append((i, j + 1))
            if i < la:
                stack.append((i + 1, j))
        if i < la and j < lb and a[i] != "*" and b[j] != "*" and a[i] == b[j]:
            stack.append((i + 1, j + 1))
    return False


def any_covers(outers, inner: str) -> bool:
    return any(glob_covers(o, inner) for o in outers)


def all_covered(outers, inners) -> bool:
    return all(any_covers(outers, i) for i in inners)


def any_overlap(xs, ys) -> bool:
    return any(globs_overlap(x, y) for x in xs for y in ys)


# ---- subjects and scopes ----------------------------------------------------------------


def subject_covers(outer: A.Subject, inner: A.Subject) -> bool:
    match outer:
        case A.AnyAgent():
            return True
        case A.AgentIds(ids=ids):
            return isinstance(inner, A.AgentIds) and all_covered(ids, inner.ids)
        case A.AgentGroup(groups=groups):
            return isinstance(inner, A.AgentGroup) and set(inner.groups) <= set(groups)
        case unknown:
            assert_never(unknown)


def subjects_overlap(a: A.Subject, b: A.Subject) -> bool:
    match a, b:
        case A.AgentIds(ids=ids_a), A.AgentIds(ids=ids_b):
            return any_overlap(ids_a, ids_b)
        case _:
            return True  # any agent, or a group: membership comes from the request


def scope_covers(outer: A.Rule, inner: A.Rule, *, resources: bool = True) -> bool:
    """Every request in ``inner``'s scope (subject, action, targets, resources,
    task) is in ``outer``'s. Conditions are not considered."""
    if not set(inner.actions) <= set(outer.actions):
        return False
    if outer.task_intent is not None and outer.task_intent != inner.task_intent:
        return False
    if not all_covered(outer.targets, inner.targets):
        return False
    if resources and outer.resources is not None:
        if inner.resources is None or not all_covered(outer.resources, inner.resources):
            return False
    return subject_covers(outer.subject, inner.subject)


def scopes_overlap(a: A.Rule, b: A.Rule) -> bool:
    """Some request is in both rules' scopes."""
    if set(a.actions).isdisjoint(b.actions):
        return False
    if a.task_intent is not None and b.task_intent is not None and a.task_intent != b.task_intent:
        return False
    if not any_overlap(a.targets, b.targets):
        return False
    if a.resources is not None and b.resources is not None and not any_overlap(a.resources, b.resources):
        return False
    return subjects_overlap(a.subject, b.subject)


def unconditional(rule: A.Rule) -> bool:
    return rule.when is None and rule.unless is None


def same_conditions(a: A.Rule, b: A.Rule) -> bool:
    # AST equality follows Python's, where `true == 1 == 1.0`; the reprs tell them apart.
    return (a.when, a.unless) == (b.when, b.unless) and repr((a.when, a.unless)) == repr((b.when, b.unless))


def broad_subject(subject: A.Subject) -> str | None:
    """Why ``subject`` is a shared or trust-domain-wide identity, or None."""
    match subject:
        case A.AnyAgent():
            return "`any agent`"
        case A.AgentIds(ids=ids):
            for ident in ids:
                if "*" not in ident:
                    continue
                prefix = ident.split("*", 1)[0]
                scheme = "spiffe://"
                if scheme.startswith(prefix):
                    return f"`agent \"{ident}\"` (every identity)"
                if prefix.startswith(scheme) and "/" not in prefix[len(scheme):].rstrip("/"):
                    return f"`agent \"{ident}\"` (a whole trust domain)"
            return None
        case A.AgentGroup():
            return None
        case unknown:
            assert_never(unknown)


# ---- paths in conditions -------------------------------------------------------------------


def paths(expr: A.Expr | None):
    """(root, first attribute or None, node) for every path and ``has`` test."""
    if expr is None:
        return
    for node in A.iter_exprs(expr):
        match node:
            case A.Path(root=root, attrs=attrs):
                yield root, (attrs[0] if attrs else None), node
            case A.Has(path=A.Path(root=root, attrs=()), name=name):
                yield root, name, node


def mentions(rule: A.Rule, root: str, attrs: tuple[str, ...]) -> bool:
    for expr in (rule.when, rule.unless):
        for r, attr, _ in paths(expr):
            if r == root and attr in attrs:
                return True
    return False


# ---- constant conditions ------------------------------------------------------------------

_ALWAYS_PRESENT = {("delegation", "depth"), ("delegation", "chain"), ("tool", "name"), ("principal", "id")}


def _constant_operand(expr: A.Expr):
    """(True, value) for an operand whose value is fixed, else (False, None)."""
    match expr:
        case A.Literal(value=value):
            return True, value
        case A.Duration():
            return True, expr.seconds
        case A.ListExpr(items=items):
            values = []
            for item in items:
                ok, value = _constant_operand(item)
                if not ok:
                    return False, None
                values.append(value)
            return True, values
        case A.Path() | A.Not() | A.And() | A.Or() | A.Compare() | A.In() | A.StringTest() | A.Has():
            return False, None
        case unknown:
            assert_never(unknown)


def _is_path(expr: A.Expr, root: str, attr: str) -> bool:
    return isinstance(expr, A.Path) and expr.root == root and expr.attrs == (attr,)


def constant_value(expr: A.Expr, task_intent: str | None = None) -> bool | None:
    """True or False when ``expr`` has that value on every request where it
    evaluates without error; None when it depends on the request."""
    match expr:
        case A.Literal(value=value):
            return value if isinstance(value, bool) else None
        case A.Not(operand=operand):
            inner = constant_value(operand, task_intent)
            return None if inner is None else not inner
        case A.And(operands=operands):
            values = [constant_value(op, task_intent) for op in operands]
            if False in values or _contradiction(operands):
                return False
            return True if all(v is True for v in values) else None
        case A.Or(operands=operands):
            values = [constant_value(op, task_intent) for op in operands]
            if True in values:
                return True
            return False if all(v is False for v in values) else None
        case A.Has(path=path, name=name):
            if not path.attrs and (path.root, name) in _ALWAYS_PRESENT:
                return True
            if task_intent is not None and not path.attrs and (path.root, name) == ("task", "intent"):
                return True
            return None
        case A.Compare():
            return _constant_compare(expr, task_intent)
        case A.In(item=item_expr, container=container_expr):
            ok_c, container = _constant_operand(container_expr)
            if ok_c and isinstance(container, list) and not container:
                return False
            ok_i, item = _constant_operand(item_expr)
            if ok_i and ok_c and isinstance(container, list):
                return any(equal(item, x) for x in container)
            return None
        case A.StringTest(op=op, left=left_expr, right=right_expr):
            ok_l, left = _constant_operand(left_expr)
            ok_r, right = _constant_operand(right_expr)
            if ok_l and ok_r and isinstance(left, str) and isinstance(right, str):
                if op == "matches":
                    return glob(right).match(left)
                if op == "startswith":
                    return left.startswith(right)
                if op == "endswith":
                    return left.endswith(right)
                return right in left
            return None
        case A.Duration() | A.ListExpr() | A.Path():
            return None  # not a boolean on its own
        case unknown:
            assert_never(unknown)


def _constant_compare(expr: A.Compare, task_intent: str | None) -> bool | None:
    ok_l, left = _constant_operand(expr.left)
    ok_r, right = _constant_operand(expr.right)
    op = expr.op
    if ok_l and ok_r:
        if op == "==":
            return equal(left, right)
        if op == "!=":
            return not equal(left, right)
        if is_number(left) and is_number(right):
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        return None
    if isinstance(expr.left, A.Path) and expr.left == expr.right and op in ("==", "!="):
        return op == "=="
    # A task block fixes `task.intent`.
    if task_intent is not None and op in ("==", "!="):
        for path, (ok, value) in ((expr.left, (ok_r, right)), (expr.right, (ok_l, left))):
            if ok and _is_path(path, "task", "intent"):
                same = equal(value, task_intent)
                return same if op == "==" else not same
    # `delegation.depth` is a whole number, never negative.
    for path, (ok, value), flipped in ((expr.left, (ok_r, right), False), (expr.right, (ok_l, left), True)):
        if ok and is_number(value) and _is_path(path, "delegation", "depth"):
            o = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op) if flipped else op
            if o == ">=" and value <= 0 or o == ">" and value < 0:
                return True
            if o == "<" and value <= 0 or o == "<=" and value < 0:
                return False
            if o == "==" and (value < 0 or value != int(value)):
                return False
            if o == "!=" and (value < 0 or value != int(value)):
                return True
    return None


def _equalities(operands) -> dict[str, list]:
    facts: dict[str, list] = {}
    for op in operands:
        if isinstance(op, A.Compare) and op.op == "==":
            for path, other in ((op.left, op.right), (op.right, op.left)):
                ok, value = _constant_operand(other)
                if ok and isinstance(path, A.Path):
                    facts.setdefault(path.dotted(), []).append(value)
    return facts


def _contradiction(operands) -> bool:
    """``x == 1 and x == 2``: one path equal to two different values."""
    for values in _equalities(operands).values():
        if any(not equal(values[0], v) for v in values[1:]):
            return True
    return False


def constant_parts(expr: A.Expr | None, task_intent: str | None = None):
    """The outermost sub-expressions of ``expr`` with a fixed value: (node, value)."""
    if expr is None:
        return
    stack = [expr]
    while stack:
        node = stack.pop()
        value = constant_value(node, task_intent)
        if value is not None:
            yield node, value
            continue
        match node:
            case A.And(operands=operands) | A.Or(operands=operands):
                stack.extend(reversed(operands))
            case A.Not(operand=operand):
                stack.append(operand)
            case A.Literal() | A.Duration() | A.ListExpr() | A.Path() | A.Compare() | A.In() | A.StringTest() | A.Has():
                pass  # no boolean parts inside
            case unknown:
                assert_never(unknown)
