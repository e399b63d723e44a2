"""Every policy example in the docs and in DESIGN.md loads and behaves as described.

``nhipl`` code blocks in README.md and docs/*.md are loaded one by one and the
``test`` blocks inside them are run. The DESIGN.md examples are vendored under
tests/data/design/ (and compared with ../shared/DESIGN.md when it is present).
"""

from __future__ import annotations

import pathlib

import pytest

import nhipl
from nhipl.ast import value_to_python

from .docblocks import code_blocks

ROOT = pathlib.Path(__file__).parent.parent
DESIGN_DATA = pathlib.Path(__file__).parent / "data" / "design"
SHARED_DESIGN = ROOT.parent / "shared" / "DESIGN.md"


def _blocks():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if not doc.exists():
            continue
        for block in code_blocks(doc, "nhipl"):
            yield pytest.param(doc.name, block.line, block.text, id=f"{doc.name}:{block.line}")


def run_tests(policies: nhipl.Policies) -> int:
    count = 0
    for _module, test in policies.tests:
        decision = policies.evaluate(value_to_python(test.request))
        assert decision.effect == test.expect.effect, (test.name, decision.reasons)
        if test.expect.by is not None:
            assert set(decision.rules) == set(test.expect.by), (test.name, decision.rules)
        count += 1
    return count


@pytest.mark.parametrize("doc, line, block", list(_blocks()))
def test_doc_block(doc, line, block):
    policies = nhipl.loads(block, source=f"{doc}:{line}")
    run_tests(policies)


def test_docs_have_examples():
    assert len(list(_blocks())) >= 8


def test_design_policy_and_tests():
    policies = nhipl.load(DESIGN_DATA / "tests" / "support_test.nhipl")
    assert run_tests(policies) == 2
    ids = {r.id for r in policies.rules}
    assert {"read-tickets", "no-payments-without-approval", "external-mail", "bounded-delegation"} <= ids


def test_design_python_api():
    policies = nhipl.load(DESIGN_DATA / "policies")
    decision = policies.evaluate(
        {
            "principal": "spiffe://acme.org/agents/triage",
            "tool": "zendesk.read_ticket",
            "task": {"intent": "triage-ticket"},
        }
    )
    assert (decision.effect, decision.rules, decision.credential_ttl) == ("allow", ("read-tickets",), 300)
    assert decision.errors == () and decision.reasons
    many = policies.evaluate_many(
        [
            {"principal": "spiffe://acme.org/agents/coder", "tool": "github.create_pr", "resource": "repo:acme/api", "task": {"intent": "code-review"}},
            {"principal": "spiffe://acme.org/agents/x", "tool": "email.send", "args": {"to": "eve@example.com"}},
            {"principal": "spiffe://acme.org/agents/x", "action": "delegate", "tool": "spiffe://acme.org/agents/y", "delegation": {"chain": ["a", "b", "c"]}},
        ]
    )
    assert [d.effect for d in many] == ["allow", "deny", "deny"]
    assert many[0].credential_ttl == 600
    assert "bounded-delegation" in many[2].rules  # with the stdlib's own depth bound beside it
    with pytest.raises(nhipl.PolicyError) as info:
        nhipl.loads("permit any agent to;", source="inline.nhipl")
    assert (info.value.source, info.value.line, info.value.column) == ("inline.nhipl", 1, 20)
    with pytest.raises(nhipl.RequestError):
        policies.evaluate({"tool": "x"})


@pytest.mark.skipif(not SHARED_DESIGN.exists(), reason="../shared/DESIGN.md is not beside this checkout")
def test_vendored_design_examples_match_design_md():
    design = SHARED_DESIGN.read_text()
    for path in [DESIGN_DATA / "policies" / "support.nhipl", DESIGN_DATA / "tests" / "support_test.nhipl"]:
        assert path.read_text() in design, f"{path} drifted from DESIGN.md"


def test_language_python_examples_run():
    """The Python examples of the language reference run as written (they assert what they show)."""
    blocks = [b for b in code_blocks(ROOT / "docs" / "language.md", "python") if not b.text.lstrip().startswith(">>>")]
    assert blocks
    for block in blocks:
        exec(compile(block.text, f"language.md:{block.line}", "exec"), {})  # noqa: S102 - the docs' own example
