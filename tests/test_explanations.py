"""Decisions explain themselves: a default deny says which permits covered the
call and why each did not apply."""

from __future__ import annotations

import nhipl

POLICY = """
@id("in-task") permit any agent to call "repo.read" when task.intent == "review" grant ttl 5m;
task "fix" { @id("fix-only") permit any agent to call "repo.read"; }
@id("on-resource") permit any agent to call "repo.read" on "repo:acme/*";
@id("other-tool") permit any agent to call "repo.write";
@id("gate") require approval for any agent to call "repo.read" when context.prod;
"""


def test_default_deny_names_the_near_misses():
    policies = nhipl.loads(POLICY)
    decision = policies.evaluate({"principal": "spiffe://a/b", "tool": "repo.read", "task": {"intent": "triage"}, "context": {"prod": False}})
    assert decision.effect == "deny" and decision.rules == ()
    assert decision.reasons == (
        "no permit matches `spiffe://a/b` doing `call` on `repo.read` (default deny)",
        'permit `in-task` has a condition `task.intent == "review"` (this request\'s intent: `triage`)',
        "permit `fix-only` applies only to tasks with intent `fix` (this request's: `triage`)",
        "permit `on-resource` needs a resource matching `repo:acme/*` (this request's: none)",
    )


def test_near_miss_whose_other_conditions_fail():
    policies = nhipl.loads(POLICY)
    decision = policies.evaluate({"principal": "spiffe://a/b", "tool": "repo.read", "task": {"intent": "review"}, "context": {"prod": False}, "delegation": {"chain": []}})
    assert decision.effect == "allow"  # in-task applies: the intent test was its only condition
    policies = nhipl.loads('@id("p") permit any agent to call "t" when task.intent == "review" and delegation.depth <= 0;')
    decision = policies.evaluate({"principal": "s", "tool": "t", "task": {"intent": "review"}, "delegation": {"chain": ["spiffe://x/a"]}})
    assert decision.reasons == (
        "no permit matches `s` doing `call` on `t` (default deny)",
        "permit `p` covers this call, but its conditions do not hold for this request",
    )


def test_no_near_misses_when_nothing_covers_the_call():
    policies = nhipl.loads(POLICY)
    decision = policies.evaluate({"principal": "spiffe://a/b", "tool": "repo.delete"})
    assert decision.reasons == ("no permit matches `spiffe://a/b` doing `call` on `repo.delete` (default deny)",)
