"""`nhipl serve` sharing task sessions through a real Redis: with `--workers 2` every worker
serves every task (each decision the one a single process gives), two replicas continue
each other's tasks, several workers on the `memory` store refuse task endpoints with the
fix named (and keep deciding AuthZEN requests), and a Redis that stops mid-task fails
closed without a traceback."""

from __future__ import annotations

import json
import random
import re
import threading

import pytest

import nhipl
from nhipl.runtime import Denied, Runtime

from .redis_server import RedisServer, redis_server  # noqa: F401 - a fixture
from .test_runtime_shared_sessions import POLICY, A, B
from .test_serve_process import Server, evaluation

pytest.importorskip("redis", reason="the `redis` client is not installed (pip install -e '.[redis]')")

@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "p.nhipl"
    path.write_text(POLICY)
    return path


def script(seed: int, n: int) -> list[tuple]:
    """A task's life as (what, body) pairs: delegations, outputs, approvals and steps."""
    rng = random.Random(seed)
    out: list[tuple] = [("delegations", {"agent": A, "to": B})]
    for _ in range(n):
        r = rng.random()
        if r < 0.1:
            out.append(("outputs", {"tool": "vault.read", "output": rng.choice(["vault secret 1", "vault secret 2"])}))
        elif r < 0.2:
            out.append(("approvals", {"tool": "payments.refund", "by": "alice", "uses": rng.choice([1, 2])}))
        else:
            body = {"agent": rng.choice([A, B]), "tool": rng.choice(["tickets.read", "email.send", "payments.refund", "vault.read"]),
                    "args": {"body": rng.choice(["vault secret 1", "ticket 7", "vault secret 2"])}}
            out.append(("steps", body))
    return out


def replay_alone(steps: list[tuple], task_id: str) -> list:
    """What one in-process runtime answers to the same steps, in order."""
    rt = Runtime(nhipl.loads(POLICY))
    task = rt.start_task(A, "support", prompt="mail ticket 7", task_id=task_id)
    out = []
    for what, body in steps:
        if what == "delegations":
            try:
                task.delegate(body["agent"], body["to"])
                out.append(True)
            except Denied:
                out.append(False)
        elif what == "outputs":
            task.record_output(body["tool"], body["output"])
            out.append(None)
        elif what == "approvals":
            task.approve(body["tool"], body["by"], uses=body["uses"])
            out.append(None)
        else:
            d = task.check(body["agent"], body["tool"], body["args"])
            out.append((d.effect, list(d.rules), list(d.reasons), d.credential is not None))
    rt.close()
    return out


def one_connection_per_worker(server, workers: int = 2) -> list:
    """Kept-alive connections to ``server``, one to each of its workers (the kernel hands
    a new connection to whichever worker accepts first; /metrics says which one it was)."""
    held, found = [], {}
    for _ in range(200):
        conn = server.connection()
        held.append(conn)
        text = server.request("GET", "/metrics", conn=conn)[2]
        pid = re.search(r'nhipl_policy_info\{version="[0-9a-f]+",pid="(\d+)"\}', text).group(1)
        found.setdefault(pid, conn)
        if len(found) == workers:
            break
    assert len(found) == workers, f"200 connections all reached the same worker {set(found)}"
    for conn in held:
        if conn not in found.values():
            conn.close()
    return list(found.values())


def drive(servers, task_id: str, steps: list[tuple], connections=None) -> list:
    """The same steps over HTTP, to the servers (or the connections) in turn."""
    out = []
    for n, (what, body) in enumerate(steps):
        server = servers[n % len(servers)]
        conn = connections[n % len(connections)] if connections else None
        status, _, reply = server.post(f"/v1/tasks/{task_id}/{what}", body, conn=conn)
        assert status == 200, (what, body, reply)
        if what == "delegations":
            out.append(reply["delegated"])
        elif what == "steps":
            out.append((reply["effect"], reply["rules"], reply["reasons"], reply["credential"] is not None))
        else:
            out.append(None)
    return out


def test_two_workers_on_redis_serve_every_task_as_one_process_would(tmp_path, policy_file, redis_server):  # noqa: F811
    log = tmp_path / "decisions.jsonl"
    server = Server([policy_file], "--workers", "2", "--store", redis_server.url, "--log", str(log), "--watch", "0")
    try:
        status, _, out = server.post("/v1/tasks", {"agent": A, "intent": "support", "prompt": "mail ticket 7"})
        assert status == 201, out
        task_id = out["task"]
        steps = script(18, 150)
        connections = one_connection_per_worker(server)
        got = drive([server], task_id, steps, connections)
        for conn in connections:
            conn.close()
        assert got == replay_alone(steps, task_id)
        status, _, out = server.request("DELETE", f"/v1/tasks/{task_id}")
        assert status == 200 and out["ended"], out
        status, _, out = server.post(f"/v1/tasks/{task_id}/steps", {"agent": A, "tool": "tickets.read"})
        assert status == 404 and "ended" in out["error"], out
    finally:
        err = server.stop()
    assert server.proc.returncode == 0 and "Traceback" not in err, err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    pids = {r["pid"] for r in records if r.get("task") == task_id and r["kind"] in ("tool_call", "delegate")}
    assert len(pids) == 2, f"the task's steps were all decided by one worker ({pids}): the test proves nothing"


def test_an_approval_for_one_use_is_used_once_by_racing_workers(policy_file, redis_server):  # noqa: F811
    server = Server([policy_file], "--workers", "2", "--store", redis_server.url, "--watch", "0")
    try:
        status, _, out = server.post("/v1/tasks", {"agent": A, "intent": "refunds"})
        task_id = out["task"]
        for _ in range(3):
            assert server.post(f"/v1/tasks/{task_id}/approvals", {"tool": "payments.refund", "by": "alice", "uses": 1})[0] == 200
            barrier = threading.Barrier(8)
            effects: list[str] = []
            connections = [conn for _ in range(4) for conn in one_connection_per_worker(server)]  # 4 to each worker

            def step(conn):
                barrier.wait()
                status, _, out = server.post(f"/v1/tasks/{task_id}/steps", {"agent": A, "tool": "payments.refund"}, conn=conn)
                conn.close()
                assert status == 200, out
                effects.append(out["effect"])

            threads = [threading.Thread(target=step, args=(conn,)) for conn in connections]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert sorted(effects) == ["allow"] + ["approval_required"] * 7, effects
    finally:
        err = server.stop()
    assert "Traceback" not in err, err


def test_two_replicas_on_one_redis_continue_each_others_tasks(tmp_path, policy_file, redis_server):  # noqa: F811
    one = Server([policy_file], "--store", redis_server.url, "--log", str(tmp_path / "one.jsonl"), "--watch", "0")
    two = Server([policy_file], "--store", redis_server.url, "--log", str(tmp_path / "two.jsonl"), "--watch", "0")
    try:
        status, _, out = one.post("/v1/tasks", {"agent": A, "intent": "support", "prompt": "mail ticket 7", "task_id": "t-replicas"})
        assert status == 201, out
        assert two.post("/v1/tasks", {"agent": A, "task_id": "t-replicas"})[0] == 409, "the id is taken on every replica"
        steps = script(7, 60)
        assert drive([two, one], "t-replicas", steps) == replay_alone(steps, "t-replicas")
        status, _, read = two.post("/v1/tasks/t-replicas/steps", {"agent": A, "tool": "vault.read"})
        token = read["credential"]["token"] if read["effect"] == "allow" else None
        status, _, out = two.request("DELETE", "/v1/tasks/t-replicas")
        assert status == 200 and out["ended"], out
        status, _, out = one.post("/v1/tasks/t-replicas/steps", {"agent": A, "tool": "tickets.read"})
        assert status == 404 and "ended" in out["error"], "the task ended on the other replica"
        if token is not None:
            assert one.post("/v1/credentials/introspect", {"token": token})[2] == {"active": False}
    finally:
        errors = one.stop() + two.stop()
    assert "Traceback" not in errors, errors


def test_several_workers_on_the_memory_store_refuse_task_endpoints_and_still_decide(policy_file):
    server = Server([policy_file], "--workers", "2")
    try:
        for _ in range(6):  # whichever worker answers
            status, _, out = server.post("/v1/tasks", {"agent": A, "intent": "support"})
            assert status == 503 and "--store redis://" in out["error"] and "--workers 1" in out["error"], out
            status, _, out = server.post("/v1/tasks/x/steps", {"agent": A, "tool": "tickets.read"})
            assert status == 503 and "--store redis://" in out["error"], out
            assert server.request("GET", "/v1/jwks")[0] == 503
            status, _, out = server.post("/access/v1/evaluation", evaluation(subject=A, rid="tickets.read"))
            assert (status, out["decision"]) == (200, True), out
            status, _, out = server.post("/v1/decide", {"principal": A, "tool": "tickets.read"})
            assert (status, out["effect"]) == (200, "allow"), out
    finally:
        err = server.stop()
    assert server.proc.returncode == 0 and "Traceback" not in err, err


def test_a_redis_that_stops_mid_task_fails_closed_without_a_traceback(tmp_path, policy_file):
    redis = RedisServer(tmp_path)
    server = Server([policy_file], "--workers", "2", "--store", redis.url, "--watch", "0")
    try:
        status, _, out = server.post("/v1/tasks", {"agent": A, "intent": "support"})
        assert status == 201, out
        task_id = out["task"]
        for _ in range(4):
            status, _, out = server.post(f"/v1/tasks/{task_id}/steps", {"agent": A, "tool": "vault.read"})
            assert status == 200 and out["effect"] == "allow", out
        redis.stop()
        for _ in range(8):
            status, _, out = server.post(f"/v1/tasks/{task_id}/steps", {"agent": A, "tool": "tickets.read"})
            if status == 200:  # a worker that holds the task: the step is denied
                assert out["effect"] == "deny" and out["credential"] is None and "failing closed" in out["reasons"][0], out
            else:  # a worker that must read the task first: nothing was done
                assert status == 503 and "store" in out["error"], out
            status, _, out = server.post(f"/v1/tasks/{task_id}/outputs", {"tool": "vault.read", "output": "x"})
            assert status == 503 and "store" in out["error"], out
        status, _, out = server.post("/v1/tasks", {"agent": A, "intent": "support"})
        assert status == 503 and "store" in out["error"], out
    finally:
        err = server.stop()
        redis.stop()
    assert "Traceback" not in err, err


def test_a_step_waiting_for_its_tasks_lock_does_not_hold_up_other_requests(policy_file, redis_server):  # noqa: F811
    import redis as redis_client

    server = Server([policy_file], "--store", redis_server.url, "--watch", "0")  # one worker: one event loop
    store = redis_client.Redis.from_url(redis_server.url)
    try:
        task_id = server.post("/v1/tasks", {"agent": A, "intent": "support"})[2]["task"]
        lock = f"nhipl:session:{{{task_id}}}:lock"
        store.set(lock, "another process", px=60_000)
        answers: dict = {}
        waiting = threading.Thread(target=lambda: answers.update(step=server.post(f"/v1/tasks/{task_id}/steps", {"agent": A, "tool": "tickets.read"})))
        waiting.start()
        waiting.join(timeout=0.5)  # the step is now waiting for the lock
        status, _, out = server.post("/access/v1/evaluation", evaluation(subject=A, rid="tickets.read"))
        assert (status, out["decision"]) == (200, True)
        assert "step" not in answers, "the evaluation was answered while the step waited"
        store.delete(lock)  # the other process is done: the step goes ahead
        waiting.join(timeout=60)
        status, _, out = answers["step"]
        assert status == 200 and out["effect"] == "allow", out
    finally:
        store.close()
        err = server.stop()
    assert "Traceback" not in err, err
