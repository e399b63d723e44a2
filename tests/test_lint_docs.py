"""Every lint rule is documented in docs/lint.md with a bad example that
triggers it and a good example that lints clean; the examples are run here."""

from __future__ import annotations

import pathlib
import re

import pytest

from nhipl.lint import RULES, lint_text

from .docblocks import code_blocks

DOC = pathlib.Path(__file__).parent.parent / "docs" / "lint.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = [
    (kind, code, block.text, block.line)
    for block in code_blocks(DOC)
    if len(parts := block.info.split()) == 3 and parts[0] == "nhipl" and (kind := parts[1]) in ("bad", "good") and re.fullmatch(r"NHI\d{3}", code := parts[2])
]


def test_every_rule_has_a_section_a_bad_and_a_good_example():
    for code, rule in RULES.items():
        assert f"### {code}\n" in TEXT, f"{code} has no section"
        assert f"**{rule.name}**" in TEXT, f"{code}: section does not name `{rule.name}`"
        assert {kind for kind, c, _, _ in BLOCKS if c == code} == {"bad", "good"}, code
        for tag in rule.maps:
            assert f"`{tag}`" in TEXT, f"{code}: docs do not list {tag}"


def test_rule_table_lists_every_code_with_its_default_severity():
    for code, rule in RULES.items():
        assert re.search(rf"^\| {code} \| {rule.name} \| {rule.severity} \|", TEXT, re.M), code


@pytest.mark.parametrize("kind,code,policy,line", BLOCKS, ids=[f"{c}-{k}" for k, c, _, _ in BLOCKS])
def test_doc_example(kind, code, policy, line):
    findings = lint_text(policy, f"lint.md:{line}")
    codes = [f.code for f in findings]
    if kind == "bad":
        assert code in codes, codes
    else:
        assert findings == [], [f.render() for f in findings]
