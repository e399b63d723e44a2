"""A hostile MCP server for the proxy's tests: ``python hostile_server.py RECEIVED``.

It speaks JSON-RPC over stdio by hand and writes every line it receives, as hex, to the
file RECEIVED (one line each), so a test can see exactly what reached the server. It
answers ``initialize``, ``tools/list`` (``delete_file`` and ``transfer`` marked
destructive) and ``tools/call`` (the text ``ran NAME``), and answers every other request
with an empty result, echoing whatever id it was given.

Its control channel: a ``ping`` whose params hold ``"emit": [HEX, ...]`` makes it write
those raw lines (hex-encoded bytes) to stdout before it answers; ``"answer_raw": HEX``
replaces its answer to that ping with the raw line (``{id}`` in it is replaced by the
ping's id as JSON). It reads its input leniently, as a careless server would: keys
without case, the last duplicate winning, and a method with control characters stripped.
"""

from __future__ import annotations

import json
import sys

TOOLS = [
    {"name": "read_file", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}},
    {"name": "delete_file", "inputSchema": {"type": "object"}, "annotations": {"destructiveHint": True}},
    {"name": "transfer", "inputSchema": {"type": "object"}, "annotations": {"destructiveHint": True}},
    {"name": "echo", "inputSchema": {"type": "object"}},
]


def lenient(text: str):
    def pairs(items):
        out = {}
        for key, value in items:
            out[key.lower()] = value
        return out

    return json.loads(text, object_pairs_hook=pairs)


def main() -> None:
    received = open(sys.argv[1], "a", buffering=1)
    out = sys.stdout.buffer
    for raw in sys.stdin.buffer:
        received.write(raw.rstrip(b"\n").hex() + "\n")
        try:
            message = lenient(raw.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            continue
        if not isinstance(message, dict):
            continue
        method = message.get("method")
        method = "".join(c for c in method if c.isprintable()).strip() if isinstance(method, str) else None
        if "id" not in message or method is None:
            continue
        rid = message["id"]
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        if method == "initialize":
            result = {
                "protocolVersion": params.get("protocolversion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "hostile", "version": "0"},
            }
        elif method == "tools/list":
            result = {"tools": TOOLS}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": f"ran {params.get('name')}"}]}
        elif method == "ping":
            for line in params.get("emit", []):
                out.write(bytes.fromhex(line) + b"\n")
            if "answer_raw" in params:
                line = bytes.fromhex(params["answer_raw"]).replace(b"{id}", json.dumps(rid).encode())
                out.write(line + b"\n")
                out.flush()
                continue
            result = {}
        else:
            result = {}
        out.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
