"""Rule coverage: which rules no test ever made determining (like ``opa test --coverage``).

A rule is *covered* when some test's decision lists it among its determining rules
(``decision.rules``): the matched forbids of a deny, the permits of an allow, the
approval rules of an ``approval_required``. A rule that matched but was overridden
(a permit beside a forbid) is not covered: no test shows what it decides. Every test
that ran counts, passing or failing. Invariant searches do not count.

The rules counted are those of every policy file the test files load, standard
library imports included; rules written in ``*_test.nhipl`` files are test fixtures
and are left out. A policy file loaded by several test files is counted once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import ast as A
from .runner import TEST_SUFFIX, RunResult


@dataclass
class FileCoverage:
    source: str
    rules: list[A.Rule] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)

    @property
    def uncovered(self) -> list[A.Rule]:
        return [r for r in self.rules if r.id not in self.covered]

    @property
    def percent(self) -> float:
        return percent(len(self.covered), len(self.rules))


@dataclass
class Coverage:
    files: list[FileCoverage]

    @property
    def rules(self) -> int:
        return sum(len(f.rules) for f in self.files)

    @property
    def covered(self) -> int:
        return sum(len(f.covered) for f in self.files)

    @property
    def percent(self) -> float:
        return percent(self.covered, self.rules)

    def report(self) -> str:
        """The text report: one line per file, its uncovered rules, and the total."""
        if not self.files:
            return "coverage: no policy rules under test"
        width = max(len(f.source) for f in self.files)
        lines = ["rule coverage:"]
        for f in self.files:
            lines.append(f"  {f.source:<{width}}  {len(f.covered):>3}/{len(f.rules):<3} {f.percent:6.1f}%")
            for rule in f.uncovered:
                where = f"line {rule.span.line}" if rule.span else ""
                lines.append(f"      not covered: `{rule.id}` ({where})" if where else f"      not covered: `{rule.id}`")
        lines.append(f"  {'total':<{width}}  {self.covered:>3}/{self.rules:<3} {self.percent:6.1f}%")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "files": [
                {
                    "file": f.source,
                    "rules": len(f.rules),
                    "covered": len(f.covered),
                    "percent": round(f.percent, 2),
                    "uncovered": [r.id for r in f.uncovered],
                }
                for f in self.files
            ],
            "rules": self.rules,
            "covered": self.covered,
            "percent": round(self.percent, 2),
        }


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def _file_key(module: A.Module) -> str:
    return os.path.realpath(module.path) if module.path else "stdlib:" + module.source


def coverage(run: RunResult) -> Coverage:
    """Per-file and total rule coverage of a test run."""
    by_key: dict[str, FileCoverage] = {}
    for file in run.files:
        rule_file: dict[str, FileCoverage] = {}
        for module in file.policies.modules:
            if module.source.endswith(TEST_SUFFIX):
                continue
            key = _file_key(module)
            entry = by_key.get(key)
            if entry is None:
                entry = by_key[key] = FileCoverage(module.source, list(module.rules()))
            for rule in entry.rules:
                rule_file[rule.id] = entry
        for case in file.cases:
            for rule_id in case.decision.rules:
                entry = rule_file.get(rule_id)
                if entry is not None:
                    entry.covered.add(rule_id)
    return Coverage(sorted(by_key.values(), key=lambda f: f.source))
