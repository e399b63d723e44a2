"""A seeded agent-authorisation workload shared by the benchmarks.

One workload, one shape at every size: agents in groups, tools grouped in
services, permit rules scoped to a group, an agent or any agent, targeting an
exact tool or a whole service (``"svc3.*"``), with task-intent and
delegation-depth conditions and sometimes a credential ttl; plus a few forbids
(a service closed to deep delegation, a quarantine group, an approval gate on
one tool). ``to_nhipl`` renders it as nhipl policy text; ``benchmarks/peers.py``
renders the same workload into Cedar, Rego, CEL and Casbin.

Requests always carry a task intent and a delegation chain (possibly empty), so
no engine's missing-attribute semantics come into play: every engine must give
the same allow/deny on every request.

    python benchmarks/workload.py --rules 100 --requests 5   # print a sample
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field

DOMAIN = "spiffe://bench.example/agents/"
INTENTS = ("triage", "review", "deploy", "billing", "research", "support", "audit", "release")
ACTIONS = ("call", "issue_credential")
QUARANTINE = "quarantine"


@dataclass(frozen=True)
class Rule:
    """One rule of the workload, engine-neutral.

    ``subject`` is ``("any", None)``, ``("agent", id)`` or ``("group", name)``;
    ``target`` is a tool name or a service glob ending in ``.*``; ``intent`` and
    ``max_depth``/``min_depth`` are the conditions (None: no condition);
    ``unless_approved`` makes a forbid lift when the request carries an approval.
    """

    id: str
    effect: str  # "permit" | "forbid"
    subject: tuple[str, str | None]
    action: str
    target: str
    intent: str | None = None
    max_depth: int | None = None
    min_depth: int | None = None
    unless_approved: bool = False
    ttl_minutes: int | None = None


@dataclass
class Workload:
    agents: dict[str, list[str]]  # agent id -> groups
    groups: list[str]
    services: list[str]
    tools: list[str]
    rules: list[Rule]
    requests: list[dict] = field(default_factory=list)

    @property
    def service_of(self) -> dict[str, str]:
        return {t: t.split(".", 1)[0] for t in self.tools}


def generate(n_rules: int, n_requests: int = 10_000, seed: int = 7) -> Workload:
    """``n_rules`` rules in all (a few of them forbids) and ``n_requests`` requests."""
    rng = random.Random(f"{seed}:{n_rules}")
    n_groups = max(3, n_rules // 100)
    n_agents = max(10, n_rules // 5)
    n_services = max(4, n_rules // 100)
    n_tools = max(20, n_rules // 10)
    groups = [f"team-{i:03d}" for i in range(n_groups)]
    services = [f"svc{i:03d}" for i in range(n_services)]
    tools = sorted({f"{services[i % n_services]}.op{i // n_services:03d}" for i in range(n_tools)})
    agents: dict[str, list[str]] = {}
    for i in range(n_agents):
        member = rng.sample(groups, rng.choice((1, 1, 2)))
        if rng.random() < 0.02:
            member.append(QUARANTINE)
        agents[f"{DOMAIN}agent-{i:05d}"] = member
    agent_ids = list(agents)

    forbids = [
        Rule("forbid-deep-delegation", "forbid", ("any", None), "call", f"{services[0]}.*", min_depth=3),
        Rule("forbid-quarantine", "forbid", ("group", QUARANTINE), "call", "*"),
        Rule("gate-first-tool", "forbid", ("any", None), "call", tools[1], unless_approved=True),
    ]
    rules: list[Rule] = []
    for i in range(n_rules - len(forbids)):
        roll = rng.random()
        if roll < 0.6:
            subject = ("group", rng.choice(groups))
        elif roll < 0.95:
            subject = ("agent", rng.choice(agent_ids))
        else:
            subject = ("any", None)
        target = f"{rng.choice(services)}.*" if rng.random() < 0.1 else rng.choice(tools)
        rules.append(
            Rule(
                id=f"permit-{i:05d}",
                effect="permit",
                subject=subject,
                action="call" if rng.random() < 0.9 else "issue_credential",
                target=target,
                intent=rng.choice(INTENTS) if rng.random() < 0.7 else None,
                max_depth=rng.randint(0, 3) if rng.random() < 0.5 else None,
                ttl_minutes=rng.choice((5, 10, 15, 30)) if rng.random() < 0.3 else None,
            )
        )
    rules[len(rules) // 2 : len(rules) // 2] = forbids
    workload = Workload(agents, groups + [QUARANTINE], services, tools, rules)
    permits = [r for r in rules if r.effect == "permit"]
    members = {g: [a for a, gs in agents.items() if g in gs] for g in groups}
    workload.requests = [_request(workload, rng, agent_ids, permits, members) for _ in range(n_requests)]
    return workload


def _request(wl: Workload, rng: random.Random, agent_ids: list[str], permits: list[Rule], members: dict) -> dict:
    """About half the requests are aimed at some permit, so that a fair share is allowed."""
    intent = rng.choice(INTENTS)
    depth = rng.choice((0, 0, 0, 1, 1, 2, 3, 4))
    if rng.random() < 0.5:
        rule = rng.choice(permits)
        kind, who = rule.subject
        if kind == "agent":
            principal = who
        elif kind == "group":
            principal = rng.choice(members[who]) if members.get(who) else rng.choice(agent_ids)
        else:
            principal = rng.choice(agent_ids)
        action = rule.action
        tool = rule.target if not rule.target.endswith("*") else rng.choice(
            [t for t in wl.tools if t.startswith(rule.target[:-1])] or wl.tools
        )
        if rule.intent is not None and rng.random() < 0.8:
            intent = rule.intent
        if rule.max_depth is not None and rng.random() < 0.8:
            depth = rng.randint(0, rule.max_depth)
    else:
        principal = rng.choice(agent_ids)
        action = "call" if rng.random() < 0.9 else "issue_credential"
        tool = rng.choice(wl.tools)
    chain = [rng.choice(agent_ids) for _ in range(depth)]
    request = {
        "principal": principal,
        "action": action,
        "tool": tool,
        "task": {"id": f"task-{rng.randrange(10_000)}", "intent": intent},
        "delegation": {"chain": chain},
    }
    if rng.random() < 0.1:
        request["approval"] = {"granted": True, "by": "oncall"}
    return request


# ---- nhipl rendering -------------------------------------------------------------------


def _q(text: str) -> str:
    return json.dumps(text)


def conditions(r: Rule, intent: str, depth: str) -> list[str]:
    """The rule's intent and delegation-depth conditions in one engine's syntax: ``intent``
    formats the quoted intent (``{}``), ``depth`` an operator and a bound (``{op}``, ``{n}``)."""
    parts = []
    if r.intent is not None:
        parts.append(intent.format(_q(r.intent)))
    if r.max_depth is not None:
        parts.append(depth.format(op="<=", n=r.max_depth))
    if r.min_depth is not None:
        parts.append(depth.format(op=">=", n=r.min_depth))
    return parts


def to_nhipl(wl: Workload) -> str:
    lines = ["# generated by benchmarks/workload.py"]
    for agent, groups in wl.agents.items():
        lines.append(f"agent {_q(agent)} {{ groups: {json.dumps(groups)} }}")
    for svc in wl.services[:2]:
        lines.append(f'tool "{svc}.*" {{ sensitive: true }}')
    for r in wl.rules:
        kind, who = r.subject
        subject = {"any": "any agent", "agent": f"agent {_q(who or '')}", "group": f"agent in {_q(who or '')}"}[kind]
        effect = "permit" if r.effect == "permit" else "forbid"
        conds = conditions(r, "task.intent == {}", "delegation.depth {op} {n}")
        text = f"@id({_q(r.id)})\n{effect} {subject} to {r.action} {_q(r.target)}"
        if conds:
            text += " when " + " and ".join(conds)
        if r.unless_approved:
            text += " unless approval.granted"
        if r.ttl_minutes is not None:
            text += f" grant ttl {r.ttl_minutes}m"
        lines.append(text + ";")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    wl = generate(args.rules, args.requests, args.seed)
    print(to_nhipl(wl))
    for r in wl.requests:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
