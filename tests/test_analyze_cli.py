"""`nhipl analyze`: the four subcommands, their output and their exit codes."""

from __future__ import annotations

import json
import pathlib

import pytest

pytest.importorskip("z3")

import nhipl  # noqa: E402
from nhipl.analyze import AnalysisBug  # noqa: E402
from nhipl.analyze import questions  # noqa: E402

from .cli import run, write_policy  # noqa: E402

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

OLD = """
agent "spiffe://acme.org/agents/pay" { groups: ["finance"] }
permit agent in "finance" to call "payments.*" when args.amount < 100 grant ttl 5m;
forbid any agent to call "payments.admin";
"""


def _pair(tmp_path, new_text: str):
    old = write_policy(tmp_path, OLD, "old.nhipl")
    new = write_policy(tmp_path, new_text, "new.nhipl")
    return old, new


def test_diff_of_equivalent_sets_exits_0(tmp_path):
    old, new = _pair(tmp_path, OLD.replace("payments.admin", "payments.admin") + "\n# a comment\n")
    code, out, _ = run("analyze", "diff", old, new)
    assert code == 0
    assert out.startswith("equivalent")


def test_diff_reports_a_widening_with_a_confirmed_request(tmp_path):
    old, new = _pair(tmp_path, OLD.replace("args.amount < 100", "args.amount < 1000"))
    code, out, _ = run("analyze", "diff", old, new, "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["widening"] and not report["narrowing"]
    for d in report["differences"]:
        request = d["request"]
        assert 100 <= request["args"]["amount"] < 1000
        assert nhipl.load(str(old)).evaluate(request).effect == d["old"]["effect"] == "deny"
        assert nhipl.load(str(new)).evaluate(request).effect == d["new"]["effect"] == "allow"
    assert run("analyze", "diff", old, new, "--allow-widening")[0] == 0
    assert run("analyze", "diff", old, new, "--allow-narrowing")[0] == 1


def test_diff_reports_a_narrowing_and_a_ttl_change(tmp_path):
    old, new = _pair(tmp_path, OLD.replace("grant ttl 5m", "grant ttl 2m"))
    code, out, _ = run("analyze", "diff", old, new)
    assert code == 1
    assert "narrowing: allow" in out and "(ttl 300s)" in out and "(ttl 120s)" in out
    assert run("analyze", "diff", old, new, "--allow-narrowing")[0] == 0
    code, out, _ = run("analyze", "diff", new, old, "--allow-widening")
    assert code == 0 and "widening" in out


def test_diff_text_names_the_assumptions(tmp_path):
    old, new = _pair(tmp_path, OLD.replace("< 100", "<= 100"))
    code, out, _ = run("analyze", "diff", old, new, "--chain-bound", "1")
    assert code == 1
    assert "delegation chains" not in out  # neither set reads the chain
    assert "list-valued request attributes of at most 3 items" in out  # `agent in` reads groups
    assert '"amount": 100' in out
    old, new = _pair(tmp_path, "attenuate delegation;\n" + OLD)
    code, out, _ = run("analyze", "diff", old, new, "--chain-bound", "1")
    assert "delegation chains of at most 1 identities" in out


def test_prove_examples_proves_or_refutes_with_confirmed_requests():
    code, out, _ = run("analyze", "prove", EXAMPLES, "--format", "json")
    results = json.loads(out)["invariants"]
    assert len(results) >= 10
    assert code == (0 if all(r["proved"] for r in results) else 1)
    assert any(r["proved"] for r in results)
    for r in results:
        if not r["proved"]:
            path = EXAMPLES.parent / r["source"] if not pathlib.Path(r["source"]).is_absolute() else r["source"]
            policies = nhipl.load(str(path))
            assert policies.evaluate(r["counterexample"]).effect == r["decision"]["effect"]


def test_prove_text_and_exit_code(tmp_path):
    write_policy(tmp_path, 'permit any agent to call "a.*" when args.n > 2;\n', "p.nhipl")
    test = write_policy(
        tmp_path,
        'import "./p.nhipl";\ninvariant "small n" { never allow call "a.*" when args.n <= 2 }\n'
        'invariant "b never" { never allow call "b.*" }\n',
        "p_test.nhipl",
    )
    code, out, _ = run("analyze", "prove", test)
    assert code == 0
    assert "proved" in out and "2 proved, 0 refuted" in out
    write_policy(tmp_path, 'permit any agent to call "a.*" when args.n >= 2;\n', "p.nhipl")
    code, out, _ = run("analyze", "prove", test)
    assert code == 1
    assert "REFUTED" in out and '"n": 2' in out


def test_rules_finds_dead_shadowed_and_redundant_rules(tmp_path):
    path = write_policy(
        tmp_path,
        '@id("p") permit any agent to call "t.*";\n'
        '@id("covered") permit any agent to call "t.x";\n'
        '@id("never") permit any agent to call "u.x" when args.n > 3 and args.n < 2;\n'
        '@id("shadowed") permit any agent to call "v.x";\n'
        '@id("f") forbid any agent to call "v.*";\n'
        '@id("live") forbid any agent to call "t.y";\n',
    )
    code, out, _ = run("analyze", "rules", path, "--format", "json")
    assert code == 1
    kinds = {f["rule"]: f["kind"] for f in json.loads(out)["findings"]}
    assert kinds == {"covered": "redundant", "never": "never-matches", "shadowed": "never-decides"}


def test_reach_lists_grants_and_delegations():
    code, out, _ = run("analyze", "reach", EXAMPLES / "coding-delegation", "--agent", "spiffe://acme.org/agents/coder", "--format", "json")
    assert code == 0
    report = json.loads(out)["reach"]
    assert report["agent"] == "spiffe://acme.org/agents/coder"
    assert {"coder-writes", "coder-delegates"} <= {g["rule"] for g in report["grants"]}
    policies = nhipl.load(str(EXAMPLES / "coding-delegation"))
    for node in [report] + report["delegations"]:
        for g in node["grants"]:
            decision = policies.evaluate(g["request"])
            assert decision.effect == "allow" and g["rule"] in decision.rules
    delegatees = {d["agent"] for d in report["delegations"]}
    assert "spiffe://acme.org/agents/reviewer" in delegatees
    assert all(d["chain"] == ["spiffe://acme.org/agents/coder"] for d in report["delegations"])


def test_reach_of_an_unknown_agent_is_nothing(tmp_path):
    path = write_policy(tmp_path, 'permit agent "spiffe://x/a" to call "t";\n')
    code, out, _ = run("analyze", "reach", path, "--agent", "spiffe://x/b")
    assert code == 0
    assert "can be allowed nothing" in out


@pytest.mark.parametrize(
    "args",
    [
        ("diff", "missing.nhipl", "missing2.nhipl"),
        ("prove", "missing_test.nhipl"),
        ("rules", "missing.nhipl"),
        ("reach", "missing.nhipl", "--agent", "a"),
    ],
)
def test_bad_input_exits_2_with_a_location(tmp_path, args):
    code, out, err = run("analyze", *[tmp_path / a if a.endswith(".nhipl") else a for a in args])
    assert code == 2
    assert "missing" in err and ": no such file" in err and ":1:1:" not in err
    assert "Traceback" not in err


def test_a_syntax_error_exits_2(tmp_path):
    bad = write_policy(tmp_path, "permit any agent to;\n", "bad.nhipl")
    code, _, err = run("analyze", "diff", bad, bad)
    assert code == 2 and "bad.nhipl:1:" in err


def test_a_disagreement_with_the_evaluator_is_an_internal_error(tmp_path, monkeypatch):
    """A wrong encoding must surface as exit 3 and a bug report, never as an answer."""
    old, new = _pair(tmp_path, OLD.replace("< 100", "< 1000"))

    def wrong(decision, *args):
        raise AnalysisBug("the encoding decides allow, the evaluator deny", {"principal": "p", "tool": "t"})

    monkeypatch.setattr(questions, "_agree", wrong)
    code, out, err = run("analyze", "diff", old, new)
    assert code == 3
    assert out == ""
    assert "internal error" in err and "bug in nhipl" in err
