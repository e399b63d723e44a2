"""The parser never crashes: sentences of the grammar, random text and deeply
nested input either load or raise PolicyError — never another exception."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import nhipl
from nhipl.parse import _parser

LARK = _parser()


def _terminal_strategies():
    explicit = {}
    for term in LARK.terminals:
        pattern = term.pattern
        if term.name.startswith("_") and pattern.type == "re":
            word = re.match(r"[a-z_]+", pattern.value).group(0)
            explicit[term.name] = st.just(f" {word} ")
    explicit.update(
        {
            "NAME": st.sampled_from([" args ", " task ", " a ", " in ", " principal ", " x_1 "]),
            "STRING": st.sampled_from(['"x"', '"spiffe://a/b"', '"*"', '"a\\"b"', '""', '"\\q"']),
            "NUMBER": st.sampled_from([" 1 ", " -2 ", " 3.5 "]),
            "DURATION": st.sampled_from([" 5m ", " 10s ", " 1d "]),
            "BAD_DURATION": st.sampled_from([" 5min ", " 1.5h "]),
            "STRTEST": st.sampled_from([" matches ", " startswith ", " endswith ", " contains "]),
            "COMPARE": st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
            "COMMENT": st.just("# c\n"),
        }
    )
    return explicit


def _loads_or_policy_error(text: str) -> None:
    try:
        nhipl.loads(text, source="fuzz.nhipl")
    except nhipl.PolicyError as err:
        assert err.diagnostics
        assert "Traceback" not in err.render()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(from_lark(LARK, start="start", explicit=_terminal_strategies()))
def test_sentences_of_the_grammar(text):
    _loads_or_policy_error(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('permit forbid any agent to call "x*"; when () [] == and or not has in .\n#{}:,@id0123456789msh')), max_size=120))
def test_random_policy_like_text(text):
    _loads_or_policy_error(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_unicode_text(text):
    _loads_or_policy_error(text)


@pytest.mark.parametrize(
    "text",
    [
        'permit any agent to call "x" when ' + "(" * 5000 + "true" + ")" * 5000 + ";",
        'permit any agent to call "x" when ' + "not " * 5000 + "true;",
        'permit any agent to call "x" when args.a in ' + "[" * 5000 + "]" * 5000 + ";",
        'agent "a" { groups: ' + "[" * 5000 + "]" * 5000 + " }",
        "test \"t\" { request { principal: \"s\", tool: \"x\", args: " + "{a: " * 3000 + "1" + "}" * 3000 + " } expect deny }",
        'permit any agent to call "x" when ' + " and ".join(["true"] * 20000) + ";",
        'permit any agent to call "x" when ' + " or ".join(["args.a == 1"] * 5000) + ";",
        "(" * 100000,
    ],
    ids=["parens", "nots", "lists", "declaration-lists", "objects", "long-and", "long-or", "open-parens"],
)
def test_deep_nesting_never_overflows(text):
    _loads_or_policy_error(text)


@pytest.mark.parametrize("text", [
    'permit any agent to call "x" when ' + "not " * 500 + "true;",
    'permit any agent to call "x" when args.a in ' + "[" * 500 + "]" * 500 + ";",
])
def test_nesting_limit_is_a_policy_error_with_position(text):
    with pytest.raises(nhipl.PolicyError) as info:
        nhipl.loads(text, source="deep.nhipl")
    assert info.value.code == "nesting-too-deep"
    assert info.value.line == 1


def test_redundant_parentheses_do_not_nest():
    text = '@id("p") permit any agent to call "x" when ' + "(" * 5000 + "true" + ")" * 5000 + ";"
    assert nhipl.loads(text).evaluate({"principal": "s", "tool": "x"}).effect == "allow"


def test_long_flat_conditions_load_and_evaluate():
    text = '@id("p") permit any agent to call "x" when ' + " and ".join(["true"] * 20000) + ";"
    policies = nhipl.loads(text)
    assert policies.evaluate({"principal": "s", "tool": "x"}).effect == "allow"
