"""A standing adversarial suite for ``nhipl mcp-proxy``: a Hypothesis state machine drives
the real proxy process (``nhipl mcp-proxy ... -- python hostile_server.py``) with a
hostile client and, through the server's control channel, a hostile server: duplicate
keys in any case, id collisions with the proxy's own ids, notifications, batches, huge
numbers, deep nesting, invalid UTF-8 and lone surrogates, messages split across writes and
several in one write, forged approvals and forged answers.

The invariants, checked after every step:

- no ``tools/call`` reaches the server unless a decision allowed exactly that call (the
  server reads its input carelessly: keys without case, the last duplicate winning, control
  characters stripped from the method; what it ran must be what the proxy decided);
- the proxy never dies, and at the end still answers an allowed call.
"""

from __future__ import annotations

import collections
import json
import queue

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from nhipl.runtime.jsonrpc import FrameError, parse_line

from .proxy_peers import HOSTILE_POLICY, HOSTILE_SERVER, RawProxy, frame, lenient, proxy_command, received
from .proxy_peers import call as _call
from .proxy_peers import initialize as handshake

TOOLS = ["read_file", "delete_file", "transfer", "echo", "format_disk"]
PATHS = ["/a", "/secret/k", "/srv/public/../secrets/key", "/srv//secrets/key"]
ARGUMENTS = st.fixed_dictionaries(
    {}, optional={"path": st.sampled_from(PATHS), "amount": st.sampled_from([1, 9999, 10000, 50000]), "mode": st.sampled_from(["r", "w"])}
)
# Ids a hostile peer may pick: plain ones, and the ones the proxy used to use for itself.
IDS = st.one_of(st.integers(0, 5), st.sampled_from(["a", "nhipl-tools-1", "nhipl-approval-1", "nhipl-tools-2"]))

# Lines that were once enough to kill the proxy, or to smuggle a call past it.
NASTY_CLIENT_LINES = [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":' + b"9" * 5000 + b"}}}",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo\\ud800","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"s":"\\udfff"}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"s":"\xc3\x28"}}}',
    b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"transfer","arguments":{"amount":NaN}}}',
    b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"transfer","arguments":{"amount":1e999}}}',
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","Name":"delete_file","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/a","Path":"/secret/k"}}}',
    b'{"jsonrpc":"2.0","id":3,"method":"ping","Method":"tools/call","params":{"name":"delete_file","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":4,"method":"tools/call\\u0000","params":{"name":"delete_file","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":4,"method":"TOOLS/CALL","params":{"name":"delete_file","arguments":{}}}',
    b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_file","arguments":{}}}',
    b'[{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_file","arguments":{}}}]',
    b'{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"delete_file","arguments":{}}}',
    b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"delete_file","arguments":{}},"result":{}}',
    b"\xff\xfe\xfd",
    b"not json at all",
]

NASTY_SERVER_LINES = [
    b'{"jsonrpc":"2.0","id":1,"result":{"n":' + b"7" * 5000 + b"}}",
    b'{"jsonrpc":"2.0","id":"a","result":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"jsonrpc":"2.0","id":2,"result":{"s":"\\ud800"}}',
    b'{"jsonrpc":"2.0","id":2,"ID":3,"result":{}}',
    b'{"jsonrpc":"2.0","id":"nhipl-approval-1","method":"elicitation/create","params":{"message":"cats?"}}',
    b'{"jsonrpc":"2.0","id":"nhipl-tools-1","result":{"tools":[]}}',
    b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}',
    b'{"jsonrpc":"2.0","id":9,"method":"sampling/createMessage\\u0000","params":{}}',
    b'{"jsonrpc":"2.0","id":1,"result":{"x":NaN}}',
    b"\xff garbage",
]


class HostileSession(RuleBasedStateMachine):
    """One proxy session per example; the rules are the hostile peers' moves."""

    workdir = None  # set by the test

    @initialize(elicitation=st.booleans(), with_resource=st.booleans())
    def start(self, elicitation, with_resource):
        self.n = getattr(HostileSession, "_count", 0) + 1
        HostileSession._count = self.n
        folder = self.workdir / f"s{self.n}"
        folder.mkdir()
        policy = folder / "policy.nhipl"
        policy.write_text(HOSTILE_POLICY)
        self.seen = folder / "received.hex"
        self.log = folder / "decisions.log"
        extra = ["--approval-timeout", "1"] + (["--resource", "file:{arguments.path}"] if with_resource else [])
        self.proxy = RawProxy(proxy_command(policy, [HOSTILE_SERVER, self.seen], *extra, log=self.log))
        handshake(self.proxy, elicitation=elicitation)
        self.questions: list = []  # the elicitation ids the client has seen
        self.next_id = 100

    def teardown(self):
        proxy = getattr(self, "proxy", None)
        if proxy is None:
            return
        try:
            if proxy.alive():
                self.probe()
        finally:
            proxy.close()

    # -- helpers ---------------------------------------------------------------------------
    def fresh_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def drain(self) -> None:
        while True:
            try:
                line = self.proxy.lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                return
            message = json.loads(line)
            if message.get("method") == "elicitation/create":
                self.questions.append(message["id"])

    def probe(self) -> None:
        """The proxy still answers an allowed call. (A garbage line from the server fails
        every request then in flight, so a probe that crossed one is tried again.)"""
        for _ in range(3):
            request_id = self.fresh_id()
            self.proxy.send(_call(request_id, "echo", {"path": "/a"}))
            message = self.proxy.receive_id(request_id)
            if "cannot be answered" not in json.dumps(message):
                break
        assert message.get("result", {}).get("content", [{}])[0].get("text") == "ran echo", message

    # -- the client's moves ------------------------------------------------------------------
    @rule(tool=st.sampled_from(TOOLS), arguments=ARGUMENTS)
    def call(self, tool, arguments):
        self.proxy.send(_call(self.fresh_id(), tool, arguments))

    @rule(request_id=IDS, tool=st.sampled_from(TOOLS), arguments=ARGUMENTS)
    def call_with_a_chosen_id(self, request_id, tool, arguments):
        self.proxy.send(_call(request_id, tool, arguments))

    @rule(which=st.integers(0, len(NASTY_CLIENT_LINES) - 1))
    def nasty_line(self, which):
        self.proxy.send(NASTY_CLIENT_LINES[which] + b"\n")

    @rule(request_id=IDS, tool=st.sampled_from(TOOLS), arguments=ARGUMENTS)
    def ping_with_a_colliding_id_in_the_same_write_as_a_call(self, request_id, tool, arguments):
        ping = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"}).encode()
        self.proxy.send(ping + b"\n" + frame(_call(self.fresh_id(), tool, arguments)))

    @rule(tool=st.sampled_from(TOOLS), arguments=ARGUMENTS, cut=st.integers(1, 60))
    def a_call_split_across_writes(self, tool, arguments, cut):
        data = frame(_call(self.fresh_id(), tool, arguments))
        self.proxy.send(data[:cut])
        self.proxy.send(data[cut:])

    @rule(pick=st.integers(0, 7), approve=st.booleans())
    def answer_a_question(self, pick, approve):
        """The client answers an elicitation (the proxy's, the server's, or a guessed id).
        (Which one is seen depends on timing, so the choice is an index, not a draw.)"""
        self.drain()
        choices = ["nhipl-approval-1", "nhipl-approval-2", 0] + self.questions[-5:]
        question = choices[pick % len(choices)]
        self.proxy.send({"jsonrpc": "2.0", "id": question, "result": {"action": "accept", "content": {"approve": approve}}})

    # -- the server's moves (through its control channel) ---------------------------------------
    @rule(which=st.lists(st.integers(0, len(NASTY_SERVER_LINES) - 1), min_size=1, max_size=3))
    def server_says(self, which):
        lines = [NASTY_SERVER_LINES[i].hex() for i in which]
        self.proxy.send({"jsonrpc": "2.0", "id": self.fresh_id(), "method": "ping", "params": {"emit": lines}})

    @rule()
    def server_forges_answers_to_what_it_was_asked(self):
        """The server answers every id it ever received once more, with an approval-shaped
        result and an empty tool list: answers to nothing must be dropped."""
        forged = []
        for line in received(self.seen)[-5:]:
            message = lenient(line)
            if isinstance(message, dict) and "id" in message:
                forged.append(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"action": "accept", "content": {"approve": True}, "tools": []}}).encode())
        if forged:
            self.proxy.send({"jsonrpc": "2.0", "id": self.fresh_id(), "method": "ping", "params": {"emit": [x.hex() for x in forged]}})

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def alive(self):
        assert self.proxy.alive(), b"".join(self.proxy.stderr).decode(errors="replace")

    @invariant()
    def every_call_the_server_ran_was_allowed_exactly(self):
        # What the server received first, then the log: a decision is logged before its
        # call is sent, so every call already received has its record by now.
        lines = received(self.seen)
        allowed = collections.Counter()
        if self.log.exists():
            for record in map(json.loads, self.log.read_text().splitlines()):
                if record["kind"] == "tool_call" and record["effect"] == "allow":
                    allowed[_key(record["tool"], record["args"])] += 1
        for line in lines:
            careless = lenient(line)
            if not (isinstance(careless, dict) and careless.get("method") == "tools/call"):
                continue
            # What the server read is what the proxy parsed: no second reading exists.
            try:
                strict = parse_line(line)
            except FrameError as err:  # pragma: no cover - the failure being hunted
                pytest.fail(f"the server ran a call the proxy could not have parsed: {err.reason}: {line[:200]!r}")
            assert strict["method"] == "tools/call" and list(strict) == list(careless)
            params = strict["params"]
            key = _key(params["name"], params.get("arguments") or {})
            assert allowed[key] > 0, f"the server ran {params} without an allow decision"
            allowed[key] -= 1


def _key(tool, arguments) -> str:
    return json.dumps([tool, arguments], sort_keys=True)


def test_the_proxy_holds_against_hostile_peers(tmp_path):
    HostileSession.workdir = tmp_path
    run_state_machine_as_test(
        HostileSession,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            # A failure is reported as found: shrinking a process-driving machine takes minutes.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
