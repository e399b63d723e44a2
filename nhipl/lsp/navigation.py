"""Hover, go to definition and find references: what the word under the cursor
names, and where that thing is declared and used."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from nhipl import ast as A

from .analysis import Analysis
from .language import ACTIONS, EFFECTS, KEYWORDS, PATHS
from .tokens import (
    AGENT_DECL,
    AGENT_REF,
    GROUP,
    IMPORT,
    INVARIANT,
    RULE_ID_DEF,
    RULE_ID_REF,
    TEST,
    TOOL_DECL,
    TOOL_REF,
    dotted_path,
    string_role,
    token_at,
)
from .workspace import Workspace, resolve_import, stdlib_path


@dataclass(frozen=True)
class Place:
    """A range in a file: 1-based lines and columns, end exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Target:
    """What the cursor is on: a string with a role, a keyword, or a request path."""

    kind: str  # a role from .tokens, or "keyword", "path"
    value: str
    start: int
    end: int


def target_at(analysis: Analysis, offset: int) -> Target | None:
    tokens = analysis.tokens
    i = token_at(tokens, offset)
    if i is None:
        return None
    tok = tokens[i]
    if tok.kind == "string":
        role = string_role(tokens, i)
        return Target(role, tok.value, tok.start, tok.end) if role else None
    if tok.kind == "name" or tok.text == ".":
        span = dotted_path(tokens, i)
        prev = tokens[i - 1].text if i > 0 else ""
        if span is not None:
            a, b = span
            root = tokens[a].text
            in_condition = any(t.text in ("when", "unless", "where") for t in tokens[max(0, a - 40) : a])
            if root in PATHS and (b > a or (in_condition and prev not in ("to", "has"))):
                text = analysis.text[tokens[a].start : tokens[b].end]
                return Target("path", text, tokens[a].start, tokens[b].end)
        if tok.text in KEYWORDS or tok.text in ACTIONS or tok.text in EFFECTS:
            return Target("keyword", tok.text, tok.start, tok.end)
    return None


# ---- where things are --------------------------------------------------------------------


def module_path(analysis: Analysis, module: A.Module) -> str | None:
    if module.source == analysis.path:
        return analysis.path
    if module.path is not None:
        return os.path.abspath(module.path)
    if module.source.endswith(".nhipl"):
        return stdlib_path(module.source[: -len(".nhipl")])
    return None


def span_place(path: str, span) -> Place:
    end_line = span.end_line or span.line
    end_column = span.end_column if span.end_line else span.column + 1
    return Place(path, span.line, span.column, end_line, end_column)


def _rules(analysis: Analysis):
    if analysis.policies is None:
        return
    for module in analysis.policies.modules:
        for rule in module.rules():
            yield module, rule


def _items(analysis: Analysis, kind):
    if analysis.policies is None:
        return
    for module in analysis.policies.modules:
        for item in module.items:
            if isinstance(item, kind):
                yield module, item


def _mention_places(workspace: Workspace, roles: set[str], value: str) -> list[Place]:
    out = []
    for m in workspace.mentions(roles, value):
        facts = workspace.facts(m.path)
        line, col = facts.lines.position(m.start)
        end_line, end_col = facts.lines.position(m.end)
        out.append(Place(m.path, line, col, end_line, end_col))
    return out


def definition(analysis: Analysis, workspace: Workspace, offset: int) -> list[Place]:
    target = target_at(analysis, offset)
    if target is None:
        return []
    if target.kind in (RULE_ID_REF, RULE_ID_DEF):
        found = [
            span_place(path, rule.span)
            for module, rule in _rules(analysis)
            if rule.id == target.value and rule.span is not None and (path := module_path(analysis, module))
        ]
        return found or _mention_places(workspace, {RULE_ID_DEF}, target.value)
    if target.kind == IMPORT:
        path = resolve_import(target.value, analysis.path)
        return [Place(path, 1, 1, 1, 1)] if path else []
    if target.kind in (AGENT_REF, AGENT_DECL):
        return [
            span_place(path, decl.span)
            for module, decl in _items(analysis, A.AgentDecl)
            if _glob_match(target.value, decl.id) and decl.span is not None and (path := module_path(analysis, module))
        ]
    if target.kind == GROUP:
        return [
            span_place(path, decl.span)
            for module, decl in _items(analysis, A.AgentDecl)
            if target.value in _groups(decl) and decl.span is not None and (path := module_path(analysis, module))
        ]
    if target.kind in (TOOL_REF, TOOL_DECL):
        return [
            span_place(path, decl.span)
            for module, decl in _items(analysis, A.ToolDecl)
            if (decl.pattern == target.value or _glob_match(decl.pattern, target.value))
            and decl.span is not None
            and (path := module_path(analysis, module))
        ]
    return []


def references(analysis: Analysis, workspace: Workspace, offset: int, include_declaration: bool = True) -> list[Place]:
    target = target_at(analysis, offset)
    if target is None:
        return []
    groups = {
        RULE_ID_DEF: {RULE_ID_DEF, RULE_ID_REF},
        RULE_ID_REF: {RULE_ID_DEF, RULE_ID_REF},
        AGENT_DECL: {AGENT_DECL, AGENT_REF},
        AGENT_REF: {AGENT_DECL, AGENT_REF},
        TOOL_DECL: {TOOL_DECL, TOOL_REF},
        TOOL_REF: {TOOL_DECL, TOOL_REF},
        GROUP: {GROUP},
        IMPORT: {IMPORT},
    }.get(target.kind)
    if groups is None:
        return []
    if not include_declaration:
        groups = groups - {RULE_ID_DEF, AGENT_DECL, TOOL_DECL}
    return _mention_places(workspace, groups, target.value)


def _glob_match(pattern: str, value: str) -> bool:
    from nhipl.values import glob

    return bool(glob(pattern).match(value))


def _groups(decl: A.AgentDecl) -> list[str]:
    for entry in decl.entries:
        if entry.key == "groups":
            value = A.value_to_python(entry.value)
            return [g for g in value if isinstance(g, str)] if isinstance(value, list) else []
    return []


# ---- hover -------------------------------------------------------------------------------


def _source_text(workspace: Workspace, place: Place) -> str:
    text = workspace.text(place.path)
    if text is None:
        try:
            with open(place.path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            return ""
    lines = text.split("\n")[place.line - 1 : place.end_line]
    if lines:
        lines[-1] = lines[-1][: place.end_column - 1] if len(lines) > 1 or place.end_line == place.line else lines[-1]
        lines[0] = lines[0][place.column - 1 :] if len(lines) > 1 else lines[0][place.column - 1 : place.end_column - 1]
    return "\n".join(lines)


def _where(place: Place, root: str | None) -> str:
    path = place.path
    if root and not os.path.relpath(path, root).startswith(".."):
        path = os.path.relpath(path, root)
    return f"{path}:{place.line}"


def tested_by(workspace: Workspace, rule_id: str) -> list[tuple[str, Place]]:
    """(test name, where) of every test whose `by` names the rule."""
    out = []
    for m in workspace.mentions({RULE_ID_REF}, rule_id):
        facts = workspace.facts(m.path)
        tests = [t for t in facts.mentions if t.role in (TEST, INVARIANT) and t.start < m.start]
        if not tests:
            continue
        test = tests[-1]
        line, col = facts.lines.position(test.start)
        out.append((test.value, Place(m.path, line, col, line, col)))
    return out


def _declarations(analysis: Analysis, root: str | None, word: str, decls) -> str:
    """Each agent or tool declaration with its attributes and where it is."""
    parts = []
    for module, decl in decls:
        name = decl.id if isinstance(decl, A.AgentDecl) else decl.pattern
        attrs = {e.key: A.value_to_python(e.value) for e in decl.entries}
        where = _where(span_place(module_path(analysis, module) or module.source, decl.span), root) if decl.span else module.source
        listed = "\n".join(f"- `{k}`: `{json.dumps(v)}`" for k, v in attrs.items()) or "no attributes"
        parts.append(f"**{word}** `{name}` ({where})\n\n{listed}")
    return "\n\n".join(parts)


def hover(analysis: Analysis, workspace: Workspace, offset: int) -> tuple[str, Target] | None:
    """Markdown about what is under the cursor, and the range it covers."""
    target = target_at(analysis, offset)
    if target is None:
        return None
    root = workspace.roots[0] if workspace.roots else os.path.dirname(analysis.path)
    if target.kind == "keyword":
        doc = KEYWORDS.get(target.value) or ACTIONS.get(target.value) or EFFECTS.get(target.value)
        return f"**`{target.value}`**\n\n{doc}", target
    if target.kind == "path":
        root_name = target.value.split(".")[0]
        doc, attrs = PATHS[root_name]
        text = f"**`{target.value}`**: request path\n\n{doc}"
        if attrs:
            text += "\n\nattributes: " + ", ".join(f"`{a}`" for a in attrs)
        return text, target
    if target.kind in (RULE_ID_REF, RULE_ID_DEF):
        for module, rule in _rules(analysis):
            if rule.id != target.value:
                continue
            path = module_path(analysis, module)
            parts = [f"**{rule.effect.replace('_', ' ')}** rule `{rule.id}`"]
            if path and rule.span is not None:
                place = span_place(path, rule.span)
                parts.append("```nhipl\n" + _source_text(workspace, place) + "\n```")
                parts.append(f"defined at `{_where(place, root)}`")
            if rule.because:
                parts.append(f"because: {rule.because}")
            if rule.maps:
                parts.append("maps: " + ", ".join(f"`{m}`" for m in rule.maps))
            tests = tested_by(workspace, rule.id)
            if tests:
                parts.append("tested by: " + ", ".join(f"`{name}` ({_where(p, root)})" for name, p in tests))
            else:
                parts.append("tested by: no test names it in `by`")
            return "\n\n".join(parts), target
        return f"rule `{target.value}`: not found in the policies this file loads", target
    if target.kind in (AGENT_REF, AGENT_DECL):
        decls = [(m, d) for m, d in _items(analysis, A.AgentDecl) if _glob_match(target.value, d.id)]
        if not decls:
            return f"agent `{target.value}`: no `agent` declaration gives it attributes", target
        return _declarations(analysis, root, "agent", decls), target
    if target.kind == GROUP:
        members = [d.id for _, d in _items(analysis, A.AgentDecl) if target.value in _groups(d)]
        listed = "\n".join(f"- `{m}`" for m in members) or "no declared agent is in it"
        return f"**group** `{target.value}`\n\n{listed}", target
    if target.kind in (TOOL_REF, TOOL_DECL):
        decls = [(m, d) for m, d in _items(analysis, A.ToolDecl) if d.pattern == target.value or _glob_match(d.pattern, target.value)]
        if not decls:
            return f"tool `{target.value}`: no `tool` declaration matches it", target
        return _declarations(analysis, root, "tool", decls), target
    if target.kind == IMPORT:
        path = resolve_import(target.value, analysis.path)
        return (f"imports `{path}`" if path else f"`{target.value}`: no such file or standard-library policy"), target
    return None
