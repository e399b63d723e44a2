"""The simulator in CI: `--requests-out`, `--emit-tests`, `--approvals`, structured `restricted_by`."""

from __future__ import annotations

import json
import pathlib

import nhipl
from nhipl.simulator import simulate

from .cli import run


def _swarm(tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    policy = tmp_path / "policies" / "swarm.nhipl"
    policy.parent.mkdir()
    code, out, err = run("generate", "--agents", "4", "--tasks", "3", "--seed", "2", "--drift", "0.3",
                         "--unapproved", "0.5", "--policy-out", str(policy))
    assert code == 0, err
    trace = tmp_path / "trace.jsonl"
    trace.write_text(out)
    return trace, policy


def test_requests_out_writes_each_step_s_request_for_nhipl_eval(tmp_path):
    trace, policy = _swarm(tmp_path)
    requests = tmp_path / "requests.jsonl"
    code, out, _ = run("simulate", str(trace), "-p", str(policy), "--requests-out", str(requests), "--format", "json")
    assert code == 0
    report = json.loads(out)
    lines = requests.read_text().splitlines()
    assert len(lines) == report["summary"]["steps"]
    code, decided, _ = run("eval", "-p", str(policy), "-r", str(requests), "--format", "json")
    assert code == 0
    effects = [json.loads(line)["effect"] for line in decided.splitlines()]
    assert effects.count("deny") == report["summary"]["subkinds"]["overreach"]["denied"]
    assert effects.count("approval_required") == report["summary"]["subkinds"]["overreach"]["unapproved"]


def test_emit_tests_writes_a_passing_test_per_step_finding(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # imports resolve inside the folder nhipl runs from
    trace, policy = _swarm(tmp_path)
    tests = tmp_path / "tests" / "findings_test.nhipl"
    tests.parent.mkdir()
    code, out, _ = run("simulate", str(trace), "-p", str(policy), "--emit-tests", str(tests), "--format", "json")
    assert code == 0
    step_lines = {f["line"] for f in json.loads(out)["findings"] if f["line"] is not None}
    text = tests.read_text()
    assert 'import "../policies/swarm.nhipl";' in text
    assert text.count("\ntest ") == len(step_lines) > 0
    assert "expect deny" in text and "expect approval_required" in text
    code, result, err = run("test", str(tests), "--no-invariants")
    assert code == 0, result + err
    assert f"{len(step_lines)} passed" in result
    assert run("fmt", "--check", str(tests))[0] == 0  # emitted in canonical form


def test_approvals_option_chooses_what_one_approval_covers(tmp_path):
    policy = tmp_path / "p.nhipl"
    policy.write_text('@id("pay") permit any agent to call "pay" grant ttl 5m;\n'
                      '@id("gate") require approval for any agent to call "pay";\n')
    trace = tmp_path / "t.jsonl"
    events = [
        {"kind": "task_start", "t": 0, "task": "t1", "agent": "a", "intent": "i"},
        {"kind": "approval", "t": 1, "task": "t1", "tool": "pay", "granted": True, "by": "alice"},
        {"kind": "tool_call", "t": 2, "task": "t1", "agent": "a", "tool": "pay"},
        {"kind": "tool_call", "t": 3, "task": "t1", "agent": "a", "tool": "pay"},
        {"kind": "task_end", "t": 4, "task": "t1"},
    ]
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    code, out, _ = run("simulate", str(trace), "-p", str(policy), "--format", "json")
    assert [(f["kind"], f["subkind"], f["line"]) for f in json.loads(out)["findings"]] == [("overreach", "unapproved", 4)]
    code, out, _ = run("simulate", str(trace), "-p", str(policy), "--format", "json", "--approvals", "task")
    assert json.loads(out)["findings"] == []


def test_a_finding_restricted_by_a_delegator_names_it():
    policies = nhipl.loads(
        "attenuate delegation;\n"
        '@id("lead-delegates") permit agent "lead" to delegate "worker";\n'
        '@id("worker-pays") permit agent "worker" to call "pay";\n'
    )
    trace = [
        {"kind": "task_start", "t": 0, "task": "t1", "agent": "lead", "intent": "i"},
        {"kind": "delegate", "t": 1, "task": "t1", "agent": "lead", "to": "worker"},
        {"kind": "tool_call", "t": 2, "task": "t1", "agent": "worker", "tool": "pay"},
    ]
    (finding,) = [f for f in simulate(trace, policies).findings if f.kind == "overreach"]
    assert finding.restricted_by == "lead"
    assert finding.to_dict()["restricted_by"] == "lead"
