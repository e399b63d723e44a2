"""Running the lint rules over loaded policies: severities, suppressions, order.

A finding is suppressed by a comment on the rule (or task block) it is about,
on any of its lines or in the comment lines right above it::

    # nhipl: ignore[NHI002]             one code
    # nhipl: ignore[NHI002, NHI003]     several
    # nhipl: ignore                     every code

Suppressions are read from ``Module.comments``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .. import ast as A
from ..errors import Diagnostic, Span
from ..loader import load, loads
from .config import Configs, LintConfig
from .rules import CHECKS, RULES, SEVERITIES, Facts, RawFinding

_SUPPRESS = re.compile(r"#\s*nhipl:\s*ignore(?:\[([A-Za-z0-9_,\s]*)\])?\s*$")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    span: Span | None
    help: str | None = None
    rule_id: str | None = None
    source_line: str | None = None

    @property
    def name(self) -> str:
        return RULES[self.code].name

    @property
    def maps(self) -> tuple[str, ...]:
        return RULES[self.code].maps

    def location(self) -> str:
        return str(self.span) if self.span is not None else "<unknown>"

    def render(self) -> str:
        """``file:line:col: severity: message [CODE name]``, the source line, a caret, help."""
        return Diagnostic(f"{self.code} {self.name}", f"{self.severity}: {self.message}", self.span, self.help, self.source_line).render()

    def to_dict(self) -> dict:
        span = self.span
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "file": span.source if span else None,
            "line": span.line if span else None,
            "column": span.column if span else None,
            "end_line": span.end_line if span else None,
            "end_column": span.end_column if span else None,
            "rule": self.rule_id,
            "help": self.help,
            "maps": list(self.maps),
        }


def suppressions(module: A.Module, lines: list[str]) -> dict[int, frozenset[str] | None]:
    """Line -> codes suppressed by a comment on it (None: every code)."""
    out: dict[int, frozenset[str] | None] = {}
    for comment in module.comments:
        m = _SUPPRESS.search(comment.text.rstrip())
        if not m:
            continue
        codes = None if m.group(1) is None else frozenset(c.strip().upper() for c in m.group(1).split(",") if c.strip())
        out[comment.line] = codes
    return out


def _own_line_comment(lines: list[str], line: int) -> bool:
    if not 0 < line <= len(lines):
        return False
    return lines[line - 1].lstrip().startswith("#")


def _suppressed(finding: RawFinding, marks: dict[int, frozenset[str] | None], lines: list[str]) -> bool:
    anchor = finding.anchor or finding.span
    if anchor is None:
        return False
    candidates = list(range(anchor.line, (anchor.end_line or anchor.line) + 1))
    above = anchor.line - 1
    while _own_line_comment(lines, above):
        candidates.append(above)
        above -= 1
    for line in candidates:
        if line in marks:
            codes = marks[line]
            if codes is None or finding.code in codes:
                return True
    return False


def _active_checks(exact: list[str] | None) -> tuple:
    """The checks to run; with ``exact`` (a list that receives the solver's assumptions),
    NHI004, NHI006 and NHI012 come from the SMT solver instead (:mod:`nhipl.lint.exact`)."""
    if exact is None:
        return CHECKS
    from .exact import exact_checks

    return exact_checks(CHECKS, exact)


def _config_of(configs: Configs, source: str | None) -> LintConfig:
    if isinstance(configs, LintConfig):
        return configs
    return configs(source) if source is not None else LintConfig()


def lint_policies(
    policies, config: Configs, user_sources: set[str], texts: dict[str, str], exact: list[str] | None = None
) -> list[Finding]:
    """Findings in the modules named by ``user_sources`` (``texts``: their source text).
    ``config``: one configuration, or a function giving each file's own (a
    :class:`~nhipl.lint.config.ConfigFinder`); the checks run once per distinct
    configuration, over the whole policy set, and each file keeps the findings of its own.
    ``exact``: see :func:`_active_checks`."""
    groups: dict[int, tuple[LintConfig, set[str]]] = {}
    for source in sorted(user_sources):
        own = _config_of(config, source)
        groups.setdefault(id(own), (own, set()))[1].add(source)
    lines = {source: text.split("\n") for source, text in texts.items()}
    marks = {m.source: suppressions(m, lines.get(m.source, [])) for m in policies.modules if m.source in user_sources}
    found: list[Finding] = []
    seen: set[tuple] = set()
    for own, sources in groups.values():
        found.extend(_lint_group(policies, own, sources, lines, marks, seen, exact))
    found.sort(key=lambda f: (f.span.source if f.span else "", f.span.line if f.span else 0, f.span.column if f.span else 0, f.code))
    return found


def _lint_group(policies, config: LintConfig, user_sources: set[str], lines: dict[str, list[str]],
                marks: dict, seen: set[tuple], exact: list[str] | None) -> list[Finding]:
    """The findings in ``user_sources``, all under ``config``."""
    facts = Facts(policies, config, user_sources, lines)
    found: list[Finding] = []
    for check in _active_checks(exact):
        for raw in check(facts):
            if not config.active(raw.code):
                continue
            source = raw.span.source if raw.span else None
            if source not in user_sources:
                continue
            if _suppressed(raw, marks.get(source, {}), lines.get(source, [])):
                continue
            key = (raw.code, raw.message, raw.span)
            if key in seen:
                continue
            seen.add(key)
            src_lines = lines.get(source, [])
            line = src_lines[raw.span.line - 1] if raw.span and 0 < raw.span.line <= len(src_lines) else None
            found.append(Finding(raw.code, config.severity_of(raw.code), raw.message, raw.span, raw.help, raw.rule_id, line))
    return found


def lint_paths(paths, config: Configs | None = None, exact: list[str] | None = None) -> list[Finding]:
    """Lint policy files and folders (loaded together, imports included; findings
    only in files on disk, not in the standard library). PolicyError on bad input.
    ``config``: as for :func:`lint_policies` (default: the defaults for every file; pass a
    :class:`~nhipl.lint.config.ConfigFinder` for each file's nearest configuration file).
    ``exact``: see :func:`_active_checks`."""
    config = config or LintConfig()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    policies = load([os.fspath(p) for p in paths])
    texts = {m.source: m.text for m in policies.modules if m.path is not None and m.text is not None}
    return lint_policies(policies, config, set(texts), texts, exact)


def lint_text(text: str, source: str = "<string>", config: LintConfig | None = None) -> list[Finding]:
    """Lint one policy given as text (its imports are loaded; findings only in it)."""
    config = config or LintConfig()
    policies = loads(text, source)
    texts = {source: text}
    texts.update({m.source: m.text for m in policies.modules if m.path is not None and m.text is not None})
    return lint_policies(policies, config, set(texts), texts)


def fails(findings: list[Finding], config: Configs) -> bool:
    """Whether ``findings`` should fail the run (exit 1): a finding at or above the
    ``fail-on`` of its own file's configuration."""
    return any(
        SEVERITIES.index(f.severity) <= SEVERITIES.index(_config_of(config, f.span.source if f.span else None).fail_on)
        for f in findings
    )
