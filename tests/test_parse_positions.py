"""nhipl's own position propagation (``parse._Positions``) must give every node of
every parse tree the same start and end as Lark's ``propagate_positions``: every
span in every diagnostic, lint finding and explanation comes from them."""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import given, settings

from nhipl.parse import _build_parser, _parser, _Positions

from .policygen import policy_texts

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILES = sorted(p for p in ROOT.rglob("*.nhipl") if ".venv" not in p.parts and "build" not in p.parts)

OURS = _build_parser("nhipl")
LARKS = _build_parser("lark")

TRICKY = [
    # parentheses around an expression: the inner node keeps its own span, the
    # enclosing one spans the parentheses (Lark's "container" positions)
    'permit any agent to call "x" when ((task.intent == "a") and not (args.n > 1));',
    'permit any agent to call "x" when (args.l in [1, (2), [3, [4]]]);',
    # a rule that is nothing but keywords and strings, a multi-line rule, comments
    'forbid any agent to call "*";',
    'permit agent in "g"\n  to call "a", "b"\n  when args.o == [1, [2, "m"]]  # note\n  grant ttl 5m;',
    '# only a comment\n',
    '',
    'task "t" {\n  permit any agent to call "x";\n}\n'
    'test "t" { request { principal: "p", tool: "x" } expect allow }\n'
    'invariant "i" { never allow call "x" when args has a unless approval.granted }\n',
]


def _positions(tree) -> list[tuple]:
    out = []
    for node in tree.iter_subtrees():
        meta = node.meta
        out.append(
            (node.data, *(getattr(meta, a, None) for a in (
                "line", "column", "end_line", "end_column",
                "container_line", "container_column", "container_end_line", "container_end_column",
            )))
        )  # fmt: skip
    return out


def _same(text: str) -> None:
    theirs = LARKS.parse(text)
    ours = OURS.parse(text)
    assert ours == theirs
    assert _positions(ours) == _positions(theirs)


def test_the_installed_lark_runs_nhipl_positions():
    callbacks = _parser().parser.parser.parser.callbacks
    assert callbacks and all(isinstance(c, _Positions) for c in callbacks.values())


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_policies(path):
    _same(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_texts(text):
    _same(text)


@settings(max_examples=300, deadline=None)
@given(text=policy_texts())
def test_generated_policies(text):
    _same(text)


def test_the_parse_tree_without_positions_is_caught():
    """The comparison itself can fail: a parser without positions differs."""
    from lark import Lark

    bare = Lark.open_from_package("nhipl.grammar", "nhipl.lark", parser="lalr", maybe_placeholders=True)
    text = 'permit any agent to call "x" when (args.n > 1);'
    assert _positions(bare.parse(text)) != _positions(LARKS.parse(text))
