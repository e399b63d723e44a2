"""The run as a graph, the analyses a security reviewer asks for, and its DOT drawing.

Nodes are ``kind:name`` strings (``agent:spiffe://...``, ``tool:github.create_pr``,
``task:t1``, ``resource:repo:acme/api``, ``credential:c1``) with a ``kind``
attribute. Edges are keyed by relation (``start``, ``delegate``, ``call``, ``on``,
``issue``, ``use``) and carry ``weight`` (how many events) and, for steps, how many
were allowed, denied or stopped at an approval gate.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # networkx is imported by the functions that use it: `nhipl check` starts without it
    import networkx as nx

from nhipl import ast as A
from nhipl.values import glob_match

RELATIONS = ("start", "delegate", "call", "on", "issue", "use")
MAX_CYCLES = 50
MAX_BLAST_AGENTS = 500


def build_graph(state) -> nx.MultiDiGraph:
    """The aggregate graph of a finished :class:`~nhipl.simulator.replay.Replay`."""
    import networkx as nx

    graph = nx.MultiDiGraph()
    for node in sorted(state.nodes):
        kind = state.nodes[node]
        graph.add_node(node, kind=kind, name=node[len(kind) + 1:], findings=state.node_findings.get(node, 0))
    for (source, target, relation) in sorted(state.edges):
        weight, allow, deny, approval, findings = state.edges[(source, target, relation)]
        attrs = {"weight": weight}
        if relation in ("call", "delegate"):
            attrs.update(allow=allow, deny=deny, approval_required=approval, findings=findings)
        graph.add_edge(source, target, key=relation, **attrs)
    return graph


def _name(node: str) -> str:
    return node.split(":", 1)[1]


def delegation_cycles(state) -> list[list[str]]:
    """Cycles among agents in the aggregate delegation graph (each starts at its smallest id)."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_edges_from((_name(s), _name(t)) for (s, t, r) in state.edges if r == "delegate")
    cycles = []
    for cycle in itertools.islice(nx.simple_cycles(graph), 10 * MAX_CYCLES):
        start = cycle.index(min(cycle))
        cycles.append(cycle[start:] + cycle[:start])
    cycles.sort(key=lambda c: (len(c), c))
    return cycles[:MAX_CYCLES]


def sensitive_tools(state, policies) -> list[str]:
    """Tools the policy marks ``sensitive: true``: those seen in the trace and the
    exact names of sensitive tool declarations."""
    names = {_name(n) for n, kind in state.nodes.items() if kind == "tool"}
    names.update(pattern for pattern, _ in policies.tools if "*" not in pattern)
    return sorted(n for n in names if policies.tool_attrs(n).get("sensitive") is True)


def _resource_for(rule) -> str | None:
    """A resource a rule's `on` globs match (each `*` read as `x`), or None without `on`."""
    return rule.resources[0].replace("*", "x") if rule.resources else None


def _could_permit(policies, agent: str, tool: str) -> bool:
    """Whether some `call` permit's subject and targets match ``agent`` and ``tool`` (its task
    scope, resources and conditions aside)."""
    groups = policies.principal(agent, None).get("groups") or ()
    for rule in policies.rules:
        if rule.effect != "permit" or "call" not in rule.actions or not any(glob_match(t, tool) for t in rule.targets):
            continue
        subject = rule.subject
        if isinstance(subject, A.AgentIds):
            if any(glob_match(i, agent) for i in subject.ids):
                return True
        elif isinstance(subject, A.AgentGroup):
            if any(g in groups for g in subject.groups):
                return True
        else:
            return True
    return False


def _reach_verdict(policies, decisions, agent: str, tool: str) -> tuple[bool, list[str]]:
    """Whether any of ``decisions`` (one tool for one identity, under each intent) may let the call
    through, and the rules whose conditions that assumes. An allowed or gated decision is certain.
    A deny is *undecided* when no rule decided it (default deny) while a permit erred on what the
    analysis does not know (the call's arguments, context, ...), or when every forbid behind it
    erred: the real call may then be allowed, so it counts, naming the rules assumed."""
    assumed: set[str] = set()
    for decision in decisions:
        if decision.effect != "deny":
            return True, []
        erred = {e.rule for e in decision.errors}
        if not erred:
            continue
        permits = [r for r in erred if policies.rule(r).effect == "permit"]
        if not decision.rules:
            assumed.update(f"`{r}`: its condition holds" for r in permits)
        elif set(decision.rules) <= erred and (permits or _could_permit(policies, agent, tool)):
            assumed.update(f"`{r}`: its condition holds" for r in permits)
            assumed.update(f"`{r}`: its condition does not hold" for r in decision.rules)
    return bool(assumed), sorted(assumed)


def blast_radius(state, policies) -> list[dict]:
    """For each identity: the sensitive tools it, or any agent it can reach through
    delegations the policy allowed in the trace, may call under the policy (allow or
    approval_required) for some task intent seen in the trace.

    The requests asked carry no arguments: a call whose outcome hangs on conditions over what
    the analysis cannot know counts as *may be allowed* (never as "never"), and the entry says
    which conditions were assumed (``assumed``); a permit limited to resources is asked again with
    a resource its globs match."""
    if policies is None:
        return []
    tools = sensitive_tools(state, policies)
    agents = sorted(_name(n) for n, kind in state.nodes.items() if kind == "agent")
    if not tools or len(agents) > MAX_BLAST_AGENTS:
        return []
    delegates: dict[str, list[str]] = {}
    for (source, target, relation), stats in sorted(state.edges.items()):
        if relation == "delegate" and stats[1] > 0:
            delegates.setdefault(_name(source), []).append(_name(target))
    intents = [None] + sorted(state.intents)
    resources = [None] + sorted({r for rule in policies.rules if rule.effect == "permit" and (r := _resource_for(rule))})
    attenuate = policies.attenuate
    cache: dict[tuple, tuple[bool, list[str]]] = {}

    def may_call(agent: str, chain: tuple[str, ...], tool: str) -> tuple[bool, list[str]]:
        key = (agent, chain if attenuate else (), tool)
        found = cache.get(key)
        if found is None:
            requests = []
            for intent in intents:
                for resource in resources:
                    request = {"principal": agent, "tool": tool, "delegation": {"chain": list(chain)}}
                    if intent is not None:
                        request["task"] = {"intent": intent}
                    if resource is not None:
                        request["resource"] = resource
                    requests.append(request)
            found = cache[key] = _reach_verdict(policies, policies.evaluate_many(requests), agent, tool)
        return found

    out = []
    for identity in agents:
        reach: dict[str, tuple[str, ...]] = {identity: ()}
        queue = deque([identity])
        while queue:
            agent = queue.popleft()
            for nxt in delegates.get(agent, ()):
                if nxt not in reach:
                    reach[nxt] = reach[agent] + (agent,)
                    queue.append(nxt)
        via: dict[str, list[str]] = {}
        assumed: dict[str, set[str]] = {}
        for agent, chain in reach.items():
            for tool in tools:
                allowed, assumptions = may_call(agent, chain, tool)
                if allowed:
                    via.setdefault(tool, []).append(agent)
                    if assumptions:
                        assumed.setdefault(tool, set()).update(assumptions)
        if via:
            entry = {"identity": identity, "tools": sorted(via), "via": {t: sorted(a) for t, a in sorted(via.items())},
                     "reach": sorted(reach)}
            if assumed:
                entry["assumed"] = {t: sorted(a) for t, a in sorted(assumed.items())}
            out.append(entry)
    out.sort(key=lambda e: (-len(e["tools"]), e["identity"]))
    return out


def exact_blast_radius(state, policies) -> tuple[list[dict], list[str]]:
    """The blast radius over every request, not the trace's intents: for each identity of
    the trace, the sensitive tools it or an agent it may delegate to (under the policies)
    can be allowed or asked approval for; and the assumptions of that answer."""
    from nhipl.analyze import sensitive_reach

    agents = sorted(_name(n) for n, kind in state.nodes.items() if kind == "agent")
    if len(agents) > MAX_BLAST_AGENTS:
        return [], ["more identities than the blast radius examines"]
    return sensitive_reach(policies, agents)


# ---- DOT ---------------------------------------------------------------------------------

_SHAPES = {"agent": "ellipse", "tool": "box", "task": "note", "resource": "cylinder", "credential": "component"}
_FILL = {"agent": "#dbe8ff", "tool": "#eeeeee", "task": "#fff4cc", "resource": "#e6f5e6", "credential": "#f3e6ff"}
_STYLE = {"start": "bold", "delegate": "solid", "call": "solid", "on": "dotted", "issue": "dashed", "use": "dashed"}
MAX_DRAWN_NODES = 400


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _short(name: str) -> str:
    if name.startswith("spiffe://"):
        return name.split("/", 3)[-1] if name.count("/") >= 3 else name
    return name


def to_dot(graph: nx.MultiDiGraph, *, title: str = "trace") -> str:
    """Deterministic DOT text: nodes and edges sorted; findings drawn in red.

    Graphs larger than ``MAX_DRAWN_NODES`` leave out task and credential nodes
    (and say so in the label) so that the drawing stays readable.
    """
    nodes = sorted(graph.nodes)
    note = ""
    if len(nodes) > MAX_DRAWN_NODES:
        nodes = [n for n in nodes if graph.nodes[n]["kind"] not in ("task", "credential")]
        note = " (tasks and credentials left out: too many to draw)"
    keep = set(nodes)
    ids = {node: f"n{i}" for i, node in enumerate(nodes)}
    out = [
        "digraph trace {",
        f"  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, label={_quote(title + note)}, labelloc=t];",
        '  node [fontname="Helvetica", fontsize=10, style=filled];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node in nodes:
        attrs = graph.nodes[node]
        kind = attrs["kind"]
        label = f"{kind}\n{_short(attrs['name'])}" if kind != "agent" else _short(attrs["name"])
        parts = [f"label={_quote(label)}", f"shape={_SHAPES.get(kind, 'ellipse')}",
                 f"tooltip={_quote(attrs['name'])}", f"id={_quote(node)}"]
        if attrs.get("findings"):
            parts += ['color="#c62828"', "penwidth=2.5", 'fillcolor="#ffd7d7"', f'xlabel={_quote(str(attrs["findings"]) + " finding(s)")}']
        else:
            parts.append(f'fillcolor="{_FILL.get(kind, "#ffffff")}"')
        out.append(f"  {ids[node]} [{', '.join(parts)}];")
    for source, target, relation, attrs in sorted(graph.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2])):
        if source not in keep or target not in keep:
            continue
        label = relation if attrs["weight"] == 1 else f"{relation} ×{attrs['weight']}"
        parts = [f"label={_quote(label)}", f"style={_STYLE.get(relation, 'solid')}"]
        if attrs.get("findings"):
            denied, gated = attrs.get("deny", 0), attrs.get("approval_required", 0)
            extra = ", ".join(x for x in (f"{denied} denied" if denied else "", f"{gated} unapproved" if gated else "") if x)
            parts[0] = f"label={_quote(label + ' (' + extra + ')')}"
            parts += ['color="#c62828"', 'fontcolor="#c62828"', "penwidth=2"]
        out.append(f"  {ids[source]} -> {ids[target]} [{', '.join(parts)}];")
    out.append("}")
    return "\n".join(out) + "\n"
