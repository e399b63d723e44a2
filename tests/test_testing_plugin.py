"""The pytest plugin, run by pytest's own `pytester`: collection, pass, failure output, JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

POLICY = """\
agent "spiffe://acme.org/agents/triage" { groups: ["triage"] }

@id("read-tickets")
permit agent in "triage" to call "zendesk.read_ticket";

@id("no-export")
forbid any agent to call "crm.export";
"""

TESTS = """\
import "../policies/support.nhipl";

test "triage reads tickets" {
    request { principal: "spiffe://acme.org/agents/triage", tool: "zendesk.read_ticket" }
    expect allow by "read-tickets"
}

test "nobody exports" {
    request { principal: "spiffe://acme.org/agents/triage", tool: "crm.export" }
    expect deny by "no-export"
}

invariant "the CRM is never exported" {
    never allow call "crm.export"
}
"""

FAILING = """\
import "../policies/support.nhipl";

test "export allowed?" {
    request { principal: "spiffe://acme.org/agents/triage", tool: "crm.export" }
    expect allow by "read-tickets"
}

invariant "nobody reads tickets" {
    never allow call "zendesk.*"
}
"""


# The inner runs load every installed plugin: tell pytest-asyncio what it asks to be told.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture
def policies(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.mkdir("policies")
    pytester.path.joinpath("policies", "support.nhipl").write_text(POLICY)
    pytester.mkdir("tests")
    pytester.path.joinpath("tests", "support_test.nhipl").write_text(TESTS)
    pytester.makeini(INI)
    return pytester


def test_collects_each_test_and_invariant_as_an_item(policies):
    result = policies.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "tests/support_test.nhipl::triage reads tickets",
            "tests/support_test.nhipl::nobody exports",
            "tests/support_test.nhipl::invariant: the CRM is never exported",
            "3 tests collected*",
        ]
    )
    assert "support.nhipl::" not in result.stdout.str()  # policy files are not test files


def test_passing_policy_tests(policies):
    result = policies.runpytest("-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*support_test.nhipl::triage reads tickets PASSED*"])


def test_failure_output_is_readable(policies):
    policies.path.joinpath("tests", "wrong_test.nhipl").write_text(FAILING)
    result = policies.runpytest()
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            '*test "export allowed?"*',
            'tests/wrong_test.nhipl:3:1: test "export allowed?" failed',
            'expected: allow by "read-tickets"',
            'actual:   deny by "no-export"',
            "reasons:",
            "  forbidden by `no-export`",
            'request:  {"principal": "spiffe://acme.org/agents/triage", "tool": "crm.export"}',
        ]
    )
    result.stdout.fnmatch_lines(
        [
            'tests/wrong_test.nhipl:8:1: invariant "nobody reads tickets" failed',
            'never allow, but this request is allow by "read-tickets"',
            "counterexample (smallest found): *",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "def runtest" not in result.stdout.str()  # no plugin internals in the report


def test_junit_xml(policies):
    policies.path.joinpath("tests", "wrong_test.nhipl").write_text(FAILING)
    result = policies.runpytest("--junitxml=report.xml")
    assert result.ret == 1
    root = ET.parse(policies.path / "report.xml").getroot()
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("5", "2")
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert ("tests.support_test.nhipl", "triage reads tickets") in cases
    failure = cases[("tests.wrong_test.nhipl", "export allowed?")].find("failure")
    assert failure is not None
    assert 'actual:   deny by "no-export"' in failure.text


def test_k_selects_policy_tests(policies):
    result = policies.runpytest("-k", "exports")
    result.assert_outcomes(passed=1, deselected=2)


def test_a_bad_test_file_is_a_collection_error_with_a_position(policies):
    policies.path.joinpath("tests", "bad_test.nhipl").write_text(
        'import "../policies/support.nhipl";\n'
        'test "x" { request { principal: "p", tool: "a" } expect deny by "no-exprot" }\n'
    )
    result = policies.runpytest()
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting tests/bad_test.nhipl*",
            "tests/bad_test.nhipl:2:65: unknown rule id `no-exprot` in `by` [unknown-rule]",
            "*help: did you mean `no-export`?",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the run


def test_ignored_paths_are_not_collected(policies):
    data = policies.mkdir("data")
    data.joinpath("broken_test.nhipl").write_text("not nhipl at all")
    assert policies.runpytest().ret == pytest.ExitCode.INTERRUPTED
    policies.runpytest("--nhipl-ignore", "data").assert_outcomes(passed=3)
    policies.runpytest("--nhipl-ignore", "*/data/*").assert_outcomes(passed=3)
    policies.makeini(INI + "nhipl_ignore = data\n")
    policies.runpytest().assert_outcomes(passed=3)


def test_collection_can_be_turned_off(policies):
    assert policies.runpytest("--nhipl-no-collect").ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert policies.runpytest("-p", "no:nhipl").ret == pytest.ExitCode.NO_TESTS_COLLECTED
    policies.runpytest("--nhipl-no-invariants").assert_outcomes(passed=2)


def test_python_tests_beside_policy_tests_still_run(policies):
    policies.makepyfile(test_code="def test_python():\n    assert True\n")
    policies.runpytest().assert_outcomes(passed=4)


def test_coverage_report(policies):
    result = policies.runpytest("--nhipl-coverage", "-k", "triage")
    result.stdout.fnmatch_lines(["*nhipl rule coverage*", "*policies/support.nhipl*1/2*50.0%", "*not covered: `no-export`*"])


def test_options_are_in_their_own_group(pytester):
    pytester.makeini(INI)
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["nhipl policy tests (*_test.nhipl):", "*--nhipl-ignore=PATH*"])
