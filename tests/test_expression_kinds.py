"""Every kind of expression is handled wherever the code dispatches on kinds.

Each dispatch is a `match` over the AST classes that ends in `assert_never`; this
test builds one node of every kind in `nhipl.ast.Expr` and runs it through each
of them, so a kind added to the AST without a case fails here, not on a user's
policy."""

from __future__ import annotations

from typing import get_args

import pytest

import nhipl
from nhipl import ast as A
from nhipl import interpret
from nhipl.conditions import compile_expr, shape
from nhipl.fmt import format_expr

PATH = A.Path("context", ("n",))
SAMPLES = {
    A.Literal: A.Literal(1),
    A.Duration: A.Duration(2, "m"),
    A.ListExpr: A.ListExpr((A.Literal(1), PATH)),
    A.Path: PATH,
    A.Not: A.Not(A.Compare("==", PATH, A.Literal(1))),
    A.And: A.And((A.Literal(True), A.Compare(">", PATH, A.Literal(0)))),
    A.Or: A.Or((A.Literal(False), A.Compare("<=", PATH, A.Literal(1)))),
    A.Compare: A.Compare("!=", PATH, A.Literal(2)),
    A.In: A.In(PATH, A.ListExpr((A.Literal(1), A.Literal(2)))),
    A.StringTest: A.StringTest("startswith", A.Path("tool", ("name",)), A.Literal("t")),
    A.Has: A.Has(A.Path("context"), "n"),
    A.Quantifier: A.Quantifier("any", "x", A.ListExpr((A.Literal(1), PATH)), A.Compare("==", A.Path("x"), A.Literal(1))),
    A.Call: A.Call("len", (A.Path("context"),)),
    A.Arith: A.Arith("-", PATH, A.Duration(1, "h")),
}


def test_the_samples_cover_every_expression_kind():
    assert set(SAMPLES) == set(get_args(A.Expr))


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.__name__)
def test_every_dispatch_handles_the_kind(kind):
    expr = SAMPLES[kind]
    text = format_expr(expr)
    assert shape(expr) is not None
    # both evaluators, on a rule whose condition is this expression (as a comparison)
    policies = nhipl.loads(f'permit any agent to call "t" when ({text}) != null;', source="p.nhipl")
    assert policies.rules[0].when.left == expr  # the formatter's text lowers back to the node
    request = {"principal": "a", "tool": "t", "context": {"n": 1}}
    assert interpret.evaluate(policies, request) == policies.evaluate(request)
    compile_expr(expr)
