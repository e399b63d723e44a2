"""Credential tracking for a replay: what was issued to whom, for which task, until when.

:class:`Credentials` keeps one :class:`_Credential` per issued id and answers each use with the
credential's request part (``{"id", "issued_at", "ttl", "scope"}``), recording a revocation-gap
finding when the use comes after revocation or expiry, after the served task ended, or from an
identity other than the holder. A credential still valid when its task ends is pending exposure:
revocation (or, at the end of the run, expiry) closes it, and exposure longer than the grace is a
``valid_after_task_end`` finding. A credential issued for no task serves the task of its first use.
"""

from __future__ import annotations

from .tally import REVOCATION_GAP, Finding, Tally


class _Credential:
    __slots__ = ("id", "holder", "issued_at", "ttl", "scope", "task", "line", "revoked_at", "task_end_t", "request")

    def __init__(self, cid: str, holder: str, issued_at: float, ttl: float, scope, task: str | None, line: int):
        self.id = cid
        self.holder = holder
        self.issued_at = issued_at
        self.ttl = ttl
        self.scope = scope
        self.task = task
        self.line = line
        self.revoked_at: float | None = None
        self.task_end_t: float | None = None  # set while exposure after the task's end is pending
        request = {"id": cid, "issued_at": issued_at, "ttl": ttl}
        if scope is not None:
            request["scope"] = scope
        self.request = request

    @property
    def expiry(self) -> float:
        return self.issued_at + self.ttl


class Credentials:
    """The credentials of one replay. ``tasks`` is the replay's task table (id → task, each
    with ``id``, ``ended``, ``end_t`` and a ``credentials`` list), shared, not copied."""

    __slots__ = ("by_id", "unknown", "tasks", "tally", "grace")

    def __init__(self, tasks: dict, tally: Tally, grace: float):
        self.by_id: dict[str, _Credential] = {}
        self.unknown: set[str] = set()  # ids used or revoked but never issued
        self.tasks = tasks
        self.tally = tally
        self.grace = grace

    def issue(self, line: int, ev: dict, task) -> _Credential:
        """Record a ``credential_issue`` event; ``task`` is its task if that was started."""
        cid, agent, t = ev["credential"], ev["agent"], ev["t"]
        cred = _Credential(cid, agent, t, ev["ttl"], ev.get("scope"), ev.get("task"), line)
        self.by_id[cid] = cred
        tally = self.tally
        tally.edge(tally.node("agent", agent), tally.node("credential", cid), "issue")
        if task is not None:
            task.credentials.append(cred)
            if task.ended and cred.expiry > task.end_t:
                cred.task_end_t = task.end_t
        return cred

    def use(self, line: int, agent: str, agent_node: str, tool: str, task, cid: str, t: float) -> dict:
        """The request part for a use of ``cid`` by ``agent`` at ``t``, with its findings."""
        cred = self.by_id.get(cid)
        cred_node = "credential:" + cid
        tally = self.tally
        nodes = tally.nodes
        if cred_node not in nodes:
            nodes[cred_node] = "credential"
        key = (agent_node, cred_node, "use")
        edges = tally.edges
        stats = edges.get(key)
        if stats is None:
            stats = edges[key] = [0, 0, 0, 0, 0]
        stats[0] += 1
        if cred is None:
            self.unknown.add(cid)
            return {"id": cid}
        if cred.task is None and task is not None:
            # A credential issued for no task serves the task of its first use.
            cred.task = task.id
            task.credentials.append(cred)
            if task.ended and cred.task_end_t is None and cred.revoked_at is None and cred.expiry > task.end_t:
                cred.task_end_t = task.end_t
        if cred.revoked_at is None and t < cred.expiry and agent == cred.holder:
            served = self.tasks.get(cred.task) if cred.task is not None else None
            if served is None or not served.ended:
                return cred.request
        common = dict(agent=agent, task=task.id if task is not None else None, tool=tool, credential=cid)
        find = tally.find
        if cred.revoked_at is not None:
            find(Finding(REVOCATION_GAP, "used_after_revoke", line,
                         detail=f"credential `{cid}` was revoked at t={cred.revoked_at:g} and used at t={t:g}", **common),
                 agent_node, cred_node)
        if t >= cred.expiry:
            find(Finding(REVOCATION_GAP, "used_after_expiry", line,
                         detail=f"credential `{cid}` expired at t={cred.expiry:g} (ttl {cred.ttl:g}s) and was used at t={t:g}", **common),
                 agent_node, cred_node)
        served = self.tasks.get(cred.task) if cred.task is not None else None
        if served is not None and served.ended:
            find(Finding(REVOCATION_GAP, "used_after_task_end", line,
                         detail=f"credential `{cid}` serves task `{served.id}`, which ended at t={served.end_t:g}; used at t={t:g}", **common),
                 agent_node, cred_node)
        if agent != cred.holder:
            find(Finding(REVOCATION_GAP, "foreign_holder", line,
                         detail=f"credential `{cid}` was issued to `{cred.holder}` but used by `{agent}`", **common),
                 agent_node, cred_node)
        return cred.request

    def revoke(self, ev: dict) -> None:
        """Record a ``credential_revoke`` event."""
        cred = self.by_id.get(ev["credential"])
        if cred is None:
            self.unknown.add(ev["credential"])
            return
        t = ev["t"]
        if cred.revoked_at is None:
            cred.revoked_at = t
        if cred.task_end_t is not None:
            self._exposure(cred, min(t, cred.expiry), revoked=True)

    def task_ended(self, task, t: float) -> None:
        """``task`` ended at ``t``: its credentials still valid then are pending exposure."""
        for cred in task.credentials:
            if cred.revoked_at is None and cred.expiry > t and cred.task_end_t is None:
                cred.task_end_t = t

    def finish(self) -> None:
        """Close every pending exposure at its credential's expiry."""
        for cred in self.by_id.values():
            if cred.task_end_t is not None:
                self._exposure(cred, cred.expiry, revoked=False)

    def _exposure(self, cred: _Credential, until: float, revoked: bool) -> None:
        exposure = until - cred.task_end_t  # type: ignore[operator]
        ended_at = cred.task_end_t
        cred.task_end_t = None
        if exposure > self.grace:
            how = f"revoked at t={until:g}" if revoked else f"never revoked; expires at t={until:g}"
            self.tally.find(Finding(REVOCATION_GAP, "valid_after_task_end", cred.line, agent=cred.holder, task=cred.task,
                                    credential=cred.id, exposure=round(exposure, 6),
                                    detail=f"task `{cred.task}` ended at t={ended_at:g} but credential `{cred.id}` stayed valid "
                                           f"for {exposure:g}s ({how})"),
                            self.tally.node("credential", cred.id))
