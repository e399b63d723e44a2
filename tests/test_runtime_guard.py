"""The guard: requests built from identity, task, delegation chain and arguments;
deny raises, approval asks, allow runs and exposes the TTL; contexts never mix."""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
import threading

import pytest

import nhipl
from nhipl.runtime import DecisionLog, DecisionLogError, Denied, Guard, current_decision, current_task, delegation_chain

POLICY = """
attenuate delegation;

agent "spiffe://acme.org/agents/lead" { groups: ["leads"], max_credential_ttl: 10m }
agent "spiffe://acme.org/agents/helper" { groups: ["helpers"] }

@id("search") permit any agent to call "search.web" grant ttl 5m;
@id("lead-delegates") permit agent in "leads" to delegate "spiffe://acme.org/agents/*";
@id("helper-delegates") permit agent in "helpers" to delegate "spiffe://acme.org/agents/*";
@id("no-deep") forbid any agent to delegate "*" when delegation.depth >= 2;

task "triage" {
    @id("triage-read") permit any agent to call "tickets.read" on "ticket:*" grant ttl 2m;
}

@id("mail") permit any agent to call "email.send" grant ttl 1m;
@id("external-mail") require approval for any agent to call "email.send"
    when not (args.to endswith "@acme.com") because "external recipient";

@id("payments") permit agent in "leads" to call "payments.refund";
"""

LEAD = "spiffe://acme.org/agents/lead"
HELPER = "spiffe://acme.org/agents/helper"
WORKER = "spiffe://acme.org/agents/worker"


@pytest.fixture(scope="module")
def policies():
    return nhipl.loads(POLICY, source="guard.nhipl")


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_denied_is_exported_and_import_stays_cheap():
    assert nhipl.Denied is Denied and "Denied" in nhipl.__all__
    code = (
        "import sys, nhipl; "
        "heavy = [m for m in ('mcp', 'asyncio', 'nhipl.runtime.guard', 'nhipl.runtime.proxy') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_allow_runs_the_tool_and_exposes_the_ttl(policies, tmp_path):
    guard = Guard(policies, LEAD, decision_log=tmp_path / "d.log")
    seen = []

    @guard.tool("search.web")
    def search(query, limit=10):
        seen.append(current_decision())
        return f"{limit} results for {query}"

    assert search("nhipl") == "10 results for nhipl"
    assert seen[0].effect == "allow" and seen[0].credential_ttl == 300
    assert current_decision() is None  # only inside the tool
    (record,) = records(tmp_path / "d.log")
    assert record["kind"] == "tool_call" and record["agent"] == LEAD and record["tool"] == "search.web"
    assert record["args"] == {"query": "nhipl", "limit": 10}  # defaults included
    assert record["effect"] == "allow" and record["rules"] == ["search"] and record["credential_ttl"] == 300
    assert "task" not in record and "chain" not in record  # outside a task: a step of no task


def test_deny_raises_with_the_decision(policies):
    guard = Guard(policies, HELPER)
    ran = []

    @guard.tool("payments.refund")
    def refund(amount):
        ran.append(amount)

    with pytest.raises(Denied) as caught:
        refund(100)
    assert ran == []
    assert caught.value.decision.effect == "deny"
    assert "default deny" in str(caught.value) and "`payments.refund`" in str(caught.value)
    assert caught.value.request["args"] == {"amount": 100}


def test_task_and_resource_reach_the_request(policies):
    guard = Guard(policies, HELPER)

    @guard.tool("tickets.read", resource="ticket:{ticket_id}")
    def read(ticket_id):
        return current_decision().rules

    with pytest.raises(Denied):
        read(7)  # outside the triage task no rule applies
    with guard.task("triage", id="T-1") as task:
        assert current_task() == {"id": "T-1", "intent": "triage"} == task
        assert read(7) == ("triage-read",)
    assert current_task() is None


def test_delegation_extends_the_chain_and_attenuates(policies, tmp_path):
    guard = Guard(policies, LEAD, decision_log=tmp_path / "d.log")

    @guard.tool("payments.refund")
    def refund(amount):
        return amount

    assert refund(5) == 5
    with guard.task("billing"):
        with guard.delegate(HELPER) as decision:
            assert decision.effect == "allow"
            assert guard.acting() == HELPER and delegation_chain() == (LEAD,)
            # The helper is not in "leads": its own decision restricts the call.
            with pytest.raises(Denied):
                refund(5)
            with guard.delegate(WORKER):
                assert delegation_chain() == (LEAD, HELPER)
                with pytest.raises(Denied) as caught:  # depth 2: forbidden
                    with guard.delegate("spiffe://acme.org/agents/fourth"):
                        pass
                assert caught.value.decision.rules == ("no-deep",)
        assert guard.acting() == LEAD and delegation_chain() == ()
    delegations = [(r["agent"], r["to"], r.get("chain", []), r["effect"]) for r in records(tmp_path / "d.log") if r["kind"] == "delegate"]
    assert delegations == [
        (LEAD, HELPER, [], "allow"),
        (HELPER, WORKER, [LEAD], "allow"),
        (WORKER, "spiffe://acme.org/agents/fourth", [LEAD, HELPER], "deny"),
    ]


def test_approval_sync_approver(policies, tmp_path):
    asked = []

    def approver(request, decision):
        asked.append((request["args"]["to"], decision.rules))
        return {"granted": request["args"]["to"] != "eve@evil.example", "by": "alice"}

    guard = Guard(policies, LEAD, decision_log=tmp_path / "d.log", approver=approver)

    @guard.tool("email.send")
    def send(to, body):
        return current_decision()

    assert send("bob@acme.com", "hi").reasons == ("permitted by `mail`", "credential ttl 60s")
    assert asked == []  # no gate, no question
    decision = send("carol@partner.example", "hi")
    assert decision.effect == "allow" and "approval for `external-mail` granted by `alice`" in decision.reasons
    with pytest.raises(Denied) as caught:
        send("eve@evil.example", "hi")
    assert caught.value.effect == "approval_required"
    assert asked == [("carol@partner.example", ("external-mail",)), ("eve@evil.example", ("external-mail",))]
    approvals = [r.get("approval") for r in records(tmp_path / "d.log")]
    assert approvals == [None, {"granted": True, "by": "alice"}, {"granted": False, "by": "alice"}]


def test_approval_without_approver_raises(policies):
    guard = Guard(policies, LEAD)
    send = guard.wrap(lambda to: to, name="email.send")
    with pytest.raises(Denied) as caught:
        send("x@elsewhere.example")
    assert caught.value.effect == "approval_required" and "needs approval" in str(caught.value)


def test_bad_approver_answer_fails_closed(policies):
    guard = Guard(policies, LEAD, approver=lambda request, decision: "yes")
    send = guard.wrap(lambda to: to, name="email.send")
    with pytest.raises(TypeError, match="approver must answer"):
        send("x@elsewhere.example")


def test_async_tools_and_async_approver(policies, tmp_path):
    async def approver(request, decision):
        await asyncio.sleep(0)
        return True

    guard = Guard(policies, LEAD, decision_log=tmp_path / "d.log", approver=approver)

    @guard.tool("email.send")
    async def send(to):
        await asyncio.sleep(0)
        return current_decision().effect

    assert asyncio.run(send("x@elsewhere.example")) == "allow"
    # A sync tool with an async approver works outside an event loop too.
    sync_send = guard.wrap(lambda to: current_decision().effect, name="email.send")
    assert sync_send("x@elsewhere.example") == "allow"


def test_concurrent_tasks_do_not_mix(policies, tmp_path):
    guard = Guard(policies, LEAD, decision_log=tmp_path / "d.log")

    @guard.tool("search.web")
    async def search(query):
        await asyncio.sleep(0.001)
        return current_task()["id"], delegation_chain(), guard.acting()

    async def one(i):
        async with guard.task("research", id=f"task-{i}"):
            if i % 2:
                async with guard.delegate(HELPER):
                    return [await search(f"q{i}-{n}") for n in range(5)]
            return [await search(f"q{i}-{n}") for n in range(5)]

    async def main():
        return await asyncio.gather(*(one(i) for i in range(20)))

    results = asyncio.run(main())
    for i, calls in enumerate(results):
        expected = (f"task-{i}", (LEAD,), HELPER) if i % 2 else (f"task-{i}", (), LEAD)
        assert calls == [expected] * 5
    logged = [r for r in records(tmp_path / "d.log") if r["kind"] == "tool_call"]
    assert len(logged) == 100
    for r in logged:
        i = int(r["args"]["query"][1:].split("-")[0])
        assert r["task"] == f"task-{i}"
        assert r["agent"] == (HELPER if i % 2 else LEAD)


def test_threads_carry_context_with_copy_context(policies):
    guard = Guard(policies, LEAD)
    out = {}

    @guard.tool("search.web")
    def search(query):
        return current_task()["id"]

    def work(i):
        with guard.task("research", id=f"t{i}"):
            ctx = contextvars.copy_context()
            inner = threading.Thread(target=lambda: out.__setitem__(i, ctx.run(search, "x")))
            inner.start()
            inner.join()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: f"t{i}" for i in range(8)}


def test_unwritable_log_fails_closed(policies):
    guard = Guard(policies, LEAD, decision_log="/dev/full")  # every write: no space left
    ran = []
    search = guard.wrap(lambda query: ran.append(query), name="search.web")
    with pytest.raises(Denied) as caught:
        search("x")
    assert ran == []
    assert "decision log could not be written" in str(caught.value) and "failing closed" in str(caught.value)
    assert guard.check({"principal": LEAD, "tool": "search.web"}).effect == "deny"
    with pytest.raises(DecisionLogError):  # no task starts unrecorded
        with guard.task("research"):
            pass


def test_unwritable_log_can_fail_open(policies, caplog):
    log = DecisionLog("/dev/full", fail_closed=False)
    guard = Guard(policies, LEAD, decision_log=log)
    search = guard.wrap(lambda query: query, name="search.web")
    with caplog.at_level("WARNING", logger="nhipl.runtime"):
        assert search("x") == "x"
    assert "decision not logged" in caplog.text


def test_check_does_not_raise_and_logs(policies, tmp_path):
    guard = Guard(policies, HELPER, decision_log=tmp_path / "d.log")
    decision = guard.check({"principal": HELPER, "tool": "payments.refund", "args": {"password": "hunter2"}})
    assert decision.effect == "deny"
    (record,) = records(tmp_path / "d.log")
    assert record["effect"] == "deny" and record["args"] == {"password": "[redacted]"}


def test_methods_varargs_and_kwargs(policies):
    guard = Guard(policies, LEAD)

    class Searcher:
        @guard.tool("search.web")
        def search(self, *terms, **options):
            return current_decision()

    Searcher().search("a", "b", lang="en")
    request = guard.request("search.web", {"x": 1})
    assert request["principal"] == LEAD and request["args"] == {"x": 1} and "task" not in request


def test_principal_attributes_and_context(policies):
    guard = Guard(policies, HELPER, principal_attrs={"groups": ["leads"]}, context={"env": "prod"})
    refund = guard.wrap(lambda amount: current_decision().rules, name="payments.refund")
    assert refund(1) == ("payments",)  # the enforcement point vouches for the attributes
    assert guard.request("x")["context"] == {"env": "prod"}


def test_a_task_opened_by_a_delegatee_starts_its_own_chain(policies):
    guard = Guard(policies, LEAD)
    with guard.task("billing"):
        with guard.delegate(HELPER):
            assert delegation_chain() == (LEAD,)
            with guard.task("research") as inner:
                assert guard.acting() == HELPER and delegation_chain() == ()
                assert guard.request("search.web")["task"] == inner and "delegation" not in guard.request("search.web")
            assert delegation_chain() == (LEAD,)


def test_approvals_in_a_task_are_scoped_to_the_call_and_logged(policies, tmp_path):
    answers = iter([{"granted": True, "by": "alice"}, {"granted": False, "by": "bob"}])
    asked = []

    def approver(request, decision):
        asked.append((request["args"]["to"], request["task"]["intent"], decision.effect))
        return next(answers)

    guard = Guard(policies, LEAD, decision_log=tmp_path / "d.log", approver=approver)
    send = guard.wrap(lambda to, body: current_decision(), name="email.send")
    with guard.task("outreach", id="T"):
        decision = send("carol@partner.example", "hi")
        assert decision.effect == "allow" and decision.credential is not None
        assert send("dave@acme.com", "hi").effect == "allow"  # no gate: nobody asked
        with pytest.raises(Denied) as caught:
            send("eve@evil.example", "hi")
        assert caught.value.effect == "approval_required"
    assert asked == [("carol@partner.example", "outreach", "approval_required"),
                     ("eve@evil.example", "outreach", "approval_required")]
    logged = [r for r in records(tmp_path / "d.log") if r["kind"] in ("approval", "tool_call")]
    shape = [(r["kind"], r.get("by"), r.get("granted"), r.get("effect"), (r.get("args") or {}).get("to")) for r in logged]
    assert shape == [
        ("approval", "alice", True, None, "carol@partner.example"),
        ("tool_call", None, None, "allow", "carol@partner.example"),
        ("tool_call", None, None, "allow", "dave@acme.com"),
        ("approval", "bob", False, None, "eve@evil.example"),
        ("tool_call", None, None, "approval_required", "eve@evil.example"),
    ]
    assert logged[1]["approval"] == {"granted": True, "by": "alice"}


def test_a_failing_approver_in_a_task_records_a_refusal_and_runs_nothing(policies, tmp_path):
    def approver(request, decision):
        raise RuntimeError("pager down")

    guard = Guard(policies, LEAD, decision_log=tmp_path / "d.log", approver=approver)
    ran = []
    send = guard.wrap(lambda to: ran.append(to), name="email.send")
    with guard.task("outreach"):
        with pytest.raises(RuntimeError, match="pager down"):
            send("carol@partner.example")
    assert ran == []
    kinds = [(r["kind"], r.get("granted"), r.get("effect")) for r in records(tmp_path / "d.log") if r["kind"] in ("approval", "tool_call")]
    assert kinds == [("approval", False, None), ("tool_call", None, "approval_required")]


def test_async_tools_in_a_task_record_outputs_and_await_the_approver(tmp_path):
    policies = nhipl.loads(
        '@id("read") permit any agent to call "tickets.read";\n'
        '@id("mail") permit any agent to call "email.send";\n'
        '@id("gate") require approval for any agent to call "email.send" when provenance.to startswith "tool:";\n'
    )

    async def approver(request, decision):
        await asyncio.sleep(0)
        return {"granted": True, "by": "alice"}

    guard = Guard(policies, LEAD, decision_log=tmp_path / "d.log", approver=approver)

    @guard.tool("tickets.read")
    async def read(ticket):
        await asyncio.sleep(0)
        return {"reply_to": "customer@example.com"}

    @guard.tool("email.send")
    async def send(to):
        return current_decision().request["provenance"]

    async def main():
        async with guard.task("support", prompt="answer ticket 7"):
            ticket = await read(7)
            return await send(ticket["reply_to"])

    assert asyncio.run(main()) == {"to": "tool:tickets.read"}
    approval = next(r for r in records(tmp_path / "d.log") if r["kind"] == "approval")
    assert approval["by"] == "alice" and approval["args"] == {"to": "customer@example.com"}


def test_guards_can_share_a_runtime_and_its_log(policies, tmp_path):
    from nhipl.runtime import Runtime

    rt = Runtime(policies, log=str(tmp_path / "d.log"))
    lead, helper = Guard(None, LEAD, runtime=rt), Guard(None, HELPER, runtime=rt)
    assert lead.policies is helper.policies is rt.policies
    lead.wrap(lambda query: query, name="search.web")("a")
    helper.wrap(lambda query: query, name="search.web")("b")
    assert [r["agent"] for r in records(tmp_path / "d.log")] == [LEAD, HELPER]
    with pytest.raises(ValueError, match="shared runtime"):
        Guard(None, LEAD, runtime=rt, decision_log=tmp_path / "other.log")
