"""`nhipl analyze` on the core's random policies (every construct, conditions that error):
never an internal error, and no answer that random requests contradict.

An equivalence claimed by `diff` is checked on random requests of the shared vocabulary;
so is every invariant `prove` claims. Reported requests are confirmed by the analysis
itself (an `AnalysisBug` fails the test).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("z3")

import nhipl  # noqa: E402
from nhipl.analyze import Undecided, diff, direction, prove  # noqa: E402
from nhipl.errors import PolicyError, RequestError  # noqa: E402

from .policygen import policy_texts, requests  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def _load(text: str):
    try:
        return nhipl.loads(text, source="gen.nhipl")
    except PolicyError:
        return None


def _decide(policies, request):
    try:
        return policies.evaluate(request)
    except RequestError:
        return None


@SETTINGS
@given(policy_texts(), policy_texts(), st.lists(requests(), min_size=20, max_size=20))
def test_diff_never_errs_and_equivalence_holds_on_samples(old_text, new_text, samples):
    old, new = _load(old_text), _load(new_text)
    if old is None or new is None:
        return
    try:
        result = diff(old, new, limit=2, timeout=10)
    except Undecided:
        return
    for d in result.differences:
        assert direction(old.evaluate(d.request), new.evaluate(d.request)) == d.direction
    if result.equivalent:
        for request in samples:
            a, b = _decide(old, request), _decide(new, request)
            if a is not None and len(request.get("delegation", {}).get("chain", [])) <= 3:
                assert direction(a, b) is None, (request, a, b)


FORMS = ('never allow call "t.*"', 'never deny any agent to call "*"', 'never approval_required delegate "*"', 'never allow call "*" when args has a')


@SETTINGS
@given(policy_texts(), st.sampled_from(FORMS), st.lists(requests(), min_size=20, max_size=20))
def test_prove_never_errs_and_proofs_hold_on_samples(text, form, samples):
    policies = _load(text + f'\ninvariant "i" {{ {form} }}\n')
    if policies is None:
        return
    (_, invariant), = policies.invariants
    try:
        result = prove(policies, invariant, timeout=10)
    except Undecided:
        return
    if result.holds:
        from nhipl.testing.invariants import in_scope, scope_policies

        scope = scope_policies(policies, invariant)
        for request in samples:
            decision = _decide(policies, request)
            if decision is None or len(request.get("delegation", {}).get("chain", [])) > 3:
                continue
            if any(isinstance(v, list) and len(v) > 3 for v in _values(request)):
                continue  # beyond the list bound the proof was made under
            assert not (decision.effect == invariant.effect and in_scope(scope, request)), (request, decision)
    else:
        assert policies.evaluate(result.counterexample).effect == invariant.effect


def _values(value):
    if isinstance(value, dict):
        for v in value.values():
            yield v
            yield from _values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _values(v)
