"""Request building for a replay: each step's request from the trace state at that point.

:class:`Requests` keeps the tasks a trace started (:class:`_Task`: intent, owner, the
delegation chain that reached each agent, approvals seen, tool outputs for provenance and, when a
rule reads it, the task's history) and turns each ``tool_call`` and ``delegate`` event into a
request for ``Policies.evaluate_many`` plus the context the event loop records its decision with.
Provenance comes from the core's :mod:`nhipl.provenance`; credentials are answered by the
replay's credential tracker; a step whose agent no chain reached is an attribution finding.
"""

from __future__ import annotations

from typing import Callable

from nhipl import ast as A
from nhipl.approval import ScopedApproval, take
from nhipl.provenance import Outputs, provenance
from nhipl.request import MAX_HISTORY
from nhipl.values import ListView

from .tally import ATTRIBUTION, Finding, Tally


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


class _Task:
    __slots__ = ("id", "intent", "owner", "prompt", "starter", "reached", "approvals", "outputs",
                 "ended", "end_t", "credentials", "delay", "gated", "request", "history", "undecided")

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
        self.credentials: list = []  # the credential tracker's records serving this task
        self.delay = 0.0
        self.gated: set[str] | None = None
        self.request = {"id": task_id, "intent": intent} if owner is None else {"id": task_id, "intent": intent, "owner": owner}
        # The task's steps so far, oldest first, each with the effect it got: one list that
        # only grows, read by each step's request through a view of its prefix (no copy).
        self.history: list[dict] = []
        self.undecided = False  # its last recorded step waits in the batch for its decision


def reads_history(policies) -> bool:
    """Whether a condition of ``policies`` reads the request's ``history``."""
    for rule in policies.rules:
        for expr in (rule.when, rule.unless):
            if expr is not None and any(isinstance(n, A.Path) and n.root == "history" for n in A.iter_exprs(expr)):
                return True
    return False


class Requests:
    """Builds the requests of one replay. ``tasks`` is the replay's task table, filled here;
    ``use`` answers a credential use (the credential
    tracker's :meth:`~.credentials.Credentials.use`); ``flush`` decides the steps waiting in the
    batch (needed before a step whose history must hold their effects); ``history`` says whether
    to keep the tasks' steps at all (only when a rule reads them)."""

    __slots__ = ("tasks", "intents", "tally", "use", "flush", "approval_per_call", "history", "longest", "_spelled")

    def __init__(self, tasks: dict, tally: Tally, use: Callable, flush: Callable[[], None], *, approval_per_call: bool,
                 history: bool):
        self.tasks: dict[str, _Task] = tasks
        self.intents: set[str] = set()
        self.tally = tally
        self.use = use
        self.flush = flush
        self.approval_per_call = approval_per_call
        self.history = history
        # The longest delegation chain seen: (its chain, task id, trace line of the delegation).
        self.longest: tuple[Chain, str | None, int | None] = (NO_CHAIN, None, None)
        self._spelled: tuple[Chain, list[str]] = (NO_CHAIN, [])  # the chain last spelled out

    def _names(self, chain: Chain) -> list[str]:
        names = chain.names(self._spelled)
        self._spelled = (chain, names)
        return names

    # -- task state ---------------------------------------------------------------------
    def task_start(self, ev: dict) -> None:
        task_id, agent, intent = ev["task"], ev["agent"], ev["intent"]
        task = _Task(task_id, intent, ev.get("owner"), ev.get("prompt"), agent)
        self.tasks[task_id] = task
        self.intents.add(intent)
        tally = self.tally
        tally.edge(tally.node("task", task_id), tally.node("agent", agent), "start")

    def approval(self, ev: dict) -> _Task | None:
        """Record an ``approval`` event; its task, or None when that was never started."""
        task = self.tasks.get(ev["task"])
        if task is None:
            return None
        uses = ev.get("uses")
        task.approvals[ev["tool"]] = ScopedApproval({"granted": ev["granted"], "by": ev["by"]}, ev.get("args"),
                                               1 if uses is None else (None if uses <= 0 else uses), ev.get("expires"))
        return task

    def tool_output(self, ev: dict) -> None:
        task = self.tasks.get(ev["task"])
        output = ev.get("output")
        if task is not None and not task.ended and output is not None:
            task.outputs.add(ev["tool"], output)

    def task_end(self, ev: dict) -> _Task | None:
        """Record a ``task_end`` event; the task if this ended it, else None."""
        task = self.tasks.get(ev["task"])
        if task is None or task.ended:
            return None
        task.ended = True
        task.end_t = ev["t"]
        task.outputs.clear()
        return task

    # -- steps --------------------------------------------------------------------------
    def _step_context(self, line: int, ev: dict, agent: str):
        """The task and the delegation chain behind a step, with attribution findings."""
        task_id = ev.get("task")
        task = self.tasks.get(task_id) if task_id is not None else None
        if task is not None:
            chain = task.reached.get(agent)
            if chain is not None:
                return task, chain
        tally = self.tally
        agent_node = tally.node("agent", agent)
        if task is None:
            detail = "the step names no task" if task_id is None else f"task `{task_id}` was never started"
            tally.find(Finding(ATTRIBUTION, "no_task", line, agent=agent, task=task_id, tool=ev.get("tool") or ev.get("to"),
                               detail=detail), agent_node)
            return task, NO_CHAIN
        tally.find(Finding(ATTRIBUTION, "unknown_origin", line, agent=agent, task=task_id, tool=ev.get("tool") or ev.get("to"),
                           detail=f"`{agent}` neither started task `{task_id}` nor was delegated to within it"),
                   agent_node)
        return task, NO_CHAIN

    def delegate(self, line: int, ev: dict) -> tuple[dict, tuple]:
        """The request of a ``delegate`` event and its context for the event loop."""
        agent, to = ev["agent"], ev["to"]
        task, chain = self._step_context(line, ev, agent)
        tally = self.tally
        tally.node("agent", agent)
        tally.node("agent", to)
        if task is not None:
            if to not in task.reached:
                reached = task.reached[to] = chain.then(agent)
                if reached.depth + 1 > self.longest[0].depth:
                    self.longest = (reached.then(to), task.id, line)
        request = {"principal": agent, "action": "delegate", "tool": to, "delegation": {"chain": self._names(chain)}, "now": ev["t"]}
        step = None
        if task is not None:
            request["task"] = task.request
            approval = self._approval_for(task, to, None, ev["t"])
            if approval is not None:
                request["approval"] = approval
            if self.history:
                step = self._history(task, request, {"t": ev["t"], "agent": agent, "action": "delegate", "tool": to})
        return request, (line, "delegate", agent, task, to, chain, step)

    def tool_call(self, line: int, ev: dict) -> tuple[dict, tuple]:
        """The request of a ``tool_call`` event and its context for the event loop."""
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
        nodes = self.tally.nodes
        tool_node = "tool:" + tool
        if tool_node not in nodes:
            nodes[tool_node] = "tool"
        agent_node = "agent:" + agent
        if agent_node not in nodes:
            nodes[agent_node] = "agent"
        resource = get("resource")
        if resource is not None:
            request["resource"] = resource
            tally = self.tally
            tally.edge(tool_node, tally.node("resource", resource), "on")
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
            request["credential"] = self.use(line, agent, agent_node, tool, task, cid, t)
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
        return request, (line, "call", agent, task, tool, chain, step)

    def _history(self, task: _Task, request: dict, step: dict) -> dict:
        """Give ``request`` the task's earlier steps (a view, not a copy) and record ``step``
        after them; its effect is filled in when it is decided. A step of the same task still
        waiting in the batch is decided first, so that every step in a view has its effect.
        At most :data:`MAX_HISTORY` steps are visible; the list is cut back when it holds twice
        that."""
        if task.undecided:
            self.flush()
        task.undecided = True
        steps = task.history
        if len(steps) >= 2 * MAX_HISTORY:
            steps = task.history = steps[-MAX_HISTORY:]
        n = len(steps)
        request["history"] = ListView(steps, n, max(0, n - MAX_HISTORY))
        steps.append(step)
        return step

    def _approval_for(self, task: _Task, tool: str, args: dict | None, t: float) -> dict | None:
        """The approval in force for a call of ``tool`` with ``args`` at ``t``, used up by it
        (with ``approvals="call"``; with ``"task"`` an approval counts for every later call)."""
        if not self.approval_per_call:
            grant = task.approvals.get(tool)
            return grant.granted if grant is not None else None
        return take(task.approvals, tool, args, t)
