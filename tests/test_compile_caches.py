"""The compiled evaluator's caches: bounded, and never a source of a different answer.

The evaluator remembers, per (action, tool, principal id), which rules' subjects the
declared principal matches. These tests hold that memo to the reference interpreter
where reuse could go wrong: a request that brings its own principal attributes, a
delegation chain, an action no rule names, and a memo that overflows its bound.
"""

from __future__ import annotations

import pytest

import nhipl
from nhipl import index as rule_index
from nhipl import interpret

POLICY = """
agent "spiffe://x/a" { groups: ["ops"] }
agent "spiffe://x/b" { groups: ["dev"], max_credential_ttl: 60 }
permit agent in "ops" to call "deploy" grant ttl 5m;
permit agent "spiffe://x/b" to call "deploy" grant ttl 10m;
forbid any agent to call "deploy" when delegation.depth > 1;
permit agent "spiffe://x/*" to call "read";
"""


def _request(principal, tool="deploy", chain=(), **more):
    return {"principal": principal, "action": "call", "tool": tool, "delegation": {"chain": list(chain)}, **more}


def _same(policies, request):
    fast, slow = policies.evaluate(request), interpret.evaluate(policies, request)
    summary = lambda d: (d.effect, d.rules, d.credential_ttl, d.restricted_by)  # noqa: E731
    assert summary(fast) == summary(slow)
    return fast


def test_request_attributes_are_not_served_from_the_memo():
    policies = nhipl.loads(POLICY, source="p.nhipl")
    assert _same(policies, _request("spiffe://x/c")).effect == "deny"
    # the same id, now a member of "ops" by the request's own attributes
    joined = _request({"id": "spiffe://x/c", "groups": ["ops"]})
    assert _same(policies, joined).effect == "allow"
    # and the declared view of that id is unchanged afterwards
    assert _same(policies, _request("spiffe://x/c")).effect == "deny"


def test_declared_ceiling_and_rule_order_come_back_from_the_memo():
    policies = nhipl.loads(POLICY, source="p.nhipl")
    for _ in range(3):  # first the miss, then the memo
        b = _same(policies, _request("spiffe://x/b"))
        assert (b.effect, b.credential_ttl) == ("allow", 60)
        a = _same(policies, _request("spiffe://x/a"))
        assert (a.rules, a.credential_ttl) == (("p.nhipl:4",), 300)


def test_delegators_are_decided_as_themselves():
    policies = nhipl.loads(POLICY + "attenuate delegation;\n", source="p.nhipl")
    for _ in range(2):
        # b may deploy, but the delegator c may not: attenuation denies
        assert _same(policies, _request("spiffe://x/b", chain=["spiffe://x/c"])).effect == "deny"
        assert _same(policies, _request("spiffe://x/b", chain=["spiffe://x/a"])).effect == "allow"
        deep = _same(policies, _request("spiffe://x/b", chain=["spiffe://x/a", "spiffe://x/a"]))
        assert (deep.effect, deep.rules) == ("deny", ("p.nhipl:6",))


def test_an_action_no_rule_names_is_not_remembered():
    policies = nhipl.loads(POLICY, source="p.nhipl")
    for i in range(50):
        request = {**_request(f"spiffe://x/n{i}"), "action": "issue_credential"}
        assert _same(policies, request).effect == "deny"
    assert policies.compiled.cache_sizes()["fits"] == 0


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(rule_index, "CACHE_LIMIT", 8)
    policies = nhipl.loads(POLICY, source="p.nhipl")
    for i in range(40):
        principal = "spiffe://x/a" if i % 3 == 0 else f"spiffe://x/n{i}"
        decision = _same(policies, _request(principal, tool="read" if i % 2 else "deploy"))
        assert decision.effect in ("allow", "deny")
        assert policies.compiled.cache_sizes()["fits"] <= 8


@pytest.mark.parametrize("principal", ["spiffe://x/a", "spiffe://x/b", "spiffe://x/zz"])
def test_glob_subjects_are_matched_per_principal(principal):
    policies = nhipl.loads(POLICY, source="p.nhipl")
    for _ in range(2):
        assert _same(policies, _request(principal, tool="read")).rules == ("p.nhipl:7",)


def test_what_can_be_known_before_the_first_request_is_built_at_compile_time():
    compiled = nhipl.loads(POLICY, source="p.nhipl").compiled
    # buckets of the tools rules name exactly (not the glob-only ones), declared identities
    sizes = compiled.cache_sizes()
    assert (sizes["buckets"], sizes["identities"]) == (2, 2)
    assert sizes["fits"] == 0  # fits wait for a request


def test_compile_time_building_stays_within_the_cache_bounds(monkeypatch):
    monkeypatch.setattr(rule_index, "CACHE_LIMIT", 3)
    agents = "".join(f'agent "spiffe://x/n{i}" {{ groups: ["ops"] }}\n' for i in range(10))
    tools = "".join(f'permit agent in "ops" to call "t{i}";\n' for i in range(10))
    policies = nhipl.loads(agents + tools, source="p.nhipl")
    compiled = policies.compiled
    sizes = compiled.cache_sizes()
    assert sizes["identities"] <= 3 and sizes["buckets"] <= 3
    assert _same(policies, _request("spiffe://x/n9", tool="t9")).effect == "allow"
