"""Code lenses on `test` blocks and invariants: run one, show pass or fail inline."""

from __future__ import annotations

import json
from dataclasses import dataclass

from nhipl import ast as A
from nhipl.testing import CaseResult, check_invariant
from nhipl.testing.invariants import check_credential_invariant

from .analysis import Analysis

TEST, INVARIANT = "test", "invariant"


@dataclass(frozen=True)
class Lens:
    kind: str  # test | invariant
    name: str
    line: int  # 1-based line of its declaration
    column: int


@dataclass(frozen=True)
class Outcome:
    passed: bool
    title: str  # what the lens shows
    detail: str  # the full report

    def to_dict(self) -> dict:
        return {"passed": self.passed, "title": self.title, "detail": self.detail}


def lenses(analysis: Analysis) -> list[Lens]:
    module = analysis.module
    if module is None:
        return []
    out = []
    for item in module.items:
        if isinstance(item, (A.Test, A.Invariant, A.CredentialInvariant)) and item.span is not None:
            kind = TEST if isinstance(item, A.Test) else INVARIANT
            out.append(Lens(kind, item.name, item.span.line, item.span.column))
    return out


def run(analysis: Analysis, kind: str, name: str, line: int, *, max_examples: int = 200) -> Outcome:
    """Run the test or invariant ``name`` declared at ``line`` against the document's policies."""
    if not analysis.clean or analysis.policies is None:
        return Outcome(False, "⚠ not run: the file has errors", "fix the errors in the file first")
    policies = analysis.policies
    found = None
    pool = policies.tests if kind == TEST else (*policies.invariants, *policies.credential_invariants)
    for module, item in pool:
        if module.source == analysis.path and item.name == name and item.span is not None and item.span.line == line:
            found = item
    if found is None:
        return Outcome(False, f"⚠ not run: no {kind} `{name}` at line {line}", "the file changed; run it again")
    if kind == TEST:
        request = A.value_to_python(found.request)
        result = CaseResult(analysis.path, found, request, policies.evaluate(request))
        decision = result.decision
        got = decision.effect + (" by " + ", ".join(decision.rules) if decision.rules else "")
        if result.passed:
            return Outcome(True, f"✓ passed: {got}", result.explain())
        return Outcome(False, f"✗ failed: got {got}", result.explain())
    check = check_credential_invariant if isinstance(found, A.CredentialInvariant) else check_invariant
    result = check(policies, found, source=analysis.path, max_examples=max_examples)
    if result.holds:
        return Outcome(True, f"✓ held on {result.examples} requests", f"held on {result.examples} requests ({result.in_scope} in scope)")
    decision = result.decision
    claim = f"never grant ttl > {found.bound}" if isinstance(found, A.CredentialInvariant) else f"never {found.effect}"
    detail = f"{claim}, but this request is {decision.effect}\ncounterexample: {json.dumps(result.counterexample)}"
    return Outcome(False, f"✗ counterexample: {decision.effect}", detail)
