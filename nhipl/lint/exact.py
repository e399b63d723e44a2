"""``nhipl lint --exact``: NHI004, NHI006 and NHI012 decided by the SMT solver.

The default checks recognise shadowed, subsumed and dead rules by their shape (an
unconditional forbid whose scope covers a permit, a broader rule with the same
conditions, no permit overlapping a forbid's scope). With ``--exact`` those three
codes come from ``nhipl analyze rules`` instead, which considers every request:

- NHI004: a permit or approval rule that can never match, or never determines a decision;
- NHI006: a permit whose removal changes no decision's effect or credential ttl;
- NHI012: a forbid or approval rule whose removal changes nothing (or that never matches).

NHI005 (a rule that repeats another) stays syntactic: its exact counterpart would flag
both copies, since removing either changes nothing.
"""

from __future__ import annotations

from typing import Iterator

from .. import ast as A
from .rules import Facts, RawFinding, _rule_name

EXACT_CODES = frozenset({"NHI004", "NHI006", "NHI012"})


def exact_checks(checks: tuple, assumptions: list[str]) -> tuple:
    """``checks`` without their NHI004/NHI006/NHI012 findings, plus the exact ones."""

    def without_exact_codes(check):
        return lambda facts: (raw for raw in check(facts) if raw.code not in EXACT_CODES)

    return tuple(without_exact_codes(c) for c in checks) + (lambda facts: check_exact(facts, assumptions),)


def exact_notice(assumptions: list[str]) -> str:
    """The line that says which findings came from the solver, and under what bounds."""
    return "exact: NHI004, NHI006 and NHI012 decided over every request by the SMT solver, assuming " + "; ".join(assumptions)


def check_exact(facts: Facts, assumptions: list[str]) -> Iterator[RawFinding]:
    """The exact NHI004/NHI006/NHI012 findings; ``assumptions`` receives the answer's bounds."""
    from ..analyze import rules as analyse_rules
    from ..analyze.questions import NEVER_DECIDES, NEVER_MATCHES

    result = analyse_rules(facts.policies, only=lambda r: facts.is_user(r.span))
    assumptions.extend(result.assumptions)
    for found in result.findings:
        rule = found.rule
        repeats = bool(facts.index.same(rule))
        if rule.effect == A.PERMIT or (rule.effect == A.APPROVAL and found.kind in (NEVER_MATCHES, NEVER_DECIDES)):
            if found.kind in (NEVER_MATCHES, NEVER_DECIDES):
                code = "NHI004"
                kind = "permit" if rule.effect == A.PERMIT else "approval rule"
                why = "no request matches it" if found.kind == NEVER_MATCHES else "it matches requests but never determines a decision"
                message = f"{kind} {_rule_name(rule)} never takes effect: {why} (exact)"
                help_ = "remove it, or change the rules that override it"
            elif repeats:
                continue  # NHI005 reports the copy
            else:
                code = "NHI006"
                message = f"rule {_rule_name(rule)} is subsumed: removing it changes no decision's effect or credential ttl (exact)"
                help_ = f"remove {_rule_name(rule)}, or narrow the rules that cover it"
        else:
            if repeats:
                continue
            code = "NHI012"
            message = f"rule {_rule_name(rule)} changes no decision: without it every request is decided the same (exact)"
            help_ = "check its targets and subject for a typo, or remove it"
        yield RawFinding(code, message, facts.head(rule), rule.span, rule.id, help_)
