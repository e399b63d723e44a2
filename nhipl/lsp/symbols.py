"""Document symbols (from the document's policies) and workspace symbols (from
every workspace file's declarations)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nhipl import ast as A

from .analysis import Analysis
from .tokens import AGENT_DECL, INVARIANT, RULE_ID_DEF, TASK, TEST, TOOL_DECL
from .workspace import Workspace

RULE, AGENT, TOOL, TASK_BLOCK, TEST_BLOCK, INVARIANT_BLOCK, IMPORT = "rule", "agent", "tool", "task", "test", "invariant", "import"


@dataclass
class Symbol:
    name: str
    kind: str
    detail: str
    span: object  # nhipl Span, 1-based
    children: list["Symbol"] = field(default_factory=list)


def _rule_detail(rule: A.Rule) -> str:
    return f"{rule.effect.replace('_', ' ')} {', '.join(rule.actions)} " + ", ".join(f'"{t}"' for t in rule.targets)


def document_symbols(analysis: Analysis) -> list[Symbol]:
    module = analysis.module
    if module is None:
        return []
    out = []
    for item in module.items:
        if item.span is None:
            continue
        if isinstance(item, A.Rule):
            out.append(Symbol(item.id, RULE, _rule_detail(item), item.span))
        elif isinstance(item, A.TaskBlock):
            children = [Symbol(r.id, RULE, _rule_detail(r), r.span) for r in item.rules if r.span is not None]
            out.append(Symbol(item.intent, TASK_BLOCK, "task", item.span, children))
        elif isinstance(item, A.AgentDecl):
            out.append(Symbol(item.id, AGENT, "agent", item.span))
        elif isinstance(item, A.ToolDecl):
            out.append(Symbol(item.pattern, TOOL, "tool", item.span))
        elif isinstance(item, A.Test):
            out.append(Symbol(item.name, TEST_BLOCK, f"test: expect {item.expect.effect}", item.span))
        elif isinstance(item, A.Invariant):
            out.append(Symbol(item.name, INVARIANT_BLOCK, f"invariant: never {item.effect}", item.span))
        elif isinstance(item, A.Import):
            out.append(Symbol(item.target, IMPORT, "import", item.span))
    return out


_ROLE_KINDS = {RULE_ID_DEF: RULE, AGENT_DECL: AGENT, TOOL_DECL: TOOL, TASK: TASK_BLOCK, TEST: TEST_BLOCK, INVARIANT: INVARIANT_BLOCK}


def workspace_symbols(workspace: Workspace, query: str):
    """(name, kind, path, start offset, end offset) of every declaration whose name holds ``query``."""
    query = query.lower()
    for facts in workspace.all_facts():
        for m in facts.mentions:
            kind = _ROLE_KINDS.get(m.role)
            if kind is not None and query in m.value.lower():
                yield m.value, kind, facts, m.start, m.end
