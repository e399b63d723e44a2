"""The two vocabularies of effects, in one place: what a rule does when it matches
(:class:`RuleEffect`) and what a decision says (:class:`Effect`).

Each member is its string (``Effect.ALLOW == "allow"``), so effects compare, hash
and serialise as the words users read and write.
"""

from __future__ import annotations

from enum import StrEnum


class RuleEffect(StrEnum):
    """What a rule does when it matches."""

    PERMIT = "permit"
    FORBID = "forbid"
    APPROVAL = "require_approval"


class Effect(StrEnum):
    """What a decision says."""

    ALLOW = "allow"
    DENY = "deny"
    APPROVAL_REQUIRED = "approval_required"


# Most restrictive first.
RESTRICTIVENESS = {Effect.DENY: 2, Effect.APPROVAL_REQUIRED: 1, Effect.ALLOW: 0}

# The decision effect a matching rule of each kind stands for.
GIVES = {RuleEffect.PERMIT: Effect.ALLOW, RuleEffect.FORBID: Effect.DENY, RuleEffect.APPROVAL: Effect.APPROVAL_REQUIRED}


def more_restrictive(a: str, b: str) -> bool:
    """True when effect ``a`` is strictly more restrictive than ``b``
    (deny > approval_required > allow)."""
    return RESTRICTIVENESS[a] > RESTRICTIVENESS[b]
