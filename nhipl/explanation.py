"""Why a request got its decision, rule by rule: :func:`explain`.

It re-runs the reference interpreter (:mod:`nhipl.interpret`) on the request,
tracing every rule whose subject, action and targets matched each identity whose
share was decided (the principal, and under attenuation each delegator, with
the `for` rules that hand the step over to the next hop). For each such rule it
gives the value of its task scope, resources, ``when`` and ``unless`` (true,
false, or the error), whether it matched, and whether it determined that
identity's decision. Computed only on demand: the decision path never pays.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ast as A
from . import interpret as I
from . import semantics as S
from .argschema import schema_denial
from .decision import Decision
from .request import Request, parse_request

# The value of a part of a rule: True, False, an error message (str), or None when
# the rule has no such part.
PartValue = bool | str | None


@dataclass(frozen=True, slots=True)
class RuleTrace:
    rule: str
    effect: str
    where: str | None  # file:line
    hands_over: bool  # counted as a `for` rule handing the step to the next hop
    task: PartValue
    resources: PartValue
    when: PartValue
    unless: PartValue
    matched: bool
    determining: bool

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "effect": self.effect,
            "where": self.where,
            "hands_over": self.hands_over,
            "task": self.task,
            "resources": self.resources,
            "when": self.when,
            "unless": self.unless,
            "matched": self.matched,
            "determining": self.determining,
        }


@dataclass(frozen=True, slots=True)
class IdentityTrace:
    identity: str
    role: str  # principal | delegator
    next_hop: str | None
    effect: str
    determining: tuple[str, ...]
    rules: tuple[RuleTrace, ...]

    def to_dict(self) -> dict:
        return {
            "identity": self.identity,
            "role": self.role,
            "delegated_to": self.next_hop,
            "effect": self.effect,
            "determining": list(self.determining),
            "rules": [r.to_dict() for r in self.rules],
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    decision: Decision
    identities: tuple[IdentityTrace, ...]

    def to_dict(self) -> dict:
        return {"decision": self.decision.to_dict(), "identities": [i.to_dict() for i in self.identities]}

    def lines(self) -> list[str]:
        d = self.decision
        head = f"{d.effect}" + (" by " + ", ".join(f"`{r}`" for r in d.rules) if d.rules else "")
        if d.restricted_by:
            head += f" (restricted by `{d.restricted_by}`)"
        out = [f"decision: {head}"]
        if not self.identities:
            out.extend(f"  {r}" for r in d.reasons)
        for ident in self.identities:
            role = ident.role if ident.next_hop is None else f"{ident.role}, delegated to `{ident.next_hop}`"
            by = " by " + ", ".join(f"`{r}`" for r in ident.determining) if ident.determining else ""
            out.append(f"{ident.identity} ({role}): {ident.effect}{by}")
            if not ident.rules:
                out.append("  no rule covers this identity, action and tool")
            for r in ident.rules:
                verdict = "matched" if r.matched else "did not match"
                if r.determining:
                    verdict += ", determining"
                how = " (hands the step over)" if r.hands_over else ""
                where = f" at {r.where}" if r.where else ""
                out.append(f"  {r.effect} `{r.rule}`{where}{how}: {verdict}")
                parts = [f"{name} {_show(value)}" for name, value in (("task", r.task), ("resources", r.resources), ("when", r.when), ("unless", r.unless))]
                out.append("    " + "; ".join(parts))
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def _show(value: PartValue) -> str:
    if value is None:
        return "-"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return f"error: {value}"


_EFFECT_WORDS = {A.PERMIT: "permit", A.FORBID: "forbid", A.APPROVAL: "require approval"}


def _condition(expr: A.Expr | None, env: dict, what: str) -> PartValue:
    if expr is None:
        return None
    try:
        return I._boolean(I._eval(expr, env), what)
    except S.EvalFailure as failure:
        return failure.message


def _trace_rule(rule: A.Rule, req: Request, env: dict, handed: bool, determining: tuple[str, ...]) -> RuleTrace:
    task = None if rule.task_intent is None else req.intent == rule.task_intent
    resources: PartValue = None
    if rule.resources is not None and (handed or rule.handover is None):
        resources = req.resource is not None and any(I.glob_match(r, req.resource) for r in rule.resources)
    when = _condition(rule.when, env, S.WHEN)
    unless = _condition(rule.unless, env, S.UNLESS)
    # whether it matched, exactly as the interpreter decides it (errors fail closed)
    if task is False or resources is False:
        matched = False
    elif isinstance(when, str):
        matched = rule.effect != A.PERMIT
    elif when is False:
        matched = False
    elif isinstance(unless, str):
        matched = rule.effect != A.PERMIT
    else:
        matched = unless is not True
    span = rule.span
    where = f"{span.source.rsplit('/', 1)[-1]}:{span.line}" if span is not None else None
    return RuleTrace(rule.id, _EFFECT_WORDS[rule.effect], where, handed, task, resources, when, unless, matched, matched and rule.id in determining)


def _trace_identity(policies, req: Request, principal: dict, chain, next_hop, role: str, decision: Decision) -> IdentityTrace:
    env = req.env(principal, policies.tool_attrs(req.tool), chain)
    traces = []
    for rule in policies.rules:
        if I._covers(rule, req, principal):
            traces.append(_trace_rule(rule, req, env, False, decision.rules))
        elif next_hop is not None and I._hands_over(rule, req, principal, next_hop):
            traces.append(_trace_rule(rule, req, env, True, decision.rules))
    return IdentityTrace(principal["id"], role, next_hop, str(decision.effect), decision.rules, tuple(traces))


def explain(policies, request) -> Explanation:
    """The decision on ``request`` (by the reference interpreter) with the trace of
    every rule that covered each identity whose share was decided."""
    req = request if isinstance(request, Request) else parse_request(request)
    denied = schema_denial(policies.schema(req.tool), req)
    if denied is not None:
        return Explanation(denied, ())  # denied by the argument schema before any rule
    decision = I.evaluate(policies, req)
    principal = policies.principal(req.principal_id, req.principal_attrs)
    own = decision.shares[0].decision if decision.shares else decision
    identities = [_trace_identity(policies, req, principal, req.chain, None, "principal", own)]
    for i, share in enumerate(decision.shares[1:]):
        next_hop = req.chain[i + 1] if i + 1 < len(req.chain) else req.principal_id
        identities.append(
            _trace_identity(policies, req, policies.principal(share.identity, None), req.chain[:i], next_hop, "delegator", share.decision)
        )
    return Explanation(decision, tuple(identities))
