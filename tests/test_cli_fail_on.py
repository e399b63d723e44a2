"""`--fail-on`: exit codes a CI job can gate on (`nhipl eval`, `nhipl simulate`)."""

from __future__ import annotations

import json
import pathlib

import pytest

from .cli import run, write_policy

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
FINANCE = EXAMPLES / "finance-ops"


@pytest.mark.parametrize(
    "request_name, fail_on, code",
    [
        ("small-payment.json", None, 0),
        ("small-payment.json", "deny", 0),
        ("small-payment.json", "approval", 0),
        ("large-payment.json", None, 0),
        ("large-payment.json", "deny", 0),
        ("large-payment.json", "approval", 1),
        ("injected-recipient.json", None, 0),
        ("injected-recipient.json", "deny", 1),
        ("injected-recipient.json", "approval", 1),
    ],
)
def test_eval_fail_on(request_name, fail_on, code):
    args = ["eval", "-p", str(FINANCE), "-r", str(FINANCE / "requests" / request_name)]
    if fail_on:
        args += ["--fail-on", fail_on]
    got, out, err = run(*args)
    assert got == code, err
    assert out.split()[0] in ("allow", "deny", "approval_required")


def test_eval_fail_on_any_line_of_a_batch(tmp_path):
    policy = write_policy(tmp_path, '@id("r") permit any agent to call "ok";\n')
    batch = tmp_path / "batch.jsonl"
    batch.write_text('{"principal": "a", "tool": "ok"}\n{"principal": "a", "tool": "nope"}\n')
    assert run("eval", "-p", str(policy), "-r", str(batch), "--fail-on", "deny")[0] == 1
    batch.write_text('{"principal": "a", "tool": "ok"}\n{"principal": "b", "tool": "ok"}\n')
    assert run("eval", "-p", str(policy), "-r", str(batch), "--fail-on", "deny")[0] == 0


def test_eval_fail_on_refuses_an_unknown_effect():
    code, _, err = run("eval", "-p", str(FINANCE), "-r", str(FINANCE / "requests" / "small-payment.json"), "--fail-on", "denied")
    assert code == 2 and "--fail-on" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> pathlib.Path:
    code, out, _ = run("generate", "--agents", "3", "--tasks", "2", "--seed", "1", "--sharing", "0.5")
    assert code == 0
    path = tmp_path_factory.mktemp("sim") / "trace.jsonl"
    path.write_text(out)
    return path


def _kinds(trace: pathlib.Path) -> set[str]:
    code, out, _ = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"), "--format", "json")
    assert code == 0
    findings = json.loads(out)["findings"]
    return {f["kind"] for f in findings} | {f"{f['kind']}/{f['subkind']}" for f in findings if f["subkind"]}


def test_simulate_fail_on_exits_1_exactly_when_such_findings_exist(trace):
    found = _kinds(trace)
    assert "overreach/denied" in found
    candidates = ["overreach", "overreach/denied", "overreach/unapproved", "revocation_gap", "attribution/no_task",
                  "revocation_gap/foreign_holder", "unused_permit"]
    for wanted in candidates:
        code, _, err = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"), "--fail-on", wanted)
        assert code == (1 if wanted in found else 0), (wanted, err)
    code, _, _ = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"), "--fail-on", "attribution/no_task,overreach")
    assert code == 1


def test_simulate_fail_on_still_writes_the_report(trace, tmp_path):
    out = tmp_path / "out"
    code, _, _ = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"), "--fail-on", "overreach",
                     "--format", "json", "--out", str(out))
    assert code == 1
    assert json.loads((out / "report.json").read_text())["summary"]["overreach"] > 0


def test_simulate_fail_on_refuses_an_unknown_kind_with_a_hint(trace):
    code, _, err = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"), "--fail-on", "overeach")
    assert code == 2
    assert "unknown finding kind `overeach`" in err and "overreach" in err and "Traceback" not in err
