"""Analysis as the author types: only the items that changed are parsed again.

A document is cut into its top-level items (:func:`~.tokens.item_bounds`). Each
item is parsed on its own, at its own place (the text before it replaced by as
many line breaks and spaces, so every position is the document's), and kept
until its text or place changes. The document's imports are loaded once and
kept until they or the files they name change. The items that parse, after the
imported modules, are then checked together with the core's own checks, as the
loader does, and make the policies that the linter, hover and the rest read.

On every keystroke in a 1,000-rule file this parses one rule instead of a
thousand, and every item that does not parse gets its own syntax error (read as
the item alone gives it: "unexpected end of file" where the whole file would
name the next item's first word). ``tests/test_lsp_units.py`` holds it to :func:`.analysis.analyse`
(the whole file through :func:`nhipl.loads`) on every policy file of the
repository and on broken ones.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass

import nhipl
from nhipl import ast as A
from nhipl.check import check

from .analysis import Analysis, Lines, Problem, analyse, blank, parse_alone, related_spans
from .tokens import Token, item_bounds, tokenize

MAX_CACHED_ITEMS = 50_000


@dataclass(frozen=True)
class _Parsed:
    items: tuple  # the item's AST nodes (none when it does not parse)
    diagnostics: tuple  # its parse and lowering errors


@dataclass(frozen=True)
class _Imports:
    key: tuple
    modules: tuple  # the imported modules, in load order
    problems: tuple[Problem, ...]  # shown on the import items
    broken: frozenset[int]  # offsets of import items that failed


class DocumentAnalyser:
    """Analyses successive texts of one document, reusing what did not change."""

    def __init__(self, path: str):
        self.path = path
        self._items: dict[tuple[int, int, str], _Parsed] = {}
        self._imports: _Imports | None = None

    def _parse_item(self, text: str, lines: Lines, start: int, end: int) -> _Parsed:
        line, column = lines.position(start)
        key = (line, column, text[start:end])
        hit = self._items.get(key)
        if hit is None:
            hit = _Parsed(*parse_alone(text, lines, start, end, self.path))
            if len(self._items) > MAX_CACHED_ITEMS:
                self._items.clear()
            self._items[key] = hit
        return hit

    def _imports_key(self, text: str, bounds: list[tuple[int, int]], imports: list[int], modules) -> tuple:
        stamps: list[tuple] = [(bounds[k][0], text[bounds[k][0] : bounds[k][1]]) for k in imports]
        for path in sorted(os.path.realpath(m.path) for m in modules if m.path is not None):
            try:
                stamps.append((path, os.stat(path).st_mtime_ns))
            except OSError:
                stamps.append((path, None))
        return tuple(stamps)

    def _load_imports(self, text: str, bounds: list[tuple[int, int]], imports: list[int]) -> _Imports:
        cached = self._imports
        if cached is not None and cached.key == self._imports_key(text, bounds, imports, cached.modules):
            return cached
        modules: tuple = ()
        problems: tuple = ()
        broken: frozenset[int] = frozenset()
        if imports:
            others = [bounds[k] for k in range(len(bounds)) if k not in imports]
            found = analyse(blank(text, others), self.path, lint=False)
            if found.policies is not None:
                modules = tuple(m for m in found.policies.modules if m.source != self.path)
            problems, broken = tuple(found.problems), frozenset(s for s, _ in found.blanked)
        self._imports = _Imports(self._imports_key(text, bounds, imports, modules), modules, problems, broken)
        return self._imports

    def analyse(self, text: str) -> Analysis:
        tokens = tokenize(text, comments=True)
        code = [t for t in tokens if t.kind != "comment"]
        comments = tuple(_comment(t, text) for t in tokens if t.kind == "comment")
        bounds = item_bounds(text, code)
        lines = Lines(text)
        imports = [k for k, (s, _) in enumerate(bounds) if text.startswith("import", s)]
        loaded = self._load_imports(text, bounds, imports)
        problems: dict[tuple, Problem] = {}
        for p in loaded.problems:
            problems[(p.code, p.message, p.span.line, p.span.column)] = p
        items: list = []
        item_starts: list[int] = []
        broken: list[tuple[int, int]] = []
        broken_ids: set[str] = set()
        for k, (s, e) in enumerate(bounds):
            if k in imports:
                if s in loaded.broken:
                    broken.append((s, e))
                else:
                    parsed = self._parse_item(text, lines, s, e)
                    items.extend(parsed.items)
                    item_starts.extend([s] * len(parsed.items))
                continue
            parsed = self._parse_item(text, lines, s, e)
            for d in parsed.diagnostics:
                span = d.span
                problems[(d.code, d.message, span.line, span.column)] = Problem(d.code, "error", d.message, span, d.help)
            if parsed.diagnostics:
                broken.append((s, e))
                broken_ids |= _quoted(text[s:e])
            items.extend(parsed.items)
            item_starts.extend([s] * len(parsed.items))
        module = A.Module(self.path, tuple(items), comments, None)
        modules = list(loaded.modules) + [module]
        failing: set[int] = set()
        for d in check(modules, {self.path: text.splitlines()}):
            span = d.span
            if span is None or span.source != self.path:
                continue
            if d.code == "unknown-rule" and any(f"`{rid}`" in d.message for rid in broken_ids):
                failing.add(lines.offset(span.line, span.column))
                continue  # the rule it names is in an item that does not parse
            problems[(d.code, d.message, span.line, span.column)] = Problem(
                d.code, "error", d.message, span, d.help, _related_of(d, modules)
            )
            failing.add(lines.offset(span.line, span.column))
        if failing:
            # the policies leave out the items that fail a check, as the loader would leave them all out
            starts = [s for s, _ in bounds]
            failed = {starts[bisect_right(starts, off) - 1] for off in failing if off >= starts[0]}
            keep = [item for item, s in zip(items, item_starts) if s not in failed]
            broken.extend(b for b in bounds if b[0] in failed)
            module = A.Module(self.path, tuple(keep), comments, None)
            modules = list(loaded.modules) + [module]
        policies = nhipl.Policies(modules)
        found = sorted(problems.values(), key=lambda p: (p.span.line, p.span.column))
        recovered = blank(text, sorted(broken))
        return Analysis(self.path, text, code, policies, found, sorted(broken), recovered)


def _comment(token: Token, text: str) -> A.Comment:
    line = text.count("\n", 0, token.start) + 1
    column = token.start - (text.rfind("\n", 0, token.start) + 1) + 1
    return A.Comment(token.text, line, column)


def _quoted(text: str) -> set[str]:
    return {t.value for t in tokenize(text) if t.kind == "string"}


def _related_of(diagnostic, modules) -> tuple:
    known = {m.source for m in modules}
    return related_spans(diagnostic.message + (f"\n{diagnostic.help}" if diagnostic.help else ""), known)
