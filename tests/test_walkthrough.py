"""A new user's first ten minutes, from a fresh clone: the README's first command, then its
quick start (check, test, simulate with --fail-on, the guard, the MCP proxy), each step's
output as the README shows it. `.ci/run` runs the README's first command itself, install
included; this test runs the steps after the install, with the installed `nhipl`."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                reason="the walk-through clones the repository: it needs git and a checkout")


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> pathlib.Path:
    target = tmp_path_factory.mktemp("fresh") / "nhipl"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
    return target


def _shell(command: str, cwd: pathlib.Path) -> tuple[int, str]:
    env = dict(os.environ)
    env["PATH"] = str(pathlib.Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)
    return done.returncode, done.stdout


def _normalise(text: str) -> str:
    return re.sub(r"in \d+\.\d+s", "in N.NNs", text).strip()


def test_the_readme_s_first_command_decides_the_batch(clone):
    first = re.search(r"```sh\n(.*?)\n```", README, re.S).group(1)
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/nhipl eval ")
    decide = first.split(" && ")[-1].replace(".venv/bin/", "")
    code, out = _shell(decide, clone)
    assert code == 0, out
    assert re.findall(r"batch\.jsonl:(\d+): (allow|deny|approval_required)", out) == [
        ("1", "allow"), ("2", "deny"), ("3", "allow"), ("4", "allow"), ("5", "allow")]


def _quick_start() -> list[tuple[str, str]]:
    block = re.search(r"```console quickstart\n(.*?)```", README, re.S).group(1)
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in steps]


def test_the_quick_start_runs_as_the_readme_shows(clone):
    pytest.importorskip("mcp")
    steps = _quick_start()
    assert [c.split()[0] for c, _ in steps] == ["nhipl", "nhipl", "nhipl", "nhipl", "echo", "python", "python"]
    last = 0
    for command, expected in steps:
        if command == "echo $?":
            actual = str(last)
        else:
            last, actual = _shell(command, clone)
        assert _normalise(actual) == _normalise(expected), f"`{command}` printed:\n{actual}"
    assert (clone / "report" / "report.json").is_file()
