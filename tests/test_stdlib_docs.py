"""docs/stdlib.md agrees with the policies: every ASI and NHI item has a row,
each row lists exactly the library rules whose @maps name the item, items
without rules say why, and every rule id the page names exists."""

from __future__ import annotations

import pathlib
import re
from collections import defaultdict

import pytest

import nhipl
from tests.test_docs import run_tests

from .docblocks import code_blocks

DOC_PATH = pathlib.Path(__file__).parent.parent / "docs" / "stdlib.md"
DOC = DOC_PATH.read_text(encoding="utf-8")
POLICIES = nhipl.loads('import "baseline"; import "owasp-agentic"; import "owasp-nhi";')
RULE_IDS = {r.id for r in POLICIES.rules}
MAPPED: dict[str, set[str]] = defaultdict(set)
for _rule in POLICIES.rules:
    for _tag in _rule.maps:
        MAPPED[_tag].add(_rule.id)

ITEMS = [f"ASI{i:02d}" for i in range(1, 11)] + [f"NHI{i}" for i in range(1, 11)]


def _row(item: str) -> list[str]:
    rows = [line for line in DOC.splitlines() if re.match(rf"\| {item} ", line)]
    assert len(rows) == 1, f"{item}: expected one table row, found {len(rows)}"
    cells = [c.strip() for c in rows[0].strip().strip("|").split("|")]
    assert len(cells) == 4, rows[0]
    return cells


@pytest.mark.parametrize("item", ITEMS)
def test_every_item_has_a_row_listing_exactly_its_rules(item):
    _, rules, _, why = _row(item)
    tag = f"owasp-asi:2026:{item}" if item.startswith("ASI") else f"owasp-nhi:2025:{item}"
    listed = set(re.findall(r"`([a-z-]+/[A-Za-z0-9-]+)`", rules))
    assert listed == MAPPED.get(tag, set()), item
    if not listed:
        assert why.startswith("Not covered"), f"{item} has no rule: the row must say why"
    assert why, f"{item}: say what a policy cannot cover"


def test_every_rule_id_named_on_the_page_exists():
    named = set(re.findall(r"`((?:baseline|owasp-agentic|owasp-nhi)/[A-Za-z0-9-]+)`", DOC))
    assert named - RULE_IDS == set()
    assert RULE_IDS - named == set(), "every library rule appears on the page"


def test_nist_table_matches_the_tags():
    for tag, rules in MAPPED.items():
        if not tag.startswith("nist-airmf:1.0:"):
            continue
        name = tag.split(":")[-1].replace("-", " ")
        rows = [line for line in DOC.splitlines() if line.startswith(f"| {name} (")]
        assert len(rows) == 1, tag
        assert set(re.findall(r"`([a-z-]+/[A-Za-z0-9-]+)`", rows[0])) == rules, tag


def test_the_examples_run():
    attenuation, example = [b.text for b in code_blocks(DOC_PATH, "nhipl")]
    policies = nhipl.loads(attenuation, "stdlib.md")
    assert policies.attenuate and run_tests(policies) == 2
    assert run_tests(nhipl.loads(example, "stdlib.md")) == 4
