"""The decision: what an evaluation returns (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class Decision:
    effect: str
    rules: tuple[str, ...] = ()
    credential_ttl: int | float | None = None
    errors: tuple[EvalError, ...] = ()
    reasons: tuple[str, ...] = ()
    # The identity whose own decision restricted the outcome under attenuation.
    restricted_by: str | None = field(default=None)

    @property
    def allowed(self) -> bool:
        return self.effect == ALLOW

    def to_dict(self) -> dict:
        return {
            "effect": self.effect,
            "rules": list(self.rules),
            "credential_ttl": self.credential_ttl,
            "errors": [e.to_dict() for e in self.errors],
            "reasons": list(self.reasons),
            "restricted_by": self.restricted_by,
        }


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
        return Decision(final, own.rules, ttl, tuple(errors), own.reasons)
    for identity, d in members:
        if d.effect == final:
            reasons = (
                (f"attenuated to {final}: delegator `{identity}` is held to {final}, and so is every agent it delegated to",)
                + tuple(f"delegator `{identity}`: {r}" for r in d.reasons)
                + tuple(f"on its own: {r}" for r in own.reasons)
            )
            return Decision(final, d.rules, ttl, tuple(errors), reasons, identity)
    raise AssertionError("unreachable: the final effect comes from some decision")


def explain(req, principal: dict, forbids, permits, approvals, errors) -> Decision:
    """The decision for one identity from the rules that matched (DESIGN §2.3)."""
    error_lines = tuple(f"rule `{e.rule}` could not be evaluated and failed closed: {e.message}" for e in errors)
    if forbids:
        reasons = tuple(
            f"forbidden by `{r.id}`" + (f": {r.because}" if r.because else "") for r in forbids
        )
        return Decision(DENY, tuple(r.id for r in forbids), None, tuple(errors), reasons + error_lines)
    if not permits:
        reason = f"no permit matches `{principal['id']}` doing `{req.action}` on `{req.tool}` (default deny)"
        return Decision(DENY, (), None, tuple(errors), (reason,) + error_lines)
    approval = req.approval
    granted = approval is not None and approval.get("granted") is True
    if approvals and not granted:
        reasons = tuple(
            f"approval required by `{r.id}`" + (f": {r.because}" if r.because else "") for r in approvals
        )
        return Decision(APPROVAL_REQUIRED, tuple(r.id for r in approvals), None, tuple(errors), reasons + error_lines)
    ttls = [r.ttl.seconds for r in permits if r.ttl is not None]
    ceiling = principal.get("max_credential_ttl")
    if is_number(ceiling):
        ttls.append(ceiling)
    ttl = min(ttls) if ttls else None
    reasons = tuple(f"permitted by `{r.id}`" for r in permits)
    if approvals:
        by = approval.get("by") if approval else None
        reasons += tuple(
            f"approval for `{r.id}` granted" + (f" by `{by}`" if by else "") for r in approvals
        )
    if ttl is not None:
        reasons += (f"credential ttl {ttl}s",)
    return Decision(ALLOW, tuple(r.id for r in permits), ttl, tuple(errors), reasons + error_lines)
