"""The project speaks for itself: README, docs, examples' READMEs, every `--help` text and the
code's own comments cite no file outside the repository."""

from __future__ import annotations

import pathlib
import re

import click
import pytest

from nhipl.cli import main

from .cli import run

ROOT = pathlib.Path(__file__).parent.parent
OUTSIDE = re.compile(r"DESIGN\.md|DESIGN §|\bDESIGN\b \"|STYLE\.md|\.\./shared\b|shared/DESIGN")


def _documents():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").rglob("*.md"))
    yield from sorted((ROOT / "examples").rglob("*.md"))
    yield from sorted((ROOT / "benchmarks").rglob("*.md"))
    for folder in ("nhipl", "simulator", "grammar", "stdlib_policies", "benchmarks", "examples", "editors"):
        for pattern in ("*.py", "*.lark", "*.nhipl", "*.js", "*.json"):
            yield from sorted(p for p in (ROOT / folder).rglob(pattern) if "node_modules" not in p.parts)


@pytest.mark.parametrize("path", list(_documents()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_cites_a_file_outside_the_repository(path):
    text = path.read_text(encoding="utf-8", errors="replace")
    hits = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not hits, hits


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


@pytest.mark.parametrize("command", [()] + list(_commands(main)), ids=lambda c: " ".join(c) or "nhipl")
def test_no_help_text_cites_a_file_outside_the_repository(command):
    code, out, err = run(*command, "--help")
    assert code == 0, err
    assert not OUTSIDE.search(out), out


def test_the_pattern_catches_what_it_is_for():
    assert OUTSIDE.search("as DESIGN §6 says") and OUTSIDE.search("see ../shared/DESIGN.md")
    assert not OUTSIDE.search("the design of the evaluator")
