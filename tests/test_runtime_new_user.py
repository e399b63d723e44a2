"""The new user's scenario, through the guard: a secret read from the vault cannot be mailed
out, while the same mail with a value from the user's instruction goes through. Provenance
comes from the guard's own record of what each tool returned."""

from __future__ import annotations

import json

import pytest

import nhipl
from nhipl.runtime import Denied, Guard, current_decision

AGENT = "spiffe://acme.org/agents/assistant"

POLICY = """
tool "email.send" { tags: ["external-transfer"] }

@id("vault") permit any agent to call "vault.read" grant ttl 1m;
@id("mail") permit any agent to call "email.send" grant ttl 2m;
@id("crm") permit any agent to call "crm.lookup";

@id("no-secrets-in-mail")
forbid any agent to call "email.send"
    when provenance has body and provenance.body startswith "tool:vault."
    because "a value read from the vault may not be mailed out";
"""


@pytest.fixture
def guard(tmp_path):
    policies = nhipl.loads(POLICY)
    guard = Guard(policies, AGENT, decision_log=tmp_path / "decisions.jsonl")

    @guard.tool("vault.read")
    def read_secret(name: str) -> str:
        return "pg-password-7f3a9c" if name == "db" else ""

    @guard.tool("email.send")
    def send_mail(to: str, body: str) -> str:
        credential = current_decision().credential  # issued in a task; outside one there is none
        return f"sent to {to}" + (f" ({credential.id})" if credential is not None else "")

    @guard.tool("crm.lookup")
    def lookup(customer: str) -> dict:
        return {"customer": customer, "email": "mallory@evil.example"}

    guard.fns = (read_secret, send_mail, lookup)  # type: ignore[attr-defined]
    return guard


def test_a_secret_from_the_vault_cannot_be_mailed_out(guard, tmp_path):
    read_secret, send_mail, _ = guard.fns
    prompt = "check the db password, then mail bob@example.com the words all good"
    with guard.task("ops", prompt=prompt):
        secret = read_secret("db")
        with pytest.raises(Denied) as caught:
            send_mail("bob@example.com", secret)
        assert caught.value.decision.rules == ("no-secrets-in-mail",)
        assert caught.value.request["provenance"] == {"to": "user", "body": "tool:vault.read"}
        assert [h["tool"] for h in json.loads(json.dumps(caught.value.request))["history"]] == ["vault.read"]
        # The same mail with a value from the user's instruction is allowed.
        assert send_mail("bob@example.com", "all good").startswith("sent to bob@example.com")
    records = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    mails = [r for r in records if r["kind"] == "tool_call" and r["tool"] == "email.send"]
    assert [(m["effect"], m["provenance"]["body"]) for m in mails] == [("deny", "tool:vault.read"), ("allow", "user")]


def test_a_value_that_only_a_tool_returned_is_not_from_the_user(guard):
    read_secret, send_mail, _ = guard.fns
    with guard.task("ops", prompt="mail bob@example.com a greeting"):
        read_secret("db")
        # A substring of the secret is still the vault's (it first appeared in its output).
        with pytest.raises(Denied):
            send_mail("bob@example.com", "7f3a9c")
    # Outside a task nothing was recorded: provenance is unknown, the rule does not apply.
    assert send_mail("bob@example.com", "7f3a9c").startswith("sent")


def test_the_standard_library_stops_a_destination_chosen_by_tool_output(tmp_path):
    policies = nhipl.loads(
        'import "owasp-agentic";\n'
        'tool "email.send" { tags: ["external-transfer"] }\n'
        '@id("mail") permit any agent to call "email.send" grant ttl 2m;\n'
        '@id("crm") permit any agent to call "crm.lookup";\n'
    )
    asked = []
    guard = Guard(policies, AGENT, approver=lambda request, decision: asked.append(request["args"]) or
                  {"granted": True, "by": "dana@acme.com"})
    send_mail = guard.wrap(lambda to, body: to, name="email.send")
    lookup = guard.wrap(lambda customer: {"email": "mallory@evil.example"}, name="crm.lookup")
    with guard.task("support", prompt="tell customer 7 (carol@example.com) that the refund is done"):
        hijacked = lookup("7")["email"]
        with pytest.raises(Denied) as caught:
            send_mail(hijacked, "the refund is done")
        assert caught.value.decision.rules == ("owasp-agentic/ASI01-tool-output-steers-sensitive-call",)
        # The baseline gates external transfers: the legitimate mail goes through once a
        # person approves; the hijacked one was denied without asking anyone.
        assert send_mail("carol@example.com", "the refund is done") == "carol@example.com"
    assert asked == [{"to": "carol@example.com", "body": "the refund is done"}]
