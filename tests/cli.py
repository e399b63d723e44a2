"""Run the `nhipl` command line in-process, the way every CLI test does."""

from __future__ import annotations

import pathlib

from click.testing import CliRunner, Result

from nhipl.cli import main


def invoke(args, input=None) -> Result:
    """click's result of `nhipl ARGS` (arguments may be paths). Unexpected
    exceptions propagate, so a traceback fails the test."""
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def run(*args, input=None) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `nhipl ARGS`."""
    result = invoke(args, input=input)
    return result.exit_code, result.stdout, result.stderr


def write_policy(folder: pathlib.Path, text: str, name: str = "p.nhipl") -> pathlib.Path:
    """A policy file holding ``text`` in ``folder``, for a command to read."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
