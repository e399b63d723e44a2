"""`nhipl check` and `nhipl eval`: outputs, exit codes, and bad input of every kind."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from .cli import run, write_policy

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
GOOD = 'agent "spiffe://a/x" { groups: ["g"] }\n@id("p") permit agent in "g" to call "t" grant ttl 1m;\n'


@pytest.fixture
def policy(tmp_path):
    return write_policy(tmp_path, GOOD)


def test_check_ok(policy):
    code, out, _ = run("check", str(policy))
    assert code == 0 and out.startswith("ok: 1 rule, 1 agent, 0 tool declarations in 1 module")


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and list(p.glob("*.nhipl"))))
def test_examples_check(example):
    code, _, err = run("check", str(EXAMPLES / example))
    assert code == 0, err


def test_eval_text_and_json(policy, tmp_path):
    req = tmp_path / "r.json"
    req.write_text(json.dumps({"principal": "spiffe://a/x", "tool": "t"}))
    code, out, _ = run("eval", "-p", str(policy), "-r", str(req))
    assert code == 0 and out.splitlines()[0] == "allow" and "credential_ttl: 60s" in out
    code, out, _ = run("eval", "-p", str(policy), "-r", str(req), "--format", "json")
    decision = json.loads(out)
    assert decision["effect"] == "allow" and decision["rules"] == ["p"] and decision["credential_ttl"] == 60


def test_eval_stdin_and_jsonl(policy):
    lines = "\n".join(
        json.dumps(r)
        for r in [
            {"principal": "spiffe://a/x", "tool": "t"},
            {"principal": "spiffe://a/y", "tool": "t"},
        ]
    )
    code, out, _ = run("eval", "-p", str(policy), "-r", "-", "--format", "json", input=lines + "\n")
    assert code == 0
    assert [json.loads(l)["effect"] for l in out.splitlines()] == ["allow", "deny"]


def test_eval_deny_still_exits_zero(policy):
    code, out, _ = run("eval", "-p", str(policy), "-r", "-", input='{"principal": "spiffe://a/z", "tool": "t"}')
    assert code == 0 and out.startswith("deny")


BAD_POLICIES = {
    "syntax": ("permit any agent to call t;\n", "p.nhipl:1:26: unexpected `t`, expected a string"),
    "missing-semicolon": ('permit any agent to call "t"\n', "p.nhipl:1:29: expected `;`"),
    "duplicate": ('@id("a") permit any agent to call "t";\n@id("a") permit any agent to call "u";\n', "p.nhipl:2:1: duplicate rule id `a`"),
    "unknown-path": ('permit any agent to call "t" when tsak.intent == "x";\n', "p.nhipl:1:35: unknown request path `tsak`"),
}


@pytest.mark.parametrize("kind", sorted(BAD_POLICIES))
def test_check_bad_policy(tmp_path, kind):
    text, expected = BAD_POLICIES[kind]
    path = write_policy(tmp_path, text)
    code, out, err = run("check", str(path))
    assert code == 2
    assert err.startswith(f"{tmp_path}/{expected}") or expected in err, err
    assert "Traceback" not in err and "^" in err


def test_check_missing_file(tmp_path):
    code, _, err = run("check", str(tmp_path / "nope.nhipl"))
    assert code == 2 and err.startswith(f"{tmp_path}/nope.nhipl: no such file")


def test_check_folder_without_policies(tmp_path):
    code, _, err = run("check", str(tmp_path))
    assert code == 2 and "no `*.nhipl` policy files" in err


def test_check_binary_file(tmp_path):
    path = tmp_path / "b.nhipl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    code, _, err = run("check", str(path))
    assert code == 2 and err.startswith(f"{path}:1:1: not a UTF-8 text file")


def test_check_collects_errors_from_every_file(tmp_path):
    (tmp_path / "a.nhipl").write_text('permit any agent to call "t"\n')
    (tmp_path / "b.nhipl").write_text('forbid any agent to call "t" grant ttl 5min;\n')
    code, _, err = run("check", str(tmp_path))
    assert code == 2
    assert "a.nhipl:1:29" in err and "b.nhipl:1:40" in err


BAD_REQUESTS = {
    "bad-json": ('{"principal": "s", "tool": }', "r.json:1:28: invalid JSON"),
    "not-object": ("[1, 2]", "r.json:1:1: a request must be a JSON object, not list"),
    "missing-tool": ('{"principal": "s"}', "r.json:1:1: missing required field `tool`"),
    "wrong-type": ('{"principal": "s", "tool": "t", "args": "x"}', "r.json:1:1: field `args` must be an object, not string"),
    "unknown-field": ('{"principal": "s", "tool": "t", "tsak": {}}', "unknown request field `tsak`; did you mean `task`?"),
    "empty": ("", "r.json: no request"),
    "jsonl-bad-line": ('{"principal": "s", "tool": "t"}\n{"principal": "s", "tool": 5}\n', "r.json:2:1: field `tool` must be a string"),
    "jsonl-bad-json": ('{"principal": "s", "tool": "t"}\n{oops}\n', "r.json:2:2: invalid JSON"),
}


@pytest.mark.parametrize("kind", sorted(BAD_REQUESTS))
def test_eval_bad_request(policy, tmp_path, kind):
    text, expected = BAD_REQUESTS[kind]
    req = tmp_path / "r.json"
    req.write_text(text)
    code, out, err = run("eval", "-p", str(policy), "-r", str(req))
    assert code == 2, (out, err)
    assert expected in err, err
    assert err.startswith(str(req)), err
    assert "Traceback" not in err


def test_eval_missing_request_file(policy, tmp_path):
    code, _, err = run("eval", "-p", str(policy), "-r", str(tmp_path / "none.json"))
    assert code == 2 and err.startswith(f"{tmp_path}/none.json: no such file")


def test_eval_request_is_a_folder(policy, tmp_path):
    code, _, err = run("eval", "-p", str(policy), "-r", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_bad_flags_exit_2(policy):
    code, _, err = run("eval", "-p", str(policy), "-r", "-", "--format", "yaml")
    assert code == 2 and "Invalid value for '--format'" in err
    code, _, _ = run("check")
    assert code == 2


def test_real_entry_point_no_traceback(tmp_path):
    path = write_policy(tmp_path, "permit any agent to call;\n")
    proc = subprocess.run([sys.executable, "-m", "nhipl", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{path}:1:25: unexpected `;`")
    assert "Traceback" not in proc.stderr
