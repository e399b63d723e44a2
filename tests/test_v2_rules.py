"""Version 2, the rules half, beyond the table-driven cases: explain, where attenuation
may be stated, `import ... except`, credential invariants and formatting."""

from __future__ import annotations

import json

import pytest

import nhipl
from nhipl.fmt import format_text, parse_module, same_policies
from nhipl.testing import run_files

from .cli import run, write_policy

DEPLOY = """attenuate delegation;

@id("hand")
permit agent "spiffe://x/coder" to delegate "spiffe://x/deployer"
    for call "deploy.*" on "env:staging"
    when task.intent == "release";

@id("no-prod")
forbid any agent to call "deploy.*" when resource == "env:prod";

@id("deploy")
permit agent "spiffe://x/deployer" to call "deploy.*";
"""

STEP = {
    "principal": "spiffe://x/deployer",
    "tool": "deploy.run",
    "resource": "env:staging",
    "task": {"intent": "release"},
    "delegation": {"chain": ["spiffe://x/coder"]},
}


# ---- explain -----------------------------------------------------------------------------


def test_explain_traces_each_identity_rule_by_rule():
    policies = nhipl.loads(DEPLOY, source="deploy.nhipl")
    decision = policies.evaluate(STEP, explain=True)
    assert decision == policies.evaluate(STEP)  # the same decision, only explainable
    why = decision.explain()
    principal, coder = why.identities
    assert (principal.identity, principal.role, principal.effect, principal.determining) == ("spiffe://x/deployer", "principal", "allow", ("deploy",))
    assert [(r.rule, r.matched, r.determining) for r in principal.rules] == [("no-prod", False, False), ("deploy", True, True)]
    assert principal.rules[0].when is False
    assert (coder.identity, coder.next_hop, coder.effect) == ("spiffe://x/coder", "spiffe://x/deployer", "allow")
    hand = [r for r in coder.rules if r.rule == "hand"][0]
    assert (hand.hands_over, hand.resources, hand.when, hand.unless, hand.matched, hand.determining) == (True, True, True, None, True, True)
    assert hand.where == "deploy.nhipl:3"


def test_explain_gives_errors_and_a_failed_scope():
    policies = nhipl.loads(DEPLOY + '@id("needs-ticket") forbid any agent to call "deploy.*" unless args.ticket == "T1";\n')
    why = policies.explain({**STEP, "resource": "env:prod", "task": {"intent": "other"}})
    assert why.decision.effect == "deny"
    principal, coder = why.identities
    ticket = [r for r in principal.rules if r.rule == "needs-ticket"][0]
    assert ticket.unless == "the request has no `args`" and ticket.matched and ticket.determining
    hand = [r for r in coder.rules if r.rule == "hand"][0]
    assert (hand.resources, hand.when, hand.matched) == (False, False, False)
    text = why.text()
    assert "unless error: the request has no `args`" in text and "(hands the step over): did not match" in text


def test_explain_matches_the_decision_of_both_evaluators():
    policies = nhipl.loads(DEPLOY)
    for request in (STEP, {**STEP, "resource": "env:prod"}, {**STEP, "delegation": None}):
        assert policies.explain(request).decision == policies.evaluate(request)


def test_a_plain_decision_says_how_to_get_an_explanation():
    decision = nhipl.loads(DEPLOY).evaluate(STEP)
    with pytest.raises(ValueError, match="explain=True"):
        decision.explain()


def test_explain_of_a_schema_denial_names_no_rules():
    policies = nhipl.loads('tool "t" { args: { n: number } }\n@id("p") permit any agent to call "t";')
    why = policies.explain({"principal": "spiffe://x/a", "tool": "t", "args": {"n": "1"}})
    assert why.identities == () and "denied before any rule" in why.text()


def test_eval_explain_text_and_json(tmp_path):
    policy = write_policy(tmp_path, DEPLOY)
    request = tmp_path / "r.json"
    request.write_text(json.dumps(STEP))
    code, out, _ = run("eval", "-p", policy, "-r", request, "--explain")
    assert code == 0
    assert "spiffe://x/coder (delegator, delegated to `spiffe://x/deployer`): allow by `hand`" in out
    assert "permit `hand` at p.nhipl:3 (hands the step over): matched, determining" in out
    code, out, _ = run("eval", "-p", policy, "-r", request, "--explain", "--format", "json")
    data = json.loads(out)
    assert data["effect"] == "allow"
    assert [i["identity"] for i in data["explanation"]] == ["spiffe://x/deployer", "spiffe://x/coder"]
    assert data["explanation"][1]["rules"][0]["hands_over"] is True


# ---- where attenuation is stated ------------------------------------------------------------


def test_a_test_file_imports_the_policies_under_test_as_if_loaded_directly(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "policies" / "deploy.nhipl").write_text(DEPLOY)
    (tmp_path / "tests" / "deploy_test.nhipl").write_text(
        'import "../policies/deploy.nhipl";\n'
        'test "handed over" { request { principal: "spiffe://x/deployer", tool: "deploy.run", resource: "env:prod",'
        ' task: { intent: "release" }, delegation: { chain: ["spiffe://x/coder"] } } expect deny by "no-prod" }\n'
    )
    result = run_files([str(tmp_path / "tests" / "deploy_test.nhipl")], invariants=False)
    assert result.ok and result.passed == 1
    assert result.files[0].policies.attenuate


def test_an_import_of_an_import_may_not_state_attenuation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.nhipl").write_text('import "./b.nhipl";\n')
    (tmp_path / "b.nhipl").write_text("attenuate delegation;\n")
    with pytest.raises(nhipl.PolicyError) as info:
        nhipl.load(str(tmp_path / "a.nhipl"))
    assert info.value.diagnostics[0].code == "attenuate-in-import"


def test_folder_files_are_loaded_directly(tmp_path):
    (tmp_path / "a.nhipl").write_text("attenuate delegation;\n")
    (tmp_path / "b.nhipl").write_text('permit any agent to call "x";\n')
    assert nhipl.load(str(tmp_path)).attenuate


# ---- import ... except ---------------------------------------------------------------------


def test_except_leaves_the_rules_out_of_the_policy_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib.nhipl").write_text('@id("a") forbid any agent to call "x";\ntask "t" { @id("b") forbid any agent to call "x"; }\n')
    policies = nhipl.loads('import "./lib.nhipl" except "a", "b";\n@id("p") permit any agent to call "x";', source="main.nhipl")
    assert [r.id for r in policies.rules] == ["p"]
    assert policies.evaluate({"principal": "s", "tool": "x", "task": {"intent": "t"}}).effect == "allow"


# ---- credential invariants -------------------------------------------------------------------


def test_never_grant_ttl_holds_and_fails(tmp_path):
    test_file = tmp_path / "cred_test.nhipl"
    test_file.write_text(
        'agent "spiffe://a/x" { max_credential_ttl: 10m }\n'
        '@id("short") permit any agent to call "github.*" grant ttl 5m;\n'
        '@id("long") permit agent "spiffe://a/y" to call "vault.*" grant ttl 1h;\n'
        '@id("none") permit agent "spiffe://a/z" to call "web.*";\n'
        'invariant "github is short-lived" { never grant ttl > 15m to call "github.*" }\n'
        'invariant "vault for x" { never grant ttl > 15m to call "vault.*" when principal.id == "spiffe://a/x" }\n'
        'invariant "everything" { never grant ttl > 15m }\n'
    )
    result = run_files([str(test_file)], max_examples=200)
    held = {r.invariant.name: r.holds for r in result.files[0].invariants}
    assert held == {"github is short-lived": True, "vault for x": True, "everything": False}
    failing = [r for r in result.files[0].invariants if not r.holds][0]
    assert failing.decision.effect == "allow"
    assert failing.decision.credential_ttl is None or failing.decision.credential_ttl > 900


def test_nhipl_test_reports_a_credential_invariant(tmp_path):
    test_file = tmp_path / "cred_test.nhipl"
    test_file.write_text('@id("long") permit any agent to call "vault.read" grant ttl 1h;\ninvariant "short" { never grant ttl > 15m }\n')
    code, out, _ = run("test", test_file)
    assert code == 1
    assert "never grant ttl > 15m, but this request is allow by \"long\" with credential ttl 3600s" in out


# ---- fmt ----------------------------------------------------------------------------------------

NEW_SYNTAX = """import "baseline" except "baseline/sensitive-tag-approval",   "baseline/delegation-depth" ;  # keep this
tool "email.send" { tags: ["x"], args: { to: string, cc: list?   } }
# hands over
permit agent "spiffe://acme.org/agents/coder" to delegate "spiffe://acme.org/agents/deployer" for call,issue_credential "deploy.*", "vault.read_secret" on "env:*" when task.intent == "release" grant ttl 5m;
invariant "s" { never grant ttl > 15m to call "x", "y" when true }
invariant "s2" {
  never grant ttl >   15m   # why
}
"""


def test_fmt_formats_the_new_constructs_canonically_and_keeps_comments():
    out = format_text(NEW_SYNTAX)
    assert 'import "baseline" except "baseline/sensitive-tag-approval", "baseline/delegation-depth";  # keep this' in out
    assert 'tool "email.send" { tags: ["x"], args: { to: string, cc: list? } }' in out
    assert '    for call, issue_credential "deploy.*", "vault.read_secret" on "env:*"\n' in out
    assert "never grant ttl > 15m to call \"x\", \"y\" when true" in out
    assert "never grant ttl > 15m  # why" in out
    assert format_text(out) == out
    assert same_policies(parse_module(out), parse_module(NEW_SYNTAX))


# ---- the exact analysis ----------------------------------------------------------------------


def _prove(text: str, invariant: str):
    pytest.importorskip("z3")
    from nhipl.analyze import prove

    policies = nhipl.loads(text + invariant)
    (_, inv), = policies.invariants
    return prove(policies, inv)


HANDING = """attenuate delegation;
@id("hand") permit agent "spiffe://x/coder" to delegate "spiffe://x/deployer" for call "deploy.*" on "env:staging";
@id("all") permit agent "spiffe://x/deployer" to call "*";
"""


def test_the_analysis_encodes_scoped_delegation():
    # a delegated step outside the for scope is never allowed ...
    coder = '"spiffe://x/coder" in delegation.chain and not ("spiffe://x/deployer" in delegation.chain)'
    held = _prove(HANDING, f'invariant "i" {{ never allow agent "spiffe://x/deployer" to call "db.drop" when {coder} }}')
    assert held.holds
    outside = _prove(HANDING, f'invariant "i" {{ never allow agent "spiffe://x/deployer" to call "deploy.run" on "env:prod" when {coder} }}')
    assert outside.holds
    # ... and one inside it is, with the coder as delegator (confirmed by the evaluator)
    refuted = _prove(HANDING, f'invariant "i" {{ never allow agent "spiffe://x/deployer" to call "deploy.run" when {coder} }}')
    assert not refuted.holds
    assert refuted.counterexample["delegation"]["chain"][-1] == "spiffe://x/coder"
    assert refuted.counterexample["resource"] == "env:staging"


def test_the_analysis_refuses_argument_schemas_rather_than_answer_wrongly():
    pytest.importorskip("z3")
    from nhipl.analyze import Unsupported

    with pytest.raises(Unsupported) as info:
        _prove('tool "t" { args: { n: number } }\n@id("p") permit any agent to call "t";\n', 'invariant "i" { never deny call "t" }')
    assert "argument schemas" in info.value.render() and info.value.render().startswith("<string>:1:1: ")


def test_invariant_search_fills_arguments_a_schema_requires(tmp_path):
    """No rule reads `to` or `subject`, yet a request without them is denied by the schema:
    the search must still reach the permit, or the invariant would hold vacuously."""
    test_file = tmp_path / "schema_test.nhipl"
    test_file.write_text(
        'tool "email.send" { args: { to: string, subject: string, cc: list? } }\n'
        '@id("mail") permit any agent to call "email.send" grant ttl 1h;\n'
        'invariant "mail is short-lived" { never grant ttl > 15m to call "email.send" }\n'
        'invariant "never mail" { never allow call "email.send" }\n'
    )
    result = run_files([str(test_file)], max_examples=100)
    assert [r.holds for r in result.files[0].invariants] == [False, False]
    assert all(set(r.counterexample["args"]) >= {"to", "subject"} for r in result.files[0].invariants)


# ---- the language server ------------------------------------------------------------------------


def test_the_language_server_lists_and_runs_a_credential_invariant(tmp_path):
    from nhipl.lsp.analysis import analyse
    from nhipl.lsp.lenses import INVARIANT, lenses, run as run_lens
    from nhipl.lsp.symbols import document_symbols

    path = tmp_path / "cred_test.nhipl"
    text = '@id("long") permit any agent to call "vault.read" grant ttl 1h;\ninvariant "short" { never grant ttl > 15m }\n'
    path.write_text(text)
    analysis = analyse(text, str(path), lint=False)
    assert [(s.name, s.detail) for s in document_symbols(analysis)][-1] == ("short", "invariant: never grant ttl > 15m")
    (lens,) = [lens for lens in lenses(analysis) if lens.kind == INVARIANT]
    outcome = run_lens(analysis, INVARIANT, "short", lens.line, max_examples=50)
    assert not outcome.passed and "never grant ttl > 15m, but this request is allow" in outcome.detail
