"""Data flows one way: the import-linter contracts in pyproject.toml (only parse and
lower see Lark; the core imports no outer layer; nothing imports the CLI; the
simulator and the runtime use the core's public API), run here so that a local
pytest run catches a broken contract too; and the packaging rules a newcomer
relies on: one copy of the simulator, and commands that start without the heavy
modules they do not use."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent
HEAVY = ("networkx", "hypothesis", "matplotlib", "dask")


def _python_files():
    for folder in ["nhipl", "simulator"]:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_the_import_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is installed by the test extra")
    lint_imports = pathlib.Path(sys.executable).parent / "lint-imports"
    command = [str(lint_imports)] if lint_imports.exists() else [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_no_utils_module():
    assert not [p for p in _python_files() if p.stem in ("utils", "helpers", "misc")]


def test_the_simulator_folder_is_not_a_second_simulator():
    """From the repository root `simulator` is importable by its folder name; that
    would be a second copy beside nhipl.simulator, with its own classes."""
    run = subprocess.run([sys.executable, "-c", "import simulator"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "import `nhipl.simulator`, not `simulator`" in run.stderr
    run = subprocess.run([sys.executable, "-c", "import nhipl.simulator, sys; print(sorted(m for m in sys.modules if m.split('.')[0] == 'simulator'))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stderr


def _imported(*args: str) -> set[str]:
    """The top-level modules ``python -X importtime -m nhipl ARGS`` imports."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "nhipl", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert lines, "no -X importtime output"
    return {name.split(".")[0] for name in lines}


@pytest.mark.parametrize(
    "args",
    [
        ("check", "examples/support-triage"),
        ("eval", "-p", "examples/support-triage", "-r", "examples/support-triage/requests/batch.jsonl"),
    ],
    ids=["check", "eval"],
)
def test_check_and_eval_start_without_heavy_modules(args):
    imported = _imported(*args)
    assert "nhipl" in imported and "lark" in imported  # the measurement sees imports at all
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
