"""The compiled evaluator must agree with the reference interpreter on generated
policies and requests: effect, determining rules, credential TTL, the errors
(rule and message), the reasons, the restricting identity and each identity's
share of an attenuated decision.

How many examples run is the Hypothesis profile's choice (tests/conftest.py):
``HYPOTHESIS_PROFILE=ci`` is fast with a fixed seed, the local default runs more."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nhipl
from nhipl import interpret
from nhipl.compile import CompiledPolicies

from .policygen import policy_texts, requests


def _summary(decision):
    return (
        decision.effect,
        decision.rules,
        decision.credential_ttl,
        decision.errors,
        decision.reasons,
        decision.restricted_by,
        tuple((share.identity, _summary(share.decision)) for share in decision.shares),
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=policy_texts(), batch=st.lists(requests(), min_size=1, max_size=6))
def test_compiled_agrees_with_reference(text, batch):
    policies = nhipl.loads(text, source="gen.nhipl")
    compiled = CompiledPolicies(policies)
    many = compiled.evaluate_many(batch)
    for request, fast in zip(batch, many):
        slow = interpret.evaluate(policies, request)
        assert _summary(fast) == _summary(slow), (text, request, fast, slow)
        # a second, cached evaluation gives the same answer
        assert _summary(compiled.evaluate(request)) == _summary(slow)
        assert fast.reasons


@settings(deadline=None)
@given(text=policy_texts())
def test_generated_policies_load(text):
    policies = nhipl.loads(text, source="gen.nhipl")
    assert policies.rules
