"""One small hand-written trace per finding kind and subkind (DESIGN §6)."""

from __future__ import annotations

import pytest

import nhipl
from nhipl.simulator import Finding, LatencyModel, Distribution, simulate

A = "spiffe://acme.org/agents/planner"
B = "spiffe://acme.org/agents/coder"
C = "spiffe://acme.org/agents/intruder"

POLICY = f"""
tool "payments.*" {{ sensitive: true }}

@id("plan")
permit agent "{A}" to call "docs.read" when task.intent == "review";
@id("hand-off")
permit agent "{A}" to delegate "{B}";
@id("code")
permit agent "{B}" to call "github.*";
@id("pay")
permit agent "{B}" to call "payments.transfer";
@id("gate-payments")
require approval for any agent to call "payments.*";
@id("never-used")
permit agent "{A}" to call "calendar.read";
"""


@pytest.fixture(scope="module")
def policies():
    return nhipl.loads(POLICY, source="test.nhipl")


def start(t=0, task="t1", agent=A, intent="review", **extra):
    return {"kind": "task_start", "t": t, "task": task, "agent": agent, "intent": intent, **extra}


def call(t, agent, tool, task="t1", **extra):
    event = {"kind": "tool_call", "t": t, "agent": agent, "tool": tool, **extra}
    if task is not None:
        event["task"] = task
    return event


def delegate(t, agent, to, task="t1"):
    return {"kind": "delegate", "t": t, "task": task, "agent": agent, "to": to}


def issue(t, cred, agent, ttl, task="t1"):
    event = {"kind": "credential_issue", "t": t, "credential": cred, "agent": agent, "ttl": ttl}
    if task is not None:
        event["task"] = task
    return event


def revoke(t, cred):
    return {"kind": "credential_revoke", "t": t, "credential": cred}


def end(t, task="t1"):
    return {"kind": "task_end", "t": t, "task": task}


def approval(t, tool, granted=True, task="t1"):
    return {"kind": "approval", "t": t, "task": task, "tool": tool, "granted": granted, "by": "alice@acme.org"}


def kinds(report, *, ignore_unused=True) -> list[tuple[str, str | None, int | None]]:
    return [(f.kind, f.subkind, f.line) for f in report.findings if not (ignore_unused and f.kind == "unused_permit")]


def only(report, kind, subkind) -> Finding:
    found = [f for f in report.findings if f.kind == kind and f.subkind == subkind]
    assert len(found) == 1, report.findings
    return found[0]


def test_clean_trace_has_no_step_findings(policies):
    trace = [start(), issue(1, "c1", A, 600), call(2, A, "docs.read", credential="c1"), delegate(3, A, B),
             call(4, B, "github.create_pr"), revoke(5, "c1"), end(5)]
    report = simulate(trace, policies)
    assert kinds(report) == []
    assert report.summary["steps"] == 3
    assert report.summary["events"] == 7


def test_denied_out_of_intent(policies):
    trace = [start(intent="billing"), call(1, A, "docs.read")]
    report = simulate(trace, policies)
    assert kinds(report) == [("overreach", "denied", 2)]
    f = only(report, "overreach", "denied")
    assert f.agent == A and f.tool == "docs.read" and f.task == "t1"
    assert "default deny" in f.detail


def test_denied_names_the_forbid_rule():
    policies = nhipl.loads(f'permit any agent to call "*";\n@id("no-shell") forbid any agent to call "shell.*";')
    report = simulate([start(), call(1, A, "shell.exec")], policies)
    f = only(report, "overreach", "denied")
    assert f.rule == "no-shell"


def test_denied_delegation(policies):
    report = simulate([start(), delegate(1, A, C)], policies)
    f = only(report, "overreach", "denied")
    assert f.tool == C and f.line == 2


def test_unapproved_then_approved(policies):
    trace = [start(), delegate(1, A, B), call(2, B, "payments.transfer"), approval(3, "payments.transfer"),
             call(4, B, "payments.transfer")]
    report = simulate(trace, policies)
    assert kinds(report) == [("overreach", "unapproved", 3)]
    assert only(report, "overreach", "unapproved").rule == "gate-payments"


def test_refused_approval_still_unapproved(policies):
    trace = [start(), delegate(1, A, B), approval(2, "payments.transfer", granted=False), call(3, B, "payments.transfer")]
    assert kinds(simulate(trace, policies)) == [("overreach", "unapproved", 4)]


def test_approval_counts_only_in_its_task(policies):
    trace = [start(), delegate(1, A, B), approval(2, "payments.transfer"),
             start(3, task="t2"), delegate(4, A, B, task="t2"), call(5, B, "payments.transfer", task="t2")]
    assert kinds(simulate(trace, policies)) == [("overreach", "unapproved", 6)]


def test_unused_permit(policies):
    trace = [start(), call(1, A, "docs.read"), delegate(2, A, B), call(3, B, "github.read")]
    report = simulate(trace, policies)
    unused = sorted(f.rule for f in report.findings if f.kind == "unused_permit")
    assert unused == ["never-used", "pay"]
    f = next(f for f in report.findings if f.rule == "never-used")
    assert f.subkind is None and f.line is None and "test.nhipl:" in f.detail


def test_used_after_revoke(policies):
    trace = [start(), issue(1, "c1", A, 600), revoke(2, "c1"), call(3, A, "docs.read", credential="c1"), end(4)]
    report = simulate(trace, policies)
    assert kinds(report) == [("revocation_gap", "used_after_revoke", 4)]
    assert only(report, "revocation_gap", "used_after_revoke").credential == "c1"


def test_used_after_expiry(policies):
    trace = [start(), issue(1, "c1", A, 10), call(11, A, "docs.read", credential="c1"), revoke(12, "c1"), end(12)]
    report = simulate(trace, policies)
    assert kinds(report) == [("revocation_gap", "used_after_expiry", 3)]


def test_use_just_before_expiry_is_fine(policies):
    trace = [start(), issue(1, "c1", A, 10), call(10.999, A, "docs.read", credential="c1"), revoke(12, "c1"), end(12)]
    assert kinds(simulate(trace, policies)) == []


def test_used_after_task_end(policies):
    trace = [start(), issue(1, "c1", A, 600), end(2), revoke(2, "c1"), call(3, A, "docs.read", credential="c1")]
    report = simulate(trace, policies)
    assert sorted(kinds(report)) == [("revocation_gap", "used_after_revoke", 5), ("revocation_gap", "used_after_task_end", 5)]


def test_used_after_task_end_unrevoked_credential_of_another_task(policies):
    # c1 serves t1; t1 ends; the credential is used in t2 while still valid.
    trace = [start(), issue(1, "c1", A, 600), end(2), start(3, task="t2"),
             call(4, A, "docs.read", task="t2", credential="c1"), revoke(4, "c1")]
    report = simulate(trace, policies)
    assert ("revocation_gap", "used_after_task_end", 5) in kinds(report)
    assert only(report, "revocation_gap", "used_after_task_end").task == "t2"


def test_foreign_holder(policies):
    trace = [start(), issue(1, "c1", A, 600), delegate(2, A, B), call(3, B, "github.read", credential="c1"),
             revoke(4, "c1"), end(4)]
    report = simulate(trace, policies)
    assert kinds(report) == [("revocation_gap", "foreign_holder", 4)]
    f = only(report, "revocation_gap", "foreign_holder")
    assert f.agent == B and A in f.detail


def test_valid_after_task_end_until_revoke(policies):
    trace = [start(), issue(1, "c1", A, 600), call(2, A, "docs.read", credential="c1"), end(10), revoke(70, "c1")]
    report = simulate(trace, policies)
    f = only(report, "revocation_gap", "valid_after_task_end")
    assert f.line == 2 and f.exposure == 60 and f.credential == "c1"


def test_valid_after_task_end_until_expiry(policies):
    trace = [start(), issue(1, "c1", A, 600), end(10)]
    f = only(simulate(trace, policies), "revocation_gap", "valid_after_task_end")
    assert f.exposure == 591


def test_revoked_at_task_end_or_expired_is_fine(policies):
    trace = [start(), issue(1, "c1", A, 600), issue(1, "c2", A, 5), revoke(10, "c1"), end(10)]
    assert kinds(simulate(trace, policies)) == []


def test_grace_tolerates_a_late_revoke(policies):
    trace = [start(), issue(1, "c1", A, 600), end(10), revoke(12, "c1")]
    assert kinds(simulate(trace, policies, revocation_grace=5)) == []
    assert kinds(simulate(trace, policies, revocation_grace=0)) == [("revocation_gap", "valid_after_task_end", 2)]


def test_the_default_grace_is_five_seconds(policies):
    within = [start(), issue(1, "c1", A, 600), end(10), revoke(15, "c1")]
    beyond = [start(), issue(1, "c1", A, 600), end(10), revoke(15.5, "c1")]
    assert kinds(simulate(within, policies)) == []
    assert kinds(simulate(beyond, policies)) == [("revocation_gap", "valid_after_task_end", 2)]


def test_an_approval_covers_one_call_by_default(policies):
    trace = [start(), delegate(1, A, B), approval(2, "payments.transfer"), call(3, B, "payments.transfer"),
             call(4, B, "payments.transfer"), approval(5, "payments.transfer"), call(6, B, "payments.transfer")]
    assert kinds(simulate(trace, policies)) == [("overreach", "unapproved", 5)]
    assert kinds(simulate(trace, policies, approvals="task")) == []


def test_credential_without_task_serves_its_first_use(policies):
    trace = [start(), issue(1, "c1", A, 600, task=None), call(2, A, "docs.read", credential="c1"), end(10)]
    f = only(simulate(trace, policies), "revocation_gap", "valid_after_task_end")
    assert f.task == "t1"


def test_no_task(policies):
    trace = [call(1, A, "docs.read", task=None)]
    report = simulate(trace, policies)
    assert ("attribution", "no_task", 1) in kinds(report)
    assert only(report, "attribution", "no_task").detail == "the step names no task"


def test_task_never_started_is_no_task(policies):
    report = simulate([call(1, A, "docs.read", task="ghost")], policies)
    assert "never started" in only(report, "attribution", "no_task").detail


def test_unknown_origin(policies):
    trace = [start(), delegate(1, A, B), call(2, B, "github.read"), call(3, C, "github.read")]
    report = simulate(trace, policies)
    assert ("attribution", "unknown_origin", 4) in kinds(report)
    assert ("attribution", "unknown_origin", 3) not in kinds(report)
    assert only(report, "attribution", "unknown_origin").agent == C


def test_findings_carry_the_delegation_chain():
    policies = nhipl.loads('permit any agent to delegate "*";')
    trace = [start(), delegate(1, A, B), call(2, B, "x.y")]
    f = only(simulate(trace, policies), "overreach", "denied")
    assert f.chain == (A,)
    assert f.to_dict()["chain"] == [A]


def test_request_built_from_trace_state():
    """Conditions see the chain, credential age, approval and provenance the replay derives."""
    policies = nhipl.loads(f"""
        permit any agent to delegate "*";
        @id("deep") permit any agent to call "a.deep" when delegation.depth == 1 and delegation.chain == ["{A}"];
        @id("fresh") permit any agent to call "a.fresh" when credential.age < 30;
        @id("approved") permit any agent to call "a.gated" when approval.granted and approval.by == "alice@acme.org";
        @id("from-user") permit any agent to call "a.user" when provenance.q == "user";
        @id("from-tool") permit any agent to call "a.tool" when provenance.q == "tool:a.search";
        @id("unknown") permit any agent to call "a.unknown" when provenance.q == "unknown";
        @id("search") permit any agent to call "a.search";
        @id("intent") permit any agent to call "a.intent" when task.intent == "review" and task.id == "t1";
    """)
    trace = [
        start(prompt="please look up invoice INV-7"),
        delegate(1, A, B),
        issue(2, "c1", B, 600),
        call(3, B, "a.deep"),
        call(10, B, "a.fresh", credential="c1"),
        call(50, B, "a.fresh", credential="c1"),  # age 48: denied
        approval(51, "a.gated"),
        call(52, B, "a.gated"),
        call(53, B, "a.user", args={"q": "INV-7"}),
        call(54, B, "a.search", args={"q": "INV-7"}, output={"hits": ["doc-991"]}),
        call(55, B, "a.tool", args={"q": "doc-991"}),
        call(56, B, "a.unknown", args={"q": "elsewhere"}),
        call(57, B, "a.intent"),
    ]
    report = simulate(trace, policies)
    assert kinds(report) == [("overreach", "denied", 6)]


def test_policies_none_gives_structure_only():
    trace = [start(), issue(1, "c1", A, 600), delegate(2, A, B), call(3, B, "x.y", credential="c1")]
    report = simulate(trace, None)
    assert kinds(report, ignore_unused=False) == [("revocation_gap", "foreign_holder", 4)]
    assert report.summary["latency"]["policy_us"]["p50"] is None


def test_latency_model_is_seeded(policies):
    trace = [start(), issue(1, "c1", A, 600), delegate(2, A, B), approval(3, "payments.transfer"),
             call(4, B, "payments.transfer"), revoke(5, "c1"), end(5)]
    model = LatencyModel(approval_wait=Distribution("const", (100.0,)), credential_issue=Distribution("const", (2.0,)))
    report = simulate(trace, policies, latency=model)
    delay = report.summary["latency"]["task_delay_s"]
    assert 102 <= delay["max"] < 102.1  # the approval wait, one issuance, and microseconds of policy cost
    a = simulate(trace, policies, seed=1).summary["latency"]["task_delay_s"]["max"]
    b = simulate(trace, policies, seed=1).summary["latency"]["task_delay_s"]["max"]
    c = simulate(trace, policies, seed=2).summary["latency"]["task_delay_s"]["max"]
    assert abs(a - b) < 0.01 and abs(a - c) > 0.01


def test_unapproved_step_adds_one_approval_wait_per_tool(policies):
    model = LatencyModel(approval_wait=Distribution("const", (50.0,)), credential_issue=Distribution("const", (0.0,)))
    trace = [start(), delegate(1, A, B), call(2, B, "payments.transfer"), call(3, B, "payments.transfer")]
    delay = simulate(trace, policies, latency=model).summary["latency"]["task_delay_s"]["max"]
    assert 50 <= delay < 50.1


def test_summary_counts_every_kind(policies):
    trace = [start(intent="billing"), call(1, A, "docs.read"), call(2, C, "docs.read", task=None)]
    s = simulate(trace, policies).summary
    assert s["overreach"] == 2 and s["attribution"] == 1 and s["revocation_gap"] == 0
    assert s["unused_permit"] == 5
    assert s["subkinds"]["overreach"] == {"denied": 2, "unapproved": 0}
    assert s["latency"]["policy_us"]["p50"] > 0
    assert s["latency"]["policy_us"]["measured_steps"] == 1  # the cold first step is apart
    assert s["latency"]["policy_us"]["first_step"] > 0


def test_list_argument_provenance():
    """A list is `user` when every element came from the user; otherwise it takes the
    origin of its first element that did not."""
    policies = nhipl.loads("""
        @id("search") permit any agent to call "a.search";
        @id("send-user") permit any agent to call "mail.user" when provenance.to == "user";
        @id("send-tool") permit any agent to call "mail.tool" when provenance.to == "tool:a.search";
        @id("send-unknown") permit any agent to call "mail.unknown" when provenance.to == "unknown";
    """)
    trace = [
        start(prompt="mail bob@acme.org and carol@acme.org the summary"),
        call(1, A, "mail.user", args={"to": ["bob@acme.org", "carol@acme.org"]}),
        call(2, A, "a.search", args={"q": "x"}, output="contact: mallory@evil.test"),
        call(3, A, "mail.tool", args={"to": ["bob@acme.org", "mallory@evil.test"]}),
        call(4, A, "mail.unknown", args={"to": []}),
        call(5, A, "mail.unknown", args={"to": ["bob@acme.org", "nobody@nowhere.test"]}),
    ]
    assert kinds(simulate(trace, policies)) == []


def test_delegators_permits_count_as_used_under_attenuation():
    """Under attenuation a delegated step is allowed only because each delegator's own
    permit allowed it too; those permits are exercised, not unused."""
    policies = nhipl.loads(f"""
        attenuate delegation;
        @id("delegate") permit agent "{A}" to delegate "*";
        @id("planner-reads") permit agent "{A}" to call "repo.read";
        @id("coder-reads") permit agent "{B}" to call "repo.read";
        @id("never") permit agent "{B}" to call "repo.write";
    """)
    trace = [start(), delegate(1, A, B), call(2, B, "repo.read")]
    report = simulate(trace, policies)
    unused = sorted(f.rule for f in report.findings if f.kind == "unused_permit")
    assert unused == ["never"]
