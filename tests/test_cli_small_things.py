"""Small things a new policy author tripped over: plurals, a replay without policies, an empty
blast radius."""

from __future__ import annotations

import json
import pathlib

from .cli import run, write_policy

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def test_lint_summary_counts_in_the_singular_and_the_plural(tmp_path):
    policy = write_policy(tmp_path, '@id("r") permit any agent to call "x";\n')
    code, out, _ = run("lint", str(policy))
    assert code == 1
    assert out.rstrip().endswith("1 finding: 0 errors, 1 warning, 0 notes")


def _trace(tmp_path) -> pathlib.Path:
    code, out, _ = run("generate", "--agents", "3", "--tasks", "2", "--seed", "1", "--sharing", "0.5")
    assert code == 0
    path = tmp_path / "trace.jsonl"
    path.write_text(out)
    return path


def test_simulate_without_policies_replays_undecided(tmp_path):
    trace = _trace(tmp_path)
    code, out, err = run("simulate", str(trace), "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    kinds = {f["kind"] for f in report["findings"]}
    assert "revocation_gap" in kinds
    assert not kinds & {"overreach", "unused_permit"}
    code, text, _ = run("simulate", str(trace))
    assert code == 0
    assert "no policy: steps not decided" in text and "blast radius: not analysed (no policy)" in text


def test_an_empty_blast_radius_says_none(tmp_path):
    trace = _trace(tmp_path)
    code, text, _ = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"))
    assert code == 0
    assert "blast radius: none (no identity can reach a sensitive tool)" in text


def test_lint_fails_on_warnings_by_default_not_on_notes(tmp_path):
    policy = write_policy(tmp_path, '@id("y") permit any agent to call "y" grant ttl 5m;\n@id("no-x") forbid any agent to call "x";\n')  # a dead rule: a note
    code, out, _ = run("lint", str(policy))
    assert "note:" in out and "1 note" in out
    assert code == 0
    (tmp_path / "pyproject.toml").write_text('[tool.nhipl.lint]\nfail-on = "note"\n')
    code, _, _ = run("lint", str(policy), "--config", str(tmp_path / "pyproject.toml"))
    assert code == 1


def test_a_test_request_s_bad_field_is_pointed_at(tmp_path):
    (tmp_path / "r_test.nhipl").write_text(
        'permit any agent to call "x" grant ttl 5m;\n'
        'test "t" {\n'
        '    request {\n'
        '        principal: "a",\n'
        '        tol: "x",\n'
        '        task: { intent: 3 }\n'
        '    }\n'
        '    expect allow\n'
        '}\n'
    )
    code, out, err = run("test", str(tmp_path / "r_test.nhipl"))
    assert code == 2
    assert "r_test.nhipl:5:14: test `t`: unknown request field `tol`; did you mean `tool`?" in err
    (tmp_path / "r_test.nhipl").write_text((tmp_path / "r_test.nhipl").read_text().replace("tol:", "tool:"))
    code, out, err = run("check", str(tmp_path / "r_test.nhipl"))
    assert code == 2
    assert "r_test.nhipl:6:25: test `t`: field `task.intent` must be a string" in err


def test_simulate_wide_prints_details_whole(tmp_path):
    trace = _trace(tmp_path)
    code, narrow, _ = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"))
    assert code == 0 and "…" in narrow
    code, wide, _ = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"), "--wide")
    assert code == 0 and "…" not in wide
    code, out, _ = run("simulate", str(trace), "-p", str(EXAMPLES / "support-triage"), "--format", "json")
    details = [f["detail"] for f in json.loads(out)["findings"] if len(f.get("detail", "")) > 70]
    assert details and all(d in wide for d in details)


def test_a_misspelt_trace_field_gets_a_did_you_mean(tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"kind": "tool_call", "t": 1, "agent": "a", "tol": "x"}\n')
    code, _, err = run("simulate", str(trace))
    assert code == 2
    assert "t.jsonl:1: `tool_call` event is missing required field `tool`; did you mean `tool` instead of `tol`?" in err
