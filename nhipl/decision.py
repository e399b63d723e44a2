"""The decision: what an evaluation returns (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from operator import itemgetter

from .values import is_number

ALLOW, DENY, APPROVAL_REQUIRED = "allow", "deny", "approval_required"

# Most restrictive first.
RESTRICTIVENESS = {DENY: 2, APPROVAL_REQUIRED: 1, ALLOW: 0}


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


class Decision(tuple):
    """The outcome of one evaluation: ``effect``, ``rules``, ``credential_ttl``,
    ``errors``, ``reasons`` and ``restricted_by`` (the identity whose own decision
    restricted the outcome under attenuation).

    Immutable and hashable. Two decisions are equal when all six fields are equal;
    a decision never equals a plain tuple. It is a tuple underneath only because
    that is the cheapest immutable record to build; use the attribute names.
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
    ):
        return _new_tuple(cls, (effect, rules, credential_ttl, errors, reasons, restricted_by))

    effect: str = property(itemgetter(0))  # type: ignore[assignment]
    rules: tuple[str, ...] = property(itemgetter(1))  # type: ignore[assignment]
    credential_ttl: int | float | None = property(itemgetter(2))  # type: ignore[assignment]
    errors: tuple[EvalError, ...] = property(itemgetter(3))  # type: ignore[assignment]
    restricted_by: str | None = property(itemgetter(5))  # type: ignore[assignment]

    @property
    def reasons(self) -> tuple[str, ...]:
        reasons = self[4]
        return reasons() if reasons.__class__ is partial else reasons

    def _fields(self) -> tuple:
        return (self[0], self[1], self[2], self[3], self.reasons, self[5])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Decision:
            return False if isinstance(other, tuple) else NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        effect, rules, ttl, errors, reasons, restricted_by = self._fields()
        return (
            f"Decision(effect={effect!r}, rules={rules!r}, credential_ttl={ttl!r}, "
            f"errors={errors!r}, reasons={reasons!r}, restricted_by={restricted_by!r})"
        )

    def __reduce__(self):
        return (Decision, self._fields())

    @property
    def allowed(self) -> bool:
        return self[0] == ALLOW

    def to_dict(self) -> dict:
        return {
            "effect": self.effect,
            "rules": list(self.rules),
            "credential_ttl": self.credential_ttl,
            "errors": [e.to_dict() for e in self.errors],
            "reasons": list(self.reasons),
            "restricted_by": self.restricted_by,
        }


def make_decision(effect, rules, credential_ttl, errors, reasons, restricted_by=None) -> Decision:
    """``Decision(...)`` without the keyword handling, for the evaluators' hot path."""
    return _new_tuple(Decision, (effect, rules, credential_ttl, errors, reasons, restricted_by))


def combine(principal_id: str, own: Decision, members: list[tuple[str, Decision]]) -> Decision:
    """The most restrictive of the principal's and its delegators' decisions (DESIGN §2.4)."""
    final = own.effect
    for _, d in members:
        if RESTRICTIVENESS[d.effect] > RESTRICTIVENESS[final]:
            final = d.effect
    errors = list(own.errors)
    for identity, d in members:
        errors.extend(EvalError(e.rule, f"as delegator `{identity}`: {e.message}") for e in d.errors)
    ttl = None
    if final == ALLOW:
        ttls = [d.credential_ttl for d in [own] + [m for _, m in members] if d.credential_ttl is not None]
        ttl = min(ttls) if ttls else None
    if own.effect == final:
        return make_decision(final, own.rules, ttl, tuple(errors), own[4])
    for identity, d in members:
        if d.effect == final:
            return make_decision(final, d.rules, ttl, tuple(errors), Reasons(_attenuated, own, identity, d), identity)
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


def explain(req, principal: dict, forbids, permits, approvals, errors) -> Decision:
    """The decision for one identity from the rules that matched (DESIGN §2.3).

    ``forbids``, ``permits`` and ``approvals`` are rules (anything with ``id``,
    ``because`` and ``ttl``), in rule order."""
    errors = tuple(errors)
    if forbids:
        gates = tuple((r.id, r.because) for r in forbids)
        return make_decision(DENY, tuple(r.id for r in forbids), None, errors, Reasons(_gate_lines, "forbidden by", gates, errors))
    if not permits:
        return make_decision(DENY, (), None, errors, Reasons(default_deny_lines, principal["id"], req.action, req.tool, errors))
    approval = req.approval
    granted = approval is not None and approval.get("granted") is True
    if approvals and not granted:
        gates = tuple((r.id, r.because) for r in approvals)
        return make_decision(
            APPROVAL_REQUIRED, tuple(r.id for r in approvals), None, errors, Reasons(_gate_lines, "approval required by", gates, errors)
        )
    ttls = [r.ttl.seconds for r in permits if r.ttl is not None]
    ceiling = principal.get("max_credential_ttl")
    if is_number(ceiling):
        ttls.append(ceiling)
    ttl = min(ttls) if ttls else None
    by = approval.get("by") if approvals and approval else None
    rules = tuple(r.id for r in permits)
    return make_decision(ALLOW, rules, ttl, errors, Reasons(allow_lines, rules, tuple(r.id for r in approvals), by, ttl, errors))
