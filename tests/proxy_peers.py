"""The MCP proxy as a subprocess for tests: a raw JSON-RPC client (:class:`RawProxy`) and
the hostile server of ``tests/hostile_server.py``, with what it received."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

TIMEOUT = 30
HOSTILE_SERVER = Path(__file__).with_name("hostile_server.py")
IDENTITY = "spiffe://acme.org/agents/filer"

# What the hostile server's tools may do: reads outside /secret, echo, and the two
# destructive tools only with a human's approval (their annotations say destructive).
HOSTILE_POLICY = textwrap.dedent(
    """
    @id("read") permit any agent to call "read_file" unless args has path and args.path startswith "/secret";
    @id("echo") permit any agent to call "echo";
    @id("write") permit any agent to call "delete_file", "transfer";
    @id("destructive") require approval for any agent to call "*"
        when context.tool_annotations has destructiveHint and context.tool_annotations.destructiveHint == true
        because "destructive tool";
    @id("big") require approval for any agent to call "transfer" when args.amount >= 10000 because "a large transfer";
    @id("no-secrets") forbid any agent to call "*" on "file:/srv/secrets/*";
    """
)


def proxy_command(policy, server_args, *extra, log=None):
    command = [sys.executable, "-c", "from nhipl.cli import main; main()", "mcp-proxy", "-p", str(policy), "--identity", IDENTITY]
    if log is not None:
        command += ["--log", str(log)]
    return [*command, *extra, "--", sys.executable, *map(str, server_args)]


class RawProxy:
    """The proxy as a subprocess, spoken to line by line with timeouts."""

    def __init__(self, command):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue = queue.Queue()
        self.stderr: list[bytes] = []
        self._threads = [threading.Thread(target=self._pump, daemon=True), threading.Thread(target=self._pump_err, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _pump(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _pump_err(self):
        for line in self.process.stderr:
            self.stderr.append(line)

    def send(self, data: bytes | dict):
        if isinstance(data, dict):
            data = frame(data)
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def receive(self, timeout: float = TIMEOUT) -> dict:
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the proxy closed its output: " + b"".join(self.stderr).decode(errors="replace")
        return json.loads(line)

    def receive_id(self, request_id, timeout: float = TIMEOUT) -> dict:
        """The next message with ``request_id``, skipping others."""
        while True:
            message = self.receive(timeout)
            if message.get("id") == request_id and "method" not in message:
                return message

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> int:
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.process.wait(timeout=TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for thread in self._threads:
                thread.join(timeout=TIMEOUT)
            self.process.stdout.close()
            self.process.stderr.close()


def initialize(proxy: RawProxy, *, elicitation: bool = False) -> None:
    capabilities = {"elicitation": {}} if elicitation else {}
    proxy.send(
        {
            "jsonrpc": "2.0",
            "id": "init",
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": capabilities, "clientInfo": {"name": "raw", "version": "0"}},
        }
    )
    assert proxy.receive_id("init")["result"]["serverInfo"]["name"] == "hostile"
    proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


def frame(message) -> bytes:
    """``message`` as one line of the stdio transport."""
    return json.dumps(message).encode() + b"\n"


def call(request_id, name, arguments=None) -> dict:
    """A ``tools/call`` request (without ``arguments`` when they are None)."""
    params: dict = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def received(path) -> list[bytes]:
    """Every line the hostile server received, as bytes."""
    if not os.path.exists(path):
        return []
    # Only whole lines: the server may be writing the last one right now.
    return [bytes.fromhex(line) for line in Path(path).read_text().split("\n")[:-1] if line]


def lenient(line: bytes):
    """A line read as a careless server reads it: keys without case, the last duplicate
    winning, control characters stripped from the method."""
    def pairs(items):
        return {key.lower(): value for key, value in items}

    try:
        message = json.loads(line.decode("utf-8", "replace"), object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    if isinstance(message, dict) and isinstance(message.get("method"), str):
        message["method"] = "".join(c for c in message["method"] if c.isprintable()).strip()
    return message


def calls_received(path) -> list[dict]:
    """The tools/call messages the server received, as it read them."""
    out = []
    for line in received(path):
        message = lenient(line)
        if isinstance(message, dict) and message.get("method") == "tools/call":
            out.append(message)
    return out
