"""The replay engine's event loop: events in order → requests → decisions → findings and a run model.

Each ``tool_call`` and ``delegate`` event is a step. :class:`Replay` feeds events to its two
parts, plain objects it composes: the request builder (:mod:`.requests`: task state, delegation
chains, approvals, provenance, history) and the credential tracker (:mod:`.credentials`), both
adding to one :class:`~.tally.Tally`. It queues each step's request, decides them in batches through
``Policies.evaluate_many``, records each decision (edge counts, overreach findings, permits used,
approval delays, the timeline) and at the end closes pending credential exposure and reports
permits that never allowed a step. Memory grows with distinct entities (agents, tasks, tools,
resources, credentials and the pairs between them), never with events: calls between the same
pair are one weighted edge, and latency goes into fixed-size histograms.
"""

from __future__ import annotations

import random
from time import perf_counter_ns
from typing import Callable, NamedTuple

from nhipl.decision import ALLOW, DENY
from nhipl.effects import RuleEffect
from nhipl.errors import RequestError

from .credentials import Credentials
from .latency import Histogram, LatencyModel
from .requests import NO_CHAIN, Chain, Requests, reads_history
from .tally import ATTRIBUTION, FINDING_KINDS, OVERREACH, REVOCATION_GAP, UNUSED_PERMIT, Finding, Tally
from .trace import TraceError, TraceReader

__all__ = [
    "APPROVAL_SCOPES", "ATTRIBUTION", "Chain", "DEFAULT_GRACE", "FINDING_KINDS", "Finding", "NO_CHAIN", "OVERREACH",
    "REVOCATION_GAP", "Replay", "TIMELINE_STEPS", "TimelineStep", "UNUSED_PERMIT", "reads_history", "replay",
]

# What one `approval` event covers: the next call of its tool in its task (`call`, as enforcement
# does), or every later call of it in the task (`task`).
APPROVAL_SCOPES = ("call", "task")
# Seconds a credential may stay valid after its task ends before it is a finding: revocation
# that lands within a few seconds of the task's end is how a runtime works, not a gap.
DEFAULT_GRACE = 5.0

# The report's timeline draws at most this many steps: the first ones of the run.
TIMELINE_STEPS = 2000


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
        self.used_permits: set[str] = set()
        self.step_cost = Histogram()  # nanoseconds
        self._pending: list[tuple[dict, tuple]] = []
        self._times: list[int] = []
        # Whether a rule reads `history`: only then are the tasks' steps kept, and each step is
        # decided before the next is built (a step's history holds the effects of all earlier ones).
        self.history = policies is not None and reads_history(policies)
        self.tally = tally = Tally()
        self.tasks: dict = {}  # task id → its state, kept by the request builder
        self.creds = Credentials(self.tasks, tally, revocation_grace)
        self.requests = Requests(self.tasks, tally, self.creds.use, self.flush,
                                 approval_per_call=self.approval_per_call, history=self.history)
        self._call = self.requests.tool_call
        self._delegate = self.requests.delegate
        # The run model, read by the report: the tally's and the parts' tables, shared.
        self.nodes = tally.nodes
        self.edges = tally.edges
        self.node_findings = tally.node_findings
        self.findings = tally.findings
        self.intents = self.requests.intents
        self.credentials = self.creds.by_id
        self.unknown_credentials = self.creds.unknown
        if policies is not None:
            policies.evaluate_many([])  # compile now, so that the first step's cost is its own

    @property
    def longest_chain(self) -> tuple[tuple[str, ...], str | None, int | None]:
        """The longest delegation chain seen (its identities, the last one included),
        its task and the trace line of the delegation that made it."""
        chain, task, line = self.requests.longest
        return tuple(chain.names()), task, line

    # -- events -------------------------------------------------------------------------
    def feed(self, line: int, event: dict) -> None:
        self.events += 1
        kind = event["kind"]
        if kind == "tool_call":
            step = self._call(line, event)
        elif kind == "delegate":
            step = self._delegate(line, event)
        else:
            if kind == "task_start":
                self.requests.task_start(event)
            elif kind == "credential_issue":
                self._credential_issue(line, event)
            elif kind == "approval":
                self._approval(event)
            elif kind == "tool_output":
                self.requests.tool_output(event)
            elif kind == "credential_revoke":
                self.creds.revoke(event)
            elif kind == "task_end":
                task = self.requests.task_end(event)
                if task is not None:
                    self.creds.task_ended(task, task.end_t)
            return
        self.steps += 1
        pending = self._pending  # read after building: a step that needs history may have flushed
        pending.append(step)
        if len(pending) >= self.batch_size:
            self.flush()

    def _credential_issue(self, line: int, ev: dict) -> None:
        task_id = ev.get("task")
        task = self.tasks.get(task_id) if task_id is not None else None
        self.creds.issue(line, ev, task)
        if task is not None:
            task.delay += self.latency.credential_issue.draw(self.rng)

    def _approval(self, ev: dict) -> None:
        task = self.requests.approval(ev)
        if task is None:
            return
        task.delay += self.latency.approval_wait.draw(self.rng)
        if task.gated is None:
            task.gated = set()
        task.gated.add(ev["tool"])

    # -- decisions ----------------------------------------------------------------------
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
        stats = self.tally.edge(agent_node, target_node, "delegate" if step == "delegate" else "call")
        if decision is None:
            return
        effect = decision.effect
        if recorded is not None:
            recorded["effect"] = effect.value  # the plain word, as in a request read from JSON
            task.undecided = False
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
            self.tally.find(Finding(OVERREACH, "denied", line, agent=agent, task=task_id, tool=target,
                               rule=decision.rules[0] if decision.rules else None, detail=reasons, chain=tuple(chain.names()),
                               restricted_by=decision.restricted_by),
                       agent_node, target_node)
        else:
            stats[3] += 1
            stats[4] += 1
            self.tally.find(Finding(OVERREACH, "unapproved", line, agent=agent, task=task_id, tool=target,
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
        self.creds.finish()
        if self.policies is not None:
            for rule in self.policies.rules:
                if rule.effect == RuleEffect.PERMIT and rule.id not in self.used_permits:
                    where = f" ({rule.span.source}:{rule.span.line})" if rule.span is not None else ""
                    self.tally.find(Finding(UNUSED_PERMIT, None, None, rule=rule.id,
                                       detail=f"permit `{rule.id}`{where} never determined an allowed step"))
        self.findings.sort(key=Finding.sort_key)


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
