"""One document's diagnostics and policies, recovered from errors item by item.

The loader stops at the first syntax error and gives no policies when any check
fails. The editor wants every problem and still wants to know the rest of the
file, so :func:`analyse` loads the text with :func:`nhipl.loads`; for each error
it blanks the top-level item the error sits in (spaces in place of its
characters, so every position stays put) and loads again, until the rest loads.
Each round can only blank more of the file, so the loop ends.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import nhipl
from nhipl.errors import Span
from nhipl.lint import LintConfig, lint_policies, load_config

from .tokens import Token, item_bounds, tokenize

MAX_ROUNDS = 200


@dataclass(frozen=True)
class Problem:
    """A diagnostic for the editor: from the loader, the checks or the linter."""

    code: str
    severity: str  # error | warning | note
    message: str
    span: Span
    help: str | None = None
    related: tuple[tuple[Span, str], ...] = ()
    rule_id: str | None = None
    from_linter: bool = False


@dataclass
class Analysis:
    path: str
    text: str
    tokens: list[Token]
    policies: object | None  # nhipl.Policies of the recovered text, None when nothing loads
    problems: list[Problem]
    blanked: list[tuple[int, int]] = field(default_factory=list)
    recovered_text: str = ""
    linted: bool = False

    @property
    def module(self):
        """This document's own module in the loaded policies (None when nothing loads)."""
        if self.policies is None:
            return None
        for module in self.policies.modules:
            if module.source == self.path:
                return module
        return None

    @property
    def clean(self) -> bool:
        return not self.blanked and not any(p.severity == "error" for p in self.problems)


class Lines:
    """Offsets <-> 1-based (line, column) of one text."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def offset(self, line: int, column: int) -> int:
        if line < 1:
            return 0
        if line > len(self.starts):
            return len(self.text)
        start = self.starts[line - 1]
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        return min(start + max(column - 1, 0), end)

    def position(self, offset: int) -> tuple[int, int]:
        from bisect import bisect_right

        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def utf16(self, line: int, column: int) -> int:
        """The UTF-16 offset in its line (what editors count) of 1-based ``column``."""
        prefix = self.line_text(line)[: max(column - 1, 0)]
        return len(prefix.encode("utf-16-le")) // 2

    def from_utf16(self, line0: int, units: int) -> int:
        """The text offset of an editor position (0-based line, UTF-16 units)."""
        text = self.line_text(line0 + 1)
        count = 0
        for k, ch in enumerate(text):
            if count >= units:
                return self.offset(line0 + 1, k + 1)
            count += 2 if ord(ch) > 0xFFFF else 1
        return self.offset(line0 + 1, len(text) + 1)

    def line_text(self, line: int) -> str:
        if not 1 <= line <= len(self.starts):
            return ""
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        return self.text[self.starts[line - 1] : end]


_LOCATION = re.compile(r"(?:at |\()`?([^\s`()]+?):(\d+)(?::(\d+))?`?\)?")


def related_spans(diag_text: str, known: set[str]) -> tuple[tuple[Span, str], ...]:
    """Locations a message names (``first defined at FILE:LINE:COL``) as related spans."""
    out = []
    for m in _LOCATION.finditer(diag_text):
        source = m.group(1)
        if source in known:
            line, col = int(m.group(2)), int(m.group(3) or 1)
            before = diag_text[: m.start()].rstrip()
            label = "first defined here" if before.endswith("first defined") else "named here"
            out.append((Span(source, line, col), label))
    return tuple(out)


def blank(text: str, bounds: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in bounds:
        for k in range(start, end):
            if chars[k] not in "\r\n":
                chars[k] = " "
    return "".join(chars)


def parse_alone(text: str, lines: "Lines", start: int, end: int, path: str) -> tuple[tuple, tuple]:
    """The item ``text[start:end]`` parsed on its own at its own place (the text before it
    replaced by as many line breaks and spaces, so every position is the document's):
    ``(items, diagnostics)``, the items empty when it does not parse."""
    from nhipl.fmt import parse_module

    line, column = lines.position(start)
    padded = "\n" * (line - 1) + " " * (column - 1) + text[start:end]
    try:
        return parse_module(padded, path).items, ()
    except nhipl.PolicyError as err:
        return (), tuple(err.diagnostics)


def _unclosed_before(text: str, lines: "Lines", items: list, k: int | None, blanked: set[int], path: str):
    """When the syntax error the whole text gives in item ``k`` is not that item's own (it
    parses alone), the item before it that does not parse alone (a `{` never closed swallows
    what follows it): its index and its own errors, as the analysis while typing gives them;
    else None."""
    if k is None or k in blanked or parse_alone(text, lines, *items[k], path)[1]:
        return None
    for j in range(k - 1, -1, -1):
        if j in blanked:
            continue
        own = parse_alone(text, lines, *items[j], path)[1]
        if own:
            return j, own
    return None


def _quoted_ids(text: str) -> set[str]:
    return set(re.findall(r'"((?:[^"\\\n]|\\.)*)"', text))


def analyse(text: str, path: str, *, lint: bool = True, config: LintConfig | None = None) -> Analysis:
    """Every problem in ``text`` (the document at ``path``) and the policies of
    the part that loads."""
    tokens = tokenize(text)
    items = item_bounds(text, tokens)
    lines = Lines(text)
    problems: dict[tuple, Problem] = {}
    blanked: set[int] = set()
    removed_ids: set[str] = set()
    current = text
    policies = None
    imports = [k for k, (s, _) in enumerate(items) if text.startswith("import", s)]

    def item_of(offset: int) -> int | None:
        for k, (s, e) in enumerate(items):
            if s <= offset < e or (offset == e and k == len(items) - 1):
                return k
        # between items (a `;` expected at the end of the previous one)
        before = [k for k, (s, e) in enumerate(items) if e <= offset]
        return before[-1] if before else 0

    if not items:
        items = [(0, len(text))]
    for _ in range(MAX_ROUNDS):
        try:
            policies = nhipl.loads(current, source=path)
            break
        except nhipl.PolicyError as err:
            hit: set[int] = set()
            known = {path} | {d.span.source for d in err.diagnostics if d.span is not None}
            for d in err.diagnostics:
                span = d.span
                if d.code == "syntax-error" and span is not None and span.source == path:
                    culprit = _unclosed_before(text, lines, items, item_of(lines.offset(span.line, span.column)), blanked, path)
                    if culprit is not None:
                        j, own = culprit
                        for o in own:
                            problems.setdefault((o.code, o.message, o.span.line, o.span.column),
                                                Problem(o.code, "error", o.message, o.span, o.help))
                        hit.add(j)
                        continue
                if d.code == "unknown-rule" and span is not None and any(f"`{rid}`" in d.message for rid in removed_ids):
                    # the rule it names sits in an item blanked for another error: not a problem
                    # of its own, but the item must go for the rest to load
                    hit.add(item_of(lines.offset(span.line, span.column)))
                    continue
                full = d.message + (f"\n{d.help}" if d.help else "")
                if span is not None and span.source == path:
                    where = span
                    k = item_of(lines.offset(span.line, span.column))
                    message = d.message
                else:
                    # a problem in an imported file: shown on the import that brings it in
                    k = next((i for i in imports if i not in blanked), None)
                    if k is None:
                        k = imports[0] if imports else None
                    s = items[k][0] if k is not None else 0
                    line, col = lines.position(s)
                    where = Span(path, line, col, line, col + len("import"))
                    origin = span.source if span is not None else "an imported file"
                    message = f"in `{origin}`: {d.message}"
                    if span is not None:
                        full += f" (at {span.source}:{span.line}:{span.column})"
                key = (d.code, message, where.line, where.column)
                if key not in problems:
                    problems[key] = Problem(d.code, "error", message, where, d.help, related_spans(full, known))
                if k is not None:
                    hit.add(k)
            fresh = hit - blanked
            if not fresh:
                policies = None
                break
            blanked |= fresh
            for k in fresh:
                removed_ids |= _quoted_ids(text[items[k][0] : items[k][1]])
            current = blank(text, [items[k] for k in sorted(blanked)])
    found = sorted(problems.values(), key=lambda p: (p.span.line, p.span.column))
    analysis = Analysis(path, text, tokens, policies, found, [items[k] for k in sorted(blanked)], current)
    if lint:
        add_lint(analysis, config)
    return analysis


def add_lint(analysis: Analysis, config: LintConfig | None = None) -> Analysis:
    """Adds the linter's findings to ``analysis`` (once)."""
    if not analysis.linted:
        analysis.problems.extend(lint_problems(analysis, config))
        analysis.linted = True
    return analysis


def lint_config_for(path: str) -> LintConfig:
    """The lint configuration nearest to the file (``nhipl.toml``, or ``pyproject.toml`` with
    ``[tool.nhipl.lint]``, as ``nhipl lint`` finds it; defaults when it is bad)."""
    try:
        return load_config(None, start=os.path.dirname(path) or ".")
    except nhipl.NhiplError:
        return LintConfig()


def lint_problems(analysis: Analysis, config: LintConfig | None = None) -> list[Problem]:
    """The linter's findings in the document, as problems."""
    if analysis.policies is None:
        return []
    config = config or lint_config_for(analysis.path)
    texts = {analysis.path: analysis.recovered_text}
    findings = lint_policies(analysis.policies, config, {analysis.path}, texts)
    known = {m.source for m in analysis.policies.modules}
    out = []
    for f in findings:
        if f.span is None:
            continue
        full = f.message + (f"\n{f.help}" if f.help else "")
        out.append(Problem(f.code, f.severity, f"{f.message} ({f.name})", f.span, f.help, related_spans(full, known), f.rule_id, True))
    return out
