"""Several `nhipl serve` replicas on one real Redis: a credential issued through one verifies
at the other, revoked through one it is refused by the other within a second, and a replica
killed with SIGKILL under load loses no decision it answered. (Replicas continuing each
other's tasks: tests/test_serve_shared_sessions.py.)"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time

import pytest

from .redis_server import redis_server  # noqa: F401 - a fixture
from .test_serve_process import Server

pytest.importorskip("redis", reason="the `redis` client is not installed")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")

AGENT = "spiffe://acme.org/agents/support"
POLICY = f"""
agent "{AGENT}" {{ groups: ["support"] }}
@id("tickets") permit agent in "support" to call "tickets.*" grant ttl 5m;
"""


def key_file(folder):
    """An Ed25519 private key in PEM, as an operator makes one (`openssl genpkey -algorithm ed25519`)."""
    key = ed25519.Ed25519PrivateKey.generate()
    path = folder / "signing.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def replicas(tmp_path, redis, n=2):
    policy = tmp_path / "p.nhipl"
    policy.write_text(POLICY)
    key = key_file(tmp_path)
    return [
        Server([policy], "--store", redis.url, "--key", str(key), "--log", str(tmp_path / f"replica-{i}.jsonl"), "--watch", "0")
        for i in range(n)
    ]


def active(server, token) -> bool:
    status, _, out = server.post("/v1/credentials/introspect", {"token": token})
    assert status == 200, out
    return out["active"]


def test_a_revocation_through_one_replica_is_refused_by_the_other_within_a_second(tmp_path, redis_server):  # noqa: F811
    one, two = replicas(tmp_path, redis_server)
    try:
        status, _, out = one.post("/v1/tasks", {"agent": AGENT, "intent": "triage", "prompt": "look at ticket 42"})
        assert status == 201, out
        task = out["task"]
        status, _, first = one.post(f"/v1/tasks/{task}/steps", {"agent": AGENT, "tool": "tickets.read", "args": {"id": 42}})
        assert status == 200 and first["effect"] == "allow", first
        token = first["credential"]["token"]
        assert active(two, token), "the other replica verifies a credential the first one issued"
        claims = two.post("/v1/credentials/introspect", {"token": token})[2]
        assert claims["jti"] == first["credential"]["id"] and claims["txn"] == task

        status, _, out = one.request("DELETE", f"/v1/tasks/{task}")
        assert status == 200, out
        ended = time.monotonic()
        while active(two, token):
            assert time.monotonic() - ended <= 1.0, "the other replica still accepts a revoked credential after a second"
            time.sleep(0.02)
        assert one.post(f"/v1/tasks/{task}/steps", {"agent": AGENT, "tool": "tickets.read"})[0] == 404
    finally:
        errors = one.stop() + two.stop()
    assert "Traceback" not in errors, errors


def test_a_replica_killed_under_load_loses_no_decision_it_answered(tmp_path, redis_server):  # noqa: F811
    victim, survivor = replicas(tmp_path, redis_server)
    answered: list[tuple[str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    status, _, out = victim.post("/v1/tasks", {"agent": AGENT, "intent": "triage"})
    assert status == 201, out
    task = out["task"]
    status, _, out = victim.post(f"/v1/tasks/{task}/steps", {"agent": AGENT, "tool": "tickets.read"})
    token = out["credential"]["token"]

    def load(worker: int):
        conn = http.client.HTTPConnection("127.0.0.1", victim.port, timeout=10)
        try:
            send_until_gone(conn, worker)
        finally:
            conn.close()

    def send_until_gone(conn, worker: int):
        n = worker * 1_000_000
        while not stop.is_set():
            n += 1
            if n % 2:
                path, kind = f"/v1/tasks/{task}/steps", "step"
                body = {"agent": AGENT, "tool": "tickets.read", "args": {"n": n}}
            else:
                path, kind = "/access/v1/evaluation", "evaluation"
                body = {"subject": {"type": "agent", "id": AGENT}, "action": {"name": "call"}, "resource": {"type": "tool", "id": "tickets.read", "properties": {"args": {"n": n}}}}
            try:
                conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                reply = json.loads(response.read())
            except (OSError, http.client.HTTPException, ValueError):
                return  # the replica is gone
            assert response.status == 200, reply
            with lock:
                answered.append((kind, n))

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    victim.stop()
    assert len(answered) > 20, "too little load reached the replica before it was killed"
    logged = set()
    for line in (tmp_path / "replica-0.jsonl").read_text().splitlines():
        record = json.loads(line)  # no torn line either
        args = record.get("args")
        if isinstance(args, dict) and "n" in args:
            logged.add(args["n"])
    missing = [(kind, n) for kind, n in answered if n not in logged]
    assert not missing, f"{len(missing)} answered decisions are not in the log: {missing[:5]}"
    # The credential the killed replica issued is still checked by the survivor (its key is
    # in the store), and the survivor serves tasks of its own.
    assert active(survivor, token)
    status, _, out = survivor.post("/v1/tasks", {"agent": AGENT, "intent": "triage"})
    assert status == 201
    status, _, out = survivor.post(f"/v1/tasks/{out['task']}/steps", {"agent": AGENT, "tool": "tickets.read"})
    assert status == 200 and out["effect"] == "allow", out
    assert "Traceback" not in survivor.stop()
