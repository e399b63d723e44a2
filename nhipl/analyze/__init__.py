"""Exact answers about all requests, with an SMT solver (z3).

- :func:`diff`: every kind of request two policy sets decide differently;
- :func:`prove`: an invariant proved, or refuted with a request;
- :func:`rules`: rules that never match, never decide, or change nothing;
- :func:`reach`: what an identity can be allowed to do, itself and by delegation.

Every request reported is decided again by ``Policies.evaluate``; a disagreement
raises :class:`AnalysisBug`. See ``docs/analysis.md``.
"""

from .questions import (
    DiffResult,
    Difference,
    ProofResult,
    Reach,
    ReachResult,
    RuleFinding,
    RulesResult,
    diff,
    direction,
    prove,
    reach,
    rules,
    sensitive_reach,
)
from .solve import AnalysisBug, Undecided, Unsupported
from .space import Bounds

__all__ = [
    "AnalysisBug",
    "Bounds",
    "DiffResult",
    "Difference",
    "ProofResult",
    "Reach",
    "ReachResult",
    "RuleFinding",
    "RulesResult",
    "Undecided",
    "Unsupported",
    "diff",
    "direction",
    "prove",
    "reach",
    "rules",
    "sensitive_reach",
]
