"""The standard policy library: loads, lints clean, is tagged, and decides
realistic requests as documented when imported beside a permissive policy."""

from __future__ import annotations

import re
from importlib import resources

import pytest

import nhipl
from nhipl.lint import lint_policies, lint_text, LintConfig
from nhipl.loader import stdlib_names

STDLIB = ("baseline", "owasp-agentic", "owasp-nhi")
MAPS = re.compile(
    r"(owasp-asi:2026:ASI(0[1-9]|10)|owasp-nhi:2025:NHI([1-9]|10)|nist-airmf:1\.0:(GOVERN|MAP|MEASURE|MANAGE)-\d+\.\d+)\Z"
)

PERMISSIVE = """
agent "spiffe://acme.org/agents/finance" { owner: "team-finance", groups: ["finance"] }
agent "spiffe://acme.org/agents/retired" { owner: "team-finance", status: "decommissioned" }
agent "spiffe://acme.org/agents/vendor" { owner: "team-partners", third_party: true }
agent "spiffe://acme.org/agents/dev-bot" { owner: "team-dev", environment: "dev" }
tool "payments.*" { sensitive: true, tags: ["financial", "external-transfer"] }
tool "email.send" { tags: ["external-transfer"] }
tool "shell.exec" { tags: ["code-execution"] }
tool "vault.read" { tags: ["secrets"] }
tool "iam.grant" { tags: ["privilege-change"] }
tool "evil.*" { tags: ["quarantined"] }
tool "memory.save" { tags: ["memory-write"] }
tool "db.drop" { tags: ["destructive"] }
tool "mcp.unpinned.*" { tags: ["unverified"] }
@id("all-calls") permit any agent to call "*" grant ttl 5m;
@id("all-delegations") permit any agent to delegate "*" grant ttl 5m;
@id("all-credentials") permit any agent to issue_credential "*" grant ttl 5m;
"""

FIN = "spiffe://acme.org/agents/finance"
TASK = {"id": "t1", "intent": "pay-invoice", "owner": "alice"}
ALICE = {"granted": True, "by": "alice@acme.com"}


def _stdlib_text(name: str) -> str:
    return (resources.files("nhipl.stdlib_policies") / f"{name}.nhipl").read_text(encoding="utf-8")


def _with(name: str) -> nhipl.Policies:
    return nhipl.loads(f'import "{name}";\n' + PERMISSIVE, source="permissive.nhipl")


def test_stdlib_names():
    assert set(STDLIB) <= set(stdlib_names())


@pytest.mark.parametrize("name", STDLIB)
def test_every_rule_has_a_namespaced_id_and_framework_tags(name):
    module_rules = [r for m in nhipl.loads(_stdlib_text(name), f"{name}.nhipl").modules if m.source == f"{name}.nhipl" for r in m.rules()]
    assert module_rules
    for rule in module_rules:
        assert rule.explicit_id and rule.id.startswith(f"{name}/"), rule.id
        assert rule.maps, f"{rule.id} has no @maps"
        for tag in rule.maps:
            assert MAPS.match(tag), f"{rule.id}: malformed framework id {tag!r}"
        assert rule.annotation("description") is not None, rule.id
        assert rule.effect != "permit", f"{rule.id}: the stdlib only guards"


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_lints_clean(name):
    assert lint_text(_stdlib_text(name), f"{name}.nhipl") == []


def test_stdlib_lints_clean_together():
    policies = nhipl.loads('import "baseline"; import "owasp-agentic"; import "owasp-nhi";')
    sources = {m.source for m in policies.modules}
    texts = {f"{n}.nhipl": _stdlib_text(n) for n in STDLIB}
    assert lint_policies(policies, LintConfig(), sources, texts) == []


def test_importing_a_guard_library_silences_ungated_sensitive_permit():
    bad = 'tool "payments.*" { sensitive: true }\n@id("pay") permit agent in "finance" to call "payments.*" grant ttl 5m;\n'
    assert [f.code for f in lint_text(bad)] == ["NHI003"]
    assert lint_text('import "baseline";\n' + bad) == []


def req(tool="search.web", principal=FIN, **fields):
    return {"principal": principal, "tool": tool, **fields}


# (name, request, effect, rule expected among the determining rules or None)
CASES = {
    "baseline": [
        ("benign call", req(), "allow", "all-calls"),
        ("benign call, fresh credential", req(credential={"id": "c1", "issued_at": 100, "ttl": 300, "holder": FIN}, now=200), "allow", None),
        ("undeclared principal and tool, no optional fields", req(principal="spiffe://other.org/x", tool="a.b"), "allow", None),
        ("benign delegation", req(action="delegate", tool="spiffe://acme.org/agents/b"), "allow", "all-delegations"),
        ("decommissioned identity", req(principal="spiffe://acme.org/agents/retired"), "deny", "baseline/inactive-identity-call"),
        ("decommissioned identity delegates", req(principal="spiffe://acme.org/agents/retired", action="delegate", tool="spiffe://acme.org/agents/b"), "deny", "baseline/inactive-identity-delegate"),
        ("suspended by the enforcement point", req(principal={"id": FIN, "status": "suspended"}), "deny", "baseline/inactive-identity-call"),
        ("expired credential", req(credential={"id": "c1", "issued_at": 0, "ttl": 300}, now=400), "deny", "baseline/expired-credential-call"),
        ("someone else's credential", req(credential={"id": "c1", "holder": "spiffe://acme.org/agents/other"}), "deny", "baseline/foreign-credential"),
        ("payment without approval", req("payments.transfer", task=TASK), "approval_required", "baseline/sensitive-tool-approval"),
        ("payment with approval", req("payments.transfer", task=TASK, approval=ALICE), "allow", "all-calls"),
        ("shell without approval", req("shell.exec", task=TASK), "approval_required", "baseline/sensitive-tag-approval"),
        ("quarantined tool", req("evil.exfiltrate"), "deny", "baseline/quarantined-tool"),
        ("secret data by email", req("email.send", task=TASK, approval=ALICE, context={"data_classification": "secret"}), "deny", "baseline/classified-data-egress"),
        ("internal data by email, approved", req("email.send", task=TASK, approval=ALICE, context={"data_classification": "internal"}), "allow", None),
        ("delegation at depth 5", req(action="delegate", tool="spiffe://acme.org/agents/z", delegation={"chain": [f"spiffe://acme.org/agents/{c}" for c in "abcde"]}), "deny", "baseline/delegation-depth"),
        ("delegation at depth 4", req(action="delegate", tool="spiffe://acme.org/agents/z", delegation={"chain": [f"spiffe://acme.org/agents/{c}" for c in "abcd"]}), "allow", None),
        ("delegation back into the chain", req(action="delegate", tool="spiffe://acme.org/agents/a", delegation={"chain": ["spiffe://acme.org/agents/a"]}), "deny", "baseline/delegation-cycle"),
        ("delegation to itself", req(action="delegate", tool=FIN), "deny", "baseline/delegation-cycle"),
    ],
    "owasp-agentic": [
        ("benign call", req(), "allow", "all-calls"),
        ("undeclared principal and tool, no optional fields", req(principal="spiffe://other.org/x", tool="a.b"), "allow", None),
        ("email to a user-given address, approved", req("email.send", task=TASK, approval=ALICE, provenance={"to": "user"}), "allow", None),
        ("email to an address from a web page", req("email.send", task=TASK, provenance={"to": "tool:web.fetch"}), "deny", "owasp-agentic/ASI01-tool-output-steers-sensitive-call"),
        ("email to an address from a web page, approved", req("email.send", task=TASK, approval=ALICE, provenance={"to": "tool:web.fetch"}), "allow", None),
        ("shell outside any task", req("shell.exec", approval=ALICE), "deny", "owasp-agentic/ASI10-privileged-call-outside-task"),
        ("privilege change outside any task", req("iam.grant", approval=ALICE), "deny", "owasp-agentic/ASI10-privileged-call-outside-task"),
        ("privilege change for a task, approved", req("iam.grant", task=TASK, approval=ALICE), "allow", None),
        ("approved payment outside any task", req("payments.transfer", approval=ALICE), "allow", None),
        ("command from tool output", req("shell.exec", task=TASK, provenance={"command": "tool:web.fetch"}), "deny", "owasp-agentic/ASI05-code-from-tool-output"),
        ("command from the user, approved", req("shell.exec", task=TASK, approval=ALICE, provenance={"command": "user"}), "allow", None),
        ("memory write from tool output", req("memory.save", provenance={"content": "tool:web.fetch"}), "deny", "owasp-agentic/ASI06-memory-write-from-tool-output"),
        ("memory write from the user", req("memory.save", provenance={"content": "user"}), "allow", None),
        ("destructive tool", req("db.drop"), "approval_required", "owasp-agentic/ASI02-destructive-tool-approval"),
        ("unverified tool", req("mcp.unpinned.search"), "approval_required", "owasp-agentic/ASI04-unverified-tool-approval"),
        ("delegation to a non-workload id", req(action="delegate", tool="bob"), "deny", "owasp-agentic/ASI07-delegate-to-unauthenticated"),
        ("approval granted by the agent itself", req("payments.transfer", task=TASK, approval={"granted": True, "by": FIN}), "deny", "owasp-agentic/ASI09-approval-by-a-workload"),
        ("approval naming nobody", req("payments.transfer", task=TASK, approval={"granted": True}), "deny", "owasp-agentic/ASI09-anonymous-approval"),
    ],
    "owasp-nhi": [
        ("benign call", req(), "allow", "all-calls"),
        ("undeclared principal and tool, no optional fields", req(principal="spiffe://other.org/x", tool="a.b"), "allow", None),
        ("approved payment by an owned identity", req("payments.transfer", task=TASK, approval=ALICE), "allow", None),
        ("approved payment by an unowned identity", req("payments.transfer", principal="spiffe://acme.org/agents/x", task=TASK, approval=ALICE), "deny", "owasp-nhi/NHI1-unowned-identity"),
        ("secrets outside a task", req("vault.read", approval=ALICE), "deny", "owasp-nhi/NHI2-secrets-outside-task"),
        ("secrets for a task, approved", req("vault.read", task=TASK, approval=ALICE), "allow", None),
        ("a vendor reads secrets", req("vault.read", principal="spiffe://acme.org/agents/vendor", task=TASK, approval=ALICE), "deny", "owasp-nhi/NHI3-third-party-privileged-tool"),
        ("a vendor searches", req(principal="spiffe://acme.org/agents/vendor"), "allow", None),
        ("a service-account name", req(principal="svc-reports"), "deny", "owasp-nhi/NHI4-non-spiffe-principal"),
        ("wildcard credential scope", req(credential={"id": "c1", "ttl": 300, "scope": "*"}), "deny", "owasp-nhi/NHI5-wildcard-credential-scope"),
        ("narrow credential scope", req(credential={"id": "c1", "ttl": 300, "scope": ["search.*"]}), "allow", None),
        ("two-day credential", req(credential={"id": "c1", "ttl": 172800}), "deny", "owasp-nhi/NHI7-long-lived-credential"),
        ("credential with no ttl", req(credential={"id": "c1"}), "deny", "owasp-nhi/NHI7-credential-without-expiry"),
        ("long credential asked for", req(action="issue_credential", tool="github", args={"ttl": 7200}), "deny", "owasp-nhi/NHI7-long-credential-request"),
        ("short credential asked for", req(action="issue_credential", tool="github", args={"ttl": 600}), "allow", None),
        ("dev identity in prod", req(principal="spiffe://acme.org/agents/dev-bot", context={"environment": "prod"}), "deny", "owasp-nhi/NHI8-cross-environment"),
        ("dev identity in dev", req(principal="spiffe://acme.org/agents/dev-bot", context={"environment": "dev"}), "allow", None),
        ("a person at the keyboard", req(context={"interactive": True}), "deny", "owasp-nhi/NHI10-interactive-use"),
    ],
}


@pytest.mark.parametrize(
    "name,label,request_,effect,rule",
    [(name, *case) for name, cases in CASES.items() for case in cases],
    ids=[f"{name}: {case[0]}" for name, cases in CASES.items() for case in cases],
)
def test_stdlib_decisions(name, label, request_, effect, rule):
    decision = _with(name).evaluate(request_)
    assert decision.effect == effect, decision.reasons
    if rule is not None:
        assert rule in decision.rules, decision.rules
    if effect == "allow":
        # Guards on optional fields use `has`: an allowed request never trips an error.
        assert decision.errors == (), decision.errors


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_never_grants_by_itself(name):
    policies = nhipl.loads(f'import "{name}";')
    assert policies.evaluate(req()).effect == "deny"


@pytest.mark.parametrize("name", STDLIB)
def test_no_library_policy_turns_attenuation_on(name):
    """An import never changes how every other rule combines: attenuation is the loaded file's choice."""
    assert not _with(name).attenuate
    retired = req(delegation={"chain": ["spiffe://acme.org/agents/retired"]})
    assert _with(name).evaluate(retired).effect == "allow"


@pytest.mark.parametrize(
    "request_,effect,rule",
    [
        (req(delegation={"chain": ["spiffe://acme.org/agents/retired"]}), "deny", "baseline/inactive-identity-call"),
        (req(delegation={"chain": ["spiffe://acme.org/agents/a"]}), "allow", None),
    ],
)
def test_owasp_agentic_with_attenuation_stated_in_the_loaded_file(request_, effect, rule):
    policies = nhipl.loads('import "owasp-agentic";\nattenuate delegation;\n' + PERMISSIVE, source="permissive.nhipl")
    decision = policies.evaluate(request_)
    assert decision.effect == effect, decision.reasons
    assert rule is None or rule in decision.rules
