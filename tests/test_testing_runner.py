"""`nhipl test`: discovery, pass/fail reports, -k, exit codes, bad test files, JUnit XML, coverage."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nhipl.testing import coverage, discover, run_files

from .cli import invoke

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

PAYMENTS = """\
agent "spiffe://acme.org/agents/finops" { groups: ["finance"] }

@id("pay")
permit agent in "finance" to call "payments.*" when args.amount < 10000;

@id("big-needs-approval")
require approval for any agent to call "payments.*" when args.amount >= 5000;

@id("no-crypto")
forbid any agent to call "payments.crypto";

@id("read-ledger")
permit agent in "finance" to call "ledger.read";
"""

PAYMENTS_TEST = """\
import "../policies/payments.nhipl";

test "small payment" {
    request { principal: "spiffe://acme.org/agents/finops", tool: "payments.transfer", args: { amount: 10 } }
    expect allow by "pay"
}

test "large payment waits" {
    request { principal: "spiffe://acme.org/agents/finops", tool: "payments.transfer", args: { amount: 6000 } }
    expect approval_required by "big-needs-approval"
}

test "crypto is forbidden" {
    request { principal: "spiffe://acme.org/agents/finops", tool: "payments.crypto", args: { amount: 1 } }
    expect deny by "no-crypto"
}
"""


def run(*args: str) -> "CliResult":
    result = invoke(["test", *args])
    return CliResult(result.exit_code, result.stdout, result.stderr)


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "payments.nhipl").write_text(PAYMENTS)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "payments_test.nhipl").write_text(PAYMENTS_TEST)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_all_pass_exits_0_with_a_summary(project):
    result = run("tests")
    assert result.code == 0, result.out + result.err
    assert re.fullmatch(r"3 passed \(1 file\) in \d+\.\d\ds\n", result.out)


def test_failure_shows_expected_actual_rules_reasons_and_exits_1(project):
    (project / "tests" / "wrong_test.nhipl").write_text(
        'import "../policies/payments.nhipl";\n'
        'test "crypto allowed?" {\n'
        '    request { principal: "spiffe://acme.org/agents/finops", tool: "payments.crypto", args: { amount: 1 } }\n'
        '    expect allow by "pay"\n'
        "}\n"
    )
    result = run("tests")
    assert result.code == 1
    out = result.out
    assert 'FAIL tests/wrong_test.nhipl:2:1: test "crypto allowed?"' in out
    assert 'expected: allow by "pay"' in out
    assert 'actual:   deny by "no-crypto"' in out
    assert "forbidden by `no-crypto`" in out  # the reasons
    assert '"tool": "payments.crypto"' in out  # the request
    assert out.rstrip().splitlines()[-1].startswith("3 passed, 1 failed (2 files)")


def test_by_is_compared_as_a_set(project):
    (project / "policies" / "more.nhipl").write_text('@id("pay-too") permit any agent to call "payments.transfer";\n')
    body = (
        'import "../policies/payments.nhipl";\nimport "../policies/more.nhipl";\n'
        'test "two permits" {{\n'
        '    request {{ principal: "spiffe://acme.org/agents/finops", tool: "payments.transfer", args: {{ amount: 1 }} }}\n'
        "    expect allow by {by}\n}}\n"
    )
    (project / "tests" / "set_test.nhipl").write_text(body.format(by='"pay-too", "pay"'))
    assert run("tests/set_test.nhipl").code == 0
    (project / "tests" / "set_test.nhipl").write_text(body.format(by='"pay"'))
    result = run("tests/set_test.nhipl")
    assert result.code == 1
    assert "also determining: `pay-too`" in result.out


def test_expect_without_by_checks_the_effect_only(project):
    (project / "tests" / "effect_test.nhipl").write_text(
        'import "../policies/payments.nhipl";\n'
        'test "stranger" { request { principal: "spiffe://x/y", tool: "ledger.read" } expect deny }\n'
    )
    assert run("tests/effect_test.nhipl").code == 0


def test_k_selects_by_name_or_file(project):
    result = run("tests", "-k", "CRYPTO", "-v")
    assert result.code == 0
    assert result.out.count("ok   ") == 1 and "crypto is forbidden" in result.out
    assert run("tests", "-k", "payments_test", "-v").out.count("ok   ") == 3
    nothing = run("tests", "-k", "no-such-test")
    assert nothing.code == 2
    assert "no test or invariant matches `no-such-test`" in nothing.err and ":1:1:" not in nothing.err


def test_discovery_recurses_and_skips_policy_files(project):
    nested = project / "tests" / "deeper" / "still"
    nested.mkdir(parents=True)
    (nested / "nested_test.nhipl").write_text(
        'import "../../../policies/payments.nhipl";\n'
        'test "ledger" { request { principal: "spiffe://acme.org/agents/finops", tool: "ledger.read" } expect allow by "read-ledger" }\n'
    )
    (project / ".hidden").mkdir()
    (project / ".hidden" / "x_test.nhipl").write_text("this is not nhipl")
    found = discover(["."])
    assert found == ["tests/payments_test.nhipl", "tests/deeper/still/nested_test.nhipl"]  # a folder's files first
    assert run(".").code == 0


def test_missing_path_and_empty_folder_are_bad_input(project):
    result = run("nowhere")
    assert result.code == 2
    assert result.err.startswith("nowhere: no such file or folder")
    result = run("policies")
    assert result.code == 2
    assert "policies: no `*_test.nhipl` files found" in result.err


BAD_FILES = {
    "syntax error": (
        'test "x" { request { principal: "p", tool: "a.b" }\n  expect allow by "r" \n',
        "bad_test.nhipl:2:",
    ),
    "unknown rule id in by": (
        '@id("real") permit any agent to call "a.*";\n'
        'test "x" { request { principal: "p", tool: "a.b" } expect allow by "rael" }\n',
        "bad_test.nhipl:2:68: unknown rule id `rael` in `by`",
    ),
    "missing import": (
        'import "./policies/none.nhipl";\ntest "x" { request { principal: "p", tool: "a.b" } expect deny }\n',
        "bad_test.nhipl:1:1: cannot import `./policies/none.nhipl`",
    ),
    "bad request field": (
        'test "x" { request { principal: "p", tool: "a.b", taks: {} } expect deny }\n',
        "bad_test.nhipl:1:57: test `x`: unknown request field `taks`; did you mean `task`?",
    ),
    "unknown effect": (
        'test "x" { request { principal: "p", tool: "a.b" } expect denied }\n',
        "bad_test.nhipl:1:59: unknown effect `denied`",
    ),
    "not text": (b"\xff\xfe\x00binary", "bad_test.nhipl:1:1: not a UTF-8 text file"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_test_files_report_file_line_col_and_exit_2(project, case):
    text, expected = BAD_FILES[case]
    path = project / "bad_test.nhipl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    result = run("bad_test.nhipl", "tests")
    assert result.code == 2
    assert expected in result.err
    assert "Traceback" not in result.err + result.out
    assert result.out == ""  # nothing ran: bad input stops the run before any test


def test_junit_xml(project):
    (project / "tests" / "wrong_test.nhipl").write_text(
        'import "../policies/payments.nhipl";\n'
        'test "wrong" { request { principal: "spiffe://acme.org/agents/finops", tool: "ledger.read" } expect deny }\n'
        'invariant "no crypto" { never allow call "payments.crypto" }\n'
    )
    (project / "out").mkdir()
    result = run("tests", "--junit-xml", "out/report.xml")
    assert result.code == 1
    root = ET.parse(project / "out" / "report.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("5", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"tests/payments_test.nhipl", "tests/wrong_test.nhipl"}
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"small payment", "large payment waits", "crypto is forbidden", "wrong", "invariant: no crypto"}
    assert cases["small payment"].get("classname") == "tests/payments_test.nhipl"
    assert cases["small payment"].get("line") == "3"
    failure = cases["wrong"].find("failure")
    assert failure.get("message") == "expected deny, got allow"
    assert 'actual:   allow by "read-ledger"' in failure.text
    assert cases["invariant: no crypto"].find("failure") is None
    assert run("tests", "--junit-xml", "out").code == 2  # a folder is not a file


# Coverage, counted by hand for PAYMENTS and PAYMENTS_TEST:
#   pay                 determining in "small payment"                  covered
#   big-needs-approval  determining in "large payment waits"            covered
#   no-crypto           determining in "crypto is forbidden"            covered
#   read-ledger         no test touches ledger.read                     not covered
# and the extra file below: `other` (covered by its own test), `unused` (never) -> 1 of 2.
# Total: 4 of 6 rules = 66.7 %.
def test_coverage_matches_a_hand_count(project):
    (project / "policies" / "other.nhipl").write_text(
        '@id("other") permit any agent to call "search.web";\n'
        '@id("unused") forbid any agent to call "search.dark";\n'
    )
    (project / "tests" / "other_test.nhipl").write_text(
        'import "../policies/other.nhipl";\n'
        '@id("fixture-rule") permit any agent to call "fixture.*";\n'  # test-file rules are not counted
        'test "search" { request { principal: "p", tool: "search.web" } expect allow by "other" }\n'
    )
    run_result = run_files(discover(["tests"]))
    measured = coverage(run_result)
    by_file = {f.source: (len(f.covered), len(f.rules), [r.id for r in f.uncovered]) for f in measured.files}
    assert by_file == {
        "policies/payments.nhipl": (3, 4, ["read-ledger"]),
        "policies/other.nhipl": (1, 2, ["unused"]),
    }
    assert (measured.covered, measured.rules) == (4, 6)
    assert round(measured.percent, 1) == 66.7

    result = run("tests", "--coverage")
    assert result.code == 0
    assert re.search(r"policies/payments\.nhipl\s+3/4\s+75\.0%", result.out)
    assert "not covered: `read-ledger` (line 12)" in result.out
    assert re.search(r"total\s+4/6\s+66\.7%", result.out)


def test_a_policy_file_imported_by_two_test_files_counts_once(project):
    (project / "tests" / "again_test.nhipl").write_text(
        'import "../policies/payments.nhipl";\n'
        'test "ledger" { request { principal: "spiffe://acme.org/agents/finops", tool: "ledger.read" } expect allow }\n'
    )
    measured = coverage(run_files(discover(["tests"])))
    assert [(f.source, len(f.covered), len(f.rules)) for f in measured.files] == [("policies/payments.nhipl", 4, 4)]


def test_fail_under(project):
    assert run("tests", "--fail-under", "75").code == 0
    result = run("tests", "--fail-under", "80")
    assert result.code == 1
    assert "coverage 75.0% is below --fail-under 80%" in result.out
    assert run("tests", "--fail-under", "101").code == 2


def test_standard_library_imports_are_reported_apart(project):
    """With `import "baseline"`, --fail-under measures your rules; --include-imports counts all."""
    (project / "tests" / "payments_test.nhipl").write_text('import "baseline";\n' + PAYMENTS_TEST)
    measured = coverage(run_files(discover(["tests"])), ["tests"])
    assert {f.source for f in measured.files if f.imported} == {"baseline.nhipl"}
    assert [f.source for f in measured.files if not f.imported] == ["policies/payments.nhipl"]
    assert (measured.covered, measured.rules) == (3, 4)

    everything = coverage(run_files(discover(["tests"])), ["tests"], include_imports=True)
    assert everything.rules > 4 and everything.percent < measured.percent

    result = run("tests", "--coverage", "--fail-under", "75")
    assert result.code == 0, result.out
    assert re.search(r"^  total\s+3/4\s+75\.0%", result.out, re.M)
    assert re.search(r"^  imported \(not counted\)\s+\d+/\d+", result.out, re.M)
    assert run("tests", "--fail-under", "75", "--include-imports").code == 1


def test_the_example_policy_sets_pass_with_full_coverage(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = run("examples", "--coverage", "--fail-under", "100", "--max-examples", "100")
    assert result.code == 0, result.out + result.err
    assert re.search(r"total\s+34/34\s+100\.0%", result.out)
    assert re.search(r"^57 passed \(4 files\)", result.out.splitlines()[-1])


def test_an_invariant_whose_scope_is_never_reached_is_flagged(project):
    (project / "tests" / "vacuous_test.nhipl").write_text(
        'import "../policies/payments.nhipl";\n'
        'invariant "impossible" { never allow call "payments.*" when args has amount and args.amount != args.amount }\n'
    )
    result = run("tests/vacuous_test.nhipl", "--max-examples", "30")
    assert result.code == 0
    assert 'warning: tests/vacuous_test.nhipl:2:1: invariant "impossible" held vacuously' in result.out
