"""The decision: what an evaluation returns."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from .effects import RESTRICTIVENESS, Effect, RuleEffect, more_restrictive
from .semantics import intent_guard
from .values import glob_match, is_number

ALLOW, DENY, APPROVAL_REQUIRED = Effect.ALLOW, Effect.DENY, Effect.APPROVAL_REQUIRED


def smallest_ttl(ttls) -> int | float | None:
    """The credential ttl of an allow: the smallest of the permits' ``grant ttl``,
    the principal's ``max_credential_ttl`` and (under attenuation) each delegator's
    ttl; None when none of them sets one."""
    smallest = None
    for ttl in ttls:
        if ttl is not None and (smallest is None or ttl < smallest):
            smallest = ttl
    return smallest


@dataclass(frozen=True, slots=True)
class EvalError:
    """A condition that could not be evaluated. It failed closed."""

    rule: str
    message: str

    def to_dict(self) -> dict:
        return {"rule": self.rule, "message": self.message}


# Reason lines are worked out when read: building the strings costs more than
# deciding, and most callers only read ``effect``. ``Reasons(build, *args)`` holds
# the function and its arguments, only immutable values (ids, texts, other
# decisions), so the lines never depend on when they are read.
Reasons = partial


_new_tuple = tuple.__new__


class _Fields(NamedTuple):
    effect: Effect
    rules: tuple[str, ...]
    credential_ttl: int | float | None
    errors: tuple[EvalError, ...]
    explanation: tuple[str, ...] | Reasons  # the reason lines, or how to build them
    restricted_by: str | None
    shares: tuple["Share", ...]


class Decision(_Fields):
    """The outcome of one evaluation: ``effect``, ``rules``, ``credential_ttl``,
    ``errors``, ``reasons``, ``restricted_by`` (the identity whose own decision
    restricted the outcome under attenuation) and ``shares``.

    ``shares`` is empty unless the decision was attenuated (``attenuate
    delegation;`` and a non-empty chain): then it holds one :class:`Share` per
    identity, the principal first and then each delegator in chain order, with the
    decision that identity gets on its own. A share's ``rules`` are the rules that
    identity exercised, so an allowed step also used each delegator's permits.

    Immutable and hashable. Two decisions are equal when all their fields are
    equal; a decision never equals a plain tuple. Use the attribute names.
    """

    __slots__ = ()

    def __new__(
        cls,
        effect: str,
        rules: tuple[str, ...] = (),
        credential_ttl: int | float | None = None,
        errors: tuple[EvalError, ...] = (),
        reasons: tuple[str, ...] | Reasons = (),
        restricted_by: str | None = None,
        shares: tuple["Share", ...] = (),
    ):
        return _new_tuple(cls, (effect, rules, credential_ttl, errors, reasons, restricted_by, shares))

    @property
    def reasons(self) -> tuple[str, ...]:
        reasons = self.explanation
        return reasons() if reasons.__class__ is partial else reasons

    def _key(self) -> tuple:
        return (self.effect, self.rules, self.credential_ttl, self.errors, self.reasons, self.restricted_by, self.shares)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Decision:
            return False if isinstance(other, tuple) else NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        effect, rules, ttl, errors, reasons, restricted_by, shares = self._key()
        return (
            f"Decision(effect={str(effect)!r}, rules={rules!r}, credential_ttl={ttl!r}, "
            f"errors={errors!r}, reasons={reasons!r}, restricted_by={restricted_by!r}"
            + (f", shares={shares!r})" if shares else ")")
        )

    def __reduce__(self):
        return (Decision, self._key())

    @property
    def allowed(self) -> bool:
        return self.effect == ALLOW

    def explain(self):
        """Why this decision: every rule that covered each identity whose share was
        decided, with the value of its task scope, resources, `when` and `unless`
        (an :class:`~nhipl.explanation.Explanation`; ``.text()``, ``.to_dict()``).

        Works on a decision from ``policies.evaluate(request, explain=True)``, which
        keeps the policies and the request beside the fields (the ordinary path
        keeps nothing, so it never pays for this)."""
        if len(self) < 9:
            raise ValueError("this decision does not keep its request: decide it with `policies.evaluate(request, explain=True)`")
        from .explanation import explain

        return explain(self[7], self[8])

    def to_dict(self) -> dict:
        return {
            "effect": str(self.effect),
            "rules": list(self.rules),
            "credential_ttl": self.credential_ttl,
            "errors": [e.to_dict() for e in self.errors],
            "reasons": list(self.reasons),
            "restricted_by": self.restricted_by,
        }


class Share(NamedTuple):
    """One identity's part in an attenuated decision: its id and the decision it
    gets on its own (for a delegator, as if it made the call with the part of the
    chain before it)."""

    identity: str
    decision: Decision

    @property
    def effect(self) -> Effect:
        return self.decision.effect

    @property
    def rules(self) -> tuple[str, ...]:
        return self.decision.rules


def make_decision(effect, rules, credential_ttl, errors, reasons, restricted_by=None) -> Decision:
    """``Decision(...)`` without the keyword handling, for the evaluators' hot path."""
    return _new_tuple(Decision, (effect, rules, credential_ttl, errors, reasons, restricted_by, ()))


def combine(principal_id: str, own: Decision, members: list[tuple[str, Decision]]) -> Decision:
    """The most restrictive of the principal's and its delegators' decisions,
    with every identity's :class:`Share`. ``members`` are ``(delegator, its own
    decision)`` pairs in chain order."""
    shares = (Share(principal_id, own), *[Share(identity, d) for identity, d in members])
    final = own.effect
    for _, d in members:
        if more_restrictive(d.effect, final):
            final = d.effect
    errors = list(own.errors)
    for identity, d in members:
        errors.extend(EvalError(e.rule, f"as delegator `{identity}`: {e.message}") for e in d.errors)
    ttl = smallest_ttl(share.decision.credential_ttl for share in shares) if final == ALLOW else None
    if own.effect == final:
        return _new_tuple(Decision, (final, own.rules, ttl, tuple(errors), own.explanation, None, shares))
    for identity, d in members:
        if d.effect == final:
            return _new_tuple(Decision, (final, d.rules, ttl, tuple(errors), Reasons(_attenuated, own, identity, d), identity, shares))
    raise AssertionError("unreachable: the final effect comes from some decision")


def _attenuated(own: Decision, identity: str, restricting: Decision) -> tuple[str, ...]:
    return (
        own.reasons
        + (f"attenuated: delegator `{identity}` is held to {restricting.effect}",)
        + tuple(f"  {identity}: {r}" for r in restricting.reasons)
    )


def _error_lines(errors) -> tuple[str, ...]:
    return tuple(f"rule `{e.rule}` could not be evaluated and failed closed: {e.message}" for e in errors)


def _gate_lines(verb: str, gates: tuple[tuple[str, str | None], ...], errors) -> tuple[str, ...]:
    return tuple(f"{verb} `{rid}`" + (f": {because}" if because else "") for rid, because in gates) + _error_lines(errors)


def default_deny_lines(principal_id: str, action: str, tool: str, errors) -> tuple[str, ...]:
    return (f"no permit matches `{principal_id}` doing `{action}` on `{tool}` (default deny)",) + _error_lines(errors)


def allow_lines(permits: tuple[str, ...], approvals: tuple[str, ...], by: str | None, ttl, errors) -> tuple[str, ...]:
    reasons = tuple(f"permitted by `{rid}`" for rid in permits)
    if approvals:
        reasons += tuple(f"approval for `{rid}` granted" + (f" by `{by}`" if by else "") for rid in approvals)
    if ttl is not None:
        reasons += (f"credential ttl {ttl}s",)
    return reasons + _error_lines(errors)


def near_miss_lines(principal_id: str, action: str, tool: str, covering, intent: str | None, resource: str | None) -> tuple[str, ...]:
    """The reasons of a default deny: the deny, then why each permit that covers the
    call (its subject, action and targets match; ``covering`` holds such rules in
    rule order, other effects are skipped) did not apply, since a decision that
    explains itself says what was close."""
    lines = list(default_deny_lines(principal_id, action, tool, ()))
    for rule in covering:
        if rule.effect != RuleEffect.PERMIT:
            continue
        guard = intent_guard(rule.when)[0] if rule.task_intent is None else None
        if rule.task_intent is not None and rule.task_intent != intent:
            have = f"`{intent}`" if intent is not None else "none"
            lines.append(f"permit `{rule.id}` applies only to tasks with intent `{rule.task_intent}` (this request's: {have})")
        elif guard is not None and intent is not None and guard != intent:
            lines.append(f"permit `{rule.id}` has a condition `task.intent == \"{guard}\"` (this request's intent: `{intent}`)")
        elif rule.resources is not None and rule.handover is None and (resource is None or not any(glob_match(r, resource) for r in rule.resources)):
            want = ", ".join(f"`{r}`" for r in rule.resources)
            have = f"`{resource}`" if resource is not None else "none"
            lines.append(f"permit `{rule.id}` needs a resource matching {want} (this request's: {have})")
        else:
            lines.append(f"permit `{rule.id}` covers this call, but its conditions do not hold for this request")
    return tuple(lines)


def explain(req, principal: dict, forbids, permits, approvals, errors, covering=()) -> Decision:
    """The decision for one identity from the rules that matched.

    ``forbids``, ``permits`` and ``approvals`` are rules (anything with ``id``,
    ``because`` and ``ttl``), in rule order; ``covering`` are the rules whose
    subject, action and targets match, for the near misses of a default deny
    (named only when nothing else matched and nothing failed)."""
    errors = tuple(errors)
    if forbids:
        gates = tuple((r.id, r.because) for r in forbids)
        return make_decision(DENY, tuple(r.id for r in forbids), None, errors, Reasons(_gate_lines, "forbidden by", gates, errors))
    if not permits:
        if approvals or errors:
            return make_decision(DENY, (), None, errors, Reasons(default_deny_lines, principal["id"], req.action, req.tool, errors))
        return make_decision(DENY, (), None, (), Reasons(near_miss_lines, principal["id"], req.action, req.tool, tuple(covering), req.intent, req.resource))
    approval = req.approval
    granted = approval is not None and approval.get("granted") is True
    if approvals and not granted:
        gates = tuple((r.id, r.because) for r in approvals)
        return make_decision(
            APPROVAL_REQUIRED, tuple(r.id for r in approvals), None, errors, Reasons(_gate_lines, "approval required by", gates, errors)
        )
    ceiling = principal.get("max_credential_ttl")
    ttl = smallest_ttl([*(r.ttl.seconds for r in permits if r.ttl is not None), ceiling if is_number(ceiling) else None])
    by = approval.get("by") if approvals and approval else None
    rules = tuple(r.id for r in permits)
    return make_decision(ALLOW, rules, ttl, errors, Reasons(allow_lines, rules, tuple(r.id for r in approvals), by, ttl, errors))
