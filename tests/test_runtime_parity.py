"""Parity: a scripted multi-agent session through the runtime, its decision log replayed by
`nhipl simulate` under the same policies. Every step gets the effect the runtime gave it,
built from the same request, and a runtime that revokes at task end shows no revocation gap."""

from __future__ import annotations

import json

import pytest

import nhipl
from nhipl.runtime import Denied, Revoked, Runtime
from nhipl.simulator import simulate

from .cli import run

LEAD = "spiffe://acme.org/agents/lead"
WRITER = "spiffe://acme.org/agents/writer"
HELPER = "spiffe://acme.org/agents/helper"

POLICY = """
agent "spiffe://acme.org/agents/lead" { groups: ["leads"] }

@id("read") permit any agent to call "tickets.read" on "ticket:*" grant ttl 5m;
@id("vault") permit agent in "leads" to call "vault.read" grant ttl 1m;
@id("mail") permit any agent to call "email.send" grant ttl 2m;
@id("hand") permit agent in "leads" to delegate "spiffe://acme.org/agents/*" grant ttl 10m;
@id("no-secrets-out") forbid any agent to call "email.send" when provenance has body and provenance.body startswith "tool:vault."
    because "a secret may not leave the task";
@id("refund-gate") require approval for any agent to call "payments.refund";
@id("refund") permit any agent to call "payments.refund" grant ttl 30s;
@id("refund-rate") forbid any agent to call "payments.refund"
    when count(h in history where h.tool == "payments.refund" and h.effect == "allow") >= 3
    because "at most three refunds a task";
@id("young-credentials") forbid any agent to call "tickets.read" when credential has age and credential.age > 1h
    because "credentials are short-lived";
"""


def script(rt: Runtime) -> tuple[list, list]:
    """Run the session; the runtime's decisions in step order, and the credentials it issued."""
    steps, credentials = [], []

    def step(decision):
        steps.append(decision)
        if decision.credential is not None:
            credentials.append(decision.credential)
        return decision

    task = rt.start_task(LEAD, "refunds", prompt="refund order 42 and tell bob@example.com it is done",
                         owner="bob@example.com")
    step(task.check(LEAD, "tickets.read", {"id": 7}, resource="ticket:7"))
    step(task.check(LEAD, "tickets.read", {"id": 7}, resource="ticket:7"))  # reuses the credential
    step(task.check(LEAD, "vault.read", {"name": "payments-api"}))
    task.record_output("vault.read", "sk-live-1234-abcd")
    task.record_output("tickets.read", {"id": 7, "text": "customer wants order 42 refunded"})
    writer = task.delegate(LEAD, WRITER)
    steps.append(writer.decision)
    step(writer.check("email.send", {"to": "bob@example.com", "body": "sk-live-1234-abcd"}))  # the secret: denied
    step(writer.check("email.send", {"to": "bob@example.com", "body": "it is done"}))
    step(writer.check("vault.read", {"name": "payments-api"}))  # the writer is no lead: denied
    with pytest.raises(Denied):
        writer.delegate(HELPER)  # only leads delegate
    step(task.check(LEAD, "payments.refund", {"order": 42}))  # approval required
    task.approve("payments.refund", by="alice@acme.com", args={"order": 42})
    step(task.check(LEAD, "payments.refund", {"order": 43}))  # not the approved order
    step(task.check(LEAD, "payments.refund", {"order": 42}))  # approved: allowed
    step(task.check(LEAD, "payments.refund", {"order": 42}))  # the approval was for one call
    task.approve("payments.refund", by="alice@acme.com", ttl=600, uses=2)
    step(task.check(LEAD, "payments.refund", {"order": 44}))
    step(task.check(LEAD, "payments.refund", {"order": 45}))
    step(task.check(LEAD, "payments.refund", {"order": 46}))  # a fourth refund: the history rule forbids it
    task.approve("payments.refund", by="alice@acme.com", uses=None)
    step(task.check(LEAD, "payments.refund", {"order": 47}))  # approved or not
    first_ticket = credentials[0]
    rt.revoke(first_ticket.id, "rotated")
    step(task.check(LEAD, "tickets.read", {"id": 7}, resource="ticket:7"))  # a fresh credential
    task.end()
    return steps, credentials


def test_the_log_replays_with_every_step_s_effect_and_request(tmp_path):
    policy = tmp_path / "p.nhipl"
    policy.write_text(POLICY)
    policies = nhipl.load(str(policy))
    log = tmp_path / "decisions.jsonl"
    rt = Runtime(policies, log=str(log))
    steps, credentials = script(rt)
    effects = [str(d.effect) for d in steps]
    assert effects == ["allow", "allow", "allow", "allow", "deny", "allow", "deny", "approval_required",
                       "approval_required", "allow", "approval_required", "allow", "allow", "deny", "deny", "allow"]
    assert credentials[1] is credentials[0]  # reused
    # A credential used after the task ended is refused.
    for credential in credentials:
        with pytest.raises(Revoked):
            rt.verify(credential.token, credential.scope.split(" ")[0].split(":", 1)[1],
                      credential.scope.split(" ", 1)[1] if " " in credential.scope else None)

    events = [json.loads(line) for line in log.read_text().splitlines()]
    step_lines = [n for n, e in enumerate(events, start=1) if e["kind"] in ("tool_call", "delegate")]
    # The denied delegation to the helper is a step too.
    assert len(step_lines) == len(steps) + 1
    logged = {n: events[n - 1]["effect"] for n in step_lines}

    # Replay through the Python API to compare the requests too.
    replayed: dict[int, dict] = {}
    report = simulate(str(log), policies, on_request=lambda line, request: replayed.__setitem__(line, request))
    assert sorted(replayed) == step_lines
    runtime_requests = [d.request for d in steps]
    delegate_to_helper = next(n for n in step_lines if events[n - 1].get("to") == HELPER)
    for n, request in zip([n for n in step_lines if n != delegate_to_helper], runtime_requests):
        live = dict(request, history=list(request["history"]))
        live.setdefault("action", "call")
        again = dict(replayed[n], history=list(replayed[n].get("history", ())))
        again.setdefault("action", "call")
        assert again == live, n

    # And through the command line, as a user replays a day's log.
    code, out, err = run("simulate", log, "-p", policy, "--format", "json")
    assert code == 0, err
    cli = json.loads(out)
    for findings in (cli["findings"], [f.to_dict() for f in report.findings]):
        denied = {f["line"] for f in findings if f["kind"] == "overreach" and f["subkind"] == "denied"}
        unapproved = {f["line"] for f in findings if f["kind"] == "overreach" and f["subkind"] == "unapproved"}
        assert denied == {n for n, e in logged.items() if e == "deny"}
        assert unapproved == {n for n, e in logged.items() if e == "approval_required"}
        assert not [f for f in findings if f["kind"] in ("revocation_gap", "attribution")]
    assert cli["summary"]["steps"] == len(step_lines)


def test_a_task_that_is_not_ended_shows_its_exposure(tmp_path):
    # The counter-check: the same session without revocation at its end is a finding.
    policies = nhipl.loads(POLICY)
    log = tmp_path / "decisions.jsonl"
    rt = Runtime(policies, log=str(log))
    task = rt.start_task(LEAD, "refunds")
    task.check(LEAD, "vault.read", {"name": "x"})
    lines = log.read_text().splitlines()
    lines.append(json.dumps({"kind": "task_end", "t": json.loads(lines[-1])["t"] + 1, "task": task.id}))
    report = simulate(lines, policies)
    assert [f.subkind for f in report.findings if f.kind == "revocation_gap"] == ["valid_after_task_end"]
