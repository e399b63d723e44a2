"""Assertions for policy tests written in Python (pytest, unittest, Hypothesis).

>>> import nhipl
>>> from nhipl.testing import assert_decision, assert_never_allows
>>> policies = nhipl.loads('''
... permit any agent to call "payments.*";
... forbid any agent to call "payments.*" unless approval.granted;
... ''')
>>> assert_decision(policies, {"principal": "spiffe://a/b", "tool": "payments.pay"}, "deny").effect
'deny'
>>> assert_never_allows(policies, "payments.*", unless="approval.granted")
"""

from __future__ import annotations

from .. import ast as A
from ..decision import Decision
from ..loader import loads
from ..policies import Policies
from .invariants import DEFAULT_MAX_EXAMPLES, DEFAULT_SEED, InvariantResult, check_invariant
from .runner import explain_case, explain_invariant
from .strategies import quote as _quote


def assert_decision(policies: Policies, request: dict, effect: str, by=None) -> Decision:
    """Assert the decision's effect (and, with ``by``, its determining rules as a set).

    Returns the decision; raises AssertionError with expected, actual, rules and reasons.
    """
    if effect not in A.EFFECTS:
        raise ValueError(f"unknown effect `{effect}`; expected one of {', '.join(A.EFFECTS)}")
    if isinstance(by, str):
        by = (by,)
    decision = policies.evaluate(request)
    expect = A.Expect(effect, tuple(by) if by is not None else None)
    if decision.effect != effect or (by is not None and set(by) != set(decision.rules)):
        raise AssertionError("policy decision differs\n" + explain_case(expect, decision, request))
    return decision


def never(
    effect: str,
    *targets: str,
    action: str = "call",
    agent: str | None = None,
    group: str | None = None,
    on: tuple[str, ...] | list[str] | str | None = None,
    when: str | None = None,
    unless: str | None = None,
    name: str = "assertion",
) -> A.Invariant:
    """An invariant built in Python; ``when`` and ``unless`` are nhipl conditions.

    The text is parsed by nhipl's own parser, so a typo in a condition raises
    :class:`nhipl.PolicyError` with a position, as in a policy file.
    """
    if not targets:
        raise ValueError("name at least one tool or glob")
    subject = ""
    if agent is not None and group is not None:
        raise ValueError("give `agent` or `group`, not both")
    if agent is not None:
        subject = f"agent {_quote(agent)} to "
    elif group is not None:
        subject = f"agent in {_quote(group)} to "
    text = f"invariant {_quote(name)} {{ never {effect} {subject}{action} " + ", ".join(map(_quote, targets))
    if on is not None:
        text += " on " + ", ".join(map(_quote, [on] if isinstance(on, str) else on))
    if when is not None:
        text += f" when {when}"
    if unless is not None:
        text += f" unless {unless}"
    text += " }\n"
    (_module, invariant), = loads(text, source="<assertion>").invariants
    return invariant


def assert_never(
    policies: Policies,
    effect: str,
    *targets: str,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = DEFAULT_SEED,
    **scope,
) -> InvariantResult:
    """Search for a request in scope whose decision is ``effect``; AssertionError with the
    smallest one found. ``scope``: ``action``, ``agent``, ``group``, ``on``, ``when``, ``unless``."""
    invariant = never(effect, *targets, **scope)
    result = check_invariant(policies, invariant, source="<assertion>", max_examples=max_examples, seed=seed)
    if not result.holds:
        raise AssertionError(f"policies {effect} a request they should never {effect}\n" + explain_invariant(result))
    return result


def assert_never_allows(policies: Policies, *targets: str, **kwargs) -> None:
    """``assert_never(policies, "allow", *targets, ...)``: no request in scope is allowed.

    >>> assert_never_allows(policies, "payments.*", unless="approval.granted")  # doctest: +SKIP
    """
    assert_never(policies, "allow", *targets, **kwargs)
