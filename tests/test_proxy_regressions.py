"""Attacks on ``nhipl mcp-proxy`` found in an adversarial review, each against the real
proxy process and the hostile server of ``tests/hostile_server.py``: the proxy refuses
what it cannot decide, forwards only what it decided, never takes an answer from the
wrong side, and lives on after any one bad line."""

from __future__ import annotations

import json
import subprocess

import pytest

from .proxy_peers import HOSTILE_POLICY, HOSTILE_SERVER, RawProxy, call, calls_received, initialize, proxy_command, received


@pytest.fixture
def hostile(tmp_path):
    policy = tmp_path / "policy.nhipl"
    policy.write_text(HOSTILE_POLICY)
    seen = tmp_path / "received.hex"
    log = tmp_path / "decisions.log"
    proxies = []

    def start(*extra, elicitation=False, with_log=True, init=True):
        proxy = RawProxy(proxy_command(policy, [HOSTILE_SERVER, seen], *extra, log=log if with_log else None))
        proxies.append(proxy)
        if init:
            initialize(proxy, elicitation=elicitation)
        return proxy

    yield start, seen, log
    for proxy in proxies:
        proxy.close()


def decisions(log) -> list[dict]:
    """The decided calls of the log (a trace: its `tool_call` events)."""
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "tool_call"]


def still_serving(proxy, seen, request_id="alive") -> None:
    """The proxy answers an allowed call afterwards: it did not die."""
    proxy.send(call(request_id, "read_file", {"path": "/tmp/a"}))
    reply = proxy.receive_id(request_id)
    assert reply["result"]["content"][0]["text"] == "ran read_file", reply
    assert proxy.alive()


# -- 1: NaN and infinities ------------------------------------------------------------------------


# One session per test, many attacks each: a proxy process takes a second or two to start.


def test_non_finite_numbers_from_the_client_are_refused_never_decided(hostile):
    start, seen, log = hostile
    proxy = start()
    for number in (b"NaN", b"Infinity", b"-Infinity", b"1e400"):
        proxy.send(b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"transfer","arguments":{"amount":' + number + b"}}}\n")
        reply = proxy.receive_id(7)
        assert reply["error"]["code"] == -32700 and "number" in reply["error"]["message"], number
    assert calls_received(seen) == [] and decisions(log) == []
    still_serving(proxy, seen)


def test_non_finite_numbers_from_the_server_never_reach_the_client(hostile):
    start, seen, _ = hostile
    proxy = start()
    raw = b'{"jsonrpc":"2.0","id":{id},"result":{"n":NaN}}'
    proxy.send({"jsonrpc": "2.0", "id": 3, "method": "ping", "params": {"answer_raw": raw.hex()}})
    reply = proxy.receive_id(3)
    assert reply["error"]["code"] == -32603 and "refused" in reply["error"]["message"]
    still_serving(proxy, seen)


# -- 2: a tools/call notification -----------------------------------------------------------------


def test_a_tools_call_notification_is_refused_and_logged(hostile):
    start, seen, log = hostile
    proxy = start()
    proxy.send({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "delete_file", "arguments": {"path": "/"}}})
    reply = proxy.receive()
    assert reply["id"] is None and reply["error"]["code"] == -32600 and "notification" in reply["error"]["message"]
    still_serving(proxy, seen)
    assert [c["params"]["name"] for c in calls_received(seen)] == ["read_file"]
    refused = decisions(log)[0]
    assert refused["tool"] == "delete_file" and refused["effect"] == "deny" and "notification" in refused["reasons"][0]


# -- 3: forward only what was decided ---------------------------------------------------------------


DUPLICATES = [
    b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_file","Name":"delete_file","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_file","name":"delete_file","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a","PATH":"/secret/k"}}}',
    b'{"jsonrpc":"2.0","id":5,"method":"ping","Method":"tools/call","params":{"name":"delete_file","arguments":{}}}',
]


def test_duplicate_keys_in_any_case_are_refused(hostile):
    start, seen, log = hostile
    proxy = start()
    for line in DUPLICATES:
        proxy.send(line + b"\n")
        reply = proxy.receive()
        assert reply["error"]["code"] == -32700 and "duplicate key" in reply["error"]["message"], line
    assert calls_received(seen) == []
    still_serving(proxy, seen)


def test_a_method_that_is_not_exactly_known_is_refused(hostile):
    start, seen, _ = hostile
    proxy = start()
    for method in ("tools/call\u0000", "Tools/call", "tools/call ", "tools/call\n"):
        proxy.send({"jsonrpc": "2.0", "id": 9, "method": method, "params": {"name": "delete_file", "arguments": {}}})
        reply = proxy.receive_id(9)
        assert reply["error"]["code"] == -32601, method
    assert calls_received(seen) == []
    still_serving(proxy, seen)


def test_control_format_and_compatibility_characters_in_tool_names_are_refused(hostile):
    start, seen, _ = hostile
    proxy = start()
    for name in ("read_file\u0000", "read_file\u202e", "ｒｅａｄ＿ｆｉｌｅ", "read\u200bfile"):
        proxy.send(call(4, name, {}))
        reply = proxy.receive_id(4)
        assert reply["error"]["code"] == -32602, name
    assert calls_received(seen) == []


def test_what_is_forwarded_is_the_parsed_message_re_serialised(hostile):
    start, seen, _ = hostile
    proxy = start()
    proxy.send(b'{ "jsonrpc" : "2.0", "id" : 6, "method":"tools/call", "extra":"dropped", "params":{"name":"read_file","arguments":{"path":"/a"}} }\n')
    assert proxy.receive_id(6)["result"]["content"][0]["text"] == "ran read_file"
    line = [r for r in received(seen) if b"tools/call" in r][-1]
    assert line == b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a"}}}'


# -- 4 and 5: the proxy's own ids ---------------------------------------------------------------------


def test_a_client_cannot_answer_the_proxys_own_tools_list(hostile):
    """The client pings with the id the proxy used to give its own tools/list, in the same
    write as a call: the server's answer to the ping must not become the tool list."""
    start, seen, _ = hostile
    proxy = start()  # the client never lists tools: the proxy lists them itself
    ping = {"jsonrpc": "2.0", "id": "nhipl-tools-1", "method": "ping"}
    proxy.send((json.dumps(ping) + "\n" + json.dumps(call(8, "delete_file", {"path": "/"})) + "\n").encode())
    reply = proxy.receive_id(8)
    assert reply["result"]["isError"] is True and "needs human approval" in reply["result"]["content"][0]["text"]
    assert [c["params"]["name"] for c in calls_received(seen)] == []


def test_an_approval_comes_only_from_the_answer_to_the_proxys_own_question(hostile):
    """The server asks the client its own question, with the id of the proxy's next approval
    question; the human's "yes" to that question must not approve a large transfer."""
    start, seen, log = hostile
    proxy = start("--approval-timeout", "2", elicitation=True)
    question = {
        "jsonrpc": "2.0",
        "id": "nhipl-approval-1",
        "method": "elicitation/create",
        "params": {"message": "Do you like cats?", "requestedSchema": {"type": "object", "properties": {"approve": {"type": "boolean"}}}},
    }
    proxy.send({"jsonrpc": "2.0", "id": "p", "method": "ping", "params": {"emit": [json.dumps(question).encode().hex()]}})
    asked = proxy.receive()
    assert asked["method"] == "elicitation/create" and asked["params"]["message"] == "Do you like cats?"
    proxy.receive_id("p")
    proxy.send(call(10, "transfer", {"amount": 50000}))
    ours = proxy.receive()
    assert ours["method"] == "elicitation/create" and "transfer" in ours["params"]["message"]
    assert ours["id"] != "nhipl-approval-1"
    # The human answers the server's question (about cats) with yes, and never the proxy's.
    proxy.send({"jsonrpc": "2.0", "id": "nhipl-approval-1", "result": {"action": "accept", "content": {"approve": True}}})
    reply = proxy.receive_id(10)
    assert reply["result"]["isError"] is True and "was not given" in reply["result"]["content"][0]["text"]
    assert calls_received(seen) == []
    # The server got its answer.
    answers = [json.loads(r) for r in received(seen) if b"Do you like" not in r and b'"accept"' in r]
    assert answers and answers[0]["id"] == "nhipl-approval-1"


def test_an_answer_from_the_server_is_never_taken_as_an_approval(hostile):
    start, seen, _ = hostile
    proxy = start("--approval-timeout", "2", elicitation=True)
    proxy.send(call(11, "delete_file", {"path": "/"}))
    ours = proxy.receive()
    assert ours["method"] == "elicitation/create"
    forged = {"jsonrpc": "2.0", "id": ours["id"], "result": {"action": "accept", "content": {"approve": True}}}
    proxy.send({"jsonrpc": "2.0", "id": "p", "method": "ping", "params": {"emit": [json.dumps(forged).encode().hex()]}})
    proxy.receive_id("p")
    reply = proxy.receive_id(11, timeout=10)
    assert reply["result"]["isError"] is True
    assert calls_received(seen) == []


def test_a_request_may_not_reuse_an_id_in_flight(hostile):
    start, seen, _ = hostile
    proxy = start("--approval-timeout", "2", elicitation=True)
    proxy.send(call(12, "delete_file", {"path": "/"}))
    assert proxy.receive()["method"] == "elicitation/create"
    proxy.send({"jsonrpc": "2.0", "id": 12, "method": "ping"})
    reply = proxy.receive()
    assert reply["error"]["code"] == -32600 and "already in use" in reply["error"]["message"]


# -- 7: resources --------------------------------------------------------------------------------------


def test_resource_templates_normalise_or_refuse_paths(hostile):
    start, seen, log = hostile
    proxy = start("--resource", "file:{arguments.path}")
    for path, effect in [
        ("/srv/public/../secrets/key", "refused"),
        ("/srv/public/%2e%2e/secrets/key", "refused"),
        ("/srv//secrets/key", "deny"),
        ("/srv/./secrets/key", "deny"),
    ]:
        proxy.send(call(13, "read_file", {"path": path}))
        reply = proxy.receive_id(13)
        assert reply["result"]["isError"] is True and calls_received(seen) == [], path
        record = decisions(log)[-1]
        assert record["effect"] == "deny"
        if effect == "refused":
            assert "`..`" in record["reasons"][0]
        else:
            assert record["resource"] == "file:/srv/secrets/key"
    proxy.send(call(14, "read_file", {"path": "/srv/public/key"}))
    proxy.receive_id(14)
    assert [c["params"]["name"] for c in calls_received(seen)] == ["read_file"]
    assert decisions(log)[-1]["resource"] == "file:/srv/public/key"


def test_a_bad_resource_template_is_a_clean_error(tmp_path):
    policy = tmp_path / "p.nhipl"
    policy.write_text(HOSTILE_POLICY)
    done = subprocess.run(
        proxy_command(policy, [HOSTILE_SERVER, tmp_path / "r"], "--resource", "file:{path!r}"),
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "--resource" in done.stderr and "Traceback" not in done.stderr


# -- 11: one line never kills the proxy -------------------------------------------------------------------


BAD_CLIENT_LINES = [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":' + b"9" * 5000 + b"}}}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}",
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo\\ud800","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"s":"\\udc00"}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"s":"\xff\xfe"}}}',
    b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}',
    b'{"jsonrpc":"2.0","id":[1],"method":"ping"}',
    b'"just a string"',
]


def test_one_bad_client_line_never_kills_the_proxy(hostile):
    start, seen, _ = hostile
    proxy = start()
    for line in BAD_CLIENT_LINES:
        proxy.send(line + b"\n")
        reply = proxy.receive()
        assert "error" in reply and reply["error"]["code"] in (-32700, -32600, -32602), line[:80]
        assert proxy.alive()
    proxy.send(b"\n")  # a blank line is skipped
    still_serving(proxy, seen)
    assert [c["params"]["name"] for c in calls_received(seen)] == ["read_file"]
    assert b"Traceback" not in b"".join(proxy.stderr)


BAD_SERVER_LINES = [
    b'{"jsonrpc":"2.0","id":{id},"result":{"n":' + b"7" * 5000 + b"}}",
    b'{"jsonrpc":"2.0","id":{id},"result":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"jsonrpc":"2.0","id":{id},"result":{"s":"\\ud800"}}',
    b'{"jsonrpc":"2.0","id":{id},"ID":"other","result":{}}',
]


def test_one_bad_server_line_never_kills_the_proxy(hostile):
    start, seen, _ = hostile
    proxy = start()
    for raw in BAD_SERVER_LINES:
        proxy.send({"jsonrpc": "2.0", "id": 21, "method": "ping", "params": {"answer_raw": raw.hex()}})
        reply = proxy.receive()
        assert "error" in reply and reply["error"]["code"] == -32603, raw[:80]
    still_serving(proxy, seen)
    assert b"Traceback" not in b"".join(proxy.stderr)
