"""Finding and running policy tests (``*_test.nhipl``).

Each test file is loaded on its own with :func:`nhipl.load`: its imports bring in
the policies under test, and its own rules and declarations join them for its
tests only. A test passes when the decision's effect is the expected one and,
with ``by``, its determining rules are exactly the listed ids (as a set).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Iterable

from .. import ast as A
from ..check import request_field_span
from ..decision import Decision
from ..errors import Diagnostic, PolicyError, RequestError, Span
from ..loader import load
from ..policies import Policies
from .invariants import DEFAULT_MAX_EXAMPLES, DEFAULT_SEED, InvariantResult, check_invariant

TEST_SUFFIX = "_test.nhipl"
# Folders never searched for test files.
SKIPPED_FOLDERS = {".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".nox"}


@dataclass(frozen=True)
class CaseResult:
    """One ``test`` block run against its file's policies."""

    __test__ = False  # not a pytest class

    source: str
    case: A.Test
    request: dict
    decision: Decision
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.case.name

    @property
    def passed(self) -> bool:
        expect = self.case.expect
        if self.decision.effect != expect.effect:
            return False
        return expect.by is None or set(expect.by) == set(self.decision.rules)

    @property
    def location(self) -> str:
        span = self.case.span
        return f"{span.source}:{span.line}:{span.column}" if span else self.source

    def explain(self) -> str:
        """What was expected, what happened and why: the failure report."""
        return explain_case(self.case.expect, self.decision, self.request)


def _effect_by(effect: str, rules: Iterable[str] | None) -> str:
    rules = list(rules or ())
    return effect + (" by " + ", ".join(f'"{r}"' for r in rules) if rules else "")


def explain_case(expect: A.Expect, decision: Decision, request: dict) -> str:
    lines = [
        f"expected: {_effect_by(expect.effect, expect.by)}",
        f"actual:   {_effect_by(decision.effect, decision.rules)}",
    ]
    if expect.by is not None and decision.effect == expect.effect:
        missing = [r for r in expect.by if r not in decision.rules]
        extra = [r for r in decision.rules if r not in expect.by]
        if missing:
            lines.append("  not determining: " + ", ".join(f"`{r}`" for r in missing))
        if extra:
            lines.append("  also determining: " + ", ".join(f"`{r}`" for r in extra))
    lines.extend(_decision_details(decision))
    lines.append("request:  " + json.dumps(request, sort_keys=False))
    return "\n".join(lines)


def _decision_details(decision: Decision) -> list[str]:
    lines = []
    if decision.reasons:
        lines.append("reasons:")
        lines.extend(f"  {r}" for r in decision.reasons)
    # The reasons already name most evaluation errors; list only the others.
    unexplained = [e for e in decision.errors if not any(e.message in r for r in decision.reasons)]
    if unexplained:
        lines.append("errors:")
        lines.extend(f"  rule `{e.rule}`: {e.message}" for e in unexplained)
    return lines


def explain_invariant(result: InvariantResult) -> str:
    inv = result.invariant
    if result.holds:
        return f"held on {result.examples} requests ({result.in_scope} in scope)"
    decision = result.decision
    lines = [
        f"never {inv.effect}, but this request is {_effect_by(decision.effect, decision.rules)}",
        "counterexample (smallest found): " + json.dumps(result.counterexample, sort_keys=False),
    ]
    lines.extend(_decision_details(decision))
    return "\n".join(lines)


def invariant_location(result: InvariantResult) -> str:
    span = result.invariant.span
    return f"{span.source}:{span.line}:{span.column}" if span else result.source


@dataclass
class FileResult:
    """A test file: its policies and the results of its tests and invariants."""

    path: str
    policies: Policies
    cases: list[CaseResult] = field(default_factory=list)
    invariants: list[InvariantResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(not c.passed for c in self.cases) + sum(not i.holds for i in self.invariants)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.cases) + sum(i.holds for i in self.invariants)


@dataclass
class RunResult:
    files: list[FileResult]
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(f.passed for f in self.files)

    @property
    def failed(self) -> int:
        return sum(f.failed for f in self.files)

    @property
    def total(self) -> int:
        return self.passed + self.failed

    @property
    def ok(self) -> bool:
        return self.failed == 0


# ---- discovery -----------------------------------------------------------------------


def discover(paths: Iterable[str]) -> list[str]:
    """The test files under ``paths``: every ``*_test.nhipl`` below a folder (sorted), and
    any ``.nhipl`` file named directly. Raises PolicyError for a path that does not exist."""
    found: list[str] = []
    problems: list[Diagnostic] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS and not d.startswith("."))
                found.extend(os.path.join(folder, f) for f in sorted(files) if f.endswith(TEST_SUFFIX))
        elif os.path.exists(path):  # a file, or something the reader will refuse by name
            found.append(path)
        else:
            problems.append(Diagnostic("file-not-found", "no such file or folder", Span(path, 1, 1), whole_file=True))
    if problems:
        raise PolicyError(problems)
    unique: list[str] = []
    seen: set[str] = set()
    for f in found:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(os.path.normpath(f))
    return unique


def load_test_file(path: str) -> Policies:
    """A test file's policies (its imports, rules, tests and invariants)."""
    return load(path)


def selected(pattern: str | None, path: str, name: str) -> bool:
    """``-k``: a case-insensitive substring of the test's name or of its file's path."""
    if not pattern:
        return True
    pattern = pattern.lower()
    return pattern in name.lower() or pattern in path.lower()


def run_case(policies: Policies, module: A.Module, case: A.Test) -> CaseResult:
    request = A.value_to_python(case.request)
    start = time.perf_counter()
    try:
        decision = policies.evaluate(request)
    except RequestError as err:  # `nhipl.check` already rejects these; keep the contract anyway
        span = request_field_span(case, err.field)
        raise PolicyError([Diagnostic("invalid-request", f"test `{case.name}`: {err.message}", span)]) from None
    return CaseResult(module.source, case, request, decision, time.perf_counter() - start)


def declaration_key(module: A.Module, node: A.Test | A.Invariant) -> tuple[str, int, str]:
    """Where a test or invariant is declared: one run per declaration, even when several
    test files import the policy file that holds it."""
    where = os.path.realpath(module.path) if module.path else module.source
    return (where, node.span.line if node.span else 0, node.name)


def run_files(
    paths: Iterable[str],
    *,
    pattern: str | None = None,
    invariants: bool = True,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = DEFAULT_SEED,
) -> RunResult:
    """Load every test file (all load errors are raised together), then run them."""
    start = time.perf_counter()
    loaded: list[tuple[str, Policies]] = []
    diagnostics: list[Diagnostic] = []
    for path in paths:
        try:
            loaded.append((path, load_test_file(path)))
        except PolicyError as err:
            diagnostics.extend(err.diagnostics)
    if diagnostics:
        raise PolicyError(diagnostics)
    done: set[tuple[str, int, str]] = set()
    files = []
    for path, policies in loaded:
        result = FileResult(path, policies)
        for module, case in policies.tests:
            if declaration_key(module, case) not in done and selected(pattern, module.source, case.name):
                done.add(declaration_key(module, case))
                result.cases.append(run_case(policies, module, case))
        if invariants:
            for module, inv in policies.invariants:
                if declaration_key(module, inv) in done or not selected(pattern, module.source, inv.name):
                    continue
                done.add(declaration_key(module, inv))
                result.invariants.append(
                    check_invariant(policies, inv, source=module.source, max_examples=max_examples, seed=seed)
                )
        files.append(result)
    return RunResult(files, time.perf_counter() - start)
