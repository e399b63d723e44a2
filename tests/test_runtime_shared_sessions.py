"""Task sessions shared through a real redis-server: a task started by one runtime is
continued by another (delegations, provenance, history, approvals, credentials, the end),
steps race safely for the task's lock, a long task is compacted, every key expires, and a
store that stops answering denies the next step (fail closed)."""

from __future__ import annotations

import random
import threading
import time

import pytest

import nhipl
from nhipl.runtime import Denied, Revoked, Runtime
from nhipl.runtime import session as session_module
from nhipl.runtime.store import SESSION_ENDED, SESSION_IDLE, StoreError

from .redis_server import RedisServer

pytest.importorskip("redis", reason="the `redis` client is not installed (pip install -e '.[redis]')")

A = "spiffe://acme.org/agents/support"
B = "spiffe://acme.org/agents/writer"
C = "spiffe://acme.org/agents/stranger"

POLICY = """
@id("read") permit any agent to call "tickets.read" grant ttl 5m;
@id("vault") permit any agent to call "vault.read" grant ttl 1m;
@id("mail") permit any agent to call "email.send" grant ttl 2m;
@id("hand") permit agent "spiffe://acme.org/agents/support" to delegate "spiffe://acme.org/agents/writer";
@id("writer-hand") permit agent "spiffe://acme.org/agents/writer" to delegate "spiffe://acme.org/agents/stranger";
@id("no-secrets-out") forbid any agent to call "email.send" when provenance.body == "tool:vault.read"
    because "a secret may not leave the task";
@id("refund-gate") require approval for any agent to call "payments.refund";
@id("refund") permit any agent to call "payments.refund";
@id("three-reads") forbid any agent to call "tickets.read"
    when count(h in history where h.tool == "tickets.read" and h.effect == "allow") >= 3
    because "three reads per task";
"""


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))  # skips when redis-server is absent
    yield server
    server.stop()


@pytest.fixture
def pair(redis):
    policies = nhipl.loads(POLICY)
    one, two = Runtime(policies, store=redis.url), Runtime(policies, store=redis.url)
    yield one, two
    one.close()
    two.close()


def client(redis):
    import redis as redis_client

    return redis_client.Redis.from_url(redis.url)


def test_a_task_started_in_one_runtime_is_continued_in_the_other(pair):
    one, two = pair
    task = one.start_task(A, "support", prompt="mail the customer about ticket 42")
    assert task.delegate(A, B).chain == [A]

    there = two.task(task.id)
    assert there is not None and there is not task and there.intent == "support"
    assert there.chain(B) == [A], "the delegation made in the first runtime reached the second"
    assert there.delegate(B, C).chain == [A, B]
    assert task.chain(C) == [A, B], "and the other way round"
    step = task.check(C, "tickets.read", {"id": 42})
    assert step.effect == "allow" and step.request["delegation"] == {"chain": [A, B]}

    # Provenance from an output recorded in the other runtime.
    there.record_output("vault.read", {"secret": "hunter2-the-vault-secret"})
    leak = task.check(A, "email.send", {"to": "the customer", "body": "hunter2-the-vault-secret"})
    assert leak.effect == "deny" and leak.rules == ("no-secrets-out",)
    assert leak.request["provenance"]["body"] == "tool:vault.read"
    assert there.check(A, "email.send", {"to": "the customer", "body": "ticket 42"}).effect == "allow"


def test_a_history_rule_counts_steps_made_in_both_runtimes(pair):
    one, two = pair
    task = one.start_task(A, "support")
    there = two.task(task.id)
    assert task.check(A, "tickets.read").effect == "allow"
    assert there.check(A, "tickets.read").effect == "allow"
    assert task.check(A, "tickets.read").effect == "allow"
    fourth = there.check(A, "tickets.read")
    assert fourth.effect == "deny" and fourth.rules == ("three-reads",), fourth
    assert [h["effect"] for h in fourth.request["history"]] == ["allow", "allow", "allow"]
    assert len(task.request(A, "vault.read")["history"]) == 4


def test_an_approval_for_one_use_is_used_once_across_runtimes_even_concurrently(pair):
    one, two = pair
    task = one.start_task(A, "refunds")
    there = two.task(task.id)
    task.approve("payments.refund", by="alice@acme.com", uses=1)
    assert there.request(A, "payments.refund")["approval"] == {"granted": True, "by": "alice@acme.com"}
    for _ in range(3):
        task.approve("payments.refund", by="alice@acme.com", uses=1)
        barrier = threading.Barrier(8)
        effects: list[str] = []

        def step(t):
            barrier.wait()
            effects.append(t.check(A, "payments.refund", {"order": 1}).effect)

        threads = [threading.Thread(target=step, args=(task if n % 2 else there,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(effects) == ["allow"] + ["approval_required"] * 7, effects
    # Two uses granted in the second runtime: exactly two allows across both.
    there.approve("payments.refund", by="bob", uses=2)
    got = [rt_task.check(A, "payments.refund").effect for rt_task in (task, there, task, there)]
    assert got == ["allow", "allow", "approval_required", "approval_required"]


def test_ending_in_one_runtime_revokes_credentials_of_both_and_the_other_denies(pair):
    one, two = pair
    task = one.start_task(A, "support")
    there = two.task(task.id)
    mine = task.check(A, "tickets.read").credential
    theirs = there.check(A, "vault.read").credential
    assert mine is not None and theirs is not None and mine.id != theirs.id
    # A live credential issued by the other runtime is reused here, never minted again.
    assert task.check(A, "vault.read").credential.id == theirs.id
    revoked = task.end()
    assert set(revoked) == {mine.id, theirs.id}
    for credential, tool in ((mine, "tickets.read"), (theirs, "vault.read")):
        for rt in (one, two):
            with pytest.raises(Revoked, match="ended"):
                rt.verify(credential.token, tool)
    late = there.check(A, "tickets.read")
    assert late.effect == "deny" and late.reasons == (f"task `{task.id}` has ended",) and late.credential is None
    assert two.task(task.id) is None and one.task(task.id) is None
    with pytest.raises(Denied):
        there.approve("payments.refund", by="alice")
    assert there.end() == []


def test_a_task_id_is_started_once_across_runtimes(pair):
    one, two = pair
    one.start_task(A, "support", task_id="only-once")
    with pytest.raises(ValueError, match="already running"):
        two.start_task(A, "support", task_id="only-once")
    assert two.task("never-started") is None


def test_a_long_task_is_compacted_and_loads_the_same(pair, redis, monkeypatch):
    monkeypatch.setattr(session_module, "COMPACT_AFTER", 25)
    monkeypatch.setattr(session_module, "HISTORY_LIMIT", 10)
    one, two = pair
    task = one.start_task(A, "support", prompt="ticket 42")
    task.delegate(A, B)
    task.record_output("vault.read", "the-secret-value")
    task.approve("payments.refund", by="alice", uses=3)
    for n in range(40):
        task.check(A, "vault.read", {"n": n})
    assert task.check(A, "payments.refund").effect == "allow"
    there = two.task(task.id)
    assert there.chain(B) == [A]
    request = there.request(B, "email.send", {"body": "the-secret-value"})
    assert request["provenance"] == {"body": "tool:vault.read"}
    assert there.request(A, "payments.refund")["approval"] == {"granted": True, "by": "alice"}
    assert [h.get("args") for h in request["history"]][-3:] == [{"n": 38}, {"n": 39}, None]
    assert len(request["history"]) == 10
    assert there.check(A, "payments.refund").effect == "allow"
    assert task.check(A, "payments.refund").effect == "allow"
    assert there.check(A, "payments.refund").effect == "approval_required", "three uses, across both"
    keys = [k for k in client(redis).keys(f"nhipl:session:{{{task.id}}}*")]
    assert client(redis).llen(f"nhipl:session:{{{task.id}}}:events") < 25, "the changes were folded into a snapshot"
    assert keys


def test_every_session_key_expires_and_an_ended_task_soon(pair, redis):
    one, _ = pair
    task = one.start_task(A, "support")
    task.check(A, "tickets.read")
    redis_client = client(redis)
    keys = redis_client.keys(f"nhipl:session:{{{task.id}}}*")
    assert len(keys) == 2  # the meta hash and the changes (the lock is released)
    assert all(0 < redis_client.ttl(k) <= SESSION_IDLE for k in keys)
    task.end()
    assert all(0 < redis_client.ttl(k) <= SESSION_ENDED for k in keys)


@pytest.mark.parametrize(("seed", "compact_after", "history_limit"), [(18, None, None), (7, 9, 4), (3, 2, 1)])
def test_parity_with_one_process(pair, monkeypatch, seed, compact_after, history_limit):
    """Steps spread at random over two runtimes get exactly the decisions one in-process
    runtime gives the same steps in the same order (also when the task is folded into a
    snapshot every few changes, and only its latest few steps are kept)."""
    if compact_after is not None:
        monkeypatch.setattr(session_module, "COMPACT_AFTER", compact_after)
        monkeypatch.setattr(session_module, "HISTORY_LIMIT", history_limit)
    one, two = pair
    alone = Runtime(nhipl.loads(POLICY))
    rng = random.Random(seed)
    shared = one.start_task(A, "support", prompt="mail ticket 7")
    here = alone.start_task(A, "support", prompt="mail ticket 7", task_id=shared.id)
    views = [shared, two.task(shared.id)]
    agents = [A, B, C]
    for _ in range(120):
        view = rng.choice(views)
        kind = rng.random()
        agent = rng.choice(agents)
        if kind < 0.1:
            to = rng.choice(agents)
            outcomes = []
            for t in (view, here):
                try:
                    outcomes.append(t.delegate(agent, to).chain)
                except Denied as denied:
                    outcomes.append(denied.decision)
            assert outcomes[0] == outcomes[1]
        elif kind < 0.2:
            output = rng.choice(["vault secret 1", "vault secret 2", "ticket 7 text"])
            view.record_output("vault.read", output)
            here.record_output("vault.read", output)
        elif kind < 0.3:
            uses = rng.choice([1, 2, None])
            view.approve("payments.refund", by="alice", uses=uses)
            here.approve("payments.refund", by="alice", uses=uses)
        else:
            tool = rng.choice(["tickets.read", "email.send", "payments.refund", "vault.read"])
            args = {"body": rng.choice(["vault secret 1", "ticket 7", "vault secret 2"])}
            got, want = view.check(agent, tool, args), here.check(agent, tool, args)
            assert (got.effect, got.rules, got.reasons) == (want.effect, want.rules, want.reasons), (tool, agent, args)
            assert got.request["provenance"] == want.request["provenance"]
            assert (got.credential is None) == (want.credential is None)
            untimed = lambda history: [{k: v for k, v in h.items() if k != "t"} for h in history]  # noqa: E731
            assert untimed(view.request(A, tool)["history"]) == untimed(here.request(A, tool)["history"])
    alone.close()


def test_a_store_that_stops_mid_task_denies_the_next_steps(tmp_path):
    server = RedisServer(tmp_path)
    policies = nhipl.loads(POLICY)
    rt = Runtime(policies, store=server.url, log=str(tmp_path / "log.jsonl"))
    try:
        task = rt.start_task(A, "support")
        assert task.check(A, "tickets.read").effect == "allow"
        server.stop()
        for tool in ("tickets.read", "email.send"):
            step = task.check(A, tool, {"body": "x"})
            assert step.effect == "deny" and step.credential is None
            assert "failing closed" in step.reasons[0] and "session" in step.reasons[0], step.reasons
        with pytest.raises(StoreError):
            task.record_output("vault.read", "a secret")
        with pytest.raises(StoreError):
            task.approve("payments.refund", by="alice")
        with pytest.raises(StoreError):
            task.end()
        with pytest.raises(StoreError):
            Runtime(policies, store=server.url).task(task.id)
        logged = (tmp_path / "log.jsonl").read_text()
        assert logged.count('"effect":"deny"') >= 2, "the denied steps are logged"
    finally:
        server.stop()
        rt.close()


def test_a_lock_held_too_long_fails_the_step_closed(pair, redis, monkeypatch):
    one, two = pair
    task = one.start_task(A, "support")
    there = two.task(task.id)
    redis_client = client(redis)
    redis_client.set(f"nhipl:session:{{{task.id}}}:lock", "someone else", px=60_000)
    monkeypatch.setattr(session_module, "LOCK_WAIT", 0.2)
    step = there.check(A, "tickets.read")
    assert step.effect == "deny" and "stayed locked" in step.reasons[0]
    redis_client.delete(f"nhipl:session:{{{task.id}}}:lock")
    assert there.check(A, "tickets.read").effect == "allow"
    assert [h["effect"] for h in task.request(A, "tickets.read")["history"]] == ["allow"], "the denied step was not saved"


def test_a_corrupt_session_in_the_store_fails_closed(pair, redis):
    one, two = pair
    task = one.start_task(A, "support")
    assert task.check(A, "tickets.read").effect == "allow"
    client(redis).rpush(f"nhipl:session:{{{task.id}}}:events", b"\xff not json", b'{"k": "grant everything"}')
    step = task.check(A, "tickets.read")
    assert step.effect == "deny" and "unreadable session" in step.reasons[0], step.reasons
    with pytest.raises(StoreError, match="unreadable"):
        two.task(task.id)
    assert client(redis).get(f"nhipl:session:{{{task.id}}}:lock") is None, "the lock was released"


def test_the_store_holds_a_bounded_number_of_tasks(tmp_path, monkeypatch):
    from nhipl.runtime import store as store_module

    server = RedisServer(tmp_path)  # its own: the count covers every task in the store
    monkeypatch.setattr(store_module, "MAX_SESSIONS", 3)
    one, two = Runtime(nhipl.loads(POLICY), store=server.url), Runtime(nhipl.loads(POLICY), store=server.url)
    try:
        first = one.start_task(A, "a")
        two.start_task(A, "b")
        one.start_task(A, "c")
        with pytest.raises(StoreError, match="3 tasks are running"):
            two.start_task(A, "d")
        two.task(first.id).end()
        assert one.start_task(A, "d").check(A, "tickets.read").effect == "allow"
    finally:
        one.close()
        two.close()
        server.stop()


def test_a_step_that_outlives_its_lock_is_denied_and_not_saved(pair, monkeypatch):
    one, two = pair
    task = one.start_task(A, "support")
    there = two.task(task.id)
    evaluate = one.policies.evaluate

    def slow(request):  # a step slower than the lock it holds: another process may have taken it
        time.sleep(0.05)
        return evaluate(request)

    monkeypatch.setattr(session_module, "LOCK_MS", 5)
    monkeypatch.setattr(one.policies, "evaluate", slow)
    step = task.check(A, "tickets.read")
    assert step.effect == "deny" and step.credential is None and "expired before the step was saved" in step.reasons[0], step.reasons
    monkeypatch.undo()
    assert there.request(A, "tickets.read")["history"] == [], "nothing of the step reached the store"
    assert task.check(A, "tickets.read").effect == "allow"
    assert [h["effect"] for h in there.request(A, "tickets.read")["history"]] == ["allow"]
    assert [h["effect"] for h in task.request(A, "tickets.read")["history"]] == ["allow"], "the first runtime reloaded the task"


def test_steps_racing_from_two_runtimes_are_all_kept_once(pair):
    one, two = pair
    task = one.start_task(A, "support")
    views = [task, two.task(task.id)]
    errors: list = []

    def steps(view, worker: int):
        try:
            for n in range(25):
                view.check(A, "vault.read", {"n": worker * 100 + n})
                if n % 10 == 0:
                    view.record_output("vault.read", f"output {worker} {n}")
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=steps, args=(views[w % 2], w)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for view in views:
        history = view.request(A, "vault.read")["history"]
        assert sorted(h["args"]["n"] for h in history) == sorted(w * 100 + n for w in range(8) for n in range(25))
        assert len(view.outputs) == 24
    first, second = (list(view.request(A, "vault.read")["history"]) for view in views)
    assert first == second, "both runtimes hold the steps in the one order the store gave them"


def test_a_credential_revoked_through_the_other_runtime_is_never_reused(pair):
    one, two = pair
    task = one.start_task(A, "support")
    first = task.check(A, "vault.read").credential
    assert task.check(A, "vault.read").credential.id == first.id  # live: reused
    assert two.revoke(first.id, "revoked through the other runtime")
    again = task.check(A, "vault.read")
    assert again.effect == "allow" and again.credential.id != first.id, "a new credential, not the revoked one"
    assert "credential" not in again.request, "the step was decided without the revoked credential"
    assert two.task(task.id).check(A, "vault.read").credential.id == again.credential.id
