"""The compiled evaluator must agree with the reference interpreter on generated
policies and requests: effect, determining rules, credential TTL, the ids of
erroring rules, and the restricting identity."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nhipl
from nhipl import interpret
from nhipl.compile import CompiledPolicies

from .policygen import policy_texts, requests

EXAMPLES = int(os.environ.get("NHIPL_DIFFERENTIAL_EXAMPLES", "2000"))


def _summary(decision):
    return (
        decision.effect,
        decision.rules,
        decision.credential_ttl,
        sorted(e.rule for e in decision.errors),
        decision.restricted_by,
    )


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
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


@settings(max_examples=200, deadline=None)
@given(text=policy_texts())
def test_generated_policies_load(text):
    policies = nhipl.loads(text, source="gen.nhipl")
    assert policies.rules
