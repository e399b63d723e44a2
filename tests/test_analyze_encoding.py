"""The SMT encoding, construct by construct: every answer is checked against the evaluator."""

from __future__ import annotations

import pytest

pytest.importorskip("z3")

import nhipl  # noqa: E402
from nhipl.analyze import Bounds, diff, prove, reach, rules  # noqa: E402


def _invariant(text: str, form: str):
    policies = nhipl.loads(text + f'\ninvariant "i" {{ {form} }}', source="t_test.nhipl")
    (_, inv), = policies.invariants
    return policies, prove(policies, inv)


def _diff(old: str, new: str, **kw):
    a, b = nhipl.loads(old, source="old.nhipl"), nhipl.loads(new, source="new.nhipl")
    result = diff(a, b, **kw)
    for d in result.differences:
        assert a.evaluate(d.request).effect == d.old.effect
        assert b.evaluate(d.request).effect == d.new.effect
    return result


@pytest.mark.parametrize("literal", [r"x\\u{41}", "x.(a)+[b]?", "x\\\\", "x😀"])
def test_glob_literals_are_escaped(literal):
    """A target that a regex or the solver's escapes would read differently is still literal."""
    plain = {r"x\\u{41}": "xA", "x.(a)+[b]?": "x.a", "x\\\\": "x", "x😀": "x"}[literal]
    result = _diff(f'permit any agent to call "{literal}";', f'permit any agent to call "{plain}";')
    assert result.widening and result.narrowing
    tools = {d.request["tool"] for d in result.differences}
    assert plain in tools and len(tools) == 2


def test_glob_star_in_the_middle():
    policies, result = _invariant('permit any agent to call "a*b*c";', 'never allow call "a*"')
    assert not result.holds
    tool = result.counterexample["tool"]
    assert tool.startswith("a") and tool.endswith("c") and "b" in tool[1:-1]


def test_an_erroring_permit_does_not_match_and_an_erroring_forbid_does():
    result = _diff(
        'permit any agent to call "t" when args.n > 1;',
        'permit any agent to call "t" when args.n == "big" or args.n > 1;',
    )
    assert result.widening  # short-circuit: `"big" > 1` is never evaluated
    assert any(d.request.get("args", {}).get("n") == "big" for d in result.differences)
    # an error on the left of `or` is the error of the whole: the permit does not match
    assert _diff(
        'permit any agent to call "t" when args.n > 1;',
        'permit any agent to call "t" when args.n > 1 or args.n == "big";',
    ).equivalent
    # a forbid whose condition errors denies: guarding it with `has` lets those requests through
    result = _diff(
        'permit any agent to call "t";\nforbid any agent to call "t" when args.n > 1;',
        'permit any agent to call "t";\nforbid any agent to call "t" when args has n and args.n > 1;',
    )
    assert result.widening and not result.narrowing
    for d in result.differences:
        assert d.old.errors and d.old.effect == "deny"


def test_a_non_boolean_condition_is_an_error():
    policies, result = _invariant('permit any agent to call "t" when args.flag;', 'never allow call "t"')
    assert not result.holds and result.counterexample["args"]["flag"] is True


def test_approval_gates_and_their_grant():
    text = 'permit any agent to call "pay";\nrequire approval for any agent to call "pay" when args.amount > 10;'
    _, result = _invariant(text.replace(" when args.amount > 10", ""), 'never allow call "pay" unless approval.granted')
    assert result.holds
    _, result = _invariant(text, 'never allow call "pay" unless approval.granted')
    assert not result.holds and result.counterexample["args"]["amount"] <= 10
    _, result = _invariant(text, 'never approval_required call "pay" when args has amount')
    amount = result.counterexample["args"]["amount"]
    assert not result.holds and (amount is not True and amount is not False and isinstance(amount, (int, float)) and amount > 10 or result.decision.errors)
    assert result.decision.effect == "approval_required"


def test_attenuation_holds_a_delegatee_to_its_delegators():
    text = (
        'attenuate delegation;\nagent "spiffe://x/boss" { groups: ["ops"] }\n'
        'permit any agent to call "deploy";\nforbid agent "spiffe://x/intern" to call "deploy";'
    )
    _, result = _invariant(text, 'never allow call "deploy" when "spiffe://x/intern" in delegation.chain')
    assert result.holds
    _, result = _invariant(text.replace("attenuate delegation;", ""), 'never allow call "deploy" when "spiffe://x/intern" in delegation.chain')
    assert not result.holds
    assert "spiffe://x/intern" in result.counterexample["delegation"]["chain"]


def test_the_chain_bound_is_an_assumption():
    text = 'permit any agent to call "t";\nforbid any agent to call "t" when delegation.depth >= 2;'
    _, result = _invariant(text, 'never allow call "t" when delegation.depth >= 1')
    assert not result.holds and len(result.counterexample["delegation"]["chain"]) == 1
    policies = nhipl.loads(text + '\ninvariant "i" { never allow call "t" when delegation.depth >= 2 }')
    (_, inv), = policies.invariants
    proof = prove(policies, inv, bounds=Bounds(chain=1))
    assert proof.holds and "delegation chains of at most 1 identities" in proof.assumptions


def test_credential_ttl_takes_the_smallest_grant_and_ceiling():
    old = 'agent "spiffe://x/a" { max_credential_ttl: 10m }\npermit any agent to call "t" grant ttl 5m;'
    result = _diff(old, old.replace("10m", "2m"))
    assert result.narrowing and not result.widening
    for d in result.differences:
        assert d.old.credential_ttl == 300 and d.new.credential_ttl == 120


def test_credential_age_is_now_minus_issued_at():
    text = 'permit any agent to call "pay";\nforbid any agent to call "pay" when credential.age > credential.ttl;'
    _, result = _invariant(text, 'never allow call "pay" when credential has age and credential.age > credential.ttl')
    assert result.holds
    _, result = _invariant('permit any agent to call "pay";', 'never allow call "pay" when credential has age and credential.age > 100')
    cred = result.counterexample
    assert not result.holds and cred["now"] - cred["credential"]["issued_at"] > 100


def test_declared_tool_and_agent_attributes_later_over_earlier():
    text = (
        'tool "db.*" { sensitive: true }\ntool "db.read" { sensitive: false }\n'
        'agent "spiffe://x/a" { owner: "ops" }\n'
        'permit any agent to call "db.*" when not tool.sensitive or principal.owner == "ops";'
    )
    _, result = _invariant(text, 'never allow call "db.write"')
    assert not result.holds
    req = result.counterexample
    owner = req["principal"].get("owner") if isinstance(req["principal"], dict) else None
    assert owner == "ops" or req["principal"] == "spiffe://x/a"
    _, result = _invariant(text, 'never allow agent "spiffe://y/*" to call "db.read"')
    assert not result.holds


def test_task_blocks_match_only_their_intent():
    text = 'task "fix" { permit any agent to call "git.push"; }'
    _, result = _invariant(text, 'never allow call "git.push" unless task has intent and task.intent == "fix"')
    assert result.holds


def test_list_membership_and_request_groups():
    text = 'permit agent in "ops" to call "t" when args.env in ["dev", "stage"];'
    _, result = _invariant(text, 'never allow call "t"')
    req = result.counterexample
    assert not result.holds and "ops" in req["principal"]["groups"] and req["args"]["env"] in ("dev", "stage")


def test_a_pattern_from_the_request_is_an_assumption():
    text = 'permit any agent to call "t" when args.a matches args.b;'
    policies = nhipl.loads(text)
    result = diff(policies, nhipl.loads(text + '\nforbid any agent to call "t" when args.b == "x*";'))
    assert result.equivalent  # a pattern with `*` is outside what the encoding considers
    result = diff(policies, nhipl.loads(text + '\nforbid any agent to call "t" when args.b == "x";'))
    assert result.narrowing and not result.widening
    assert any("matches" in a and "without `*`" in a for a in result.assumptions)


def test_an_unencoded_condition_never_yields_an_unconfirmed_answer():
    from nhipl.analyze import Undecided

    policies = nhipl.loads('permit any agent to call "t" when args.a == "\U00030000";\ninvariant "i" { never allow call "t" }')
    (_, inv), = policies.invariants
    try:
        result = prove(policies, inv)
    except Undecided as why:
        assert "leaves open" in why.reason
    else:  # a refutation is only ever one the evaluator confirmed
        assert not result.holds and policies.evaluate(result.counterexample).effect == "allow"


def test_rules_and_reach_over_one_policy():
    policies = nhipl.loads(
        'agent "spiffe://x/a" { groups: ["g"] }\nagent "spiffe://x/b" {}\n'
        '@id("a-delegates") permit agent "spiffe://x/a" to delegate "spiffe://x/*";\n'
        '@id("g-reads") permit agent in "g" to call "read";\n'
        '@id("b-writes") permit agent "spiffe://x/b" to call "write" when delegation.depth == 1;\n'
    )
    found = reach(policies, "spiffe://x/a")
    assert {g.rule.id for g in found.root.grants} == {"a-delegates", "g-reads"}
    (b,) = found.root.delegations
    assert b.agent == "spiffe://x/b" and {g.rule.id for g in b.grants} == {"b-writes"}
    assert rules(policies).findings == []


@pytest.mark.parametrize("path", ["principal.team", "task.owner", "credential.scope", "approval.by"])
def test_a_null_field_that_validation_drops_is_absent(path):
    """`null` in these objects means absent: the solver must not claim a request with it."""
    text = f'permit any agent to call "t" when {path} == null;'
    policies, result = _invariant(text, 'never allow call "t"')
    assert result.holds  # absent is an error, so the permit never matches
    declared = nhipl.loads('agent "a" { team: null }\n' + text + '\ninvariant "i" { never allow call "t" }')
    (_, inv), = declared.invariants
    if path == "principal.team":  # a declared null is a value
        assert not prove(declared, inv).holds
