"""The bundled examples are what we tell users to copy: they lint clean, are in
canonical format, and their policy tests pass."""

from __future__ import annotations

import pathlib

import pytest
from .cli import run as run_cli

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
POLICY_SETS = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and list(p.glob("*.nhipl")))


def run(*args):
    code, out, err = run_cli(*args)
    return code, out + err


def test_there_are_example_sets():
    assert {"support-triage", "coding-delegation", "finance-ops", "agentdojo"} <= {p.name for p in POLICY_SETS}


@pytest.mark.parametrize("folder", POLICY_SETS, ids=lambda p: p.name)
def test_example_lints_clean(folder):
    code, out = run("lint", str(folder))
    assert code == 0, out


@pytest.mark.parametrize("folder", POLICY_SETS, ids=lambda p: p.name)
def test_example_is_formatted(folder):
    code, out = run("fmt", "--check", str(folder))
    assert code == 0, out


@pytest.mark.parametrize("folder", [p for p in POLICY_SETS if list(p.glob("*_test.nhipl"))], ids=lambda p: p.name)
def test_example_policy_tests_pass(folder):
    code, out = run("test", str(folder))
    assert code == 0, out
