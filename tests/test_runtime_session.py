"""Task sessions: steps decided from the session, credentials issued, reused, verified and
revoked, scoped approvals, reload."""

from __future__ import annotations

import json
import time

import jwt as pyjwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nhipl
from nhipl.runtime import CredentialError, Denied, Expired, Invalid, Revoked, Runtime

A = "spiffe://acme.org/agents/support"
B = "spiffe://acme.org/agents/writer"
C = "spiffe://acme.org/agents/stranger"

POLICY = """
@id("read") permit any agent to call "tickets.read" on "ticket:*" grant ttl 5m;
@id("vault") permit any agent to call "vault.read" grant ttl 1m;
@id("mail") permit any agent to call "email.send" grant ttl 2m;
@id("hand") permit agent "spiffe://acme.org/agents/support" to delegate "spiffe://acme.org/agents/writer";
@id("no-secrets-out") forbid any agent to call "email.send" when provenance.body == "tool:vault.read"
    because "a secret may not leave the task";
@id("refund-gate") require approval for any agent to call "payments.refund";
@id("refund") permit any agent to call "payments.refund";
"""


@pytest.fixture
def policies():
    return nhipl.loads(POLICY)


@pytest.fixture
def rt(policies, tmp_path):
    runtime = Runtime(policies, log=str(tmp_path / "decisions.jsonl"))
    yield runtime
    runtime.close()


def events(rt) -> list[dict]:
    with open(rt.log.path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_an_allowed_step_gets_a_signed_credential_with_the_claims(rt):
    task = rt.start_task(A, "support", prompt="look at ticket 7")
    sub = task.delegate(A, B)
    d = sub.check("tickets.read", {"id": 7}, resource="ticket:7")
    assert d.effect == "allow" and d.credential is not None
    claims = rt.verify(d.credential.token, "tickets.read", "ticket:7")
    assert claims["sub"] == B and claims["aud"] == "tickets.read" and claims["txn"] == task.id
    assert claims["scope"] == "call:tickets.read ticket:7"
    assert claims["act"] == {"sub": A}
    assert claims["exp"] - claims["iat"] == 300 == d.credential.ttl
    assert claims["jti"] == d.credential.id and claims["exp"] == d.credential.expires_at


def test_the_actor_claim_nests_the_chain_immediate_delegator_outermost(tmp_path):
    policies = nhipl.loads('permit any agent to delegate "spiffe://x/*";\npermit any agent to call "t" grant ttl 1m;')
    rt = Runtime(policies)
    task = rt.start_task("spiffe://x/a", "i")
    c = task.delegate("spiffe://x/a", "spiffe://x/b").delegate("spiffe://x/c")
    d = c.check("t")
    claims = rt.verify(d.credential.token, "t")
    assert claims["act"] == {"sub": "spiffe://x/b", "act": {"sub": "spiffe://x/a"}}


def test_a_live_credential_is_reused_never_reminted(rt):
    task = rt.start_task(A, "support")
    first = task.check(A, "tickets.read", resource="ticket:7").credential
    again = task.check(A, "tickets.read", resource="ticket:7").credential
    other = task.check(A, "tickets.read", resource="ticket:8").credential
    assert again is first and other.id != first.id
    issued = [e for e in events(rt) if e["kind"] == "credential_issue"]
    assert [e["credential"] for e in issued] == [first.id, other.id]
    reuse = [e for e in events(rt) if e["kind"] == "tool_call" and e.get("credential") == first.id]
    assert len(reuse) == 1  # the second call used the first call's credential


def test_verify_refuses_another_tool_resource_a_tampered_token_and_garbage(rt):
    task = rt.start_task(A, "support")
    token = task.check(A, "tickets.read", resource="ticket:7").credential.token
    with pytest.raises(Invalid, match="not `email.send`"):
        rt.verify(token, "email.send")
    with pytest.raises(Invalid, match="does not cover"):
        rt.verify(token, "tickets.read", "ticket:8")
    with pytest.raises(Invalid, match="does not cover"):
        rt.verify(token, "tickets.read")
    head, body, sig = token.split(".")
    forged = json.loads(pyjwt.utils.base64url_decode(body))
    forged["aud"] = "email.send"
    forged_body = pyjwt.utils.base64url_encode(json.dumps(forged).encode()).decode()
    with pytest.raises(Invalid):
        rt.verify(f"{head}.{forged_body}.{sig}", "email.send")
    for bad in ("", "x", "a.b.c", None, 7, "e30.e30.", token + "x"):
        with pytest.raises(Invalid):
            rt.verify(bad, "tickets.read", "ticket:7")


def test_a_token_from_another_runtime_is_invalid(policies):
    one, two = Runtime(policies), Runtime(policies)
    token = one.start_task(A, "s").check(A, "vault.read").credential.token
    with pytest.raises(Invalid, match="does not know"):
        two.verify(token, "vault.read")


def test_task_end_revokes_every_credential_and_verify_refuses_them(rt):
    task = rt.start_task(A, "support")
    d = task.check(A, "vault.read")
    assert rt.verify(d.credential.token, "vault.read")["jti"] == d.credential.id
    assert task.end() == [d.credential.id]
    with pytest.raises(Revoked, match="ended"):
        rt.verify(d.credential.token, "vault.read")
    after = task.check(A, "vault.read")
    assert after.effect == "deny" and after.credential is None
    revokes = [e for e in events(rt) if e["kind"] == "credential_revoke"]
    assert revokes == [dict(revokes[0], credential=d.credential.id, reason=f"task `{task.id}` ended")]
    kinds = [e["kind"] for e in events(rt)]
    assert kinds[-3:] == ["credential_revoke", "task_end", "tool_call"]  # the late attempt is logged too


def test_revoke_by_hand(rt):
    task = rt.start_task(A, "support")
    d = task.check(A, "vault.read")
    assert rt.revoke(d.credential.id, "leaked in a screenshot")
    assert not rt.revoke(d.credential.id)
    with pytest.raises(Revoked, match="leaked in a screenshot"):
        rt.verify(d.credential.token, "vault.read")
    fresh = task.check(A, "vault.read").credential
    assert fresh.id != d.credential.id  # a revoked credential is never reused


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_an_expired_credential_is_refused_and_never_reused():
    clock = Clock()
    rt = Runtime(nhipl.loads('permit any agent to call "t" grant ttl 1s;'), clock=clock)
    task = rt.start_task(A, "i")
    d = task.check(A, "t")
    assert rt.verify(d.credential.token, "t")["exp"] == clock.now + 1
    clock.now += 1
    with pytest.raises(Expired):
        rt.verify(d.credential.token, "t")
    step = task.check(A, "t")
    assert "credential" not in step.request  # the expired one is not offered to the step
    fresh = step.credential
    assert fresh.id != d.credential.id and rt.verify(fresh.token, "t")["jti"] == fresh.id
    assert task.check(A, "t").request["credential"]["id"] == fresh.id


def test_delegate_raises_denied_and_the_delegatee_is_not_reached(rt):
    task = rt.start_task(A, "support")
    with pytest.raises(Denied):
        task.delegate(B, C)
    assert task.chain(C) is None
    d = task.check(C, "vault.read")
    assert d.effect == "deny" and "neither started" in d.reasons[0]


def test_provenance_of_arguments_from_the_prompt_and_from_tool_outputs(rt):
    task = rt.start_task(A, "support", prompt="tell bob@example.com that the invoice is fixed")
    assert task.check(A, "vault.read", {"name": "db"}).effect == "allow"
    task.record_output("vault.read", {"password": "hunter2-db"})
    leak = task.check(A, "email.send", {"to": "bob@example.com", "body": "hunter2-db"})
    assert leak.effect == "deny" and leak.rules == ("no-secrets-out",)
    ok = task.check(A, "email.send", {"to": "bob@example.com", "body": "the invoice is fixed"})
    assert ok.effect == "allow"
    calls = [e for e in events(rt) if e["kind"] == "tool_call" and e["tool"] == "email.send"]
    assert calls[0]["provenance"] == {"to": "user", "body": "tool:vault.read"}
    assert calls[1]["provenance"] == {"to": "user", "body": "user"}
    output = next(e for e in events(rt) if e["kind"] == "tool_output")
    assert "hunter2" not in json.dumps(output)  # redacted


def test_an_approval_counts_for_one_call_by_default(rt):
    task = rt.start_task(A, "refunds")
    assert task.check(A, "payments.refund", {"order": 1}).effect == "approval_required"
    task.approve("payments.refund", by="alice@acme.com")
    assert task.check(A, "payments.refund", {"order": 1}).effect == "allow"
    assert task.check(A, "payments.refund", {"order": 1}).effect == "approval_required"


def test_an_approval_scoped_to_arguments_uses_and_ttl(policies):
    clock = Clock()
    rt = Runtime(policies, clock=clock)
    task = rt.start_task(A, "refunds")
    task.approve("payments.refund", by="alice", args={"order": 1}, uses=2)
    assert task.check(A, "payments.refund", {"order": 2}).effect == "approval_required"
    assert task.check(A, "payments.refund", {"order": 1}).effect == "allow"
    assert task.check(A, "payments.refund", {"order": 1, "note": "x"}).effect == "allow"
    assert task.check(A, "payments.refund", {"order": 1}).effect == "approval_required"
    task.approve("payments.refund", by="alice", ttl=60, uses=None)
    assert task.check(A, "payments.refund", {"order": 3}).effect == "allow"
    clock.now += 59.9
    assert task.check(A, "payments.refund", {"order": 4}).effect == "allow"
    clock.now += 0.1
    assert task.check(A, "payments.refund", {"order": 5}).effect == "approval_required"
    for bad in ({"uses": 0}, {"uses": -1}, {"ttl": 0}, {"ttl": float("nan")}):
        with pytest.raises(ValueError):
            task.approve("payments.refund", by="alice", **bad)


def test_reload_revokes_a_live_credential_whose_permit_is_gone(rt):
    task = rt.start_task(A, "support")
    vault = task.check(A, "vault.read").credential
    ticket = task.check(A, "tickets.read", resource="ticket:7").credential
    revoked = rt.reload(nhipl.loads(POLICY.replace('@id("vault") permit any agent to call "vault.read" grant ttl 1m;', "")))
    assert revoked == [vault.id]
    with pytest.raises(Revoked, match="the policy context changed"):
        rt.verify(vault.token, "vault.read")
    assert rt.verify(ticket.token, "tickets.read", "ticket:7")["jti"] == ticket.id
    why = next(e for e in events(rt) if e["kind"] == "credential_revoke")
    assert why["credential"] == vault.id and "policy context changed" in why["reason"] and "deny" in why["reason"]
    assert task.check(A, "vault.read").effect == "deny"


def test_tokens_verify_with_an_independent_library_from_the_jwks_alone(rt):
    d = rt.start_task(A, "support").delegate(A, B).check("email.send", {"to": "x", "body": "y"})
    jwks = json.loads(json.dumps(rt.jwks()))
    header = pyjwt.get_unverified_header(d.credential.token)
    key = pyjwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = pyjwt.decode(d.credential.token, key.key, algorithms=["EdDSA"], audience="email.send", issuer="nhipl")
    assert claims["sub"] == B and claims["act"] == {"sub": A} and claims["scope"] == "call:email.send"


def test_the_key_can_come_from_a_file(tmp_path, policies):
    from joserfc.jwk import OKPKey

    key = OKPKey.generate_key("Ed25519")
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.as_pem(private=True))
    jwk_file = tmp_path / "key.jwk"
    jwk_file.write_text(json.dumps(key.as_dict(private=True)))
    one, two = Runtime(policies, key=str(pem)), Runtime(policies, key=jwk_file)
    assert one.jwks() == two.jwks()
    token = one.start_task(A, "s").check(A, "vault.read").credential.token
    assert two.verify(token, "vault.read")["sub"] == A  # the same key: the other runtime verifies it
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(nhipl.NhiplError, match="bad.pem"):
        Runtime(policies, key=str(bad))
    with pytest.raises(nhipl.NhiplError, match="cannot read"):
        Runtime(policies, key=str(tmp_path / "missing.pem"))


def test_a_failed_log_write_denies_the_step(policies, tmp_path):
    from nhipl.runtime import DecisionLog

    log = DecisionLog("/dev/full")
    rt = Runtime(policies, log=log)
    with pytest.raises(nhipl.NhiplError):
        rt.start_task(A, "s")  # a task may not start unrecorded
    rt.log = None
    task = rt.start_task(A, "s")
    rt.log = log
    d = task.check(A, "vault.read")
    assert d.effect == "deny" and d.credential is None and "failing closed" in d.reasons[0]


def test_each_step_carries_the_task_s_history():
    policies = nhipl.loads(
        '@id("vault") permit any agent to call "vault.read" grant ttl 1m;\n'
        '@id("mail") permit any agent to call "email.send";\n'
        '@id("nothing-leaves-after-secrets") forbid any agent to call "email.send"\n'
        '    when any(h in history where h.tool matches "vault.*" and h.effect == "allow")\n'
        '    because "nothing leaves a task that has read a secret";\n'
    )
    rt = Runtime(policies)
    task = rt.start_task(A, "ops")
    assert task.check(A, "email.send", {"to": "x"}).effect == "allow"
    assert task.check(B, "vault.read").effect == "deny"  # not part of the task: denied, and in the history
    assert task.check(A, "vault.read", {"name": "db"}, resource="db").effect == "allow"
    late = task.check(A, "email.send", {"to": "x"})
    assert late.effect == "deny" and late.rules == ("nothing-leaves-after-secrets",)
    history = list(late.request["history"])
    assert [(h["agent"], h["tool"], h["effect"]) for h in history] == [
        (A, "email.send", "allow"), (B, "vault.read", "deny"), (A, "vault.read", "allow")]
    assert history[2]["resource"] == "db" and history[2]["args"] == {"name": "db"} and history[2]["action"] == "call"
    assert all(h["t"] <= late.request["now"] for h in history)
    other = rt.start_task(A, "ops")  # another task's history is its own
    assert other.check(A, "email.send", {"to": "x"}).effect == "allow"


def test_a_task_id_runs_once_at_a_time(rt):
    task = rt.start_task(A, "s", task_id="T")
    with pytest.raises(ValueError, match="already running"):
        rt.start_task(A, "s", task_id="T")
    task.end()
    rt.start_task(A, "s", task_id="T").end()


def test_the_memory_store_forgets_expired_credentials():
    from nhipl.runtime.store import MemoryStore

    store = MemoryStore()
    for n in range(3000):
        store.add_credential({"jti": f"j{n}", "exp": 1.0, "task": "t"})
    store.revoke("j2999", 1.0, "x")
    assert len(store._credentials) < 1100 and len(store._tasks["t"]) < 1100
    assert store.live_credentials(2.0) == [] and store.revoked("j2999") is None and store.task_credentials("t") == []


_FUZZED = Runtime(nhipl.loads(POLICY))
_tokens = st.one_of(
    st.text(max_size=80),
    st.builds(lambda parts: ".".join(parts), st.lists(st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+/", max_size=40), min_size=1, max_size=4)),
    st.binary(max_size=40),
    st.none(), st.integers(), st.lists(st.integers(), max_size=2),
)


@given(token=_tokens, tool=st.text(max_size=10), resource=st.one_of(st.none(), st.text(max_size=10)))
def test_verify_refuses_anything_but_a_credential_with_its_own_error(token, tool, resource):
    with pytest.raises(CredentialError):
        _FUZZED.verify(token, tool, resource)


def test_a_signed_token_with_edited_parts_is_refused(rt):
    token = rt.start_task(A, "s").check(A, "vault.read").credential.token
    head, body, sig = token.split(".")
    none = pyjwt.utils.base64url_encode(json.dumps({"alg": "none"}).encode()).decode()
    hmac = pyjwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": rt.signer.kid}).encode()).decode()
    for bad in (f"{head}.{body}.", f"{head}..{sig}", f".{body}.{sig}", f"{head}.{body}.{sig[::-1]}",
                f"{none}.{body}.", f"{hmac}.{body}.{sig}"):
        with pytest.raises(Invalid):
            rt.verify(bad, "vault.read")


def test_a_running_task_is_found_by_id_until_it_ends(rt):
    task = rt.start_task(A, "support", task_id="t-lookup")
    assert rt.task("t-lookup") is task and rt.running == 1
    assert rt.task("never-started") is None
    task.end()
    assert rt.task("t-lookup") is None and rt.running == 0


def test_a_decided_steps_history_still_reads_its_steps_after_the_task_cuts_its_history(policies, monkeypatch):
    from nhipl.runtime import session as session_module

    monkeypatch.setattr(session_module, "HISTORY_LIMIT", 4)
    runtime = Runtime(policies)
    task = runtime.start_task("spiffe://acme.org/agents/support", "support")
    for n in range(6):
        task.check("spiffe://acme.org/agents/support", "vault.read", {"n": n})
    kept = task.check("spiffe://acme.org/agents/support", "vault.read", {"n": 6}).request["history"]
    seen = [step["args"]["n"] for step in kept]
    assert seen == [2, 3, 4, 5]
    for n in range(7, 40):  # several cuts of the task's history later
        task.check("spiffe://acme.org/agents/support", "vault.read", {"n": n})
    assert [step["args"]["n"] for step in kept] == seen
    latest = task.request("spiffe://acme.org/agents/support", "vault.read", {"n": 40})["history"]
    assert [step["args"]["n"] for step in latest] == [36, 37, 38, 39]
