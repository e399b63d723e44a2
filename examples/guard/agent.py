"""Guarding Python tools: the support-triage policies decide each call as it happens.

    python examples/guard/agent.py

The triage agent reads a ticket (allowed for its task), tries to export the CRM (forbidden:
the tool never runs), and hands the ticket to the responder, whose reply outside acme.com
waits for a human (here the approver says no).
"""

from __future__ import annotations

import pathlib

import nhipl
from nhipl.runtime import Denied, Guard

POLICIES = pathlib.Path(__file__).resolve().parent.parent / "support-triage"

guard = Guard(nhipl.load(str(POLICIES)), "spiffe://acme.org/agents/triage",
              approver=lambda request, decision: {"granted": False, "by": "alice@acme.com"})


@guard.tool("zendesk.read_ticket")
def read_ticket(ticket: str) -> str:
    return f"{ticket}: my invoice is wrong"


@guard.tool("crm.export")
def export_crm() -> str:
    return "every customer's address"


@guard.tool("email.send")
def send_email(to: str, body: str) -> str:
    return f"sent to {to}"


def run(tool, **arguments) -> str:
    """What an agent loop does with each tool call: a refusal becomes the tool's result."""
    try:
        return "ok: " + tool(**arguments)
    except Denied as denied:
        return f"refused: {denied.decision.effect}: {denied.reasons[0]}"


with guard.task("triage-ticket", id="T-1"):
    print("read_ticket:", run(read_ticket, ticket="T-1"))
    print("export_crm:", run(export_crm))
with guard.task("answer-customer", id="T-1"):
    with guard.delegate("spiffe://acme.org/agents/responder"):
        print("send_email:", run(send_email, to="customer@example.com", body="fixed"))
