"""The formatter's three parts, each doing its own job: the unparser writes one line
whatever its length, the layout breaks it, comment placement says where comments go."""

from __future__ import annotations

import nhipl.fmt
from nhipl.fmt import LINE_LENGTH, format_text, parse_module
from nhipl.fmt.comments import comment_inside
from nhipl.fmt.unparse import format_expr

LONG = (
    'permit any agent to call "crm.update" when request.args.customer_tier == "enterprise-plus"'
    ' and request.args.region == "eu-west-1" and request.args.amount < 100000;\n'
)


def test_the_unparser_writes_one_line_and_the_layout_breaks_it():
    rule = parse_module(LONG).items[0]
    condition = format_expr(rule.when)
    assert "\n" not in condition and len(condition) > LINE_LENGTH - len("    when ")
    out = format_text(LONG)
    assert out.splitlines()[1:] == [
        '    when request.args.customer_tier == "enterprise-plus"',
        '     and request.args.region == "eu-west-1"',
        "     and request.args.amount < 100000;",
    ]
    assert all(len(line) <= LINE_LENGTH for line in out.splitlines())


def test_a_comment_inside_a_rule_is_seen_and_one_after_it_is_not():
    text = 'permit any agent to call "x" # inside\n    grant ttl 5m;  # after\n'
    module = parse_module(text)
    rule = module.items[0]
    inside, after = sorted(module.comments, key=lambda c: c.line)
    assert comment_inside([inside], rule.span)
    assert not comment_inside([after], rule.span)
    assert not comment_inside([inside], None)
    # the comment inside keeps the rule broken; the one after trails its last line
    assert format_text(text) == 'permit any agent to call "x"  # inside\n    grant ttl 5m;  # after\n'


def test_the_public_api_is_importable_from_the_package():
    for name in nhipl.fmt.__all__:
        assert getattr(nhipl.fmt, name) is not None, name
