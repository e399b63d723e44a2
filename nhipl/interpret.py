"""The reference interpreter: walks the AST, obviously right, never optimised.

It is the oracle the compiled evaluator (:mod:`nhipl.compile`) is tested
against. Keep it simple: one rule after another, one node after another. What a
failure says and how matched rules become a decision are shared with the
compiled evaluator (:mod:`nhipl.semantics`, :mod:`nhipl.decision`).
"""

from __future__ import annotations

from typing import assert_never

from . import ast as A
from . import semantics as S
from .argschema import schema_denial
from .decision import Decision, EvalError, combine, explain
from .request import Request, parse_request
from .values import equal, glob_match, is_list, is_number, type_name


def evaluate(policies, request) -> Decision:
    req = request if isinstance(request, Request) else parse_request(request)
    denied = schema_denial(policies.schema(req.tool), req)
    if denied is not None:
        return denied  # the arguments break the tool's schema: nothing else is evaluated
    principal = policies.principal(req.principal_id, req.principal_attrs)
    own = _decide(policies, req, principal, req.chain)
    if not (policies.attenuate and req.chain):
        return own
    members = []
    for i, identity in enumerate(req.chain):
        next_hop = req.chain[i + 1] if i + 1 < len(req.chain) else req.principal_id
        members.append((identity, _decide(policies, req, policies.principal(identity, None), req.chain[:i], next_hop)))
    return combine(req.principal_id, own, members)


def _subject_matches(subject: A.Subject, principal: dict) -> bool:
    match subject:
        case A.AnyAgent():
            return True
        case A.AgentIds(ids=ids):
            return any(glob_match(i, principal["id"]) for i in ids)
        case A.AgentGroup(groups=wanted):
            groups = principal.get("groups")
            return isinstance(groups, list) and any(group in groups for group in wanted)
        case unknown:
            assert_never(unknown)


def _hands_over(rule: A.Rule, req: Request, principal: dict, next_hop: str) -> bool:
    """A `permit ... to delegate N for ACTIONS TARGETS` rule of this delegator hands
    the step (its action and tool) to ``next_hop``, the identity it delegated to."""
    handover = rule.handover
    return (
        handover is not None
        and req.action in handover.actions
        and any(glob_match(t, req.tool) for t in handover.targets)
        and any(glob_match(t, next_hop) for t in rule.targets)
        and _subject_matches(rule.subject, principal)
    )


def _covers(rule: A.Rule, req: Request, principal: dict) -> bool:
    """The rule's subject, action and targets match the call."""
    if req.action not in rule.actions:
        return False
    if not any(glob_match(t, req.tool) for t in rule.targets):
        return False
    return _subject_matches(rule.subject, principal)


def _in_scope(rule: A.Rule, req: Request, handed: bool = False) -> bool:
    """The rule's task scope and resources admit the request. A `for` rule's
    resources constrain the steps it hands over, not the delegation step."""
    if rule.task_intent is not None and req.intent != rule.task_intent:
        return False
    if rule.resources is not None and (handed or rule.handover is None):
        return req.resource is not None and any(glob_match(r, req.resource) for r in rule.resources)
    return True


def _boolean(value: object, what: str) -> bool:
    if value is True or value is False:
        return value
    raise S.not_boolean(what, value)


def _matches(rule: A.Rule, env: dict) -> bool:
    if rule.when is not None and not _boolean(_eval(rule.when, env), S.WHEN):
        return False
    if rule.unless is not None and _boolean(_eval(rule.unless, env), S.UNLESS):
        return False
    return True


def _decide(policies, req: Request, principal: dict, chain, next_hop: str | None = None) -> Decision:
    """One identity's decision; ``next_hop`` is, for a delegator's share, the
    identity it delegated to (its `for` rules may hand this step over to it)."""
    env = req.env(principal, policies.tool_attrs(req.tool), chain)
    matched: dict[A.RuleEffect, list[A.Rule]] = {effect: [] for effect in A.RuleEffect}
    covering: list[A.Rule] = []
    errors: list[EvalError] = []
    for rule in policies.rules:
        handed = False
        if _covers(rule, req, principal):
            covering.append(rule)
        elif next_hop is not None and _hands_over(rule, req, principal, next_hop):
            handed = True  # counts as a matching permit of this share when in scope and its conditions hold
        else:
            continue
        if not _in_scope(rule, req, handed):
            continue
        try:
            hit = _matches(rule, env)
        except S.EvalFailure as failure:
            errors.append(EvalError(rule.id, failure.message))
            hit = rule.effect != A.PERMIT  # errors fail closed
        if hit:
            matched[rule.effect].append(rule)
    return explain(req, principal, matched[A.FORBID], matched[A.PERMIT], matched[A.APPROVAL], errors, covering)


# ---- expressions ---------------------------------------------------------------------


def _eval(expr: A.Expr, env: dict) -> object:
    match expr:
        case A.Literal(value=value):
            return value
        case A.Duration():
            return expr.seconds
        case A.ListExpr(items=items):
            return [_eval(item, env) for item in items]
        case A.Path(root=root, attrs=attrs):
            return S.lookup(root, attrs, env)
        case A.Not(operand=operand):
            return not _boolean(_eval(operand, env), S.NOT_OPERAND)
        case A.And(operands=operands):
            for operand in operands:
                if not _boolean(_eval(operand, env), S.AND_OPERAND):
                    return False
            return True
        case A.Or(operands=operands):
            for operand in operands:
                if _boolean(_eval(operand, env), S.OR_OPERAND):
                    return True
            return False
        case A.Compare(op=op, left=left, right=right):
            a, b = _eval(left, env), _eval(right, env)
            if op == "==":
                return equal(a, b)
            if op == "!=":
                return not equal(a, b)
            if not (is_number(a) and is_number(b)):
                raise S.cannot_order(op, a, b)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        case A.In(item=item, container=container):
            value, within = _eval(item, env), _eval(container, env)
            if not is_list(within):
                raise S.not_a_list(within)
            return any(equal(value, x) for x in within)
        case A.StringTest(op=op, left=left, right=right):
            a, b = _eval(left, env), _eval(right, env)
            if not (type_name(a) == "string" and type_name(b) == "string"):  # a str subclass is no JSON string
                raise S.not_strings(op, a, b)
            if op == "matches":
                return glob_match(b, a)
            if op == "startswith":
                return a.startswith(b)
            if op == "endswith":
                return a.endswith(b)
            return b in a
        case A.Has(path=path, name=name):
            try:
                value = S.lookup(path.root, path.attrs, env)
            except S.EvalFailure:
                return False
            return isinstance(value, dict) and name in value
        case A.Quantifier(kind=kind, name=name, source=source, where=where):
            items = _eval(source, env)
            if not is_list(items):
                raise S.not_a_list_for(kind, items)
            if where is None:
                return len(items)  # type: ignore[arg-type]
            count = 0
            for item in items:  # type: ignore[union-attr]
                holds = _boolean(_eval(where, {**env, name: item}), S.where(kind))
                if kind == "any" and holds:
                    return True
                if kind == "all" and not holds:
                    return False
                count += holds
            return {"any": False, "all": True}.get(kind, count)
        case A.Call(name=name, args=(arg,)):
            return S.call(name, _eval(arg, env))
        case A.Call():
            raise AssertionError("unreachable: lowering gives every function one argument")
        case A.Arith(op=op, left=left, right=right):
            return S.arith(op, _eval(left, env), _eval(right, env))
        case unknown:
            assert_never(unknown)
