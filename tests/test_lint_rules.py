"""Lint rules beyond the documented examples: edge cases of each check,
suppression comments, findings only in the user's files, and the glob and
condition analysis the checks stand on."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nhipl.lint import LintConfig, lint_paths, lint_text
from nhipl.lint.analysis import constant_value, glob_covers, globs_overlap
from nhipl.fmt import parse_module
from nhipl.values import glob_match


def codes(text: str, config: LintConfig | None = None) -> list[str]:
    return [f.code for f in lint_text(text, "p.nhipl", config)]


PAY = 'tool "payments.*" { sensitive: true }\n'
GATE = '@id("gate") require approval for any agent to call "payments.*";\n'


# ---- NHI001 shared identity -------------------------------------------------------------


@pytest.mark.parametrize(
    "subject,reported",
    [
        ("any agent", True),
        ('agent "*"', True),
        ('agent "spiffe://*"', True),
        ('agent "spiffe://acme.org/*"', True),
        ('agent "spiffe://acme.*"', True),
        ('agent "spiffe://acme.org/agents/billing/*"', False),
        ('agent "spiffe://acme.org/agents/billing"', False),
        ('agent in "finance"', False),
    ],
)
def test_shared_identity_subjects(subject, reported):
    text = PAY + GATE + f'@id("p") permit {subject} to call "payments.send" grant ttl 5m;'
    assert ("NHI001" in codes(text)) == reported


def test_shared_identity_needs_a_sensitive_tool():
    assert codes('tool "search.*" { tags: ["read-only"] }\n@id("p") permit any agent to call "search.web" grant ttl 5m;') == []
    tagged = 'tool "vault.read" { tags: ["secrets"] }\n@id("g") require approval for any agent to call "vault.*";\n'
    assert codes(tagged + '@id("p") permit any agent to call "vault.*" grant ttl 5m;') == ["NHI001"]


def test_sensitive_tags_are_configurable():
    text = 'tool "crm.*" { tags: ["pii"] }\n@id("p") permit any agent to call "crm.export" grant ttl 5m;'
    assert codes(text) == []
    assert set(codes(text, LintConfig(sensitive_tags=frozenset({"pii"})))) == {"NHI001", "NHI003"}


# ---- NHI002 standing privilege ----------------------------------------------------------


def test_ttl_ceiling_is_configurable():
    text = '@id("p") permit agent in "g" to call "x.read" grant ttl 30m;'
    assert codes(text) == []
    assert codes(text, LintConfig(max_ttl=600)) == ["NHI002"]


def test_declared_max_credential_ttl_bounds_a_permit_without_ttl():
    decl = 'agent "spiffe://a/x" { max_credential_ttl: 10m }\nagent "spiffe://a/y" { max_credential_ttl: 2h }\n'
    assert codes(decl + '@id("p") permit agent "spiffe://a/x" to call "t";') == []
    assert codes(decl + '@id("p") permit agent "spiffe://a/y" to call "t";') == ["NHI002"]
    assert codes(decl + '@id("p") permit agent "spiffe://a/x", "spiffe://a/z" to call "t";') == ["NHI002"]


# ---- NHI003 gates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gate,gated",
    [
        ('@id("g") require approval for any agent to call "payments.*";', True),
        ('@id("g") require approval for agent in "fin" to call "payments.send";', True),
        ('@id("g") forbid any agent to call "*" unless approval.granted;', True),
        ('@id("g") forbid any agent to call "*" when tool.sensitive and not approval.granted;', True),
        ('@id("g") require approval for agent in "other" to call "payments.*";', False),  # another subject
        ('@id("g") require approval for any agent to call "email.*";', False),  # another tool
        ('@id("g") require approval for any agent to call "payments.*" on "acct:*";', False),  # only with a resource
        ('@id("g") forbid any agent to call "payments.*" when args.amount > 100;', False),  # not an approval gate
        ('import "baseline";', True),
    ],
)
def test_approval_gates(gate, gated):
    text = PAY + gate + '\n@id("p") permit agent in "fin" to call "payments.send" grant ttl 5m;'
    assert ("NHI003" in codes(text)) == (not gated)


def test_a_permit_conditioned_on_approval_is_gated():
    assert codes(PAY + '@id("p") permit agent in "fin" to call "payments.send" when approval.granted grant ttl 5m;') == []


# ---- NHI004 / NHI005 / NHI006 -------------------------------------------------------------


def test_conditional_forbid_does_not_shadow():
    text = '@id("f") forbid any agent to call "x.*" when args.a == 1;\n@id("p") permit agent in "g" to call "x.y" grant ttl 5m;'
    assert codes(text) == []


def test_forbid_limited_to_a_task_shadows_only_inside_it():
    inside = 'task "t" { @id("f") forbid any agent to call "x.*"; @id("p") permit agent in "g" to call "x.y" grant ttl 5m; }'
    outside = '@id("p") permit agent in "g" to call "x.y" grant ttl 5m;\ntask "t" { @id("f") forbid any agent to call "x.*"; }'
    assert codes(inside) == ["NHI004"]  # the block has a permit, shadowed as it is
    assert "NHI004" not in codes(outside)


def test_shadowed_approval_rule():
    text = '@id("p") permit agent in "g" to call "x.y" grant ttl 5m;\n@id("f") forbid any agent to call "x.*";\n@id("a") require approval for any agent to call "x.y";'
    assert set(codes(text)) == {"NHI004"} and codes(text).count("NHI004") == 2


def test_duplicates_ignore_ids_and_target_order():
    text = '@id("a") permit agent in "g" to call "x", "y" grant ttl 5m;\n@id("b") permit agent in "g" to call "y", "x" grant ttl 5m because "same";'
    assert codes(text) == ["NHI005"]


def test_different_conditions_are_not_duplicates_or_subsumed():
    text = '@id("a") permit agent in "g" to call "x.*" when args.a == 1 grant ttl 5m;\n@id("b") permit agent in "g" to call "x.y" when args.a == 2 grant ttl 5m;'
    assert codes(text) == []


def test_subsumed_forbid():
    text = '@id("p") permit agent in "g" to call "x.*" grant ttl 5m;\n@id("f1") forbid any agent to call "x.*" when args.a == 1;\n@id("f2") forbid agent in "g" to call "x.y" when args.a == 1;'
    assert codes(text) == ["NHI006"]


# ---- NHI007 / NHI008 delegation ------------------------------------------------------------


def test_depth_bound_from_a_covering_forbid():
    text = 'attenuate delegation;\n@id("p") permit agent in "g" to delegate "spiffe://a/*" grant ttl 5m;\n'
    assert codes(text) == ["NHI007"]
    assert codes(text + '@id("f") forbid any agent to delegate "*" when delegation.depth >= 3;') == []
    assert "NHI007" in codes(text + '@id("f") forbid any agent to delegate "spiffe://b/*" when delegation.depth >= 3;')
    assert codes('import "owasp-agentic";\nattenuate delegation;\n@id("p") permit agent in "g" to delegate "spiffe://a/*" grant ttl 5m;') == []
    # the library does not turn attenuation on (an import never changes how rules combine)
    assert "NHI008" in codes('import "owasp-agentic";\n@id("p") permit agent in "g" to delegate "spiffe://a/*" grant ttl 5m;')


# ---- NHI009 unknown attributes ----------------------------------------------------------------


def test_unknown_attribute_did_you_mean():
    [finding] = lint_text('@id("p") permit agent in "g" to call "x" when principal.ownr == "a" grant ttl 5m;', "p.nhipl")
    assert finding.code == "NHI009" and finding.help == "did you mean `owner`?"
    assert (finding.span.line, finding.span.column) == (1, 47)


@pytest.mark.parametrize(
    "condition,reported",
    [
        ('principal.team == "a"', True),  # nothing defines it
        ('tool.risk == "high"', True),
        ("credential.holder == principal.id", False),  # a stdlib convention
        ('principal.status == "active"', False),
        ('args.recipient == "x"', False),  # caller-chosen keys are open...
        ('context.anything == 1', False),
        ("task.intent == \"x\" and task.owner == \"y\"", False),
        ("delegation.depth < 2", False),
        ("principal has tean", True),  # `has` names are references too
    ],
)
def test_unknown_attributes(condition, reported):
    text = f'@id("p") permit agent in "g" to call "x" when {condition} grant ttl 5m;'
    assert ("NHI009" in codes(text)) == reported


def test_attributes_known_from_declarations_tests_and_other_rules():
    assert "NHI009" not in codes('agent "spiffe://a/x" { team: "t" }\n@id("p") permit agent in "g" to call "x" when principal.team == "t" grant ttl 5m;')
    assert "NHI009" not in codes('tool "x" { risk: "low" }\n@id("p") permit agent in "g" to call "x" when tool.risk == "low" grant ttl 5m;')
    two = '@id("p") permit agent in "g" to call "x" when principal.team == "t" grant ttl 5m;\n@id("q") permit agent in "g" to call "y" when principal.team == "u" grant ttl 5m;'
    assert "NHI009" not in codes(two)


def test_open_roots_report_only_near_misses():
    text = '@id("p") permit agent in "g" to call "x" when args.recipient == "a" grant ttl 5m;\n@id("q") permit agent in "g" to call "y" when args.recipent == "a" grant ttl 5m;'
    findings = lint_text(text, "p.nhipl")
    assert [(f.code, f.rule_id, f.help) for f in findings] == [("NHI009", "q", "did you mean `recipient`?")]


# ---- NHI010 constant conditions ----------------------------------------------------------------


def _cond(text: str, intent: str | None = None):
    rule = parse_module(f'permit any agent to call "x" when {text};').rules()[0]
    return constant_value(rule.when, intent)


@pytest.mark.parametrize(
    "text,value",
    [
        ("1 == 1", True), ('"a" != "a"', False), ("5m > 60", True), ("true", True), ("not false", True),
        ("args.a == args.a", True), ("args.a != args.a", False), ("args.a == 1 and args.a == 2", False),
        ("args.a == 1 and args.a == 1", None), ("args.a in []", False), ('"x" in ["x", "y"]', True),
        ("args.a == 1 or true", True), ("args.a == 1 and false", False), ("delegation.depth < 0", False),
        ("delegation.depth >= 0", True), ("0 <= delegation.depth", True), ("delegation.depth == 1.5", False),
        ("delegation.depth < 3", None), ("delegation has depth", True), ("tool has name", True),
        ("approval has granted", None), ('"abc" startswith "a"', True), ('"abc" matches "*c"', True),
        ("args.a == 1", None), ("1 < \"a\"", None),
    ],
)
def test_constant_values(text, value):
    assert _cond(text) is value


def test_task_block_fixes_the_intent():
    assert _cond('task.intent == "t"', "t") is True
    assert _cond('task.intent != "t"', "t") is False
    assert _cond('"u" == task.intent', "t") is False
    assert _cond("task has intent", "t") is True
    assert _cond('task.intent == "t"') is None


def test_constant_parts_are_reported_once_at_the_outermost_node():
    findings = lint_text('@id("p") permit agent in "g" to call "x" when args.a == 1 and (1 == 1 and 2 == 2) grant ttl 5m;', "p.nhipl")
    assert [f.message for f in findings] == ["condition `1 == 1 and 2 == 2` in `p` is always true"]


def test_unless_always_true_means_never_matches():
    [finding] = lint_text('@id("p") permit agent in "g" to call "x" unless true grant ttl 5m;', "p.nhipl")
    assert finding.code == "NHI010" and finding.help == "the rule can never match"


# ---- NHI011 / NHI012 ------------------------------------------------------------------------------


def test_empty_task_block():
    assert codes('task "t" { }') == ["NHI011"]


def test_dead_rules_only_in_a_set_with_permits():
    assert codes('@id("f") forbid any agent to call "x.*";') == []  # a guard library
    assert codes('@id("p") permit agent in "g" to call "y.read" grant ttl 5m;\n@id("f") forbid any agent to call "x.*";') == ["NHI012"]
    # different subjects that can never meet
    text = '@id("p") permit agent "spiffe://a/x" to call "y" grant ttl 5m;\n@id("f") forbid agent "spiffe://b/*" to call "y";'
    assert codes(text) == ["NHI012"]


# ---- suppression --------------------------------------------------------------------------------

BAD = '@id("p") permit agent in "g" to call "x";'


@pytest.mark.parametrize(
    "text,suppressed",
    [
        (BAD + "  # nhipl: ignore[NHI002]", True),
        (BAD + "  # nhipl: ignore[nhi002, NHI003]", True),
        (BAD + "  # nhipl: ignore", True),
        (BAD + "  # nhipl: ignore[NHI003]", False),
        ("# nhipl: ignore[NHI002]\n" + BAD, True),
        ("# nhipl: ignore[NHI002]\n# why: legacy reader\n" + BAD, True),
        ("# nhipl: ignore[NHI002]\n\n" + BAD, False),  # a blank line ends the comment block
        ('@id("p")\n# nhipl: ignore[NHI002]\npermit agent in "g"\n    to call "x";', True),
        ('@id("p") permit agent in "g" to call "x";\n# nhipl: ignore[NHI002]', False),  # below the rule
        (BAD + "  # not a nhipl: ignore[NHI002] marker", False),
    ],
)
def test_suppression_comments(text, suppressed):
    assert (codes(text) == []) == suppressed


def test_config_disables_and_reweights_rules():
    assert codes(BAD, LintConfig(enabled=frozenset({"NHI001"}))) == []
    [finding] = lint_text(BAD, "p.nhipl", LintConfig(severity={"NHI002": "error"}))
    assert finding.severity == "error"
    assert codes(BAD, LintConfig(severity={"NHI002": "off"})) == []


# ---- where findings are reported ----------------------------------------------------------------


def test_findings_only_in_the_users_files(tmp_path):
    (tmp_path / "common.nhipl").write_text('@id("c") permit agent in "g" to call "c";\n')
    (tmp_path / "main.nhipl").write_text('import "./common.nhipl";\nimport "owasp-nhi";\n@id("m") permit agent in "g" to call "m" grant ttl 5m;\n')
    findings = lint_paths([tmp_path / "main.nhipl"])
    assert [(f.code, f.span.source.endswith("common.nhipl")) for f in findings] == [("NHI002", True)]


def test_findings_are_sorted_by_position():
    text = '@id("b") permit agent in "g" to call "b";\n@id("a") permit agent in "g" to call "a";\n'
    assert [f.rule_id for f in lint_text(text, "p.nhipl")] == ["b", "a"]


# ---- glob analysis against brute force ------------------------------------------------------------

globs = st.text(alphabet="ab*", max_size=4)
STRINGS = ["".join(p) for n in range(9) for p in itertools.product("ab", repeat=n)]


@settings(max_examples=300, deadline=None)
@given(globs, globs)
def test_glob_overlap_and_cover_agree_with_brute_force(a, b):
    in_a = {s for s in STRINGS if glob_match(a, s)}
    in_b = {s for s in STRINGS if glob_match(b, s)}
    assert globs_overlap(a, b) == bool(in_a & in_b)
    if glob_covers(a, b):  # sound: containment is never claimed falsely
        assert in_b <= in_a
    if "*" not in b:
        assert glob_covers(a, b) == (b in in_a)


@pytest.mark.parametrize(
    "first,second,reported",
    [
        ("args.recipient", "args.recipeint", True),  # swapped letters
        ("args.amount", "args.amout", True),  # a deleted letter
        ("provenance.email", "provenance.email_id", False),  # a different key
        ("provenance.command", "provenance.company", False),  # two letters apart: a real word
        ("args.to", "args.t", False),  # too short to judge
    ],
)
def test_open_root_typos_are_one_edit_away(first, second, reported):
    text = (
        f'@id("p") permit agent in "g" to call "x" when {first} == "a" grant ttl 5m;\n'
        f'@id("q") permit agent in "g" to call "y" when {second} == "a" grant ttl 5m;'
    )
    assert ("NHI009" in codes(text)) == reported


def test_true_and_1_are_different_conditions():
    text = (
        '@id("a") permit agent in "g" to call "x" when args.flag == true grant ttl 5m;\n'
        '@id("b") permit agent in "g" to call "x" when args.flag == 1 grant ttl 5m;\n'
    )
    assert codes(text) == []


@pytest.mark.parametrize(
    "gates,gated",
    [
        ('@id("g1") require approval for any agent to call "payments.send";'
         '@id("g2") require approval for any agent to call "payments.refund";', True),
        ('@id("g1") require approval for any agent to call "payments.send";', False),  # refund left ungated
    ],
)
def test_several_gates_together_cover_a_permit(gates, gated):
    text = PAY + gates + '\n@id("p") permit agent in "fin" to call "payments.send", "payments.refund" grant ttl 5m;'
    assert ("NHI003" in codes(text)) == (not gated)


# ---- NHI015 / NHI016 (language version 2) ---------------------------------------------------------


def test_scoped_delegation_without_attenuation():
    rule = '@id("h") permit agent "spiffe://a/c" to delegate "spiffe://a/d" for call "deploy.*" when delegation.depth < 2 grant ttl 5m;\n'
    assert "NHI015" in codes(rule)
    assert "NHI015" not in codes("attenuate delegation;\n" + rule)
    assert "NHI015" not in codes(rule.replace(' for call "deploy.*"', ""))


def test_unread_argument_schema():
    decl = 'tool "email.send" { args: { to: string } }\n'
    assert "NHI016" in codes(decl + '@id("m") permit any agent to call "email.send" grant ttl 5m;')
    assert "NHI016" not in codes(decl + '@id("m") permit any agent to call "email.*" when args.to == "a" grant ttl 5m;')
    assert "NHI016" not in codes(decl + '@id("m") forbid any agent to call "email.send" unless args has to;')
    assert "NHI016" not in codes('tool "email.send" { tags: ["x"] }\n@id("m") permit any agent to call "email.send" grant ttl 5m;')
