"""examples/mcp: the walk-through's client, proxy and server run as the README says."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("mcp")

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "mcp"


def _client(*args: str) -> list[str]:
    result = subprocess.run([sys.executable, str(EXAMPLE / "client.py"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _outcomes(lines: list[str]) -> list[str]:
    return [line.split(": ")[1] for line in lines if line.startswith(("read_ticket", "send_mail", "delete_ticket"))]


def test_the_walk_through_prints_what_the_readme_shows():
    lines = _client()
    readme = (EXAMPLE / "README.md").read_text()
    shown = readme.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    assert lines == shown


def test_a_human_yes_lets_the_external_mail_through_but_never_the_forbidden_delete():
    assert _outcomes(_client("--approve", "yes")) == ["ok", "ok", "ok", "REFUSED"]
    assert _outcomes(_client("--approve", "no")) == ["ok", "ok", "REFUSED", "REFUSED"]
