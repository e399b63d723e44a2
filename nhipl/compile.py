"""The compiled evaluator: the rule index (:mod:`nhipl.index`) finds the rules
that can apply, the compiled conditions (:mod:`nhipl.conditions`) decide which
of them match, and :mod:`nhipl.decision` turns those into a decision.

It must agree with :mod:`nhipl.interpret` on every policy and request (effect,
rules, ttl, errors and reasons); the differential test holds it to that.
"""

from __future__ import annotations

from .argschema import schema_denial
from .conditions import Scope, compile_condition, compile_expr
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
    near_miss_lines,
)
from .index import FORBID, PERMIT, CompiledRule, Fit, RuleIndex, identity
from .request import Request, parse_request
from .request import _parse as parse_one  # parse_request without an index to report
from .semantics import EvalFailure

_new_tuple = tuple.__new__


class CompiledPolicies:
    """Fast evaluation of a :class:`~nhipl.policies.Policies`."""

    def __init__(self, policies) -> None:
        self.policies = policies
        self.attenuate = policies.attenuate
        self.index = index = RuleIndex(policies)
        self._fits = index.fits  # the memo, read once per decision
        self._fit = index.fit
        self._tool = index.tool
        if policies.schemas is not None:  # argument schemas: checked first; policy sets without them never look
            self.evaluate = self.evaluate_request = self._evaluate_checked

    def cache_sizes(self) -> dict[str, int]:
        """How many entries each of the evaluator's bounded caches holds now."""
        return self.index.sizes()

    # -- evaluation -------------------------------------------------------------------
    def _decide(self, req: Request, fit: Fit, depth: int | None) -> Decision:
        # The rules whose subject matches, in rule order (see Bucket.fit).
        # Only what this decision needs is read from the fit: at 10,000 rules every
        # object touched is likely a cache miss.
        candidates = fit.candidates
        if not candidates:
            return _new_tuple(Decision, (DENY, (), None, (), Reasons(default_deny_lines, fit.id, req.action, req.tool, ()), None, ()))
        permits: list[CompiledRule] = []
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
                    env = Scope()
                    env.request, env.principal, env.tool = req, fit.principal, self._tool
                    env.depth = len(req.chain) if depth is None else depth
                try:
                    if not cond(env):
                        continue
                except EvalFailure as failure:
                    if errors is None:
                        errors = []
                    errors.append(EvalError(cr.id, failure.message))
                    if cr.kind == PERMIT:
                        continue
            kind = cr.kind
            if kind == PERMIT:
                permits.append(cr)
            elif kind == FORBID:
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
                    Decision, (DENY, (), None, (), Reasons(_near_misses, fit.id, req.action, req.tool, candidates, intent, resource), None, ())
                )
            ceiling = fit.ceiling
            if ceiling is None and len(permits) == 1:
                return permits[0].allowed
            return self._allow(permits, ceiling)
        return explain(req, fit.principal, forbids or (), permits, approvals or (), errors or ())

    @staticmethod
    def _allow(permits: list[CompiledRule], ceiling: int | float | None) -> Decision:
        # decision.smallest_ttl, written out: this runs for most allows
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
        return _new_tuple(Decision, (ALLOW, rules, ttl, (), Reasons(allow_lines, rules, (), None, ttl, ()), None, ()))

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
            fit = self.index.bucket(req.action, req.tool).fit(identity(principal))
        chain = req.chain
        own = self._decide(req, fit, None)  # depth None: the whole chain
        if not (chain and self.attenuate):
            return own
        # Each delegator is decided as itself with the part of the chain before it:
        # its depth, not a copy of that part, so a long chain costs linear time.
        if self.index.handovers is not None:  # `for` rules: a delegator's fit depends on whom it delegated to
            delegator_fit = self.index.delegator_fit
            hops = (*chain[1:], req.principal_id)
            members = [(d, self._decide(req, delegator_fit(req.action, req.tool, d, hops[i]), i)) for i, d in enumerate(chain)]
            return combine(req.principal_id, own, members)
        declared_fit = self.index.declared_fit
        members = [(delegator, self._decide(req, declared_fit(req.action, req.tool, delegator), i)) for i, delegator in enumerate(chain)]
        return combine(req.principal_id, own, members)

    evaluate_request = evaluate

    def _evaluate_checked(self, request) -> Decision:
        """:meth:`evaluate` after the request's arguments are checked against its tool's schema."""
        req = request if request.__class__ is Request else parse_one(request)
        denied = schema_denial(self.policies.schema(req.tool), req)
        return denied if denied is not None else CompiledPolicies.evaluate(self, req)

    def evaluate_many(self, requests) -> list[Decision]:
        evaluate = self.evaluate_request
        out = []
        append = out.append
        for i, raw in enumerate(requests):
            append(evaluate(raw if isinstance(raw, Request) else parse_request(raw, i)))
        return out


def _near_misses(pid: str, action: str, tool: str, candidates: tuple[CompiledRule, ...], intent, resource) -> tuple[str, ...]:
    return near_miss_lines(pid, action, tool, [cr.rule for cr in candidates if not cr.handed], intent, resource)


__all__ = ["CompiledPolicies", "compile_expr", "compile_condition", "RESTRICTIVENESS"]
