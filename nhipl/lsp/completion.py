"""Completion: what may come next where the cursor is, read from the tokens before it.

Three kinds of context: a request path being typed (`args.`, `task.`, ...), a
string in a place that names something (an agent, a group, a tool, a rule id, an
import), and a keyword in its place (item starts, subjects, actions, clauses).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from nhipl import ast as A

from .analysis import Analysis
from .language import ACTIONS, EFFECTS, FUNCTIONS, ITEM_SNIPPETS, PATHS, RULE_CLAUSES
from .tokens import AGENT_DECL, AGENT_REF, GROUP, IMPORT, RULE_ID_REF, TOOL_REF, Token, string_role, tokenize
from .workspace import Workspace

_PATH_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\.([A-Za-z0-9_]*)\Z")
_WORD_BEFORE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Suggestion:
    label: str
    kind: str  # keyword | value | path | snippet | reference
    insert: str
    start: int  # the range of text the suggestion replaces
    end: int
    detail: str = ""


def _args_names(analysis: Analysis) -> dict[str, str]:
    """Argument names the policies know: declared in tool schemas, read by rules, given by tests."""
    names: dict[str, str] = {}
    if analysis.policies is None:
        return names
    for module in analysis.policies.modules:
        for item in module.items:
            if isinstance(item, A.ToolDecl):
                for entry in item.entries:
                    if entry.key == "args" and isinstance(entry.value, A.ObjectValue):
                        for key, _ in entry.value.entries:
                            names[key] = f"declared by tool `{item.pattern}`"
            elif isinstance(item, A.Test):
                request = A.value_to_python(item.request)
                args = request.get("args") if isinstance(request, dict) else None
                if isinstance(args, dict):
                    for key in args:
                        names.setdefault(key, f"given by test `{item.name}`")
        for rule in module.rules():
            for expr in (rule.when, rule.unless):
                if expr is None:
                    continue
                for node in A.iter_exprs(expr):
                    if isinstance(node, A.Path) and node.root == "args" and node.attrs:
                        names.setdefault(node.attrs[0], f"read by rule `{rule.id}`")
                    elif isinstance(node, A.Has) and node.path.root == "args" and not node.path.attrs:
                        names.setdefault(node.name, f"read by rule `{rule.id}`")
    return names


def _path_attrs(analysis: Analysis, root: str, attrs: list[str]) -> dict[str, str]:
    """Attribute names after ``root.`` (only the first level is known)."""
    if root not in PATHS or attrs:
        return {}
    known = {a: f"`{root}.{a}`" for a in PATHS[root][1]}
    if root == "args":
        known.update(_args_names(analysis))
    elif analysis.policies is not None and root == "principal":
        for declared in analysis.policies.agents.values():
            known.update({k: "declared on an agent" for k in declared if k not in known})
    elif analysis.policies is not None and root == "tool":
        for _, declared in analysis.policies.tools:
            known.update({k: "declared on a tool" for k in declared if k not in known})
    return known


def _declared(analysis: Analysis, role: str, workspace: Workspace) -> dict[str, str]:
    policies = analysis.policies
    out: dict[str, str] = {}
    if role in (AGENT_REF, AGENT_DECL) and policies is not None:
        out = {a: "declared agent" for a in policies.agents}
    elif role == GROUP and policies is not None:
        for agent, attrs in policies.agents.items():
            for g in attrs.get("groups") or ():
                if isinstance(g, str):
                    out.setdefault(g, f"group of `{agent}`")
        for rule in policies.rules:
            if isinstance(rule.subject, A.AgentGroup):
                for group in rule.subject.groups:
                    out.setdefault(group, "group named by a rule")
    elif role == TOOL_REF and policies is not None:
        out = {pattern: "declared tool" for pattern, _ in policies.tools}
        for rule in policies.rules:
            for t in rule.targets:
                out.setdefault(t, f"target of `{rule.id}`")
    elif role == RULE_ID_REF and policies is not None:
        out = {r.id: r.effect.replace("_", " ") for r in policies.rules if r.explicit_id}
    elif role == IMPORT:
        from nhipl.loader import stdlib_names

        out = {n: "standard-library policy" for n in stdlib_names()}
        folder = os.path.dirname(analysis.path)
        try:
            for name in sorted(os.listdir(folder)):
                if name.endswith(".nhipl") and os.path.join(folder, name) != analysis.path:
                    out[f"./{name}"] = "policy file"
        except OSError:
            pass
    return out


def _keywords(tokens: list[Token]) -> list[tuple[str, str]]:
    """Keywords that fit after ``tokens`` (the tokens before the cursor)."""
    prev = tokens[-1].text if tokens else None
    before = tokens[-2].text if len(tokens) >= 2 else None
    block = _block(tokens)
    in_rules = block in (None, "task")  # where rules are written
    if prev is None or prev in (";", "}") or (prev == "{" and block == "task") or _annotation_end(tokens):
        if block == "task":
            return [(w, "snippet") for w in ("permit", "forbid", "require approval for", "@id")]
        return [(w, "snippet") for w in ITEM_SNIPPETS]
    if prev in ("permit", "forbid") or (prev == "for" and before == "approval"):
        return [("any agent", "keyword"), ("agent", "keyword"), ("agent in", "keyword")]
    if prev == "require":
        return [("approval for", "keyword")]
    if prev == "any":
        return [("agent", "keyword")]
    if prev == "to":
        return [(a, "keyword") for a in ACTIONS]
    if prev == "grant":
        return [("ttl", "keyword")]
    if prev == "expect":
        return [(e, "keyword") for e in EFFECTS]
    if prev == "attenuate":
        return [("delegation", "keyword")]
    if prev in ("when", "unless", "and", "or", "not", "("):
        return [(r, "path") for r in PATHS] + [("not", "keyword")] + [(f, "function") for f in FUNCTIONS]
    if tokens and tokens[-1].kind == "string" and in_rules:
        # after a rule's subject: `to`; after its targets or resources: the clauses
        role = string_role(tokens, len(tokens) - 1)
        if role == AGENT_REF or role == GROUP:
            return [("to", "keyword")]
        if role == TOOL_REF or before == "on":
            return [(c, "keyword") for c in RULE_CLAUSES]
    if tokens and (tokens[-1].kind in ("name", "number", "duration", "string") or prev in (")", "]")) and in_rules:
        return [(w, "keyword") for w in ("and", "or", "unless", "grant ttl", "because")]
    return []


def _block(tokens: list[Token]) -> str | None:
    """The word that opened the innermost brace still open (`task`, `agent`, `test`, ...)."""
    opened: list[str | None] = []
    for k, t in enumerate(tokens):
        if t.text == "{":
            opened.append(tokens[k - 2].text if k >= 2 and tokens[k - 1].kind == "string" else tokens[k - 1].text if k else None)
        elif t.text == "}" and opened:
            opened.pop()
    return opened[-1] if opened else None


def _annotation_end(tokens: list[Token]) -> bool:
    """Whether ``tokens`` end with an annotation: `@name("...", ...)`."""
    k = len(tokens) - 1
    if k < 0 or tokens[k].text != ")":
        return False
    k -= 1
    while k >= 0 and (tokens[k].kind == "string" or tokens[k].text == ","):
        k -= 1
    return k >= 2 and tokens[k].text == "(" and tokens[k - 1].kind == "name" and tokens[k - 2].text == "@"


def complete(analysis: Analysis, workspace: Workspace, offset: int) -> list[Suggestion]:
    text = analysis.text
    before_text = text[:offset]
    tokens = tokenize(before_text)
    # inside a string: complete its value
    if tokens and tokens[-1].kind == "string" and tokens[-1].end == offset and not (
        len(tokens[-1].text) >= 2 and tokens[-1].text.endswith('"')
    ):
        role = string_role(tokens, len(tokens) - 1)
        start = tokens[-1].start + 1
        end = offset
        if offset < len(text) and text[offset] == '"':
            end = offset + 1
        return [
            Suggestion(v, "value", v + '"', start, end, d) for v, d in sorted(_declared(analysis, role, workspace).items())
        ] if role else []
    # a request path being typed
    m = _PATH_BEFORE.search(before_text)
    if m and m.group(1).split(".")[0] in PATHS:
        parts = m.group(1).split(".")
        start = offset - len(m.group(2))
        return [Suggestion(a, "path", a, start, offset, d) for a, d in sorted(_path_attrs(analysis, parts[0], parts[1:]).items())]
    word = _WORD_BEFORE.search(before_text)
    start = offset - len(word.group()) if word else offset
    if word:
        tokens = tokens[:-1]
    # a string in a place that names something
    probe = tokens + [Token("string", '""', start, start)]
    role = string_role(probe, len(probe) - 1)
    suggestions: list[Suggestion] = []
    if role in (AGENT_REF, GROUP, TOOL_REF, RULE_ID_REF, IMPORT):
        suggestions += [
            Suggestion(v, "value", f'"{v}"', start, offset, d) for v, d in sorted(_declared(analysis, role, workspace).items())
        ]
    for label, kind in _keywords(tokens):
        insert = ITEM_SNIPPETS.get(label, label) if kind == "snippet" else label + "(" if kind == "function" else label
        suggestions.append(Suggestion(label, kind, insert, start, offset, FUNCTIONS.get(label, "") if kind == "function" else ""))
    return suggestions
