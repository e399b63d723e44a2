"""The reference interpreter: walks the AST, obviously right, never optimised.

It is the oracle the compiled evaluator (:mod:`nhipl.compile`) is tested
against. Keep it simple: one rule after another, one node after another.
"""

from __future__ import annotations

from . import ast as A
from .decision import Decision, EvalError, combine, explain
from .request import Request, parse_request
from .values import a_type, equal, glob_match, is_number


class _EvalFailure(Exception):
    def __init__(self, message: str):
        self.message = message


def evaluate(policies, request) -> Decision:
    req = request if isinstance(request, Request) else parse_request(request)
    principal = policies.principal(req.principal_id, req.principal_attrs)
    own = _decide(policies, req, principal, req.chain)
    if not (policies.attenuate and req.chain):
        return own
    members = []
    for i, identity in enumerate(req.chain):
        members.append((identity, _decide(policies, req, policies.principal(identity, None), req.chain[:i])))
    return combine(req.principal_id, own, members)


def _in_scope(rule: A.Rule, req: Request, principal: dict) -> bool:
    if rule.task_intent is not None and req.intent != rule.task_intent:
        return False
    if rule.action != req.action:
        return False
    if not any(glob_match(t, req.tool) for t in rule.targets):
        return False
    if rule.resources is not None:
        if req.resource is None or not any(glob_match(r, req.resource) for r in rule.resources):
            return False
    subject = rule.subject
    if isinstance(subject, A.AnyAgent):
        return True
    if isinstance(subject, A.AgentIds):
        return any(glob_match(i, principal["id"]) for i in subject.ids)
    groups = principal.get("groups")
    return isinstance(groups, list) and subject.group in groups


def _boolean(value: object, what: str) -> bool:
    if value is True or value is False:
        return value
    raise _EvalFailure(f"{what} is {a_type(value)}, not a boolean")


def _matches(rule: A.Rule, env: dict) -> bool:
    if rule.when is not None and not _boolean(_eval(rule.when, env), "the `when` condition"):
        return False
    if rule.unless is not None and _boolean(_eval(rule.unless, env), "the `unless` condition"):
        return False
    return True


def _decide(policies, req: Request, principal: dict, chain) -> Decision:
    env = req.env(principal, policies.tool_attrs(req.tool), chain)
    forbids: list[A.Rule] = []
    permits: list[A.Rule] = []
    approvals: list[A.Rule] = []
    errors: list[EvalError] = []
    for rule in policies.rules:
        if not _in_scope(rule, req, principal):
            continue
        try:
            matched = _matches(rule, env)
        except _EvalFailure as failure:
            errors.append(EvalError(rule.id, failure.message))
            matched = rule.effect != A.PERMIT  # errors fail closed
        if matched:
            {A.FORBID: forbids, A.PERMIT: permits, A.APPROVAL: approvals}[rule.effect].append(rule)
    return explain(req, principal, forbids, permits, approvals, errors)


# ---- expressions ---------------------------------------------------------------------


def _lookup(path: A.Path, env: dict) -> object:
    if path.root not in env:
        raise _EvalFailure(f"the request has no `{path.root}`")
    value = env[path.root]
    walked = path.root
    for attr in path.attrs:
        if not isinstance(value, dict):
            raise _EvalFailure(f"`{walked}` is {a_type(value)}, it has no attribute `{attr}`")
        if attr not in value:
            raise _EvalFailure(f"`{walked}` has no attribute `{attr}`")
        value = value[attr]
        walked += "." + attr
    return value


def _eval(expr: A.Expr, env: dict) -> object:
    if isinstance(expr, A.Literal):
        return expr.value
    if isinstance(expr, A.Duration):
        return expr.seconds
    if isinstance(expr, A.ListExpr):
        return [_eval(item, env) for item in expr.items]
    if isinstance(expr, A.Path):
        return _lookup(expr, env)
    if isinstance(expr, A.Not):
        return not _boolean(_eval(expr.operand, env), "the operand of `not`")
    if isinstance(expr, A.And):
        for operand in expr.operands:
            if not _boolean(_eval(operand, env), "an operand of `and`"):
                return False
        return True
    if isinstance(expr, A.Or):
        for operand in expr.operands:
            if _boolean(_eval(operand, env), "an operand of `or`"):
                return True
        return False
    if isinstance(expr, A.Compare):
        left, right = _eval(expr.left, env), _eval(expr.right, env)
        if expr.op == "==":
            return equal(left, right)
        if expr.op == "!=":
            return not equal(left, right)
        if not (is_number(left) and is_number(right)):
            raise _EvalFailure(f"cannot order {a_type(left)} and {a_type(right)} with `{expr.op}`")
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[expr.op]
    if isinstance(expr, A.In):
        item, container = _eval(expr.item, env), _eval(expr.container, env)
        if not isinstance(container, list):
            raise _EvalFailure(f"`in` needs a list on the right, not {a_type(container)}")
        return any(equal(item, x) for x in container)
    if isinstance(expr, A.StringTest):
        left, right = _eval(expr.left, env), _eval(expr.right, env)
        if not (isinstance(left, str) and isinstance(right, str)):
            raise _EvalFailure(f"`{expr.op}` needs two strings, not {a_type(left)} and {a_type(right)}")
        if expr.op == "matches":
            return glob_match(right, left)
        if expr.op == "startswith":
            return left.startswith(right)
        if expr.op == "endswith":
            return left.endswith(right)
        return right in left
    if isinstance(expr, A.Has):
        try:
            value = _lookup(expr.path, env)
        except _EvalFailure:
            return False
        return isinstance(value, dict) and expr.name in value
    raise TypeError(f"unknown expression node {expr!r}")
