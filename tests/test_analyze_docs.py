"""Run docs/analysis.md's worked example: write its files, run its commands, compare the output.

As for docs/testing.md, except that a reported request (a `request:` line) may be any request
the evaluator decides as the line before it says: which one the solver picks is its own choice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nhipl

from .test_testing_docs import normalise, run_worked_example

pytest.importorskip("z3")

DOC = Path(__file__).resolve().parent.parent / "docs" / "analysis.md"


def _same(actual: str, expected: str) -> bool:
    a, e = normalise(actual).splitlines(), normalise(expected).splitlines()
    if len(a) != len(e):
        return False
    for got, want in zip(a, e):
        if want.lstrip().startswith("request: "):
            request = json.loads(got.split("request: ", 1)[1])
            assert isinstance(request, dict) and "principal" in request and "tool" in request
            continue
        if got != want:
            return False
    return True


def test_worked_example_runs_as_documented(tmp_path):
    assert run_worked_example(DOC.read_text(encoding="utf-8"), tmp_path, _same) >= 6  # the page still holds it
    for policy in ("before/payments.nhipl", "policies/payments.nhipl", "policies/payments_test.nhipl"):
        nhipl.load(str(tmp_path / policy))


def test_the_pages_figures_match_the_benchmark_rows():
    """The speed table names the benchmark's questions; the benchmark still asks them."""
    bench = (DOC.parent.parent / "benchmarks" / "analyze.py").read_text(encoding="utf-8")
    for question in ("diff, depth bound loosened", "diff, approval gate moved", "diff, identical sets", "prove, invariant that holds", "prove, invariant that fails"):
        assert question in bench
