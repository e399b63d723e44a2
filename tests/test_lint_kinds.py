"""The linter's dispatches over expression and subject kinds handle every kind: each is a
`match` that ends in `assert_never`, and this runs one node of every kind through each, so a
kind added to the AST without a case fails here, not on a user's policy."""

from __future__ import annotations

from typing import get_args

import pytest

from nhipl import ast as A
from nhipl.lint import analysis as an
from nhipl.lint import lint_text

from .test_expression_kinds import SAMPLES

SUBJECTS = {
    A.AnyAgent: A.AnyAgent(),
    A.AgentIds: A.AgentIds(("spiffe://acme.org/*",)),
    A.AgentGroup: A.AgentGroup("ops"),
}


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.__name__)
def test_every_expression_kind_through_the_lint_analysis(kind):
    expr = SAMPLES[kind]
    value = an.constant_value(expr)
    assert value in (True, False, None)
    assert all(v in (True, False) for _, v in an.constant_parts(expr))
    ok, _ = an._constant_operand(expr)
    assert ok == (kind in (A.Literal, A.Duration))  # the list sample holds a path


def test_constant_values_by_kind():
    assert an.constant_value(A.Literal(True)) is True
    assert an.constant_value(A.Not(A.Literal(True))) is False
    assert an.constant_value(A.Path("context", ("n",))) is None
    assert an.constant_value(A.In(A.Literal(1), A.ListExpr(()))) is False
    assert an.constant_value(A.StringTest("endswith", A.Literal("ab"), A.Literal("b"))) is True


def test_the_subject_samples_cover_every_subject_kind():
    assert set(SUBJECTS) == set(get_args(A.Subject))


@pytest.mark.parametrize("outer", list(SUBJECTS), ids=lambda k: k.__name__)
@pytest.mark.parametrize("inner", list(SUBJECTS), ids=lambda k: k.__name__)
def test_every_subject_kind_through_the_lint_analysis(outer, inner):
    a, b = SUBJECTS[outer], SUBJECTS[inner]
    assert an.subject_covers(a, b) == (outer is A.AnyAgent or outer is inner)
    assert an.subjects_overlap(a, b) is True
    assert (an.broad_subject(a) is None) == (outer is A.AgentGroup)


def test_a_constant_part_found_under_every_boolean_kind():
    text = '@id("r") permit agent in "ops" to call "t" when not (context.n == 1 and (1 == 1 or context.m == 2)) grant ttl 5m;'
    assert [f.code for f in lint_text(text)] == ["NHI010"]
