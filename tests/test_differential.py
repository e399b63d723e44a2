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


# -- Python values at the guard's boundary -------------------------------------------------------


def _exotic(draw, value):
    """``value`` spelt with the Python types a tool's caller may pass: string and int
    enums, OrderedDict and read-only mappings, tuples."""
    import collections
    import enum
    import types

    if value.__class__ is str and draw(st.booleans()):
        return enum.Enum("Env", {"MEMBER": value}, type=str).MEMBER
    if value.__class__ is int and draw(st.booleans()):
        return enum.IntEnum("Level", {"MEMBER": value}).MEMBER
    if value.__class__ is list:
        items = [_exotic(draw, v) for v in value]
        return tuple(items) if draw(st.booleans()) else items
    if value.__class__ is dict:
        items = {k: _exotic(draw, v) for k, v in value.items()}
        kind = draw(st.sampled_from([dict, collections.OrderedDict, types.MappingProxyType]))
        return kind(items)
    return value


def _same(a, b) -> bool:
    if a.__class__ is not b.__class__:
        return False
    if a.__class__ is dict:
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if a.__class__ is list:
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=policy_texts(), request=requests(), data=st.data())
def test_the_guard_boundary_makes_python_values_plain(text, request, data):
    """Enums, ordered and read-only mappings and tuples reach both evaluators as the plain
    JSON they stand for, so they decide exactly as their JSON twins."""
    from nhipl.runtime import Guard
    from nhipl.runtime.guard import json_request

    if "history" in request:  # a history view reaches the evaluators as the list it stands for
        request = {**request, "history": list(request["history"])}
    exotic = {k: _exotic(data.draw, v) if k in ("args", "context") else v for k, v in request.items()}
    assert _same(json_request(exotic), request)
    policies = nhipl.loads(text, source="gen.nhipl")
    guard = Guard(policies, "spiffe://z/zz")
    assert _summary(guard.check(exotic)) == _summary(interpret.evaluate(policies, request))
