"""Invariants found by search, the Hypothesis strategies, and the Python assertions."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings

import nhipl
from nhipl.request import parse_request
from nhipl.testing.invariants import in_scope, scope_policies
from nhipl.testing import (
    assert_decision,
    assert_never,
    assert_never_allows,
    check_invariant,
    discover,
    never,
    policies as policy_sets,
    requests,
    run_files,
)

ROOT = Path(__file__).resolve().parent.parent
FINOPS = "spiffe://acme.org/agents/finops"

# A planted violation: the approval gate starts at 50,000, the invariant at 5,000.
PLANTED = """\
agent "spiffe://acme.org/agents/finops" { groups: ["finance"] }
agent "spiffe://acme.org/agents/intern" { groups: ["interns"] }

@id("pay")
permit agent in "finance" to call "payments.transfer", "payments.schedule"
    when task.intent == "pay-invoices" and args has amount and args.amount > 0;

@id("big-needs-approval")
require approval for any agent to call "payments.*" when args.amount >= 50000;

@id("read")
permit any agent to call "ledger.read";

invariant "payments of 5,000 or more need approval" {
    never allow call "payments.*" when args has amount and args.amount >= 5000 unless approval.granted
}

invariant "the intern never pays" {
    never allow agent "spiffe://acme.org/agents/intern" to call "payments.*"
}

invariant "interns never pay" {
    never allow agent in "interns" to call "payments.*"
}
"""


def invariant(policies, name):
    return next(inv for _, inv in policies.invariants if inv.name == name)


def test_a_planted_violation_is_found_and_shrunk():
    policies = nhipl.loads(PLANTED, source="planted.nhipl")
    result = check_invariant(policies, invariant(policies, "payments of 5,000 or more need approval"), max_examples=200)
    assert not result.holds
    example = result.counterexample
    # Shrunk: only the fields the violation needs, each at its simplest.
    assert example == {
        "principal": FINOPS,
        "tool": "payments.transfer",
        "args": {"amount": 5000},
        "task": {"intent": "pay-invoices"},
    }
    assert result.decision.effect == "allow" and result.decision.rules == ("pay",)


def test_an_invariant_that_holds_passes_and_reaches_its_scope():
    policies = nhipl.loads(PLANTED, source="planted.nhipl")
    result = check_invariant(policies, invariant(policies, "the intern never pays"), max_examples=200)
    assert result.holds
    assert result.counterexample is None
    assert result.in_scope > 50  # the search really tried the intern paying


def test_a_group_invariant_considers_identities_in_several_groups():
    # Declared agents keep their declared groups, but an undeclared identity may be in
    # both `interns` and `finance`; `pay` lets it pay, so "interns never pay" is false.
    policies = nhipl.loads(PLANTED, source="planted.nhipl")
    result = check_invariant(policies, invariant(policies, "interns never pay"), max_examples=200)
    assert not result.holds
    assert sorted(result.counterexample["principal"]["groups"]) == ["finance", "interns"]


def test_the_search_is_reproducible():
    policies = nhipl.loads(PLANTED, source="planted.nhipl")
    inv = invariant(policies, "payments of 5,000 or more need approval")
    first = check_invariant(policies, inv, max_examples=100)
    second = check_invariant(policies, inv, max_examples=100)
    assert (first.counterexample, first.examples) == (second.counterexample, second.examples)


def test_fixing_the_policy_makes_the_invariant_hold():
    fixed = PLANTED.replace("args.amount >= 50000", "args.amount >= 5000")
    policies = nhipl.loads(fixed, source="fixed.nhipl")
    result = check_invariant(policies, invariant(policies, "payments of 5,000 or more need approval"), max_examples=200)
    assert result.holds


def test_invariant_conditions_fail_closed_like_a_forbid():
    # `args.amount >= 5000` cannot be evaluated without `args`: the request stays in scope,
    # so a policy that pays without knowing the amount breaks the invariant.
    policies = nhipl.loads(
        'permit any agent to call "payments.transfer";\n'
        'invariant "big payments are never allowed" { never allow call "payments.*" when args.amount >= 5000 }\n'
    )
    inv = policies.invariants[0][1]
    assert in_scope(scope_policies(policies, inv), {"principal": "spiffe://a/b", "tool": "payments.transfer"})
    result = check_invariant(policies, inv, max_examples=100)
    assert result.counterexample == {"principal": "spiffe://example.org/agents/stranger", "tool": "payments.transfer"}


def test_never_deny_and_never_approval_required():
    policies = nhipl.loads(
        '@id("read") permit any agent to call "docs.read";\n'
        '@id("gate") require approval for any agent to call "docs.read" when args has page and args.page > 100;\n'
        'invariant "reading is never denied" { never deny call "docs.read" }\n'
        'invariant "reading never waits" { never approval_required call "docs.read" }\n'
    )
    denied, waits = (check_invariant(policies, inv, max_examples=100) for _, inv in policies.invariants)
    assert denied.holds
    assert not waits.holds and waits.counterexample["args"] == {"page": 101}


def _neuter(text: str, rule_id: str) -> str:
    """Point a rule at a tool nothing calls, keeping its id for the tests' `by`."""
    start = text.index(f'@id("{rule_id}")')
    end = text.index(";", start)
    rule = re.sub(r'(call|delegate) "[^"]*"(\s*,\s*"[^"]*")*', r'\1 "nothing.never"', text[start:end], count=1)
    return text[:start] + rule + text[end:]


# Each example invariant catches the policy losing the rule that enforces it.
MUTATIONS = [
    ("support-triage", "external-mail-needs-approval", "mail leaves acme.com only with a human's approval"),
    ("finance-ops", "large-payments-need-approval", "payments of 10,000 or more never go out without approval"),
    ("finance-ops", "recipient-from-user", "recipients from a tool's output are never paid"),
    ("finance-ops", "stale-credential", "expired credentials never move money"),
    ("coding-delegation", "shell-needs-approval", "code runs only with a human's approval"),
]


@pytest.mark.parametrize("example, rule_id, name", MUTATIONS, ids=[m[1] for m in MUTATIONS])
def test_example_invariants_catch_a_lost_rule(tmp_path, example, rule_id, name):
    folder = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, folder)
    policy = folder / "policies.nhipl"
    policy.write_text(_neuter(policy.read_text(), rule_id))
    run = run_files(discover([folder]), pattern=name, max_examples=300)
    (result,) = [r for f in run.files for r in f.invariants]
    assert not result.holds, f"lost `{rule_id}` but `{name}` still held"
    assert len(result.counterexample) <= 6  # shrunk to the fields that matter


# ---- strategies --------------------------------------------------------------------------


EXAMPLE_POLICIES = nhipl.load(str(ROOT / "examples" / "coding-delegation" / "coding_test.nhipl"))


@settings(max_examples=150, deadline=None)
@given(requests(EXAMPLE_POLICIES))
def test_requests_are_valid(request):
    parse_request(request)
    EXAMPLE_POLICIES.evaluate(request)


@settings(max_examples=60, deadline=None)
@given(requests(EXAMPLE_POLICIES, actions=["call"], tools=["github.*"], resources=["repo:acme/*"]))
def test_requests_respect_their_scope(request):
    assert request.get("action", "call") == "call"
    assert request["tool"].startswith("github.")
    assert request["resource"].startswith("repo:acme/")


def test_focused_requests_reach_every_rule_of_an_example():
    # The strategy aims draws at each rule: together they make every rule determining.
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    policies = EXAMPLE_POLICIES
    missing = []
    for rule in policies.rules:
        try:
            find(
                requests(policies),
                lambda r, rid=rule.id: rid in policies.evaluate(r).rules,
                settings=settings(max_examples=300, database=None, derandomize=True),
            )
        except NoSuchExample:
            missing.append(rule.id)
    assert missing == []


@settings(max_examples=40, deadline=None)
@given(policy_sets(max_rules=4))
def test_generated_policy_sets_load_and_evaluate(policies):
    assert isinstance(policies, nhipl.Policies)
    for rule in policies.rules:
        assert rule.id.startswith("r")
    policies.evaluate({"principal": "spiffe://acme.org/agents/a", "tool": "email.send"})


# ---- assertions ----------------------------------------------------------------------------


def test_assert_decision():
    policies = nhipl.loads(PLANTED)
    request = {"principal": FINOPS, "tool": "ledger.read"}
    assert assert_decision(policies, request, "allow", by="read").rules == ("read",)
    with pytest.raises(AssertionError) as caught:
        assert_decision(policies, request, "deny")
    message = str(caught.value)
    assert 'expected: deny' in message and 'actual:   allow by "read"' in message
    assert "permitted by `read`" in message
    with pytest.raises(AssertionError, match="not determining: `pay`"):
        assert_decision(policies, request, "allow", by=["read", "pay"])


def test_assert_never_allows():
    policies = nhipl.loads(PLANTED)
    assert_never_allows(policies, "payments.*", agent="spiffe://acme.org/agents/intern", max_examples=100)
    with pytest.raises(AssertionError) as caught:
        assert_never_allows(policies, "payments.*", when="args.amount >= 5000", unless="approval.granted", max_examples=200)
    assert "counterexample (smallest found)" in str(caught.value)
    assert '"amount": 5000' in str(caught.value)
    assert_never(policies, "deny", "ledger.read", max_examples=50)


def test_never_rejects_a_bad_condition_with_a_position():
    with pytest.raises(nhipl.PolicyError) as caught:
        never("allow", "payments.*", when="args.amount >=")
    assert caught.value.source == "<assertion>"
    with pytest.raises(nhipl.PolicyError, match="unknown request path `arg`"):
        never("allow", "payments.*", when="arg.amount > 1")
