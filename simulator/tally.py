"""What a replay counts: the findings it makes and the aggregate graph they sit on.

A :class:`Finding` is one thing a replay found, of one of the :data:`FINDING_KINDS`. A
:class:`Tally` holds the graph as plain dicts (node id → kind, ``(source, target, relation)`` →
``[weight, allow, deny, approval_required, findings]``) and the findings with their count per node;
credential tracking, request building and the event loop all add to one tally.
"""

from __future__ import annotations

from dataclasses import dataclass

OVERREACH, UNUSED_PERMIT, REVOCATION_GAP, ATTRIBUTION = "overreach", "unused_permit", "revocation_gap", "attribution"
FINDING_KINDS = {
    OVERREACH: ("denied", "unapproved"),
    UNUSED_PERMIT: (),
    REVOCATION_GAP: ("used_after_task_end", "used_after_revoke", "used_after_expiry", "foreign_holder", "valid_after_task_end"),
    ATTRIBUTION: ("no_task", "unknown_origin"),
}


@dataclass(slots=True)
class Finding:
    """One finding. ``line`` is the trace line of the event it is about
    (None for ``unused_permit``); ``exposure`` is in seconds (``valid_after_task_end``)."""

    kind: str
    subkind: str | None
    line: int | None
    agent: str | None = None
    task: str | None = None
    tool: str | None = None
    credential: str | None = None
    rule: str | None = None
    detail: str | None = None
    chain: tuple[str, ...] | None = None
    exposure: float | None = None
    restricted_by: str | None = None
    """Under attenuation: the delegator whose own decision restricted the step."""

    def to_dict(self) -> dict:
        out: dict = {"kind": self.kind, "subkind": self.subkind, "line": self.line}
        for name in ("agent", "task", "tool", "credential", "rule", "detail"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.chain is not None:
            out["chain"] = list(self.chain)
        if self.exposure is not None:
            out["exposure"] = self.exposure
        if self.restricted_by is not None:
            out["restricted_by"] = self.restricted_by
        return out

    def sort_key(self):
        return (self.line is None, self.line or 0, self.kind, self.subkind or "", self.credential or "", self.rule or "")


class Tally:
    """The graph and the findings of one replay."""

    __slots__ = ("nodes", "edges", "node_findings", "findings")

    def __init__(self):
        self.nodes: dict[str, str] = {}  # node id → kind ("agent", "tool", ...)
        # (source, target, relation) → [weight, allow, deny, approval_required, findings]
        self.edges: dict[tuple[str, str, str], list[int]] = {}
        self.node_findings: dict[str, int] = {}
        self.findings: list[Finding] = []

    def node(self, kind: str, name: str) -> str:
        node = f"{kind}:{name}"
        if node not in self.nodes:
            self.nodes[node] = kind
        return node

    def edge(self, source: str, target: str, relation: str) -> list[int]:
        key = (source, target, relation)
        stats = self.edges.get(key)
        if stats is None:
            stats = self.edges[key] = [0, 0, 0, 0, 0]
        stats[0] += 1
        return stats

    def find(self, finding: Finding, *nodes: str) -> None:
        self.findings.append(finding)
        for node in nodes:
            self.node_findings[node] = self.node_findings.get(node, 0) + 1
