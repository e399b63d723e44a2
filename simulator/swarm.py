"""Synthetic swarms: seeded multi-agent traces with labelled, planted faults.

A swarm is a set of agents (``spiffe://<domain>/agents/aNN``), each with a small
toolset, arranged as a ``hierarchy`` (a tree under one coordinator), a ``mesh``
(anyone may hand work to anyone) or a ``pipeline`` (work passes stage to stage).
Each task starts at one agent, which calls its tools and delegates; every agent in
the task gets a credential that lives a little past the task's planned end and is
revoked when the task ends; gated tools are called only after a human approval.
That is the *intended behaviour*, and :attr:`Swarm.policy_text` is the policy
that grants exactly it.

Faults are planted at the given rates, each in an event labelled
``"injected": "<label>"`` (see :data:`LABELS` for what each should be found as).
Per-call rates (``drift``, ``unapproved``, ``sharing``, ``expired_use``,
``orphan``, ``no_task``) are the chance that a call slot also plants that fault;
per-credential rates (``missed_revocation``, ``long_ttl``) the chance for each
credential; ``late_use`` the chance per task. The same arguments give the same
bytes. Events stream: memory depends on the concurrency of tasks, not their count.
"""

from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .cast import Cast

TOPOLOGIES = ("hierarchy", "mesh", "pipeline")

# Tool catalogue: name → (sensitive, gated by a human approval).
CATALOGUE: dict[str, tuple[bool, bool]] = {
    "search.web": (False, False),
    "docs.read": (False, False),
    "docs.write": (False, False),
    "zendesk.read_ticket": (False, False),
    "zendesk.reply": (False, False),
    "github.read": (False, False),
    "github.create_pr": (False, False),
    "github.merge": (True, False),
    "db.query": (False, False),
    "db.write": (True, False),
    "slack.post": (False, False),
    "calendar.read": (False, False),
    "secrets.read": (True, False),
    "email.send": (True, True),
    "payments.transfer": (True, True),
    "deploy.release": (True, True),
}
INTENTS = ("triage", "code-review", "research", "billing", "release")

# label → (findings it must produce on its line, findings it may also produce there)
LABELS: dict[str, tuple[frozenset, frozenset]] = {
    "drift": (frozenset({("overreach", "denied")}), frozenset()),
    "unapproved": (frozenset({("overreach", "unapproved")}), frozenset()),
    "sharing": (frozenset({("revocation_gap", "foreign_holder")}), frozenset()),
    # a late call of a gated tool also finds no approval left: each approval covered one call
    "late_use": (frozenset({("revocation_gap", "used_after_task_end")}),
                 frozenset({("revocation_gap", "used_after_revoke"), ("overreach", "unapproved")})),
    "expired_use": (frozenset({("revocation_gap", "used_after_expiry")}), frozenset()),
    "missed_revocation": (frozenset({("revocation_gap", "valid_after_task_end")}), frozenset()),
    "long_ttl": (frozenset({("revocation_gap", "valid_after_task_end")}), frozenset()),
    "orphan": (frozenset({("attribution", "unknown_origin")}), frozenset({("overreach", "denied"), ("overreach", "unapproved")})),
    "no_task": (frozenset({("attribution", "no_task")}), frozenset({("overreach", "denied")})),
}
FAULT_RATES = tuple(LABELS)
LONG_TTL = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Planted:
    """A planted fault: the trace line of its labelled event and what it should be found as."""

    line: int
    label: str

    @property
    def required(self) -> frozenset:
        return LABELS[self.label][0]

    @property
    def allowed(self) -> frozenset:
        return LABELS[self.label][1]

    def to_dict(self) -> dict:
        return {"line": self.line, "label": self.label,
                "expect": sorted(f"{k}/{s}" for k, s in self.required),
                "may_also": sorted(f"{k}/{s}" for k, s in self.allowed)}


@dataclass(slots=True)
class Swarm:
    """A generated swarm: its events (dicts, in trace order), the policy granting
    exactly its intended behaviour, and the planted faults."""

    events: list[dict]
    policy_text: str
    planted: list[Planted]

    def lines(self) -> Iterator[str]:
        for event in self.events:
            yield json.dumps(event, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SwarmConfig:
    agents: int = 10
    tasks: int = 20
    topology: str = "hierarchy"
    max_depth: int = 3
    seed: int = 0
    steps: int = 3
    domain: str = "swarm.example"
    rates: tuple[tuple[str, float], ...] = ()
    cast: "Cast | None" = field(default=None, compare=False)
    """Identities, tools and intents from a policy (``--from-policy``) instead of generated ones."""

    def __post_init__(self):
        if self.agents < 1:
            raise ValueError("`agents` must be at least 1")
        if self.tasks < 0:
            raise ValueError("`tasks` must not be negative")
        if self.steps < 1:
            raise ValueError("`steps` must be at least 1")
        if self.max_depth < 0:
            raise ValueError("`max_depth` must not be negative")
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"unknown topology `{self.topology}`; expected one of {', '.join(TOPOLOGIES)}")
        for name, rate in self.rates:
            if name not in LABELS:
                raise ValueError(f"unknown fault `{name}`; expected one of {', '.join(LABELS)}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate `{name}` must be between 0 and 1, not {rate}")

    def rate(self, name: str) -> float:
        return dict(self.rates).get(name, 0.0)


class SwarmStream:
    """Iterate the events of a swarm once; afterwards ``policy_text`` and ``planted``
    describe what was emitted."""

    def __init__(self, config: SwarmConfig):
        self.config = config
        rng = random.Random(f"{config.seed}/swarm")
        cast = config.cast
        if cast is not None:
            self.agents = list(cast.agents)
            self.tools = list(cast.tools)
        else:
            self.agents = [f"spiffe://{config.domain}/agents/a{i:02d}" for i in range(config.agents)]
            self.tools = sorted(CATALOGUE)
        self.toolsets = [sorted(rng.sample(self.tools, rng.randint(2, 4))) for _ in self.agents] if cast is None else []
        # Topology: who may hand work to whom.
        n = len(self.agents)
        self.children: list[list[int]] = [[] for _ in range(n)]
        if config.topology == "hierarchy":
            depth = [0] * n
            for i in range(1, n):
                parents = [p for p in range(i) if depth[p] < config.max_depth] or [0]
                parent = rng.choice(parents)
                if depth[parent] < config.max_depth:
                    depth[i] = depth[parent] + 1
                    self.children[parent].append(i)
        elif config.topology == "pipeline":
            for i in range(n - 1):
                self.children[i].append(i + 1)
        else:
            for i in range(n):
                self.children[i] = [j for j in range(n) if j != i]
        self.intended_calls: dict[tuple[str, str], set[str]] = {}  # (intent, agent) → tools
        self.intended_delegations: dict[tuple[str, str], set[str]] = {}  # (intent, agent) → delegatees
        self.planted: list[Planted] = []
        self.done = False
        # Tasks start this many seconds apart, so that only a few run at once.
        self.spacing = 10.0 * config.steps

    # -- one task -----------------------------------------------------------------------
    def _task(self, index: int) -> list[dict]:
        cfg = self.config
        rng = random.Random(f"{cfg.seed}/task/{index}")
        rate = {name: cfg.rate(name) for name in LABELS}
        task_id = f"task-{index:05d}"
        cast = cfg.cast
        intent = rng.choice(cast.intents if cast is not None else INTENTS)
        token = f"T{rng.randrange(10**6):06d}"
        n = len(self.agents)
        if cast is not None:  # someone who can do something for this intent starts it
            able = [i for i, a in enumerate(self.agents) if cast.toolsets[(intent, a)]] or list(range(n))
            starter = rng.choice(able)
        elif cfg.topology == "hierarchy":
            starter = 0
        elif cfg.topology == "pipeline":
            starter = 0
        else:
            starter = rng.randrange(n)
        clock = [index * self.spacing + rng.uniform(0, self.spacing / 2)]
        events: list[dict] = []
        reached: dict[int, int] = {}  # agent index → depth
        creds: dict[int, dict] = {}  # agent index → its credential_issue event
        cred_events: list[dict] = []
        approved: set[str] = set()
        outputs: list[str] = []
        used_tools: dict[int, list[str]] = {}

        def tick(low: float = 0.5, high: float = 3.0) -> float:
            clock[0] += rng.uniform(low, high)
            return round(clock[0], 3)

        def emit(event: dict, label: str | None = None) -> dict:
            if label is not None:
                event["injected"] = label
            events.append(event)
            return event

        def issue(agent: int, ttl: float | None = None, label: str | None = None) -> dict:
            cid = f"cred-{index:05d}-{len(cred_events):02d}"
            event = emit({"kind": "credential_issue", "t": tick(0.05, 0.3), "credential": cid, "agent": self.agents[agent],
                          "ttl": ttl, "scope": intent, "task": task_id}, label)
            cred_events.append(event)
            return event

        def plan_credential(agent: int) -> None:
            if rng.random() < rate["long_ttl"]:
                creds[agent] = issue(agent, LONG_TTL, "long_ttl")
                creds[agent]["_keep"] = True
            elif rng.random() < rate["missed_revocation"]:
                creds[agent] = issue(agent, None, "missed_revocation")
                creds[agent]["_keep"] = True
            else:
                creds[agent] = issue(agent)

        def call(agent: int, tool: str, credential: str | None, label: str | None = None, task: bool = True) -> None:
            event = {"kind": "tool_call", "t": tick(), "task": task_id, "agent": self.agents[agent], "tool": tool,
                     "args": {"ticket": token}}
            if not task:
                del event["task"]
            if credential is not None:
                event["credential"] = credential
            if outputs and rng.random() < 0.3:
                event["args"]["ref"] = rng.choice(outputs)
            if rng.random() < 0.25:
                ref = f"ref-{index:05d}-{len(outputs):03d}"
                outputs.append(ref)
                event["output"] = {"result": ref}
            emit(event, label)

        def intend(agent: int, tool: str) -> None:
            self.intended_calls.setdefault((intent, self.agents[agent]), set()).add(tool)
            used_tools.setdefault(agent, []).append(tool)

        def toolset(agent: int) -> list[str] | tuple[str, ...]:
            return cast.toolsets[(intent, self.agents[agent])] if cast is not None else self.toolsets[agent]

        def is_gated(agent: int, tool: str) -> bool:
            return (intent, self.agents[agent], tool) in cast.gated if cast is not None else CATALOGUE[tool][1]

        def work(agent: int, depth: int) -> None:
            me = self.agents[agent]
            own = creds[agent]["credential"]
            mine = toolset(agent)
            for _ in range(max(1, cfg.steps + rng.randint(-1, 1)) if mine else 0):
                tool = rng.choice(mine)
                # Faults that come as an extra event before this call slot.
                if rng.random() < rate["drift"]:
                    others = [t for t in self.tools if t not in mine]
                    if others:
                        call(agent, rng.choice(others), own, "drift")
                if rng.random() < rate["orphan"]:
                    outsiders = [a for a in range(n) if a not in reached]
                    if outsiders:
                        call(rng.choice(outsiders), tool, None, "orphan")
                if rng.random() < rate["no_task"]:
                    call(agent, tool, None, "no_task", task=False)
                gated = is_gated(agent, tool)
                if gated:  # an approval covers one call
                    if tool not in approved and rng.random() < rate["unapproved"]:
                        call(agent, tool, own, "unapproved")
                    emit({"kind": "approval", "t": tick(), "task": task_id, "tool": tool, "granted": True,
                          "by": "human:reviewer@example.com"})
                    approved.add(tool)
                credential, label = own, None
                holders = [a for a in creds if a != agent]
                if holders and rng.random() < rate["sharing"]:
                    credential, label = creds[rng.choice(holders)]["credential"], "sharing"
                elif rng.random() < rate["expired_use"]:
                    short = issue(agent, 2, None)
                    clock[0] += rng.uniform(3, 10)
                    credential, label = short["credential"], "expired_use"
                call(agent, tool, credential, label)
                intend(agent, tool)
            if depth >= cfg.max_depth:
                return
            if cast is not None:
                index_of = {a: i for i, a in enumerate(self.agents)}
                children = [index_of[d] for d in cast.delegatees[(intent, me)]]
            else:
                children = self.children[agent]
            options = [c for c in children if c not in reached]
            if not options:
                return
            if cfg.topology == "pipeline":
                chosen = options[:1]
            else:
                chosen = rng.sample(options, min(len(options), rng.choice((1, 1, 2))))
                if depth > 0 and rng.random() < 0.3:
                    chosen = []
            for child in chosen:
                if child in reached:
                    continue
                emit({"kind": "delegate", "t": tick(), "task": task_id, "agent": me, "to": self.agents[child]})
                self.intended_delegations.setdefault((intent, me), set()).add(self.agents[child])
                reached[child] = depth + 1
                plan_credential(child)
                work(child, depth + 1)

        start = {"kind": "task_start", "t": round(clock[0], 3), "task": task_id, "agent": self.agents[starter],
                 "intent": intent, "prompt": f"{intent}: handle ticket {token}"}
        emit(start)
        reached[starter] = 0
        plan_credential(starter)
        work(starter, 0)
        end = tick()
        for cred in cred_events:
            if cred["ttl"] is None:
                cred["ttl"] = int(end - cred["t"]) + rng.randint(60, 300)
            if not cred.pop("_keep", False):
                emit({"kind": "credential_revoke", "t": end, "credential": cred["credential"]})
        emit({"kind": "task_end", "t": end, "task": task_id})
        if used_tools and rng.random() < rate["late_use"]:
            agent = rng.choice(sorted(used_tools))
            clock[0] = end
            call(agent, rng.choice(used_tools[agent]), creds[agent]["credential"], "late_use")
            events[-1]["t"] = round(end + rng.uniform(1, 30), 3)
        return events

    # -- all tasks, merged in time order ------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        if self.done:
            raise RuntimeError("a swarm stream can be iterated once; make a new one")
        self.done = True
        heap: list = []
        line = 0
        next_task = 0
        total = self.config.tasks
        planted = self.planted
        while heap or next_task < total:
            # Admit tasks that start before the earliest pending event.
            while next_task < total and (not heap or next_task * self.spacing <= heap[0][0]):
                events = self._task(next_task)
                if events:
                    heapq.heappush(heap, (events[0]["t"], next_task, 0, events))
                next_task += 1
            t, task, i, events = heapq.heappop(heap)
            event = events[i]
            if i + 1 < len(events):
                heapq.heappush(heap, (events[i + 1]["t"], task, i + 1, events))
            line += 1
            label = event.get("injected")
            if label is not None:
                planted.append(Planted(line, label))
            yield event

    @property
    def policy_text(self) -> str:
        if not self.done:
            raise RuntimeError("iterate the swarm first")
        cfg = self.config
        rates = ", ".join(f"{k}={v:g}" for k, v in cfg.rates if v)
        shape = "from a policy" if cfg.cast is not None else cfg.topology
        out = [
            f"# Generated by `nhipl generate` (seed {cfg.seed}, {len(self.agents)} agents, {cfg.tasks} tasks, {shape}, "
            f"max depth {cfg.max_depth}{', ' + rates if rates else ''}).",
            "# It grants exactly the swarm's intended behaviour; planted faults fall outside it.",
            "",
        ]
        if cfg.cast is not None:
            catalogue = {t: (t in cfg.cast.sensitive, any(g[2] == t for g in cfg.cast.gated)) for t in cfg.cast.tools}
        else:
            catalogue = CATALOGUE
        for tool, (sensitive, gated) in sorted(catalogue.items()):
            if sensitive:
                out.append(f'tool "{tool}" {{ sensitive: true }}')
        out.append("")
        for tool, (sensitive, gated) in sorted(catalogue.items()):
            if gated:
                out.append(f'@id("approve-{tool}")')
                out.append(f'require approval for any agent to call "{tool}" because "a human approves {tool}";')
        intents = sorted({i for i, _ in self.intended_calls} | {i for i, _ in self.intended_delegations})
        for intent in intents:
            out += ["", f'task "{intent}" {{']
            for (i, agent), tools in sorted(self.intended_calls.items()):
                if i == intent:
                    name = agent.rsplit("/", 1)[-1]
                    out.append(f'    @id("{intent}-{name}-calls")')
                    out.append(f'    permit agent "{agent}" to call ' + ", ".join(f'"{t}"' for t in sorted(tools)) + ";")
            for (i, agent), delegatees in sorted(self.intended_delegations.items()):
                if i == intent:
                    name = agent.rsplit("/", 1)[-1]
                    out.append(f'    @id("{intent}-{name}-delegates")')
                    out.append(f'    permit agent "{agent}" to delegate ' + ", ".join(f'"{d}"' for d in sorted(delegatees)) + ";")
            out.append("}")
        return "\n".join(out) + "\n"


def swarm_config(agents: int = 10, tasks: int = 20, topology: str = "hierarchy", max_depth: int = 3, seed: int = 0,
                 steps: int = 3, domain: str = "swarm.example", cast: "Cast | None" = None, **rates: float) -> SwarmConfig:
    for name in rates:
        if name not in LABELS:
            raise ValueError(f"unknown fault `{name}`; expected one of {', '.join(LABELS)}")
    return SwarmConfig(agents, tasks, topology, max_depth, seed, steps, domain,
                       tuple((name, float(rates.get(name, 0.0))) for name in LABELS), cast)


def generate(agents: int = 10, tasks: int = 20, topology: str = "hierarchy", max_depth: int = 3, seed: int = 0,
             steps: int = 3, domain: str = "swarm.example", **rates: float) -> Swarm:
    """A seeded synthetic swarm, in memory. Fault rates (0..1) by name: ``drift``,
    ``unapproved``, ``sharing``, ``late_use``, ``expired_use``, ``missed_revocation``,
    ``long_ttl``, ``orphan``, ``no_task``. For very long traces use :class:`SwarmStream`."""
    stream = SwarmStream(swarm_config(agents, tasks, topology, max_depth, seed, steps, domain, **rates))
    events = list(stream)
    return Swarm(events, stream.policy_text, list(stream.planted))
