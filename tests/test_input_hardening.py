"""Hostile input through every reader and writer: each case is an attack or a crash found in
an adversarial review, and each must end in a clean `file:line:col: message`, exit 2, or the
fail-closed decision, never a traceback, a lost file or a leaked secret."""

from __future__ import annotations

import json
import os
import sys

import pytest

import nhipl
from nhipl.errors import RequestError
from nhipl.jsontext import JSONTextError, parse_json_documents
from tests.cli import run, write_policy

POLICY = """\
@id("read") permit any agent to call "read_file", "transfer" grant ttl 5m;
@id("big-transfer") require approval for any agent to call "transfer" when args.amount >= 10000;
@id("expired") forbid any agent to call "read_file" when credential has age and credential.age > 60;
@id("no-delete") forbid any agent to call "delete_file";
@id("any") permit any agent to call "*" grant ttl 5m;
"""
AGENT = "spiffe://acme.org/agents/a"
BIG = "9" * 5000


@pytest.fixture
def policy(tmp_path):
    return write_policy(tmp_path, POLICY)


def leftovers(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


# ---- 1: NaN and infinities ----------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_eval_refuses_non_finite_numbers(tmp_path, policy, number):
    request = tmp_path / "r.json"
    request.write_text(f'{{"principal": "{AGENT}", "tool": "transfer", "args": {{"amount": {number}}}}}')
    code, out, err = run("eval", "-p", policy, "-r", request)
    assert code == 2 and out == "" and "numbers must be finite" in err and f"{request}:1:" in err


@pytest.mark.parametrize("field", ["args", "now", "context"])
def test_the_python_api_refuses_nan_anywhere_in_a_request(policy, field):
    policies = nhipl.load(str(policy))
    value = float("nan") if field == "now" else {"amount": float("nan")}
    with pytest.raises(RequestError, match="finite"):
        policies.evaluate({"principal": AGENT, "tool": "transfer", field: value})


def test_a_trace_with_nan_arguments_is_bad_input(tmp_path, policy):
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps({"kind": "tool_call", "t": 1, "agent": AGENT, "tool": "transfer"})[:-1]
                     + ', "args": {"amount": NaN}}\n')
    code, _, err = run("simulate", trace, "-p", policy)
    assert code == 2 and f"{trace}:1:" in err and "finite" in err


def test_a_decision_log_with_nan_is_bad_input(tmp_path):
    log = tmp_path / "d.jsonl"
    log.write_text('{"v": 1, "event": "decision", "t": NaN, "agent": "a", "action": "call", "tool": "x"}\n')
    code, _, err = run("import", "decisions", log)
    assert code == 2 and f"{log}:1:" in err and "finite" in err


# ---- 7: tool names and identities ----------------------------------------------------------


def test_fullwidth_tool_names_are_normalised_before_matching(policy):
    policies = nhipl.load(str(policy))
    decision = policies.evaluate({"principal": AGENT, "tool": "ｄｅｌｅｔｅ_ｆｉｌｅ"})
    assert decision.effect == "deny" and list(decision.rules) == ["no-delete"]


def test_identities_in_the_chain_are_normalised():
    policies = nhipl.loads('@id("x") forbid any agent to call "t" when delegation.chain == ["spiffe://a/b"];\n'
                           '@id("p") permit any agent to call "t" grant ttl 1m;')
    decision = policies.evaluate({"principal": AGENT, "tool": "t", "delegation": {"chain": ["ｓｐｉｆｆｅ://a/b"]}})
    assert decision.effect == "deny"


def test_lint_warns_on_a_forbid_that_differs_only_by_case(tmp_path):
    path = write_policy(tmp_path, '@id("p") permit any agent to call "delete_file" grant ttl 5m;\n'
                                  '@id("f") forbid any agent to call "Delete_File";\n')
    code, out, _ = run("lint", path)
    assert code == 1 and "NHI013" in out and "`delete_file`" in out


# ---- 9: JSON lines split at \n only ---------------------------------------------------------


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x1c"])
def test_json_lines_keep_unicode_line_separators_inside_strings(separator):
    text = json.dumps({"a": f"x{separator}y"}, ensure_ascii=False) + "\n" + json.dumps({"b": 1}) + "\n"
    assert parse_json_documents(text) == [(1, {"a": f"x{separator}y"}), (2, {"b": 1})]


def test_eval_json_lines_with_a_line_separator_in_a_string(tmp_path, policy):
    request = tmp_path / "r.jsonl"
    line = {"principal": AGENT, "tool": "read_file", "args": {"path": "a\u2028b"}}
    request.write_text(json.dumps(line, ensure_ascii=False) + "\n" + json.dumps(line) + "\n", encoding="utf-8")
    code, out, err = run("eval", "-p", policy, "-r", request)
    assert code == 0, err
    assert out.count("allow") == 2


def test_import_decisions_with_a_line_separator_in_a_string(tmp_path):
    log = tmp_path / "d.jsonl"
    record = {"v": 1, "event": "decision", "t": 1.0, "agent": "a\u2028", "action": "call", "tool": "x",
              "task": {"id": "T", "intent": "i"}}
    log.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    code, out, err = run("import", "decisions", log)
    assert code == 0, err
    assert "a\\u2028" in out or "a\u2028" in out


# ---- 10: never overwrite, never follow a symlink out -----------------------------------------


@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"kind": "tool_call", "t": 1, "agent": AGENT, "tool": "read_file"}) + "\n")
    return path


def test_simulate_out_never_overwrites_without_force(tmp_path, policy, trace):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.txt").write_text("mine")
    code, _, err = run("simulate", trace, "-p", policy, "--out", out)
    assert code == 2 and "exists" in err and "--force" in err
    assert (out / "report.txt").read_text() == "mine" and not (out / "graph.dot").exists()
    code, _, err = run("simulate", trace, "-p", policy, "--out", out, "--force")
    assert code == 0, err
    assert (out / "report.txt").read_text() != "mine"


def test_simulate_out_never_writes_through_a_symlink(tmp_path, policy, trace):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / "report.txt").symlink_to(victim)
    code, _, _ = run("simulate", trace, "-p", policy, "--out", out)
    assert code == 2 and victim.read_text() == "precious"
    code, _, err = run("simulate", trace, "-p", policy, "--out", out, "--force")
    assert code == 0, err
    assert victim.read_text() == "precious"  # the link was replaced, its target never written
    assert not (out / "report.txt").is_symlink()


def test_simulate_out_refuses_a_linked_folder_inside_out(tmp_path):
    from nhipl import source as user_files
    from nhipl.errors import LocatedError
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside)
    with pytest.raises(LocatedError, match="outside the folder"):
        user_files.check_inside(str(out), str(out / "sub" / "report.txt"))


@pytest.mark.parametrize("flag", ["--policy-out", "--labels-out"])
def test_generate_never_overwrites_without_force(tmp_path, flag):
    target = tmp_path / "x.out"
    target.write_text("mine")
    code, out, err = run("generate", "--agents", "2", "--tasks", "1", flag, target)
    assert code == 2 and "exists" in err and out == ""
    assert target.read_text() == "mine"
    code, _, err = run("generate", "--agents", "2", "--tasks", "1", flag, target, "--force")
    assert code == 0, err
    assert target.read_text() != "mine"


def test_graph_never_overwrites_without_force(tmp_path, trace):
    target = tmp_path / "g.dot"
    target.write_text("mine")
    code, _, err = run("graph", trace, "-o", target)
    assert code == 2 and "exists" in err and target.read_text() == "mine"
    assert run("graph", trace, "-o", target, "--force")[0] == 0
    assert target.read_text().startswith("digraph")


def test_test_junit_never_overwrites_without_force(tmp_path):
    tests = tmp_path / "x_test.nhipl"
    tests.write_text(POLICY + f'test "t" {{ request {{ principal: "{AGENT}", tool: "read_file" }} expect allow }}\n')
    junit = tmp_path / "junit.xml"
    junit.write_text("mine")
    code, _, err = run("test", tests, "--no-invariants", "--junit-xml", junit)
    assert code == 2 and "exists" in err and junit.read_text() == "mine"
    assert run("test", tests, "--no-invariants", "--junit-xml", junit, "--force")[0] == 0
    assert "<testsuite" in junit.read_text()


# ---- 12: huge integers -------------------------------------------------------------------


def test_eval_with_a_huge_integer(tmp_path, policy):
    request = tmp_path / "r.json"
    request.write_text(f'{{"principal": "{AGENT}", "tool": "transfer", "args": {{"amount": {BIG}}}}}')
    code, _, err = run("eval", "-p", policy, "-r", request)
    assert code == 2 and "too large" in err and f"{request}:1:" in err


def test_a_400_digit_now_with_a_float_issued_at_is_a_request_error(policy):
    policies = nhipl.load(str(policy))
    with pytest.raises(RequestError, match="now"):
        policies.evaluate({"principal": AGENT, "tool": "read_file", "now": 10**400, "credential": {"issued_at": 1.5}})


@pytest.mark.parametrize("command", [["check"], ["lint"], ["fmt", "--check"]])
@pytest.mark.parametrize("literal", [BIG, "9" * 400 + ".5", "9" * 5000 + "s"])
def test_policy_commands_with_a_huge_literal(tmp_path, command, literal):
    path = write_policy(tmp_path, f'permit any agent to call "x" when args.n > {literal} grant ttl 5m;\n')
    code, _, err = run(*command, path)
    assert code == 2 and "too large" in err and f"{path}:1:" in err


def test_test_command_with_a_huge_literal_in_a_request(tmp_path):
    path = tmp_path / "x_test.nhipl"
    path.write_text(POLICY + f'test "t" {{ request {{ principal: "{AGENT}", tool: "x", now: {BIG} }} expect allow }}\n')
    code, _, err = run("test", path, "--no-invariants")
    assert code == 2 and "too large" in err


@pytest.mark.parametrize("fmt, body", [
    ("otel", f'{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{{"startTimeUnixNano": {BIG}}}]}}]}}]}}'),
    ("agentdojo", f'{{"messages": [], "n": {BIG}}}'),
    ("whowhen", f'{{"history": [], "n": {BIG}}}'),
    ("decisions", f'{{"v": 1, "event": "decision", "t": {BIG}}}'),
])
def test_every_import_with_a_huge_integer(tmp_path, fmt, body):
    path = tmp_path / "run.json"
    path.write_text(body)
    code, _, err = run("import", fmt, path)
    assert code == 2 and "too large" in err and f"{path}:" in err


def test_simulate_with_a_huge_time(tmp_path, policy):
    trace = tmp_path / "t.jsonl"
    trace.write_text(f'{{"kind": "tool_call", "t": {BIG}, "agent": "a", "tool": "x"}}\n')
    code, _, err = run("simulate", trace, "-p", policy)
    assert code == 2 and f"{trace}:1:" in err


# ---- 13: lone surrogates -------------------------------------------------------------------


def test_a_lone_surrogate_in_a_decision_log(tmp_path):
    log = tmp_path / "d.jsonl"
    log.write_text('{"v": 1, "event": "decision", "t": 1.0, "agent": "\\ud800", "action": "call", "tool": "x", '
                   '"task": {"id": "T", "intent": "i"}}\n')
    out = tmp_path / "trace.jsonl"
    code, _, err = run("import", "decisions", log, "-o", out)
    assert code == 2 and "lone surrogate" in err and f"{log}:1:" in err
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_lone_surrogate_in_a_test_name(tmp_path):
    path = tmp_path / "x_test.nhipl"
    path.write_text(POLICY + f'test "\\ud800" {{ request {{ principal: "{AGENT}", tool: "x" }} expect allow }}\n')
    junit = tmp_path / "junit.xml"
    code, _, err = run("test", path, "--no-invariants", "--junit-xml", junit)
    assert code == 2 and "lone surrogate" in err and f"{path}:6:" in err
    assert not junit.exists() and leftovers(tmp_path) == []


def test_the_writer_leaves_no_temp_file_when_the_text_cannot_be_written(tmp_path):
    from nhipl import source as user_files
    from nhipl.errors import LocatedError
    target = tmp_path / "out.txt"
    with pytest.raises(LocatedError, match="not valid Unicode"):
        user_files.write_atomically(str(target), "ok \ud800")
    assert not target.exists() and leftovers(tmp_path) == []


def test_the_writer_leaves_no_temp_file_when_writing_fails(tmp_path, monkeypatch):
    from nhipl import source as user_files
    from nhipl.errors import LocatedError
    target = tmp_path / "out.txt"

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(user_files.os, "link", full_disk)
    monkeypatch.setattr(user_files.os, "replace", full_disk)
    with pytest.raises(LocatedError, match="no space left on device"):
        user_files.write_atomically(str(target), "text")
    assert not target.exists() and leftovers(tmp_path) == []


# ---- 14: the delegation chain a request may carry -------------------------------------------


def test_a_chain_longer_than_the_limit_is_a_request_error(policy):
    from nhipl.request import MAX_CHAIN_LENGTH

    policies = nhipl.load(str(policy))
    ok = {"principal": AGENT, "tool": "read_file", "delegation": {"chain": ["spiffe://a/x"] * MAX_CHAIN_LENGTH}}
    assert policies.evaluate(ok).effect == "allow"
    too_long = {**ok, "delegation": {"chain": ["spiffe://a/x"] * (MAX_CHAIN_LENGTH + 1)}}
    with pytest.raises(RequestError, match=f"at most {MAX_CHAIN_LENGTH}"):
        policies.evaluate(too_long)


# ---- 15: every read bounded ------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
@pytest.mark.parametrize("command", [["check"], ["lint"], ["fmt", "--check"], ["eval", "-p", "POLICY", "-r"],
                                     ["simulate", "-p", "POLICY"], ["import", "otel"], ["test", "--no-invariants"]])
def test_devices_are_refused_not_read(policy, command):
    args = [str(policy) if a == "POLICY" else a for a in command]
    code, _, err = run(*args, "/dev/zero")
    assert code == 2 and "/dev/zero: not a regular file" in err


def test_inputs_beyond_the_size_limit_are_refused(tmp_path, monkeypatch):
    from nhipl import source as user_files
    policy = write_policy(tmp_path, 'permit any agent to call "x";\n', "small.nhipl")
    monkeypatch.setattr(user_files, "MAX_INPUT_BYTES", 100)
    path = write_policy(tmp_path, "# " + "x" * 200 + "\n", "big.nhipl")
    code, _, err = run("check", path)
    assert code == 2 and f"{path}: the input is larger than the 100 bytes limit" in err
    request = tmp_path / "r.json"
    request.write_text(json.dumps({"principal": AGENT, "tool": "x", "args": {"pad": "x" * 200}}))
    code, _, err = run("eval", "-p", policy, "-r", request)
    assert code == 2 and "larger than the 100 bytes limit" in err
    code, _, err = run("eval", "-p", policy, "-r", "-", input=request.read_text())
    assert code == 2 and "<stdin>: the input is larger" in err


def test_a_trace_line_beyond_the_line_limit_is_refused(tmp_path, policy, monkeypatch):
    from nhipl import source as user_files
    monkeypatch.setattr(user_files, "MAX_LINE_BYTES", 100)
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps({"kind": "task_end", "t": 1, "task": "x" * 200}) + "\n")
    code, _, err = run("simulate", trace, "-p", policy)
    assert code == 2 and f"{trace}:1: line longer than the 100 byte limit" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_is_read_up_to_the_limit(tmp_path):
    fifo = tmp_path / "p.nhipl"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # the writer: one policy, then end of file
        try:
            with open(fifo, "w") as fh:
                fh.write('permit any agent to call "x" grant ttl 5m;\n')
        finally:
            os._exit(0)
    code, out, err = run("check", fifo)
    os.waitpid(pid, 0)
    assert code == 0 and out.startswith("ok: 1 rule,"), err


def test_lint_is_linear_in_the_operands_of_an_and(tmp_path):
    """A 4,000-operand `and` of distinct attributes: lint's Python calls grow with the
    operands, not with their square (counted, not timed)."""
    from nhipl.lint import lint_paths

    def calls_for(n: int) -> int:
        path = write_policy(tmp_path, 'permit any agent to call "x" when '
                            + " and ".join(f"args.a{i} == {i}" for i in range(n)) + " grant ttl 5m;\n", f"w{n}.nhipl")
        policies = nhipl.load(str(path))  # loading is not what is measured
        assert policies.rules
        count = 0

        def profile(frame, event, arg):
            nonlocal count
            if event == "call" and "/lint/" in frame.f_code.co_filename:
                count += 1

        sys.setprofile(profile)
        try:
            lint_paths([str(path)])
        finally:
            sys.setprofile(None)
        return count

    small, large = calls_for(500), calls_for(4000)
    assert large < 16 * small  # linear growth is about 8x (names grow longer); quadratic would be 64x


# ---- 16: imports stay in their folder and never echo a non-policy file ----------------------


def test_importing_the_environment_prints_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("NHIPL_TEST_SECRET", "hunter2-do-not-print")
    path = write_policy(tmp_path, 'import "/proc/self/environ";\n')
    code, out, err = run("check", path)
    assert code == 2 and "hunter2" not in out + err and "import-refused" in err


def test_importing_a_non_policy_file_prints_none_of_it(tmp_path):
    (tmp_path / "secret.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    path = write_policy(tmp_path, 'import "./secret.txt";\n')
    code, _, err = run("check", path)
    assert code == 2 and "root:x" not in err


def test_imports_outside_the_folder_need_the_flag(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "a" / "project", tmp_path / "b" / "elsewhere"
    project.mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    write_policy(elsewhere, '@id("e") permit any agent to call "x" grant ttl 5m;\n', "common.nhipl")
    path = write_policy(project, 'import "../../b/elsewhere/common.nhipl";\n')
    monkeypatch.chdir(project)
    code, _, err = run("check", path)
    assert code == 2 and "outside the importing file's project" in err and "--allow-import-outside" in err
    code, out, err = run("--allow-import-outside", "check", path)
    assert code == 0 and out.startswith("ok: 1 rule,"), err
    monkeypatch.chdir(tmp_path)  # both files under the current folder: allowed
    assert run("check", path)[0] == 0


def test_tests_import_the_policies_beside_their_folder(tmp_path):
    """The usual layout: `tests/x_test.nhipl` imports `../policies/x.nhipl`, from any folder."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "tests").mkdir()
    write_policy(tmp_path / "policies", '@id("e") permit any agent to call "x" grant ttl 5m;\n', "x.nhipl")
    path = write_policy(tmp_path / "tests", 'import "../policies/x.nhipl";\n', "x_test.nhipl")
    code, out, err = run("check", path)
    assert code == 0 and out.startswith("ok: 1 rule,"), err


def test_a_symlink_cannot_carry_an_import_out_of_the_folder(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "a" / "project", tmp_path / "b" / "elsewhere"
    project.mkdir(parents=True)
    elsewhere.mkdir(parents=True)
    write_policy(elsewhere, '@id("e") permit any agent to call "x" grant ttl 5m;\n', "common.nhipl")
    (project / "link.nhipl").symlink_to(elsewhere / "common.nhipl")
    path = write_policy(project, 'import "./link.nhipl";\n')
    monkeypatch.chdir(project)
    code, _, err = run("check", path)
    assert code == 2 and "outside the importing file's project" in err


# ---- the located-error layer ---------------------------------------------------------------


def test_json_errors_name_line_and_column():
    with pytest.raises(JSONTextError) as info:
        parse_json_documents('{"a": 1}\n{"b": NaN}\n')
    assert (info.value.line, info.value.column) == (2, 1)


def test_toml_locator_finds_inline_table_keys():
    from nhipl.tomltext import TomlLocator

    locator = TomlLocator('[tool.nhipl.lint]\nseverity = { NHI001 = "off" }\n[[plot]]\nx = 1\n[[plot]]\ny = 2\n')
    assert locator.find("tool", "nhipl", "lint", "severity", "NHI001") == (2, 14, 6)
    assert locator.find("plot", 1, "y") == (6, 1, 1)
    assert locator.find("plot", 1, "nope") == (5, 1, 8)  # the nearest written ancestor


def test_the_request_json_schema_agrees_with_the_request_table():
    """The published JSON Schema is data for other tools; the parser's table is the source."""
    from nhipl.request import FIELDS, SCHEMA_BY_NAME
    from nhipl.schemas import schema

    published = schema("request")["properties"]
    assert list(published) == list(FIELDS)
    for name, spec in published.items():
        assert set(spec.get("properties", {})) <= set(SCHEMA_BY_NAME[name].attrs), name
