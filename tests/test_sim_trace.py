"""The trace reader and the `file:line: message` contract for bad trace lines."""

from __future__ import annotations

import json

import pytest

from nhipl.simulator import TraceError, read_trace, simulate

from .cli import invoke, write_policy

GOOD = [
    {"kind": "task_start", "t": 0, "task": "t1", "agent": "a", "intent": "x"},
    {"kind": "tool_call", "t": 1, "task": "t1", "agent": "a", "tool": "search.web"},
    {"kind": "task_end", "t": 2, "task": "t1"},
]


def lines(events):
    return [json.dumps(e) for e in events]


def test_reads_lines_paths_and_dicts(tmp_path):
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(lines(GOOD)) + "\n")
    from_path = list(read_trace(path))
    from_str_path = list(read_trace(str(path)))
    from_lines = list(read_trace(lines(GOOD)))
    from_dicts = list(read_trace(GOOD))
    assert from_path == from_str_path == from_lines == from_dicts
    assert [n for n, _ in from_path] == [1, 2, 3]


def test_blank_lines_count_for_line_numbers():
    text = ["", json.dumps(GOOD[0]), "   ", json.dumps(GOOD[1])]
    assert [n for n, _ in read_trace(text)] == [2, 4]


def test_bytes_lines():
    assert [n for n, _ in read_trace([json.dumps(GOOD[0]).encode()])] == [1]


BAD = [
    ("{not json", "invalid JSON at column 2"),
    ("[1, 2]", "an event must be a JSON object, not a list"),
    ('{"t": 1}', "missing required field `kind`"),
    ('{"kind": "tool_cal", "t": 1}', "unknown event kind `tool_cal`; did you mean `tool_call`?"),
    ('{"kind": 3, "t": 1}', "unknown event kind `3`"),
    ('{"kind": "tool_call", "t": 1, "agent": "a"}', "`tool_call` event is missing required field `tool`"),
    ('{"kind": "tool_call", "t": "soon", "agent": "a", "tool": "x"}', "field `t` must be a number, not a string"),
    ('{"kind": "tool_call", "t": NaN, "agent": "a", "tool": "x"}', "field `t` must be a number"),
    ('{"kind": "tool_call", "t": 1, "agent": "a", "tool": "x", "args": [1]}', "field `args` must be an object, not a list"),
    ('{"kind": "approval", "t": 1, "task": "t", "tool": "x", "granted": "yes", "by": "h"}', "field `granted` must be a boolean"),
    ('{"kind": "credential_issue", "t": 1, "credential": "c", "agent": "a", "ttl": true}', "field `ttl` must be a number, not a boolean"),
    ('{"kind": "credential_issue", "t": 1, "credential": "c", "agent": "a", "ttl": 5, "scope": [1]}', "field `scope` must be a string or a list of strings"),
    ('{"kind": "task_start", "t": 1, "task": "t", "agent": "a"}', "missing required field `intent`"),
    ('{"kind": "delegate", "t": 1, "agent": "a", "to": null}', "missing required field `to`"),
]


@pytest.mark.parametrize("line,message", BAD)
def test_bad_line_is_reported_with_its_line(line, message):
    with pytest.raises(TraceError) as info:
        list(read_trace([json.dumps(GOOD[0]), line], name="trace.jsonl"))
    err = info.value
    assert err.line == 2 and err.source == "trace.jsonl"
    assert message in err.message
    assert str(err).startswith("trace.jsonl:2: ")


def test_skip_bad_lines_counts_them():
    reader = read_trace([json.dumps(GOOD[0]), "{oops", json.dumps(GOOD[1]), "[]"], skip_bad_lines=True)
    assert [n for n, _ in reader] == [1, 3]
    assert [n for n, _ in reader.bad_lines] == [2, 4]
    report = simulate(read_trace(["{oops"] + lines(GOOD), skip_bad_lines=True), None)
    assert report.summary["bad_lines"] == 1
    assert report.summary["events"] == 3
    assert report.to_dict()["bad_lines"] == [{"line": 1, "message": "invalid JSON at column 2: expecting property name enclosed in double quotes"}]


def test_missing_file():
    with pytest.raises(TraceError) as info:
        list(read_trace("/nonexistent/trace.jsonl"))
    assert str(info.value) == "/nonexistent/trace.jsonl: no such file"


def test_not_utf8(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(json.dumps(GOOD[0]).encode() + b"\n\xff\xfe\n")
    with pytest.raises(TraceError) as info:
        list(read_trace(path))
    assert info.value.line == 2 and "UTF-8" in info.value.message


# ---- the command line ----------------------------------------------------------------------


@pytest.fixture
def policy(tmp_path):
    return str(write_policy(tmp_path, 'permit any agent to call "search.*";\n'))


def test_cli_bad_line_exits_2(tmp_path, policy):
    trace = tmp_path / "trace.jsonl"
    trace.write_text(json.dumps(GOOD[0]) + "\n" + '{"kind": "tool_call", "t": 1}\n')
    result = invoke(["simulate", str(trace), "-p", policy])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{trace}:2: `tool_call` event is missing required field `agent`"
    assert "Traceback" not in result.output


def test_cli_skip_bad_lines(tmp_path, policy):
    trace = tmp_path / "trace.jsonl"
    trace.write_text("garbage\n" + "\n".join(lines(GOOD)) + "\n")
    result = invoke(["simulate", str(trace), "-p", policy, "--skip-bad-lines", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["summary"]["bad_lines"] == 1 and report["bad_lines"][0]["line"] == 1
    text = invoke(["simulate", str(trace), "-p", policy, "--skip-bad-lines"])
    assert f"{trace}:1: invalid JSON" in text.stdout


def test_cli_missing_trace_and_bad_policy(tmp_path, policy):
    result = invoke(["simulate", str(tmp_path / "none.jsonl"), "-p", policy])
    assert result.exit_code == 2 and "none.jsonl: no such file" in result.stderr
    bad = tmp_path / "bad.nhipl"
    bad.write_text("permit any agent to;\n")
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(lines(GOOD)))
    result = invoke(["simulate", str(trace), "-p", str(bad)])
    assert result.exit_code == 2 and "bad.nhipl:1:" in result.stderr


def test_cli_folder_as_trace(tmp_path, policy):
    result = invoke(["simulate", str(tmp_path), "-p", policy])
    assert result.exit_code == 2 and "is a folder" in result.stderr


def test_cli_bad_distribution(tmp_path, policy):
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(lines(GOOD)))
    result = invoke(["simulate", str(trace), "-p", policy, "--approval-wait", "gauss:1"])
    assert result.exit_code == 2
    assert "unknown distribution `gauss`" in result.stderr and "help:" in result.stderr
    result = invoke(["simulate", str(trace), "-p", policy, "--approval-wait", "exp:30"])
    assert result.exit_code == 0


def test_cli_stdin(tmp_path, policy):
    result = invoke(["simulate", "-", "-p", policy, "--format", "json"], input="\n".join(lines(GOOD)) + "\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["events"] == 3
    bad = invoke(["simulate", "-", "-p", policy], input="{\n")
    assert bad.exit_code == 2 and bad.stderr.startswith("<stdin>:1: invalid JSON")
