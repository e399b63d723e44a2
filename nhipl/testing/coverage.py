"""Rule coverage: which rules no test ever made determining (like ``opa test --coverage``).

A rule is *covered* when some test's decision lists it among its determining rules
(``decision.rules``): the matched forbids of a deny, the permits of an allow, the
approval rules of an ``approval_required``. A rule that matched but was overridden
(a permit beside a forbid) is not covered: no test shows what it decides. Every test
that ran counts, passing or failing. Invariant searches do not count.

Rules written in ``*_test.nhipl`` files are test fixtures and are left out. A policy
file loaded by several test files is counted once. Every other file the test files load
is measured, but by default only *your* files count toward the total: those under the
paths given to the test run or under the current folder. Imports from the standard
library, or from outside those folders, are reported apart; ``include_imports=True``
counts them too.
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
    imported: bool = False
    """From the standard library or from outside the folders under test."""

    @property
    def uncovered(self) -> list[A.Rule]:
        return [r for r in self.rules if r.id not in self.covered]

    @property
    def percent(self) -> float:
        return percent(len(self.covered), len(self.rules))


@dataclass
class Coverage:
    files: list[FileCoverage]
    include_imports: bool = False

    @property
    def counted(self) -> list[FileCoverage]:
        """The files the total counts: yours, and the imported ones with ``include_imports``."""
        return [f for f in self.files if self.include_imports or not f.imported]

    @property
    def rules(self) -> int:
        return sum(len(f.rules) for f in self.counted)

    @property
    def covered(self) -> int:
        return sum(len(f.covered) for f in self.counted)

    @property
    def percent(self) -> float:
        return percent(self.covered, self.rules)

    def report(self) -> str:
        """The text report: one line per file, its uncovered rules, and the total; imported
        files apart, with their own subtotal."""
        if not self.files:
            return "coverage: no policy rules under test"
        width = max(len(f.source) for f in self.files + [FileCoverage("imported (not counted)")])
        lines = ["rule coverage:"]

        def row(name: str, covered: int, rules: int) -> str:
            return f"  {name:<{width}}  {covered:>3}/{rules:<3} {percent(covered, rules):6.1f}%"

        def file_rows(files: list[FileCoverage], details: bool = True) -> None:
            for f in files:
                lines.append(row(f.source, len(f.covered), len(f.rules)))
                for rule in f.uncovered if details else ():
                    where = f"line {rule.span.line}" if rule.span else ""
                    lines.append(f"      not covered: `{rule.id}` ({where})" if where else f"      not covered: `{rule.id}`")

        own = [f for f in self.files if not f.imported]
        imported = [f for f in self.files if f.imported]
        file_rows(own if not self.include_imports else self.files)
        lines.append(row("total", self.covered, self.rules))
        if imported and not self.include_imports:
            file_rows(imported, details=False)
            lines.append(row("imported (not counted)", sum(len(f.covered) for f in imported), sum(len(f.rules) for f in imported)))
            if not own:
                lines.append("  no policy file under the tested paths or the current folder: --include-imports counts the imported ones")
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
                    "imported": f.imported,
                }
                for f in self.files
            ],
            "include_imports": self.include_imports,
            "rules": self.rules,
            "covered": self.covered,
            "percent": round(self.percent, 2),
        }


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def _file_key(module: A.Module) -> str:
    return os.path.realpath(module.path) if module.path else "stdlib:" + module.source


def _under(path: str, folders: list[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == folder or real.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders)


def coverage(run: RunResult, paths: list[str] | tuple[str, ...] = (), *, include_imports: bool = False) -> Coverage:
    """Per-file and total rule coverage of a test run whose test files were found under
    ``paths``: files under them or under the current folder are yours."""
    folders = [os.path.realpath(p if os.path.isdir(p) else os.path.dirname(p) or ".") for p in paths]
    folders.append(os.path.realpath(os.getcwd()))
    by_key: dict[str, FileCoverage] = {}
    for file in run.files:
        rule_file: dict[str, FileCoverage] = {}
        for module in file.policies.modules:
            if module.source.endswith(TEST_SUFFIX):
                continue
            key = _file_key(module)
            entry = by_key.get(key)
            if entry is None:
                imported = not module.path or not _under(module.path, folders)
                entry = by_key[key] = FileCoverage(module.source, list(module.rules()), imported=imported)
            for rule in entry.rules:
                rule_file[rule.id] = entry
        for case in file.cases:
            for rule_id in case.decision.rules:
                entry = rule_file.get(rule_id)
                if entry is not None:
                    entry.covered.add(rule_id)
    return Coverage(sorted(by_key.values(), key=lambda f: f.source), include_imports=include_imports)
