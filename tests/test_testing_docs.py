"""Run docs/testing.md's worked example: write its files, run its commands, compare the output.

A fenced block whose info string has ``file=PATH`` is written to PATH (in order, so a later
block may replace a file); a ``console`` block is a list of ``$ command`` lines, each followed by
its expected output. Commands run in bash in a fresh folder with this interpreter's scripts
first on PATH; ``echo $?`` shows the previous command's exit code. Timings are not compared.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.S | re.M)
TIMING = re.compile(r"in \d+\.\d+s")


def normalise(text: str) -> str:
    text = TIMING.sub("in N.NNs", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def commands(block: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            out[-1][1].append(line)
    return [(cmd, "\n".join(lines)) for cmd, lines in out]


def run_console(command: str, cwd: Path, env: dict) -> tuple[str, int]:
    """Output (stdout and stderr together) and exit code of one documented command."""
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )
    return done.stdout, done.returncode


def run_worked_example(text: str, folder: Path, same=None) -> int:
    """Write the ``file=`` blocks of ``text`` under ``folder`` and run its ``console`` blocks
    there, comparing each output with ``same(actual, expected)`` (default: equal after
    :func:`normalise`). Returns how many commands ran."""
    same = same or (lambda actual, expected: normalise(actual) == normalise(expected))
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # pytest-asyncio (installed for the language server's tests) warns in a project that does
    # not configure it, as the example project does not
    env["PYTEST_ADDOPTS"] = "-p no:asyncio"
    ran = 0
    last_code = 0
    for m in FENCE.finditer(text):
        words, body = m.group(1).split(), m.group(2)
        target = next((w[len("file="):] for w in words if w.startswith("file=")), None)
        if target is not None:
            path = folder / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
        elif words[:1] == ["console"]:
            for command, expected in commands(body):
                if command == "echo $?":
                    actual = str(last_code)
                else:
                    actual, last_code = run_console(command, folder, env)
                assert same(actual, expected), f"`{command}` printed:\n{actual}"
                ran += 1
    return ran


def test_worked_example_runs_as_documented(tmp_path):
    assert run_worked_example(DOC.read_text(encoding="utf-8"), tmp_path) >= 7  # the doc still holds the worked example
