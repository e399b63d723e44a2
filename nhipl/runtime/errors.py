"""The errors the runtime raises on purpose.

Kept free of heavy imports: ``nhipl`` re-exports :class:`Denied` from here.
"""

from __future__ import annotations

from ..errors import NhiplError


class Denied(NhiplError):
    """A guarded call was not allowed. ``decision`` is the final decision (its
    ``effect`` is ``deny`` or ``approval_required``, its ``reasons`` say why),
    ``request`` the request that was evaluated."""

    def __init__(self, decision, request: dict | None = None):
        self.decision = decision
        self.request = request
        tool = request.get("tool") if request else None
        what = f"`{tool}` " if tool else ""
        if decision.effect == "approval_required":
            head = f"{what}needs approval"
        else:
            head = f"{what}denied"
        reasons = "; ".join(decision.reasons)
        super().__init__(f"{head}: {reasons}" if reasons else head)

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.decision.reasons

    @property
    def effect(self) -> str:
        return self.decision.effect


class DecisionLogError(NhiplError):
    """The decision log could not be opened or written."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class CredentialError(NhiplError):
    """A credential was refused by :meth:`~nhipl.runtime.Runtime.verify`. ``reason`` says why,
    ``credential`` is its id (``jti``) when the token could be read."""

    def __init__(self, reason: str, credential: str | None = None):
        self.reason = reason
        self.credential = credential
        super().__init__(reason)


class Invalid(CredentialError):
    """Not a credential this runtime issued for this use: malformed, a bad signature, an
    unknown key, or issued for another tool, resource or issuer."""


class Expired(CredentialError):
    """The credential's ``exp`` has passed."""


class Revoked(CredentialError):
    """The credential was revoked: its task ended, it was revoked by hand, or the policies
    changed so that its request is no longer allowed."""
