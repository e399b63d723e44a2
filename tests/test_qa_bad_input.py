"""Bad input found in the pre-release QA pass: each case once crashed with a traceback,
accepted a meaningless value, or touched a file the user did not ask to change."""

from __future__ import annotations

import pytest

import nhipl

from .cli import run, write_policy

GOOD = '@id("p") permit any agent to call "t" grant ttl 1m;\n'
DEEP = "[" * 100_000 + "]" * 100_000
REQUEST = '{"principal": "spiffe://a/x", "tool": "t"}'
SWEEP = '[sweep]\nname = "qa"\nstudy = "revocation"\nseeds = {seeds}\n[parameters]\nspeed = [1]\nttl = [15]\nmax_ops = [0]\nagents = 1\n'


@pytest.fixture
def policy(tmp_path):
    return write_policy(tmp_path, GOOD)


@pytest.mark.parametrize("text", [DEEP, REQUEST + "\n" + DEEP, '{"principal": "spiffe://a/x", "tool": "t", "args": {"a": ' + DEEP + "}}"])
def test_eval_deeply_nested_json(tmp_path, policy, text):
    request = tmp_path / "r.jsonl"
    request.write_text(text + "\n")
    code, _, err = run("eval", "-p", policy, "-r", request)
    assert code == 2 and "invalid JSON: nested too deeply" in err and err.startswith(f"{request}:")


@pytest.mark.parametrize("form", ["agentdojo", "whowhen", "otel", "decisions"])
def test_import_deeply_nested_json(tmp_path, form):
    source = tmp_path / "run.json"
    source.write_text(DEEP)
    code, _, err = run("import", form, source)
    assert code == 2 and err.startswith(f"{source}:1:") and "nested too deeply" in err


@pytest.mark.parametrize(
    "toml, message",
    [("[tool]\nnhipl = 5\n", "`tool.nhipl` must be a table"), ("[tool.nhipl]\nlint = 5\n", "`tool.nhipl.lint` must be a table")],
)
def test_lint_config_not_a_table(tmp_path, policy, toml, message):
    config = tmp_path / "pyproject.toml"
    config.write_text(toml)
    code, _, err = run("lint", policy, "--config", config)
    assert code == 2 and message in err


def test_lint_config_tool_not_a_table_is_not_ours(tmp_path, policy):
    config = tmp_path / "pyproject.toml"
    config.write_text("tool = 5\n")
    code, _, err = run("lint", policy, "--config", config)
    assert code in (0, 1) and not err


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "--drift", "nan"],
        ["test", "{policy}", "--fail-under", "nan"],
        ["simulate", "{trace}", "-p", "{policy}", "--grace", "nan"],
        ["simulate", "{trace}", "-p", "{policy}", "--grace", "-1"],
        ["mcp-proxy", "-p", "{policy}", "--identity", "spiffe://a/x", "--approval-timeout", "nan", "--", "true"],
    ],
)
def test_number_options_refuse_nan_and_out_of_range(tmp_path, policy, args):
    trace = tmp_path / "t.jsonl"
    trace.write_text("")
    code, out, err = run(*[a.format(policy=policy, trace=trace) for a in args])
    assert code == 2 and "Invalid value for" in err and not out


@pytest.mark.parametrize(
    "distribution, message",
    [("lognormal:1,50", "sigma must be at most 10"), ("const:1e308", "at most 1e9 seconds"), ("exp:1e308", "at most 1e9 seconds")],
)
def test_simulate_delay_too_large(tmp_path, policy, distribution, message):
    trace = tmp_path / "t.jsonl"
    trace.write_text("")
    code, _, err = run("simulate", trace, "-p", policy, "--approval-wait", distribution)
    assert code == 2 and "Invalid value for '--approval-wait'" in err and message in err


def test_generate_same_file_for_policy_and_labels(tmp_path):
    same = tmp_path / "out.txt"
    code, out, err = run("generate", "--agents", "2", "--tasks", "1", "--policy-out", same, "--labels-out", same)
    assert code == 2 and "same file" in err and not out and not same.exists()


@pytest.mark.parametrize("flag", ["--policy-out", "--labels-out"])
def test_generate_output_folder_missing_fails_before_the_trace(tmp_path, flag):
    code, out, err = run("generate", "--agents", "2", "--tasks", "1", flag, tmp_path / "missing" / "f")
    assert code == 2 and "no such folder" in err and not out


def test_graph_reads_stdin(tmp_path):
    output = tmp_path / "g.dot"
    event = '{"kind": "tool_call", "t": 1, "agent": "spiffe://a/x", "tool": "t"}\n'
    code, _, err = run("graph", "-", "-o", output, input=event)
    assert code == 0, err
    assert output.read_text().startswith("digraph")


def test_graph_bad_stdin_line(tmp_path):
    code, _, err = run("graph", "-", "-o", tmp_path / "g.dot", input="{bad\n")
    assert code == 2 and err.startswith("<stdin>:1: invalid JSON")


def test_sweep_too_many_seeds(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP.format(seeds=10**12))
    code, _, err = run("sweep", config, "--out", tmp_path / "out", "--no-plots")
    assert code == 2 and "`seeds` must be at most" in err


def test_sweep_out_under_a_file(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP.format(seeds=1))
    code, _, err = run("sweep", config, "--out", config / "sub", "--no-plots")
    assert code == 2 and "cannot create folder" in err


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"my,own,data\n1,2,3", b"no newline at all"])
def test_sweep_leaves_a_foreign_results_table_alone(tmp_path, content):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP.format(seeds=1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_bytes(content)
    code, _, err = run("sweep", config, "--out", out, "--no-plots")
    assert code == 2 and "other columns" in err
    assert (out / "results.csv").read_bytes() == content


@pytest.mark.parametrize("args", [["check", ""], ["lint", ""], ["eval", "-p", "", "-r", "-"]])
def test_empty_policy_path(args):
    code, _, err = run(*args, input=REQUEST)
    assert code == 2 and "the path is empty" in err


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: nhipl.load(123), r"load\(\) takes a path, a folder or a list of them, not int"),
        (lambda: nhipl.load(None), r"load\(\) takes a path, a folder or a list of them, not NoneType"),
        (lambda: nhipl.load([1]), r"load\(\) takes paths"),
        (lambda: nhipl.loads(None), r"loads\(\) takes the policy text as a str, not NoneType"),
        (lambda: nhipl.loads(GOOD.encode()), r"decode it first"),
        (lambda: nhipl.loads(GOOD, source=5), r"`source` as a str"),
    ],
)
def test_api_load_wrong_argument_type(call, message):
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize(
    "requests, message",
    [(None, "not null"), (5, "not number"), ("ab", "not string"), ({}, "not object"), (b"x", "not value")],
)
def test_api_evaluate_many_not_a_list(requests, message):
    policies = nhipl.loads(GOOD)
    with pytest.raises(nhipl.RequestError, match=f"requests must be a list of JSON objects, {message}"):
        policies.evaluate_many(requests)


@pytest.mark.parametrize("call", [lambda p: p.evaluate("string"), lambda p: p.evaluate(None), lambda p: p.evaluate_many([1])])
def test_api_evaluate_not_an_object(call):
    with pytest.raises(nhipl.RequestError, match="a request must be a JSON object"):
        call(nhipl.loads(GOOD))


def test_api_evaluate_many_accepts_any_iterable():
    policies = nhipl.loads(GOOD)
    decisions = policies.evaluate_many(iter([{"principal": "spiffe://a/x", "tool": "t"}] * 2))
    assert [d.effect for d in decisions] == ["allow", "allow"]
