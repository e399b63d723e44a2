"""What the lint rules reason with: glob overlap and containment, rule scopes,
and conditions whose value does not depend on the request.

Every answer here is conservative in the direction that avoids false findings:
``covers`` says yes only when containment is certain, ``overlaps`` says no only
when no request can reach both.
"""

from __future__ import annotations

from functools import lru_cache

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
    if isinstance(outer, A.AnyAgent):
        return True
    if isinstance(outer, A.AgentIds):
        return isinstance(inner, A.AgentIds) and all_covered(outer.ids, inner.ids)
    return isinstance(inner, A.AgentGroup) and set(inner.groups) <= set(outer.groups)


def subjects_overlap(a: A.Subject, b: A.Subject) -> bool:
    if isinstance(a, A.AgentIds) and isinstance(b, A.AgentIds):
        return any_overlap(a.ids, b.ids)
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
    if isinstance(subject, A.AnyAgent):
        return "`any agent`"
    if isinstance(subject, A.AgentIds):
        for ident in subject.ids:
            if "*" not in ident:
                continue
            prefix = ident.split("*", 1)[0]
            scheme = "spiffe://"
            if scheme.startswith(prefix):
                return f"`agent \"{ident}\"` (every identity)"
            if prefix.startswith(scheme) and "/" not in prefix[len(scheme):].rstrip("/"):
                return f"`agent \"{ident}\"` (a whole trust domain)"
    return None


# ---- paths in conditions -------------------------------------------------------------------


def paths(expr: A.Expr | None):
    """(root, first attribute or None, node) for every path and ``has`` test."""
    if expr is None:
        return
    for node in A.iter_exprs(expr):
        if isinstance(node, A.Path):
            yield node.root, (node.attrs[0] if node.attrs else None), node
        elif isinstance(node, A.Has) and not node.path.attrs:
            yield node.path.root, node.name, node


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
    if isinstance(expr, A.Literal):
        return True, expr.value
    if isinstance(expr, A.Duration):
        return True, expr.seconds
    if isinstance(expr, A.ListExpr):
        values = []
        for item in expr.items:
            ok, value = _constant_operand(item)
            if not ok:
                return False, None
            values.append(value)
        return True, values
    return False, None


def _is_path(expr: A.Expr, root: str, attr: str) -> bool:
    return isinstance(expr, A.Path) and expr.root == root and expr.attrs == (attr,)


def constant_value(expr: A.Expr, task_intent: str | None = None) -> bool | None:
    """True or False when ``expr`` has that value on every request where it
    evaluates without error; None when it depends on the request."""
    if isinstance(expr, A.Literal):
        return expr.value if isinstance(expr.value, bool) else None
    if isinstance(expr, A.Not):
        inner = constant_value(expr.operand, task_intent)
        return None if inner is None else not inner
    if isinstance(expr, A.And):
        values = [constant_value(op, task_intent) for op in expr.operands]
        if False in values or _contradiction(expr.operands):
            return False
        return True if all(v is True for v in values) else None
    if isinstance(expr, A.Or):
        values = [constant_value(op, task_intent) for op in expr.operands]
        if True in values:
            return True
        return False if all(v is False for v in values) else None
    if isinstance(expr, A.Has):
        if not expr.path.attrs and (expr.path.root, expr.name) in _ALWAYS_PRESENT:
            return True
        if task_intent is not None and not expr.path.attrs and (expr.path.root, expr.name) == ("task", "intent"):
            return True
        return None
    if isinstance(expr, A.Compare):
        return _constant_compare(expr, task_intent)
    if isinstance(expr, A.In):
        ok_c, container = _constant_operand(expr.container)
        if ok_c and isinstance(container, list) and not container:
            return False
        ok_i, item = _constant_operand(expr.item)
        if ok_i and ok_c and isinstance(container, list):
            return any(equal(item, x) for x in container)
        return None
    if isinstance(expr, A.StringTest):
        ok_l, left = _constant_operand(expr.left)
        ok_r, right = _constant_operand(expr.right)
        if ok_l and ok_r and isinstance(left, str) and isinstance(right, str):
            if expr.op == "matches":
                return glob(right).match(left)
            if expr.op == "startswith":
                return left.startswith(right)
            if expr.op == "endswith":
                return left.endswith(right)
            return right in left
        return None
    return None


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
        if isinstance(node, (A.And, A.Or)):
            stack.extend(reversed(node.operands))
        elif isinstance(node, A.Not):
            stack.append(node.operand)
