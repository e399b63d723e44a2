"""``nhipl import``: formats, output file handling, bad input, and the decision-log format."""

from __future__ import annotations

import json
import pathlib

import pytest

import nhipl

from .cli import run
from .realdata import AGENTDOJO_SUBSET as AGENTDOJO

OTEL = pathlib.Path(__file__).parent / "data" / "otel"


def lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_stdout_is_a_trace():
    code, out, err = run("import", "otel", OTEL / "research-delegation.json")
    assert code == 0 and err == ""
    assert [e["kind"] for e in lines(out)][:3] == ["task_start", "tool_call", "delegate"]


def test_output_file_is_never_overwritten_without_force(tmp_path):
    trace = tmp_path / "trace.jsonl"
    code, out, err = run("import", "otel", OTEL, "-o", trace)
    assert code == 0 and out == "" and err == f"wrote 14 events to {trace}\n"
    assert len(lines(trace.read_text())) == 14
    trace.write_text("mine\n")
    code, _, err = run("import", "otel", OTEL, "-o", trace)
    assert code == 2
    assert err == f"{trace}: the output file exists; not overwriting it\n  help: pass `--force` to replace it\n"
    assert trace.read_text() == "mine\n"
    code, _, _ = run("import", "otel", OTEL, "-o", trace, "--force")
    assert code == 0 and len(lines(trace.read_text())) == 14


def test_bad_input_is_file_line_col_and_exit_2(tmp_path):
    bad = tmp_path / "run.json"
    bad.write_text('{"suite_name": "banking",\n "messages": [}')
    code, out, err = run("import", "agentdojo", bad)
    assert (code, out) == (2, "")
    assert err.startswith(f"{bad}:2:15: invalid JSON") and "Traceback" not in err
    code, _, err = run("import", "whowhen", tmp_path / "missing.json")
    assert (code, err) == (2, f"{tmp_path / 'missing.json'}: no such file\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run("import", "otel", empty)
    assert (code, err) == (2, f"{empty}: no `.json`, `.jsonl` files in this folder\n")
    code, _, err = run("import", "csv", bad)
    assert code == 2 and "'csv' is not one of 'agentdojo', 'whowhen', 'otel', 'decisions'" in err


def test_a_failed_import_leaves_no_output_file(tmp_path):
    bad = tmp_path / "spans.json"
    bad.write_text('{"resourceSpans": 3}')
    trace = tmp_path / "trace.jsonl"
    code, _, err = run("import", "otel", bad, "-o", trace)
    assert code == 2 and err == f"{bad}:1:1: `resourceSpans` is not a list\n"
    assert not trace.exists() and list(tmp_path.iterdir()) == [bad]


def test_agentdojo_folder():
    code, out, _ = run("import", "agentdojo", AGENTDOJO / "banking" / "user_task_0")
    events = lines(out)
    assert code == 0 and [e["kind"] for e in events].count("task_start") == 10


def test_decisions_from_a_runtime_log(tmp_path):
    from nhipl.runtime import Denied, Guard

    policies = nhipl.loads('@id("search")\npermit any agent to call "search.*";\n'
                           '@id("hand-off")\npermit any agent to delegate "*";')
    log = tmp_path / "decisions.jsonl"
    guard = Guard(policies, "spiffe://acme.org/agents/planner", decision_log=log)

    @guard.tool("search.web")
    def search(query):
        return query

    with guard.task("research", id="r1"):
        search("nhipl")
        with guard.delegate("spiffe://acme.org/agents/researcher"):
            pass
        with pytest.raises(Denied):
            guard.enforce({"principal": "spiffe://acme.org/agents/planner", "tool": "email.send",
                           "task": {"id": "r1", "intent": "research"}})
    code, out, err = run("import", "decisions", log)
    assert code == 0, err
    events = lines(out)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "task_start" and events[0]["task"] == "r1" and events[0]["intent"] == "research"
    calls = [(e["tool"], e.get("args")) for e in events if e["kind"] == "tool_call"]
    assert calls == [("search.web", {"query": "nhipl"}), ("email.send", None)] or \
        calls == [("search.web", {"query": "nhipl"}), ("email.send", {})]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(log.read_text() + "{oops\n")
    code, _, err = run("import", "decisions", bad)
    n = len(log.read_text().splitlines()) + 1
    assert code == 2 and err.startswith(f"{bad}:{n}:1: ")
