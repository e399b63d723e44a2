"""Quick fixes, each one safe: it can only narrow what the policies allow.

- `grant ttl` on a permit without one (lint's standing-privilege finding), or the
  ceiling in place of a ttl above it;
- an `@id` on a rule that has none (its id would otherwise be `file:line`, which
  moves whenever a line above it does, and breaks every test's `by`);
- `has` guards in a permit's `when` for the optional attributes it reads: the
  permit matches exactly the requests it matched before, without the evaluation
  error on requests that lack them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nhipl import ast as A

from .analysis import Analysis, Lines, lint_config_for
from .tokens import tokenize

DEFAULT_TTL = 15 * 60
GUARDED_ROOTS = ("args", "context", "provenance")


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Fix:
    title: str
    edits: tuple[Edit, ...]
    codes: tuple[str, ...] = ()  # the diagnostics it fixes
    preferred: bool = False


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _rule_range(lines: Lines, rule: A.Rule) -> tuple[int, int]:
    span = rule.span
    return lines.offset(span.line, span.column), lines.offset(span.end_line or span.line, span.end_column or span.column)


def _grant_ttl(analysis: Analysis, lines: Lines, rule: A.Rule) -> Fix | None:
    ceiling = lint_config_for(analysis.path).max_ttl
    start, end = _rule_range(lines, rule)
    if rule.ttl is not None:
        if rule.ttl.seconds <= ceiling or rule.ttl.span is None:
            return None
        s = lines.offset(rule.ttl.span.line, rule.ttl.span.column)
        e = lines.offset(rule.ttl.span.end_line, rule.ttl.span.end_column)
        return Fix(f"Lower `grant ttl` to the ceiling, {_duration(ceiling)}", (Edit(s, e, _duration(ceiling)),), ("NHI002",), True)
    ttl = _duration(min(DEFAULT_TTL, ceiling))
    tokens = tokenize(analysis.text[start:end])
    because = [t for t in tokens if t.text == "because"]
    if because:
        at = start + because[-1].start
        edit = Edit(at, at, f"grant ttl {ttl} ")
    else:
        semicolons = [t for t in tokens if t.text == ";"]
        at = start + (semicolons[-1].start if semicolons else len(analysis.text[start:end].rstrip()))
        edit = Edit(at, at, f" grant ttl {ttl}")
    return Fix(f"Add `grant ttl {ttl}`", (edit,), ("NHI002",), True)


def _slug(rule: A.Rule) -> str:
    effect = {"permit": "permit", "forbid": "forbid", "require_approval": "approve"}[rule.effect]
    target = rule.targets[0] if rule.targets else rule.action
    words = re.sub(r"[^a-z0-9]+", "-", target.lower().replace("*", "any")).strip("-")
    return f"{effect}-{words}" if words else effect


def _add_id(analysis: Analysis, lines: Lines, rule: A.Rule) -> Fix:
    taken = {r.id for r in analysis.policies.rules} if analysis.policies is not None else set()
    base = new = _slug(rule)
    n = 2
    while new in taken:
        new, n = f"{base}-{n}", n + 1
    start, _ = _rule_range(lines, rule)
    indent = " " * (rule.span.column - 1)
    return Fix(f'Add `@id("{new}")`', (Edit(start, start, f'@id("{new}")\n{indent}'),))


def _unguarded(expr: A.Expr) -> list[tuple[str, str]]:
    """Optional attributes ``expr`` reads without a `has` test of them in it."""
    guarded = {(n.path.root, n.name) for n in A.iter_exprs(expr) if isinstance(n, A.Has) and not n.path.attrs}
    found: list[tuple[str, str]] = []
    for node in A.iter_exprs(expr):
        if isinstance(node, A.Has):
            continue
        if isinstance(node, A.Path) and node.root in GUARDED_ROOTS and node.attrs:
            key = (node.root, node.attrs[0])
            if key not in guarded and key not in found:
                found.append(key)
    return found


def _has_guards(analysis: Analysis, lines: Lines, rule: A.Rule) -> Fix | None:
    if rule.effect != A.PERMIT or rule.when is None or rule.when.span is None:
        return None
    missing = _unguarded(rule.when)
    if not missing:
        return None
    span = rule.when.span
    s = lines.offset(span.line, span.column)
    e = lines.offset(span.end_line or span.line, span.end_column or span.column)
    guards = " and ".join(f"{root} has {name}" for root, name in missing)
    body = analysis.text[s:e]
    if not isinstance(rule.when, (A.And, A.Not, A.Path, A.Compare, A.In, A.StringTest, A.Has, A.Literal)):
        body = f"({body})"
    shown = ", ".join(f"`{r}.{n}`" for r, n in missing)
    return Fix(f"Guard {shown} with `has`", (Edit(s, e, f"{guards} and {body}"),))


def fixes(analysis: Analysis, start: int, end: int) -> list[Fix]:
    """The fixes for the rules that overlap the text between ``start`` and ``end``."""
    module = analysis.module
    if module is None:
        return []
    lines = Lines(analysis.text)
    out: list[Fix] = []
    flagged = {p.rule_id for p in analysis.problems if p.code == "NHI002" and p.rule_id}
    for rule in module.rules():
        if rule.span is None:
            continue
        rs, re_ = _rule_range(lines, rule)
        if re_ < start or rs > end:
            continue
        if rule.id in flagged:
            fix = _grant_ttl(analysis, lines, rule)
            if fix is not None:
                out.append(fix)
        if not rule.explicit_id:
            out.append(_add_id(analysis, lines, rule))
        guard = _has_guards(analysis, lines, rule)
        if guard is not None:
            out.append(guard)
    return out
