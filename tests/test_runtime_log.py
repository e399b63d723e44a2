"""Decision logs: concurrent appends from threads and processes stay whole and complete;
planted secrets never reach the file; logs turn into valid trace events."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nhipl
from nhipl.decision import Decision
from nhipl.runtime import DecisionLog, Guard, Redactor
from nhipl.simulator.importers import SourceError, log_to_trace
from nhipl.runtime.redact import REDACTED

AGENT = "spiffe://acme.org/agents/a"


def _record(log: DecisionLog, writer: str, seq: int, size: int) -> None:
    log.record_decision(
        {"principal": AGENT, "tool": "t", "args": {"writer": writer, "seq": seq, "payload": "x" * size}},
        Decision("allow", ("r",)),
    )


WRITER = """
import sys, threading
from nhipl.decision import Decision
from nhipl.runtime import DecisionLog, Redactor
path, name, threads, lines = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = DecisionLog(path, redactor=Redactor(max_string=200_000))
def work(t):
    for i in range(lines):
        size = (i * 7919 + t * 104729) % 20_000
        log.record_decision({"principal": "p", "tool": "t",
                             "args": {"writer": f"{name}/{t}", "seq": i, "payload": "x" * size}},
                            Decision("allow", ("r",)))
ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
"""


def test_many_threads_and_processes_never_interleave_or_lose_lines(tmp_path):
    path = tmp_path / "d.log"
    threads, lines, processes = 4, 150, 3
    children = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"proc{p}", str(threads), str(lines)])
        for p in range(processes)
    ]
    log = DecisionLog(path, redactor=Redactor(max_string=200_000))

    def work(t):
        for i in range(lines):
            _record(log, f"main/{t}", i, (i * 6151 + t * 3571) % 20_000)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for child in children:
        assert child.wait(timeout=120) == 0
    log.close()

    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    seen = set()
    last_t = 0.0
    for line in raw.split(b"\n")[:-1]:
        record = json.loads(line)  # every line whole
        key = (record["args"]["writer"], record["args"]["seq"])
        assert key not in seen
        seen.add(key)
        # Stamped under the lock: file order is time order, across processes too.
        assert record["t"] >= last_t
        last_t = record["t"]
    writers = [f"main/{t}" for t in range(threads)] + [f"proc{p}/{t}" for p in range(processes) for t in range(threads)]
    assert seen == {(w, i) for w in writers for i in range(lines)}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_children_share_a_log_safely(tmp_path):
    path = tmp_path / "d.log"
    log = DecisionLog(path)
    _record(log, "parent", 0, 10)  # opened before the fork
    pids = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        for n in range(3):
            pid = os.fork()
            if pid == 0:  # child
                code = 0
                try:
                    for i in range(200):
                        _record(log, f"child{n}", i, 5000 + i)
                except BaseException:
                    code = 1
                os._exit(code)
            pids.append(pid)
    for i in range(1, 200):
        _record(log, "parent", i, 3000)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    keys = [(r["args"]["writer"], r["args"]["seq"]) for r in map(json.loads, path.read_text().splitlines())]
    assert sorted(keys) == sorted([("parent", i) for i in range(200)] + [(f"child{n}", i) for n in range(3) for i in range(200)])


# -- redaction ------------------------------------------------------------------------------------

rng = random.Random(20261129)


def _rand(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
JWT = ".".join(
    base64.urlsafe_b64encode(part.encode()).decode().rstrip("=")
    for part in ('{"alg":"HS256","typ":"JWT"}', '{"sub":"1234567890","name":"Agent","iat":1516239022}', "signature-bytes-" + _rand(B64, 16))
)
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA" + _rand(B64, 60) + "\n" + _rand(B64, 64) + "\n-----END RSA PRIVATE KEY-----"
SECRETS = {
    "openai": "sk-proj-" + _rand(B64, 40),
    "anthropic": "sk-ant-api03-" + _rand(B64, 40),
    "stripe": "sk_live_" + _rand(B64, 24),
    "bearer": _rand(B64 + "-._", 48),
    "aws_id": "AKIA" + _rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
    "aws_secret": _rand(B64 + "/+", 40),
    "github": "ghp_" + _rand(B64, 36),
    "slack": "xoxb-" + _rand("0123456789", 12) + "-" + _rand(B64, 24),
    "google": "AIza" + _rand(B64 + "_-", 35),
    "password": "correct horse battery staple",
    "url_password": "Pa55w0rd" + _rand("abcdef", 6),
    "db_password": "hunter2",
    "jwt_signature": JWT.split(".")[-1],
    "key_body": PRIVATE_KEY.splitlines()[2],
}


def planted_args() -> dict:
    return {
        "query": "quarterly report",  # ordinary values stay
        "path": "src/components/InvoiceTable2/index.tsx",
        "commit": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "prompt": f"use the key {SECRETS['openai']} and then {SECRETS['anthropic']} please",
        "headers": {"Authorization": f"Bearer {SECRETS['bearer']}", "X-Trace": "abc"},
        "curl": f"curl -H 'Authorization: Bearer {SECRETS['bearer']}' https://api.example.com",
        "env": [f"AWS_ACCESS_KEY_ID={SECRETS['aws_id']}", f"aws says {SECRETS['aws_secret']} ok"],
        "config": {"db": {"password": SECRETS["db_password"], "user": "app"}, "Password": SECRETS["password"]},
        "dsn": f"postgres://admin:{SECRETS['url_password']}@db.internal:5432/app",
        "note": f"token={SECRETS['github']} slack {SECRETS['slack']} google {SECRETS['google']}",
        "stripe": SECRETS["stripe"],
        "session": {"jwt_token": JWT, "raw": f"cookie: id={JWT}"},
        "attachment": PRIVATE_KEY,
        "nested": [[{"deep": {"client_secret": "s3cr3t-value", "api_key": 12345}}]],
    }


def test_planted_secrets_never_reach_the_log(tmp_path):
    path = tmp_path / "d.log"
    policies = nhipl.loads('permit any agent to call "tools.*";')
    guard = Guard(policies, AGENT, decision_log=path, context={"auth_token": SECRETS["github"]})
    guard.wrap(lambda **kw: None, name="tools.run")(**planted_args())
    guard.check({"principal": AGENT, "tool": "tools.run", "args": planted_args(), "resource": f"https://u:{SECRETS['url_password']}@x"})
    text = path.read_text()
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} leaked"
    assert "12345" not in text and "s3cr3t-value" not in text
    record = json.loads(text.splitlines()[0])
    args = record["args"]
    # What is not secret survives, so the log stays useful for attribution and replay.
    assert args["query"] == "quarterly report"
    assert args["path"] == "src/components/InvoiceTable2/index.tsx"
    assert args["commit"] == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    assert args["config"]["db"] == {"password": REDACTED, "user": "app"}
    assert args["headers"]["X-Trace"] == "abc" and args["headers"]["Authorization"] == REDACTED
    assert args["dsn"].startswith("postgres://") and args["dsn"].endswith("@db.internal:5432/app")
    assert record["context"] == {"auth_token": REDACTED}


def test_redaction_is_configurable():
    redactor = Redactor(keys=("ssn_number",), exact_keys=(), extra_patterns=[r"ACME-\d{6}"])
    out = redactor.value({"ssn_number": "123", "max_tokens": 50, "ref": "see ACME-123456 now"})
    assert out == {"ssn_number": REDACTED, "max_tokens": 50, "ref": "see [redacted:custom] now"}
    assert Redactor().value({"max_tokens": 50}) == {"max_tokens": REDACTED}  # the default errs on hiding


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=3), json_values, st.sampled_from(["password", "apiKey", "X-Auth-Token", "client_secret", "PIN"]))
def test_values_under_secret_keys_are_always_replaced_whole(outer, secret, key):
    args = {**outer, "inner": {"list": [{key: secret}]}}
    out = Redactor().value(args)
    assert out["inner"]["list"][0][key] == REDACTED
    json.dumps(out, allow_nan=False)  # always JSON-safe


def test_non_json_values_are_made_safe():
    class Thing:
        def __repr__(self):
            return f"Thing(token={SECRETS['github']})"

    out = Redactor().value({"b": b"\x00\x01", "f": float("nan"), "t": (1, 2), "o": Thing(), 3: "three"})
    assert out == {"b": "[2 bytes]", "f": "nan", "t": [1, 2], "o": "Thing(token=[redacted:env-secret])", "3": "three"}


# -- replay ----------------------------------------------------------------------------------------

REPLAY_POLICY = """
agent "spiffe://acme.org/agents/lead" { groups: ["leads"] }
permit agent in "leads" to delegate "*";
permit any agent to call "search.web";
permit any agent to call "email.send";
require approval for any agent to call "email.send" when not (args.to endswith "@acme.com");
"""


def test_log_to_trace_passes_a_guard_log_through_as_the_trace_it_is(tmp_path):
    # The guard writes its log as a trace (one event per line, of the trace's kinds); the
    # importer passes it through, and every event is one the trace reader accepts.
    path = tmp_path / "d.log"
    lead, helper = "spiffe://acme.org/agents/lead", "spiffe://acme.org/agents/helper"
    guard = Guard(nhipl.loads(REPLAY_POLICY), lead, decision_log=path, approver=lambda r, d: {"granted": True, "by": "alice"})
    search = guard.wrap(lambda query: query, name="search.web")
    send = guard.wrap(lambda to: to, name="email.send")
    with guard.task("research", id="T1"):
        search("a")
        with guard.delegate(helper):
            search("b")
        send("x@partner.example")
    search("no task")
    events = list(log_to_trace(path.read_text().splitlines(), source=str(path)))
    shape = [(e["kind"], e.get("task"), e.get("agent"), e.get("tool") or e.get("to"), e.get("effect"))
             for e in events if e["kind"] != "tool_output"]
    assert shape == [
        ("task_start", "T1", lead, None, None),
        ("tool_call", "T1", lead, "search.web", "allow"),
        ("delegate", "T1", lead, helper, "allow"),
        ("tool_call", "T1", helper, "search.web", "allow"),
        ("approval", "T1", None, "email.send", None),
        ("tool_call", "T1", lead, "email.send", "allow"),
        ("task_end", "T1", None, None, None),
        ("tool_call", None, lead, "search.web", "allow"),
    ]
    assert events[0]["intent"] == "research"
    approval = next(e for e in events if e["kind"] == "approval")
    assert approval["granted"] is True and approval["by"] == "alice" and approval["args"] == {"to": "x@partner.example"}
    assert events[-1]["args"] == {"query": "no task"} and "task" not in events[-1]
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    check_event = pytest.importorskip("nhipl.simulator.trace").check_event
    assert [check_event(e) for e in events] == [None] * len(events)


def test_log_to_trace_synthesises_missing_task_starts_and_skips_unknowns():
    lines = [
        json.dumps({"v": 1, "event": "decision", "t": 2.0, "agent": "a", "action": "call", "tool": "x", "task": {"id": "T", "intent": "i"}}),
        json.dumps({"v": 1, "event": "heartbeat", "t": 2.5}),
        json.dumps({"v": 1, "event": "decision", "t": 3.0, "agent": "a", "action": "issue_credential", "tool": "x"}),
        "",
        json.dumps({"v": 1, "event": "decision", "t": 1.0, "agent": "b", "action": "call", "tool": "y", "task": None}),
    ]
    events = list(log_to_trace(lines))
    assert events == [
        {"kind": "tool_call", "t": 1.0, "agent": "b", "tool": "y"},
        {"kind": "task_start", "t": 2.0, "task": "T", "agent": "a", "intent": "i"},
        {"kind": "tool_call", "t": 2.0, "task": "T", "agent": "a", "tool": "x"},
    ]


def test_log_to_trace_reports_bad_lines_with_their_number():
    good = json.dumps({"v": 1, "event": "task_end", "t": 1.0, "task": {"id": "T"}})
    lines = [good, "{not json", good, json.dumps({"v": 1, "event": "decision", "t": 2.0, "tool": "x"}), json.dumps({"v": 9, "event": "decision"})]
    with pytest.raises(SourceError) as caught:
        list(log_to_trace(lines, source="day.log"))
    assert str(caught.value) == "day.log:2:1: invalid JSON: expecting property name enclosed in double quotes"
    bad: list[SourceError] = []
    events = list(log_to_trace(lines, source="day.log", on_bad_line=bad.append))
    assert len(events) == 2
    assert [(e.location, e.message) for e in bad] == [
        ("day.log:2:1", "invalid JSON: expecting property name enclosed in double quotes"),
        ("day.log:4:1", "`decision` record is missing required field `agent`"),
        ("day.log:5:1", "unsupported decision-log format version `9` (this nhipl reads 1)"),
    ]


def test_a_line_separator_inside_a_logged_string_is_not_a_line_end(tmp_path):
    from nhipl.simulator.importers import import_decisions

    path = tmp_path / "d.log"
    guard = Guard(nhipl.loads('permit any agent to call "search.web";'), "spiffe://a/b", decision_log=path)
    guard.wrap(lambda query: query, name="search.web")("one\u2028two\u0085three")
    (event,) = import_decisions([path])
    assert event["args"] == {"query": "one\u2028two\u0085three"}
