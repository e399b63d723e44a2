"""A swarm's cast taken from a policy set: the identities, tools and task intents it names,
and what it lets each identity do for each intent (``nhipl generate --from-policy``).

Identities are the exactly named ones (agent declarations and rule subjects without `*`);
tools are the exactly named call targets and tool declarations, and each glob target with its
`*` read as `any` (`"github.*"` → `github.any`), so a policy written only with globs still gets
a cast; intents are those of task blocks and of `task.intent == "..."` conditions. What an
identity does for an intent is found by asking the policies themselves: a tool whose plain call
(no arguments beyond the swarm's own) is allowed, or needs approval, is in its toolset for that
intent; an identity it may hand work to is one of its delegatees.
"""

from __future__ import annotations

from dataclasses import dataclass

from nhipl import ast as A


@dataclass(frozen=True, slots=True)
class Cast:
    agents: tuple[str, ...]
    tools: tuple[str, ...]
    intents: tuple[str, ...]
    sensitive: frozenset[str]
    toolsets: dict[tuple[str, str], tuple[str, ...]]
    """(intent, agent) → the tools its calls may use (allowed or gated)."""
    gated: frozenset[tuple[str, str, str]]
    """(intent, agent, tool) whose call needs a human approval."""
    delegatees: dict[tuple[str, str], tuple[str, ...]]
    """(intent, agent) → the identities it may delegate to."""


def _exact(pattern: str) -> str | None:
    return None if "*" in pattern else pattern


def _intents_in(expr: A.Expr | None) -> set[str]:
    found: set[str] = set()
    if expr is None:
        return found
    for node in A.iter_exprs(expr):
        if isinstance(node, A.Compare) and node.op == "==":
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if (isinstance(side, A.Path) and side.root == "task" and side.attrs == ("intent",)
                        and isinstance(other, A.Literal) and isinstance(other.value, str)):
                    found.add(other.value)
    return found


def cast_from_policy(policies) -> Cast:
    """The cast of ``policies`` (a loaded :class:`nhipl.Policies`); ValueError when the policy
    names no identity or no tool to build a swarm from."""
    agents: set[str] = {a for a in policies.agents if _exact(a)}
    tools: set[str] = set()
    intents: set[str] = set()
    tools.update(name for pattern, _ in policies.tools if (name := _exact(pattern)))
    for rule in policies.rules:
        if isinstance(rule.subject, A.AgentIds):
            agents.update(i for i in rule.subject.ids if _exact(i))
        if rule.task_intent is not None:
            intents.add(rule.task_intent)
        intents |= _intents_in(rule.when) | _intents_in(rule.unless)
        if "call" in rule.actions:
            tools.update(t.replace("*", "any") for t in rule.targets)
        if "delegate" in rule.actions:
            agents.update(t for t in rule.targets if _exact(t))
    if not agents:
        raise ValueError("the policy names no identity exactly: declare one (`agent \"spiffe://...\" { ... }`) "
                         "or name one in a rule's subject")
    if not tools:
        raise ValueError("the policy names no tool: write a `call` rule or a `tool` declaration")
    sensitive = {t for t in tools if policies.tool_attrs(t).get("sensitive") is True}
    ordered_agents, ordered_tools = tuple(sorted(agents)), tuple(sorted(tools))
    ordered_intents = tuple(sorted(intents)) or ("default",)
    toolsets: dict[tuple[str, str], tuple[str, ...]] = {}
    gated: set[tuple[str, str, str]] = set()
    delegatees: dict[tuple[str, str], tuple[str, ...]] = {}
    for intent in ordered_intents:
        for agent in ordered_agents:
            usable = []
            for tool in ordered_tools:
                effect = policies.evaluate({"principal": agent, "tool": tool, "task": {"intent": intent},
                                            "args": {"ticket": "T000000"}}).effect
                if effect != "deny":
                    usable.append(tool)
                    if effect == "approval_required":
                        gated.add((intent, agent, tool))
            toolsets[(intent, agent)] = tuple(usable)
            delegatees[(intent, agent)] = tuple(
                other for other in ordered_agents if other != agent and policies.evaluate(
                    {"principal": agent, "action": "delegate", "tool": other, "task": {"intent": intent}}).effect == "allow")
    return Cast(ordered_agents, ordered_tools, ordered_intents, frozenset(sensitive), toolsets, frozenset(gated), delegatees)
