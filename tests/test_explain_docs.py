"""docs/explain.md: its Python example runs, and each `nhipl eval --explain` shown there prints
exactly what the page shows (run from the repository's top folder)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from .docblocks import code_blocks
from .test_testing_docs import commands, normalise, run_console

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "explain.md"
CONSOLE = [(cmd, out) for block in code_blocks(DOC, "console") for cmd, out in commands(block.text)]


def test_every_example_policy_set_with_requests_is_explained():
    shown = {re.search(r"examples/([^/]+)/", cmd).group(1) for cmd, _ in CONSOLE}
    assert shown == {p.parent.name for p in (ROOT / "examples").glob("*/requests")}


@pytest.mark.parametrize("command, expected", CONSOLE, ids=[c for c, _ in CONSOLE])
def test_explain_output_is_as_documented(command, expected):
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    output, code = run_console(command, ROOT, env)
    assert code == 0, output
    assert normalise(output) == normalise(expected)


def test_python_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    (block,) = code_blocks(DOC, "python")
    exec(compile(block.text, str(DOC), "exec"), {})
