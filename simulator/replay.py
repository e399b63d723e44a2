"""The replay engine: events in order → requests → decisions → findings and a run model.

Each ``tool_call`` and ``delegate`` event is a step. Its request is built from the
trace state at that point: the task's intent, the delegation chain that
reached the agent in that task, the credential and its age, the approvals seen for
that tool in that task, and the provenance of each argument. Steps are decided in
batches through ``Policies.evaluate_many``.

Memory grows with distinct entities (agents, tasks, tools, resources, credentials
and the pairs between them), never with events: calls between the same pair are
one weighted edge, and latency goes into fixed-size histograms.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Callable, NamedTuple

from nhipl import ast as A
from nhipl.decision import ALLOW, DENY
from nhipl.effects import RuleEffect
from nhipl.errors import RequestError
from nhipl.approval import ScopedApproval, take
from nhipl.provenance import Outputs, provenance
from nhipl.request import MAX_HISTORY
from nhipl.values import ListView

from .latency import Histogram, LatencyModel
from .trace import TraceError, TraceReader

OVERREACH, UNUSED_PERMIT, REVOCATION_GAP, ATTRIBUTION = "overreach", "unused_permit", "revocation_gap", "attribution"
FINDING_KINDS = {
    OVERREACH: ("denied", "unapproved"),
    UNUSED_PERMIT: (),
    REVOCATION_GAP: ("used_after_task_end", "used_after_revoke", "used_after_expiry", "foreign_holder", "valid_after_task_end"),
    ATTRIBUTION: ("no_task", "unknown_origin"),
}

# What one `approval` event covers: the next call of its tool in its task (`call`, as enforcement
# does), or every later call of it in the task (`task`).
APPROVAL_SCOPES = ("call", "task")
# Seconds a credential may stay valid after its task ends before it is a finding: revocation
# that lands within a few seconds of the task's end is how a runtime works, not a gap.
DEFAULT_GRACE = 5.0

# The report's timeline draws at most this many steps: the first ones of the run.
TIMELINE_STEPS = 2000


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


class _Task:
    __slots__ = ("id", "intent", "owner", "prompt", "starter", "reached", "approvals", "outputs",
                 "ended", "end_t", "credentials", "delay", "gated", "request", "history")

    def __init__(self, task_id: str, intent: str, owner: str | None, prompt: str | None, starter: str):
        self.id = task_id
        self.intent = intent
        self.owner = owner
        self.prompt = prompt
        self.starter = starter
        self.reached: dict[str, Chain] = {starter: NO_CHAIN}
        self.approvals: dict[str, ScopedApproval] = {}
        self.outputs = Outputs()
        self.ended = False
        self.end_t: float | None = None
        self.credentials: list[_Credential] = []
        self.delay = 0.0
        self.gated: set[str] | None = None
        self.request = {"id": task_id, "intent": intent} if owner is None else {"id": task_id, "intent": intent, "owner": owner}
        # The task's steps so far, oldest first, each with the effect it got: one list that
        # only grows, read by each step's request through a view of its prefix (no copy).
        self.history: list[dict] = []


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


class Chain:
    """A delegation chain, sharing its prefix with the chain it grew from: the
    identities that delegated, originator first. A task's chains form a tree, so
    a run of n delegations keeps n nodes, not n chains of up to n names."""

    __slots__ = ("before", "last", "depth")

    def __init__(self, before: "Chain | None", last: str | None):
        self.before = before
        self.last = last
        self.depth = before.depth + 1 if before is not None else 0

    def then(self, identity: str) -> "Chain":
        return Chain(self, identity)

    def names(self, spelled: "tuple[Chain, list[str]] | None" = None) -> list[str]:
        """The identities, originator first, as a new list. ``spelled`` is a chain
        already spelled out, ``(chain, its names)``: when it is this chain's
        ancestor only the part after it is walked (a chain that grows by one
        delegation at a time then costs one list copy per step)."""
        stop, known = spelled if spelled is not None else (None, None)
        tail: list[str] = []
        node = self
        while node.depth and node is not stop:
            tail.append(node.last)  # type: ignore[arg-type]
            node = node.before  # type: ignore[assignment]
        names = list(known) if node is stop and known is not None else []
        names.extend(reversed(tail))
        return names

    def __len__(self) -> int:
        return self.depth


NO_CHAIN = Chain(None, None)


class TimelineStep(NamedTuple):
    """One step as the report's timeline draws it (the first :data:`TIMELINE_STEPS` of a run)."""

    t: float | None
    agent: str
    action: str  # "call" or "delegate"
    target: str  # the tool, or the delegatee
    effect: str | None  # None when no policy decided it
    line: int


class Replay:
    """State of one replay; :func:`nhipl.simulator.simulate` drives it."""

    def __init__(self, policies, *, seed: int = 0, latency: LatencyModel | None = None, batch_size: int = 256,
                 revocation_grace: float = DEFAULT_GRACE, name: str = "<trace>", approvals: str = "call",
                 on_request: Callable[[int, dict], None] | None = None):
        if approvals not in APPROVAL_SCOPES:
            raise ValueError(f"`approvals` must be one of {', '.join(APPROVAL_SCOPES)}, not {approvals!r}")
        self.policies = policies
        self.approval_per_call = approvals == "call"
        self.on_request = on_request
        self.first_step_ns: int | None = None
        self.timeline: list[TimelineStep] = []
        self.latency = latency or LatencyModel()
        self.rng = random.Random(seed)
        self.batch_size = batch_size
        self.grace = revocation_grace
        self.name = name
        self.events = 0
        self.steps = 0
        self.findings: list[Finding] = []
        self.tasks: dict[str, _Task] = {}
        self.credentials: dict[str, _Credential] = {}
        self.unknown_credentials: set[str] = set()
        # (source, target, relation) → [weight, allow, deny, approval_required, findings]
        self.edges: dict[tuple[str, str, str], list[int]] = {}
        self.nodes: dict[str, str] = {}  # node id → kind ("agent", "tool", ...)
        self.node_findings: dict[str, int] = {}
        self.intents: set[str] = set()
        self.used_permits: set[str] = set()
        self.step_cost = Histogram()  # nanoseconds
        self._longest: tuple[Chain, str | None, int | None] = (NO_CHAIN, None, None)
        self._pending: list[tuple[dict, tuple]] = []
        self._spelled: tuple[Chain, list[str]] = (NO_CHAIN, [])  # the chain last spelled out
        self._times: list[int] = []
        # Whether a rule reads `history`: only then are the tasks' steps kept, and each step is
        # decided before the next is built (a step's history holds the effects of all earlier ones).
        self.history = policies is not None and reads_history(policies)
        if policies is not None:
            policies.evaluate_many([])  # compile now, so that the first step's cost is its own

    @property
    def longest_chain(self) -> tuple[tuple[str, ...], str | None, int | None]:
        """The longest delegation chain seen (its identities, the last one included),
        its task and the trace line of the delegation that made it."""
        chain, task, line = self._longest
        return tuple(chain.names()), task, line

    def _names(self, chain: Chain) -> list[str]:
        names = chain.names(self._spelled)
        self._spelled = (chain, names)
        return names

    # -- model --------------------------------------------------------------------------
    def _node(self, kind: str, name: str) -> str:
        node = f"{kind}:{name}"
        if node not in self.nodes:
            self.nodes[node] = kind
        return node

    def _edge(self, source: str, target: str, relation: str) -> list[int]:
        key = (source, target, relation)
        stats = self.edges.get(key)
        if stats is None:
            stats = self.edges[key] = [0, 0, 0, 0, 0]
        stats[0] += 1
        return stats

    def _find(self, finding: Finding, *nodes: str) -> None:
        self.findings.append(finding)
        for node in nodes:
            self.node_findings[node] = self.node_findings.get(node, 0) + 1

    # -- events -------------------------------------------------------------------------
    def feed(self, line: int, event: dict) -> None:
        self.events += 1
        kind = event["kind"]
        if kind == "tool_call":
            self._tool_call(line, event)
        elif kind == "delegate":
            self._delegate(line, event)
        elif kind == "task_start":
            self._task_start(line, event)
        elif kind == "credential_issue":
            self._credential_issue(line, event)
        elif kind == "approval":
            self._approval(event)
        elif kind == "tool_output":
            self._tool_output(event)
        elif kind == "credential_revoke":
            self._revoke(line, event)
        elif kind == "task_end":
            self._task_end(line, event)

    def _task_start(self, line: int, ev: dict) -> None:
        task_id, agent, intent = ev["task"], ev["agent"], ev["intent"]
        task = _Task(task_id, intent, ev.get("owner"), ev.get("prompt"), agent)
        self.tasks[task_id] = task
        self.intents.add(intent)
        self._edge(self._node("task", task_id), self._node("agent", agent), "start")

    def _step_context(self, line: int, ev: dict, agent: str):
        """The task and the delegation chain behind a step, with attribution findings."""
        task_id = ev.get("task")
        task = self.tasks.get(task_id) if task_id is not None else None
        if task is not None:
            chain = task.reached.get(agent)
            if chain is not None:
                return task, chain
        agent_node = self._node("agent", agent)
        if task is None:
            detail = "the step names no task" if task_id is None else f"task `{task_id}` was never started"
            self._find(Finding(ATTRIBUTION, "no_task", line, agent=agent, task=task_id, tool=ev.get("tool") or ev.get("to"),
                               detail=detail), agent_node)
            return task, NO_CHAIN
        self._find(Finding(ATTRIBUTION, "unknown_origin", line, agent=agent, task=task_id, tool=ev.get("tool") or ev.get("to"),
                           detail=f"`{agent}` neither started task `{task_id}` nor was delegated to within it"),
                   agent_node)
        return task, NO_CHAIN

    def _delegate(self, line: int, ev: dict) -> None:
        agent, to = ev["agent"], ev["to"]
        task, chain = self._step_context(line, ev, agent)
        self._node("agent", agent)
        self._node("agent", to)
        if task is not None:
            if to not in task.reached:
                reached = task.reached[to] = chain.then(agent)
                if reached.depth + 1 > self._longest[0].depth:
                    self._longest = (reached.then(to), task.id, line)
        request = {"principal": agent, "action": "delegate", "tool": to, "delegation": {"chain": self._names(chain)}, "now": ev["t"]}
        step = None
        if task is not None:
            request["task"] = task.request
            approval = self._approval_for(task, to, None, ev["t"])
            if approval is not None:
                request["approval"] = approval
            if self.history:
                step = self._history(task, request, {"t": ev["t"], "agent": agent, "action": "delegate", "tool": to})
        self._queue(request, (line, "delegate", agent, task, to, chain, step))

    def _tool_call(self, line: int, ev: dict) -> None:
        get = ev.get
        agent, tool = ev["agent"], ev["tool"]
        task, chain = self._step_context(line, ev, agent)
        t = ev["t"]
        request = {"principal": agent, "tool": tool, "now": t}
        action = get("action")
        if action is not None:
            request["action"] = action
        if chain.depth:
            request["delegation"] = {"chain": self._names(chain)}
        nodes = self.nodes
        tool_node = "tool:" + tool
        if tool_node not in nodes:
            nodes[tool_node] = "tool"
        agent_node = "agent:" + agent
        if agent_node not in nodes:
            nodes[agent_node] = "agent"
        resource = get("resource")
        if resource is not None:
            request["resource"] = resource
            self._edge(tool_node, self._node("resource", resource), "on")
        args = get("args")
        if task is not None:
            request["task"] = task.request
            if task.approvals:
                approval = self._approval_for(task, tool, args, t)
                if approval is not None:
                    request["approval"] = approval
        recorded = get("provenance")
        if recorded.__class__ is dict:
            # Recorded by the enforcement point that decided the step (redaction would
            # otherwise change what replay derives).
            request["provenance"] = recorded
        elif args:
            request["provenance"] = provenance(args, task.prompt, task.outputs) if task is not None else provenance(args, None, None)
        if args is not None:
            request["args"] = args
        context = get("context")
        if context is not None:
            request["context"] = context
        cid = get("credential")
        if cid is not None:
            request["credential"] = self._use(line, agent, agent_node, tool, task, cid, t)
        output = get("output")
        if output is not None and task is not None:
            task.outputs.add(tool, output)
        step = None
        if self.history and task is not None:
            step = {"t": t, "agent": agent, "action": action or "call", "tool": tool}
            if resource is not None:
                step["resource"] = resource
            if args is not None:
                step["args"] = args
            step = self._history(task, request, step)
        self.steps += 1
        pending = self._pending
        pending.append((request, (line, "call", agent, task, tool, chain, step)))
        if len(pending) >= self.batch_size or step is not None:
            self.flush()

    @staticmethod
    def _history(task: _Task, request: dict, step: dict) -> dict:
        """Give ``request`` the task's earlier steps (a view, not a copy) and record ``step``
        after them; its effect is filled in when it is decided. At most :data:`MAX_HISTORY`
        steps are visible; the list is cut back when it holds twice that."""
        steps = task.history
        if len(steps) >= 2 * MAX_HISTORY:
            steps = task.history = steps[-MAX_HISTORY:]
        n = len(steps)
        request["history"] = ListView(steps, n, max(0, n - MAX_HISTORY))
        steps.append(step)
        return step

    def _use(self, line: int, agent: str, agent_node: str, tool: str, task: _Task | None, cid: str, t: float) -> dict:
        cred = self.credentials.get(cid)
        cred_node = "credential:" + cid
        if cred_node not in self.nodes:
            self.nodes[cred_node] = "credential"
        key = (agent_node, cred_node, "use")
        stats = self.edges.get(key)
        if stats is None:
            stats = self.edges[key] = [0, 0, 0, 0, 0]
        stats[0] += 1
        if cred is None:
            self.unknown_credentials.add(cid)
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
        if cred.revoked_at is not None:
            self._find(Finding(REVOCATION_GAP, "used_after_revoke", line,
                               detail=f"credential `{cid}` was revoked at t={cred.revoked_at:g} and used at t={t:g}", **common),
                       agent_node, cred_node)
        if t >= cred.expiry:
            self._find(Finding(REVOCATION_GAP, "used_after_expiry", line,
                               detail=f"credential `{cid}` expired at t={cred.expiry:g} (ttl {cred.ttl:g}s) and was used at t={t:g}", **common),
                       agent_node, cred_node)
        served = self.tasks.get(cred.task) if cred.task is not None else None
        if served is not None and served.ended:
            self._find(Finding(REVOCATION_GAP, "used_after_task_end", line,
                               detail=f"credential `{cid}` serves task `{served.id}`, which ended at t={served.end_t:g}; used at t={t:g}", **common),
                       agent_node, cred_node)
        if agent != cred.holder:
            self._find(Finding(REVOCATION_GAP, "foreign_holder", line,
                               detail=f"credential `{cid}` was issued to `{cred.holder}` but used by `{agent}`", **common),
                       agent_node, cred_node)
        return cred.request

    def _credential_issue(self, line: int, ev: dict) -> None:
        cid, agent, t = ev["credential"], ev["agent"], ev["t"]
        task_id = ev.get("task")
        cred = _Credential(cid, agent, t, ev["ttl"], ev.get("scope"), task_id, line)
        self.credentials[cid] = cred
        self._edge(self._node("agent", agent), self._node("credential", cid), "issue")
        task = self.tasks.get(task_id) if task_id is not None else None
        if task is not None:
            task.credentials.append(cred)
            task.delay += self.latency.credential_issue.draw(self.rng)
            if task.ended and cred.expiry > task.end_t:
                cred.task_end_t = task.end_t

    def _approval(self, ev: dict) -> None:
        task = self.tasks.get(ev["task"])
        if task is None:
            return
        uses = ev.get("uses")
        task.approvals[ev["tool"]] = ScopedApproval({"granted": ev["granted"], "by": ev["by"]}, ev.get("args"),
                                               1 if uses is None else (None if uses <= 0 else uses), ev.get("expires"))
        task.delay += self.latency.approval_wait.draw(self.rng)
        if task.gated is None:
            task.gated = set()
        task.gated.add(ev["tool"])

    def _approval_for(self, task: _Task, tool: str, args: dict | None, t: float) -> dict | None:
        """The approval in force for a call of ``tool`` with ``args`` at ``t``, used up by it
        (with ``approvals="call"``; with ``"task"`` an approval counts for every later call)."""
        if not self.approval_per_call:
            grant = task.approvals.get(tool)
            return grant.granted if grant is not None else None
        return take(task.approvals, tool, args, t)

    def _tool_output(self, ev: dict) -> None:
        task = self.tasks.get(ev["task"])
        output = ev.get("output")
        if task is not None and not task.ended and output is not None:
            task.outputs.add(ev["tool"], output)

    def _revoke(self, line: int, ev: dict) -> None:
        cred = self.credentials.get(ev["credential"])
        if cred is None:
            self.unknown_credentials.add(ev["credential"])
            return
        t = ev["t"]
        if cred.revoked_at is None:
            cred.revoked_at = t
        if cred.task_end_t is not None:
            self._exposure(cred, min(t, cred.expiry), revoked=True)

    def _task_end(self, line: int, ev: dict) -> None:
        task = self.tasks.get(ev["task"])
        if task is None or task.ended:
            return
        t = ev["t"]
        task.ended = True
        task.end_t = t
        task.outputs.clear()
        for cred in task.credentials:
            if cred.revoked_at is None and cred.expiry > t and cred.task_end_t is None:
                cred.task_end_t = t

    def _exposure(self, cred: _Credential, until: float, revoked: bool) -> None:
        exposure = until - cred.task_end_t  # type: ignore[operator]
        ended_at = cred.task_end_t
        cred.task_end_t = None
        if exposure > self.grace:
            how = f"revoked at t={until:g}" if revoked else f"never revoked; expires at t={until:g}"
            self._find(Finding(REVOCATION_GAP, "valid_after_task_end", cred.line, agent=cred.holder, task=cred.task,
                               credential=cred.id, exposure=round(exposure, 6),
                               detail=f"task `{cred.task}` ended at t={ended_at:g} but credential `{cred.id}` stayed valid "
                                      f"for {exposure:g}s ({how})"),
                       self._node("credential", cred.id))

    # -- decisions ----------------------------------------------------------------------
    def _queue(self, request: dict, context: tuple) -> None:
        self.steps += 1
        self._pending.append((request, context))
        if len(self._pending) >= self.batch_size or context[6] is not None:
            self.flush()

    def _timed(self, requests):
        times = self._times
        clock = perf_counter_ns
        last = clock()
        for request in requests:
            yield request
            now = clock()
            times.append(now - last)
            last = now

    def flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if self.on_request is not None:
            for request, context in pending:
                self.on_request(context[0], request)
        timeline = self.timeline
        if self.policies is None:
            for request, context in pending:
                self._record(context, None)
                if len(timeline) < TIMELINE_STEPS:
                    timeline.append(TimelineStep(request.get("now"), context[2], context[1], context[4], None, context[0]))
            return
        times = self._times
        times.clear()
        started = perf_counter_ns()
        try:
            decisions = self.policies.evaluate_many(self._timed(request for request, _ in pending))
        except RequestError as err:
            index = err.index if getattr(err, "index", None) is not None else 0
            raise TraceError(self.name, pending[index][1][0], f"cannot build a request from this event: {err.message}") from None
        total = perf_counter_ns() - started
        # Per-step times come from the gaps between requests handed to evaluate_many
        # (it consumes them one by one); should it not, fall back to the batch average.
        if len(times) != len(pending) or not any(times):
            times[:] = [total // len(pending)] * len(pending)
        add = self.step_cost.add
        first = self.first_step_ns is None
        for (request, context), decision, cost in zip(pending, decisions, times):
            if len(timeline) < TIMELINE_STEPS:
                timeline.append(TimelineStep(request.get("now"), context[2], context[1], context[4], decision.effect, context[0]))
            if first:  # the cold first step (caches filling) is reported apart, not in the percentiles
                self.first_step_ns, first = cost, False
            else:
                add(cost)
            self._record(context, decision, cost)

    def _record(self, context: tuple, decision, cost: int = 0) -> None:
        line, step, agent, task, target, chain, recorded = context
        agent_node = f"agent:{agent}"
        target_node = f"agent:{target}" if step == "delegate" else f"tool:{target}"
        stats = self._edge(agent_node, target_node, "delegate" if step == "delegate" else "call")
        if decision is None:
            return
        effect = decision.effect
        if recorded is not None:
            recorded["effect"] = effect.value  # the plain word, as in a request read from JSON
        if effect == ALLOW:
            stats[1] += 1
            if decision.shares:
                # Attenuated: the step was allowed for every delegator too, by the
                # delegators' own permits, so those permits were exercised as well.
                for share in decision.shares:
                    self.used_permits.update(share.rules)
            elif decision.rules:
                self.used_permits.update(decision.rules)
            return
        task_id = task.id if task is not None else None
        reasons = "; ".join(decision.reasons)
        if effect == DENY:
            stats[2] += 1
            stats[4] += 1
            self._find(Finding(OVERREACH, "denied", line, agent=agent, task=task_id, tool=target,
                               rule=decision.rules[0] if decision.rules else None, detail=reasons, chain=tuple(chain.names()),
                               restricted_by=decision.restricted_by),
                       agent_node, target_node)
        else:
            stats[3] += 1
            stats[4] += 1
            self._find(Finding(OVERREACH, "unapproved", line, agent=agent, task=task_id, tool=target,
                               rule=decision.rules[0] if decision.rules else None, detail=reasons, chain=tuple(chain.names()),
                               restricted_by=decision.restricted_by),
                       agent_node, target_node)
            if task is not None:
                # The gate would stop the task for a human once per tool.
                if task.gated is None:
                    task.gated = set()
                if target not in task.gated:
                    task.gated.add(target)
                    task.delay += self.latency.approval_wait.draw(self.rng)

    # -- the end ------------------------------------------------------------------------
    def finish(self) -> None:
        self.flush()
        for cred in self.credentials.values():
            if cred.task_end_t is not None:
                self._exposure(cred, cred.expiry, revoked=False)
        if self.policies is not None:
            for rule in self.policies.rules:
                if rule.effect == RuleEffect.PERMIT and rule.id not in self.used_permits:
                    where = f" ({rule.span.source}:{rule.span.line})" if rule.span is not None else ""
                    self._find(Finding(UNUSED_PERMIT, None, None, rule=rule.id,
                                       detail=f"permit `{rule.id}`{where} never determined an allowed step"))
        self.findings.sort(key=Finding.sort_key)


def reads_history(policies) -> bool:
    """Whether a condition of ``policies`` reads the request's ``history``."""
    for rule in policies.rules:
        for expr in (rule.when, rule.unless):
            if expr is not None and any(isinstance(n, A.Path) and n.root == "history" for n in A.iter_exprs(expr)):
                return True
    return False


def replay(reader: TraceReader, policies, *, seed: int = 0, latency: LatencyModel | None = None, batch_size: int = 256,
           revocation_grace: float = DEFAULT_GRACE, progress: Callable[[TraceReader, int], None] | None = None,
           approvals: str = "call", on_request: Callable[[int, dict], None] | None = None) -> Replay:
    """Feed every event of ``reader`` through a :class:`Replay` and finish it."""
    state = Replay(policies, seed=seed, latency=latency, batch_size=batch_size, revocation_grace=revocation_grace,
                   name=reader.name, approvals=approvals, on_request=on_request)
    feed = state.feed
    if progress is None:
        for line, event in reader:
            feed(line, event)
    else:
        for line, event in reader:
            feed(line, event)
            if not state.events & 0x3FFF:
                progress(reader, state.events)
        progress(reader, state.events)
    state.finish()
    return state
