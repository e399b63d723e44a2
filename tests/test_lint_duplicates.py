"""NHI005 (duplicate rules) and NHI006 (subsumed rules) compare a rule only with the rules
that could repeat or cover it: the same findings as comparing every pair, in far fewer
comparisons."""

from __future__ import annotations

from hypothesis import given

import nhipl
from nhipl.lint import LintConfig
from nhipl.lint import rules as lint_rules
from nhipl.lint.rules import Facts, RawFinding, check_duplicates

from .policygen import policy_texts


def every_pair(facts: Facts) -> list[RawFinding]:
    """The checks' meaning written the plain way: every rule against every rule."""
    rules = facts.rules
    out: list[RawFinding] = []
    duplicates: set[str] = set()
    for j, later in enumerate(rules):
        if not facts.is_user(later.span):
            continue
        for earlier in rules[:j]:
            if lint_rules._same_rule(earlier, later):
                duplicates.add(later.id)
                out.append(RawFinding("NHI005", f"rule `{later.id}` repeats `{earlier.id}`", facts.head(later),
                                      later.span, later.id, "remove one of the two"))
                break
    for narrow in rules:
        if narrow.id in duplicates or not facts.is_user(narrow.span) or narrow.id in facts.shadowed:
            continue
        for broad in rules:
            if broad is narrow or lint_rules._same_rule(broad, narrow):
                continue
            if lint_rules._subsumes(broad, narrow):
                out.append(RawFinding(
                    "NHI006", f"rule `{narrow.id}` is subsumed by `{broad.id}`, which matches every request it matches",
                    facts.head(narrow), narrow.span, narrow.id, f"remove `{narrow.id}`, or narrow `{broad.id}`"))
                break
    return out


def facts_of(text: str) -> Facts:
    policies = nhipl.loads(text, source="p.nhipl")
    return Facts(policies, LintConfig(), {"p.nhipl"}, {"p.nhipl": text.split("\n")})


@given(policy_texts())
def test_the_same_findings_as_comparing_every_pair(text):
    facts = facts_of(text)
    assert list(check_duplicates(facts)) == every_pair(facts)


def test_repeated_and_covered_rules_in_a_large_policy():
    text = many_rules(1500)
    facts = facts_of(text)
    found = list(check_duplicates(facts))
    assert found == every_pair(facts)
    codes = {(f.code, f.rule_id) for f in found}
    assert ("NHI005", "again-7") in codes and ("NHI006", "op-253") in codes


def many_rules(n: int) -> str:
    """``n`` permits on distinct tools of 50 services, a whole-service permit for one of them
    and a repeat of one rule: a policy where every rule has the same effect and action."""
    lines = ['@id("svc3") permit agent in "g1" to call "svc3.*" grant ttl 5m;']
    for i in range(n):
        lines.append(f'@id("op-{i}") permit agent in "g{i % 7}" to call "svc{i % 50}.op{i}" grant ttl 5m;')
    lines.append('@id("again-7") permit agent in "g0" to call "svc7.op7" grant ttl 5m;')
    return "\n".join(lines) + "\n"


def test_comparisons_grow_linearly_with_the_rules():
    """Comparing every pair would make about n² comparisons (2.25 million for 1,500 rules);
    bucketing keeps them to a few per rule."""
    counts = {}
    for n in (300, 1500):
        facts = facts_of(many_rules(n))
        list(check_duplicates(facts))
        counts[n] = facts.index.comparisons
        assert counts[n] <= 3 * n
    assert counts[1500] <= 6 * counts[300]
