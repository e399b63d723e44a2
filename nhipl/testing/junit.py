"""JUnit XML for CI dashboards: one ``<testsuite>`` per test file, one ``<testcase>`` per
test or invariant, a ``<failure>`` with the full explanation when it failed.

The layout is the one pytest's ``--junitxml`` writes (``testsuites`` root,
``classname`` and ``name`` on each case), which every CI system reads.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .runner import RunResult, explain_invariant, invariant_location


def _case(suite: ET.Element, classname: str, name: str, file: str, line: int, seconds: float) -> ET.Element:
    return ET.SubElement(
        suite,
        "testcase",
        classname=classname,
        name=name,
        file=file,
        line=str(line),
        time=f"{seconds:.6f}",
    )


def _failure(case: ET.Element, message: str, kind: str, text: str) -> None:
    ET.SubElement(case, "failure", message=message, type=kind).text = text


def junit_xml(run: RunResult) -> str:
    """The run as a JUnit XML document (a string, with the XML declaration)."""
    root = ET.Element(
        "testsuites",
        name="nhipl",
        tests=str(run.total),
        failures=str(run.failed),
        errors="0",
        time=f"{run.seconds:.3f}",
    )
    for file in run.files:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file.path,
            tests=str(file.passed + file.failed),
            failures=str(file.failed),
            errors="0",
            skipped="0",
        )
        seconds = 0.0
        for case in file.cases:
            span = case.case.span
            node = _case(suite, case.source, case.name, case.source, span.line if span else 0, case.seconds)
            seconds += case.seconds
            if not case.passed:
                message = f"expected {case.case.expect.effect}, got {case.decision.effect}"
                _failure(node, message, "policy-test", case.location + "\n" + case.explain())
        for result in file.invariants:
            span = result.invariant.span
            node = _case(
                suite, result.source, f"invariant: {result.invariant.name}", result.source, span.line if span else 0, result.seconds
            )
            seconds += result.seconds
            if not result.holds:
                message = f"counterexample found: {result.decision.effect}"
                _failure(node, message, "policy-invariant", invariant_location(result) + "\n" + explain_invariant(result))
        suite.set("time", f"{seconds:.6f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
