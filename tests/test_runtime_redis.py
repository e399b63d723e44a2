"""The redis:// store: processes sharing credentials, revocations and keys through a real
redis-server on a loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nhipl
from nhipl.runtime import Invalid, Revoked, Runtime
from nhipl.runtime.store import StoreError

from .redis_server import RedisServer, free_port

A = "spiffe://acme.org/agents/support"
POLICY = """
@id("vault") permit any agent to call "vault.read" grant ttl 5m;
@id("tickets") permit any agent to call "tickets.read" grant ttl 5m;
"""


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))  # skips when redis-server is absent
    yield server.url
    server.stop()


@pytest.fixture
def policies():
    return nhipl.loads(POLICY)


CHILD = textwrap.dedent(
    """
    import json, sys, uuid
    import nhipl
    from nhipl.runtime import Runtime, CredentialError

    url, log, policy = sys.argv[1], sys.argv[2], sys.argv[3]
    rt = Runtime(nhipl.loads(policy), store=url, log=log)
    task = rt.start_task("spiffe://acme.org/agents/support", "support", task_id="child-" + uuid.uuid4().hex)
    kept = task.check("spiffe://acme.org/agents/support", "vault.read").credential
    dropped = task.check("spiffe://acme.org/agents/support", "tickets.read").credential
    rt.revoke(dropped.id, "dropped by the child")
    print(json.dumps({"kept": [kept.id, kept.token], "dropped": [dropped.id, dropped.token]}), flush=True)
    for line in sys.stdin:
        token, tool = line.split()
        try:
            print(json.dumps({"ok": rt.verify(token, tool)["jti"]}), flush=True)
        except CredentialError as err:
            print(json.dumps({"refused": type(err).__name__, "reason": str(err)}), flush=True)
    """
)


def _child(redis_url, tmp_path):
    log = tmp_path / "child.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, redis_url, str(log), POLICY],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    first = json.loads(proc.stdout.readline())
    return proc, log, first


def _stop(proc) -> None:
    proc.kill()
    proc.wait(timeout=10)
    proc.stdin.close()
    proc.stdout.close()


def _ask(proc, token, tool) -> dict:
    proc.stdin.write(f"{token} {tool}\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def test_two_processes_share_keys_credentials_and_revocations(redis_url, policies, tmp_path):
    proc, _, child = _child(redis_url, tmp_path)
    here = Runtime(policies, store=redis_url)  # its own signing key: the child's comes from the store
    try:
        kept_id, kept_token = child["kept"]
        assert here.verify(kept_token, "vault.read")["jti"] == kept_id
        with pytest.raises(Revoked, match="dropped by the child"):
            here.verify(child["dropped"][1], "tickets.read")
        # A credential this process issues, verified by the child, then revoked here: the
        # child's very next verify refuses it (each verify reads the store).
        mine = here.start_task(A, "support").check(A, "vault.read").credential
        assert _ask(proc, mine.token, "vault.read") == {"ok": mine.id}
        assert here.revoke(mine.id, "revoked in the parent")
        answer = _ask(proc, mine.token, "vault.read")
        assert answer["refused"] == "Revoked" and "revoked in the parent" in answer["reason"]
        # And the other way round: revoke the child's credential here, the child refuses it.
        assert here.revoke(kept_id, "revoked across processes")
        assert _ask(proc, kept_token, "vault.read")["refused"] == "Revoked"
        assert _ask(proc, kept_token, "email.send")["refused"] == "Invalid"
    finally:
        _stop(proc)
        here.close()


def test_a_process_killed_mid_session_loses_no_logged_issue_or_revoke(redis_url, policies, tmp_path):
    proc, log, child = _child(redis_url, tmp_path)
    proc.send_signal(signal.SIGKILL)  # mid-session: its task never ends
    _stop(proc)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    issued = {e["credential"] for e in events if e["kind"] == "credential_issue"}
    revoked = {e["credential"]: e["reason"] for e in events if e["kind"] == "credential_revoke"}
    assert issued == {child["kept"][0], child["dropped"][0]}
    assert revoked == {child["dropped"][0]: "dropped by the child"}
    assert "task_end" not in {e["kind"] for e in events}
    # The store outlives the process: the revocation holds, the live credential verifies,
    # and another process can still revoke it.
    here = Runtime(policies, store=redis_url)
    with pytest.raises(Revoked):
        here.verify(child["dropped"][1], "tickets.read")
    assert here.verify(child["kept"][1], "vault.read")["sub"] == A
    assert here.revoke(child["kept"][0], "its process died")
    with pytest.raises(Revoked, match="its process died"):
        here.verify(child["kept"][1], "vault.read")
    here.close()


def test_task_end_and_reload_reach_credentials_of_other_processes(redis_url, policies, tmp_path):
    one = Runtime(policies, store=redis_url)
    two = Runtime(policies, store=redis_url)
    task = one.start_task(A, "support", task_id=f"shared-{os.getpid()}")
    vault = task.check(A, "vault.read").credential
    tickets = task.check(A, "tickets.read").credential
    revoked = two.reload(nhipl.loads('@id("tickets") permit any agent to call "tickets.read" grant ttl 5m;'))
    assert vault.id in revoked and tickets.id not in revoked
    with pytest.raises(Revoked, match="policy context changed"):
        one.verify(vault.token, "vault.read")
    task.end()
    with pytest.raises(Revoked, match="ended"):
        two.verify(tickets.token, "tickets.read")
    one.close()
    two.close()


def test_every_key_expires(redis_url, policies):
    import redis

    rt = Runtime(policies, store=redis_url)
    task = rt.start_task(A, "s")
    rt.revoke(task.check(A, "vault.read").credential.id)
    client = redis.Redis.from_url(redis_url)
    keys = client.keys("nhipl:*")
    assert {k.split(b":")[1] for k in keys} >= {b"cred", b"revoked", b"live", b"task", b"key", b"keys"}
    assert all(client.ttl(k) > 0 for k in keys), {k: client.ttl(k) for k in keys}
    client.close()
    rt.close()


def test_an_unreachable_store_fails_closed(policies):
    rt = Runtime(policies, store=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreError, match="failed"):  # the store keeps the task's session: no store, no task
        rt.start_task(A, "s")
    with pytest.raises(Invalid, match="cannot check"):
        rt.verify("a.b.c", "vault.read")
    rt.close()
