"""The MCP proxy's gate without a process: lines in, actions out."""

from __future__ import annotations

import json

import pytest

import nhipl
from nhipl.runtime import DecisionLog
from nhipl.runtime.gate import CLIENT, SERVER, Gate, Note, Send, Timer, name_problem
from nhipl.runtime.jsonrpc import DEPTH_LIMIT, FrameError, encode, parse_line

from .proxy_peers import HOSTILE_POLICY, IDENTITY, call
from .proxy_peers import frame as line

TOOLS = {
    "tools": [
        {"name": "read_file", "annotations": {"readOnlyHint": True}},
        {"name": "delete_file", "annotations": {"destructiveHint": True}},
        {"name": "transfer", "annotations": {"destructiveHint": True}},
        {"name": "echo"},
    ]
}


def sends(actions, to=None) -> list[dict]:
    return [a.message for a in actions if isinstance(a, Send) and (to is None or a.to == to)]


@pytest.fixture
def gate():
    return Gate(nhipl.loads(HOSTILE_POLICY), IDENTITY, approval_timeout=5)


def listed(gate: Gate, *, elicitation: bool = False) -> Gate:
    """The gate after the client initialised and listed the tools."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"capabilities": {"elicitation": {}} if elicitation else {}}}
    assert sends(gate.from_client(line(init)), SERVER) == [init]
    gate.from_server(line({"jsonrpc": "2.0", "id": 0, "result": {}}))
    gate.from_client(line({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
    gate.from_server(line({"jsonrpc": "2.0", "id": 1, "result": TOOLS}))
    assert gate.tools_known
    return gate


def test_an_allowed_call_is_sent_as_parsed(gate):
    listed(gate)
    raw = b'{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "junk": 1, "params": {"name": "read_file", "arguments": {"path": "/a"}}}\n'
    actions = gate.from_client(raw)
    assert actions == [Send(SERVER, call(2, "read_file", {"path": "/a"}))]
    assert gate.decisions[-1][1].effect == "allow"


def test_a_denied_call_is_answered_and_never_sent(gate):
    listed(gate)
    actions = gate.from_client(line(call(3, "read_file", {"path": "/secret/key"})))
    assert sends(actions, SERVER) == []
    (answer,) = sends(actions, CLIENT)
    assert answer["id"] == 3 and answer["result"]["isError"] is True


def test_before_any_list_the_gate_lists_tools_itself_and_holds_the_call(gate):
    actions = gate.from_client(line(call(4, "delete_file", {"path": "/"})))
    (own,) = sends(actions, SERVER)
    assert own["method"] == "tools/list" and own["id"].startswith("nhipl-tools-") and len(own["id"]) > 40
    assert any(isinstance(a, Timer) for a in actions)
    # Messages meanwhile are held, in order.
    assert gate.from_client(line({"jsonrpc": "2.0", "id": 5, "method": "ping"})) == []
    actions = gate.from_server(line({"jsonrpc": "2.0", "id": own["id"], "result": TOOLS}))
    out = sends(actions)
    assert out[0]["id"] == 4 and out[0]["result"]["isError"] is True  # destructive: approval needed
    assert out[1] == {"jsonrpc": "2.0", "id": 5, "method": "ping"}


def test_a_listing_that_times_out_decides_without_annotations(gate):
    actions = gate.from_client(line(call(4, "echo", {})))
    timer = next(a for a in actions if isinstance(a, Timer))
    out = gate.expire(timer.key)
    assert any(isinstance(a, Note) and "did not list" in a.text for a in out)
    assert sends(out, SERVER) == [call(4, "echo", {})]


def test_own_ids_are_unguessable_and_answers_come_only_from_their_side(gate):
    listed(gate, elicitation=True)
    actions = gate.from_client(line(call(6, "transfer", {"amount": 5})))
    (question,) = sends(actions, CLIENT)
    assert question["method"] == "elicitation/create" and question["id"].startswith("nhipl-approval-")
    yes = {"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": {"approve": True}}}
    # The server cannot answer the proxy's question to the client.
    assert sends(gate.from_server(line(yes))) == []
    # The client can.
    out = gate.from_client(line(yes))
    assert sends(out, SERVER) == [call(6, "transfer", {"amount": 5})]
    request, decision = gate.decisions[-1]
    assert decision.effect == "allow" and request["approval"]["granted"] is True


def test_a_cancelled_call_waiting_for_approval_is_dropped(gate):
    listed(gate, elicitation=True)
    (question,) = sends(gate.from_client(line(call(7, "transfer", {"amount": 5}))), CLIENT)
    assert gate.from_client(line({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}})) == []
    yes = {"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept", "content": {"approve": True}}}
    assert sends(gate.from_client(line(yes)), SERVER) == []


def test_answers_to_nothing_are_dropped(gate):
    listed(gate)
    assert sends(gate.from_server(line({"jsonrpc": "2.0", "id": 99, "result": {}}))) == []
    assert sends(gate.from_client(line({"jsonrpc": "2.0", "id": 99, "result": {}}))) == []


def test_a_server_request_id_is_passed_on_and_only_its_answer_goes_back(gate):
    listed(gate)
    ask = {"jsonrpc": "2.0", "id": "s1", "method": "roots/list"}
    assert sends(gate.from_server(line(ask)), CLIENT) == [ask]
    answer = {"jsonrpc": "2.0", "id": "s1", "result": {"roots": []}}
    assert sends(gate.from_client(line(answer)), SERVER) == [answer]
    assert sends(gate.from_client(line(answer))) == []  # answered once only


def test_an_unknown_server_method_is_refused(gate):
    listed(gate)
    out = gate.from_server(line({"jsonrpc": "2.0", "id": "s2", "method": "elicitation/create\u0000"}))
    assert sends(out, CLIENT) == [] and sends(out, SERVER)[0]["error"]["code"] == -32601


def test_list_changed_makes_the_gate_list_again(gate):
    listed(gate)
    gate.from_server(line({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}))
    assert not gate.tools_known
    (own,) = sends(gate.from_client(line(call(8, "echo", {}))), SERVER)
    assert own["method"] == "tools/list"


def test_a_refused_notification_is_logged(tmp_path):
    log = DecisionLog(tmp_path / "d.log")
    gate = Gate(nhipl.loads(HOSTILE_POLICY), IDENTITY, decision_log=log)
    out = gate.from_client(line({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo"}}))
    assert sends(out, SERVER) == [] and sends(out, CLIENT)[0]["error"]["code"] == -32600
    start, record = map(json.loads, (tmp_path / "d.log").read_text().splitlines())
    assert start["kind"] == "task_start" and record["task"] == start["task"] == gate.task["id"]
    assert (record["kind"], record["tool"], record["effect"]) == ("tool_call", "echo", "deny")


def test_an_evaluation_that_raises_fails_closed(gate):
    listed(gate)

    class Broken:
        def evaluate(self, request):
            raise OverflowError("int too large to convert to float")

    gate.policies = Broken()
    out = gate.from_client(line(call(9, "echo", {})))
    assert sends(out, SERVER) == [] and sends(out, CLIENT)[0]["error"]["code"] == -32603


@pytest.mark.parametrize(
    "text, reason",
    [
        (b'{"a": NaN}', "not a JSON number"),
        (b'{"a": 1e999}', "too large"),
        (b'{"a": 9007199254740992}', "too large"),
        (b'{"a": 1, "A": 2}', "duplicate key"),
        (b'{"a": "\\ud800"}', "surrogate"),
        (b"[" * (DEPTH_LIMIT + 1) + b"]" * (DEPTH_LIMIT + 1), "nested"),
        (b"\xff", "not UTF-8"),
    ],
)
def test_the_framing_refuses_what_peers_could_read_another_way(text, reason):
    with pytest.raises(FrameError) as caught:
        parse_line(text)
    assert reason in caught.value.reason


def test_the_framing_keeps_the_id_of_a_refused_message_when_it_is_plain():
    with pytest.raises(FrameError) as caught:
        parse_line(b'{"jsonrpc":"2.0","id":"x","params":{"n":NaN}}')
    assert caught.value.request_id == "x"
    with pytest.raises(FrameError) as caught:
        parse_line(b'{"jsonrpc":"2.0","id":"x","ID":"y"}')
    assert caught.value.request_id is None
    assert parse_line(encode({"a": [1, 2.5, "é"]})) == {"a": [1, 2.5, "é"]}


@pytest.mark.parametrize("name, ok", [("read_file", True), ("a.b-c", True), ("", False), ("x\u0007", False), ("ﬁle", False)])
def test_tool_names(name, ok):
    assert (name_problem(name) is None) is ok


def test_while_listing_tools_answers_to_the_server_go_on_and_requests_wait(gate):
    ask = {"jsonrpc": "2.0", "id": "s1", "method": "roots/list"}
    gate.from_server(line(ask))
    (own,) = sends(gate.from_client(line(call(4, "echo", {}))), SERVER)
    assert own["method"] == "tools/list"
    answer = {"jsonrpc": "2.0", "id": "s1", "result": {"roots": []}}
    assert sends(gate.from_client(line(answer)), SERVER) == [answer]
    assert gate.from_client(line({"jsonrpc": "2.0", "id": 5, "method": "ping"})) == []



# -- the gate as a runtime task session ---------------------------------------------------------

SESSION_POLICY = """
@id("read") permit any agent to call "read_file" grant ttl 1m;
@id("mail") permit any agent to call "send_mail";
@id("no-leaks") forbid any agent to call "send_mail"
    when provenance has body and provenance.body startswith "tool:" because "tool output stays inside";
"""


def test_an_allowed_call_with_a_ttl_carries_its_credential_to_the_server():
    gate = listed(Gate(nhipl.loads(SESSION_POLICY), IDENTITY, intent="tidy"))
    (sent,) = sends(gate.from_client(line(call(2, "read_file", {"path": "/a"}))), SERVER)
    token = sent["params"]["_meta"]["nhipl/credential"]
    claims = gate.runtime.verify(token, "read_file")
    assert claims["sub"] == IDENTITY and claims["txn"] == gate.task["id"]
    # A client cannot slip a credential of its own to the server.
    forged = call(3, "send_mail", {"to": "a", "body": "hello"})
    forged["params"]["_meta"] = {"nhipl/credential": "forged", "progressToken": 7}
    (sent,) = sends(gate.from_client(line(forged)), SERVER)
    assert sent["params"]["_meta"] == {"progressToken": 7}
    gate.close()
    with pytest.raises(Exception, match="(?i)revoked"):
        gate.runtime.verify(token, "read_file")


def test_what_a_tool_returned_is_the_tasks_output_for_later_calls():
    gate = listed(Gate(nhipl.loads(SESSION_POLICY), IDENTITY, prompt="tell ann the build is green"))
    sends(gate.from_client(line(call(2, "read_file", {"path": "/etc/secret"}))), SERVER)
    gate.from_server(line({"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "hunter2-password"}]}}))
    (refused,) = sends(gate.from_client(line(call(3, "send_mail", {"to": "eve", "body": "hunter2-password"}))), CLIENT)
    assert refused["result"]["isError"] and "tool output stays inside" in refused["result"]["content"][0]["text"]
    request, decision = gate.decisions[-1]
    assert decision.effect == "deny"
    (sent,) = sends(gate.from_client(line(call(4, "send_mail", {"to": "ann", "body": "the build is green"}))), SERVER)
    assert sent["params"]["arguments"]["body"] == "the build is green"
