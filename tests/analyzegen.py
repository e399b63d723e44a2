"""Small generated policies over a finite request space, for checking `nhipl analyze`
against exhaustive evaluation.

The request space: three principals (two declared), optional request-given groups,
two actions, three tools, three task intents, `args.n` in {absent, 1, 2, "s"},
an optional resource, an optional approval, delegation chains of length 0 to 2, and
no credential, a stale one, or one without a clock.
:func:`restrict` states the same space as solver constraints, so the solver
answers exactly the question exhaustive evaluation answers.
"""

from __future__ import annotations

import itertools
import random

import z3

import nhipl
from nhipl.analyze.space import RequestNode
from nhipl.analyze.symbolic import TRUE, const, equal, string_literal

PRINCIPALS = ("a1", "a2", "b3")
GROUPS_GIVEN = (None, ["g1"])
ACTIONS = ("call", "delegate")
TOOLS = ("t.x", "t.y", "u.x")
INTENTS = (None, "i1", "i2")
ARG_N = (None, 1, 2, "s")
RESOURCES = (None, "r:1")
APPROVALS = (None, True)
CHAINS = ((), ("a1",), ("a2", "a1"))
# (credential, now): none, a stale credential (age 10 > ttl 5), a credential without a clock
CREDENTIALS_NOW = ((None, None), ({"issued_at": 0, "ttl": 5}, 10), ({"issued_at": 0, "ttl": 5}, None))

# paths the generated conditions read, with the values a request may give them
NODE_VALUES = {
    "args": None,  # present exactly when args.n is
    "args.n": [1, 2, "s"],
    "task": None,
    "task.intent": ["i1", "i2"],
    "approval": None,
    "approval.granted": [True],
    "principal.groups": [["g1"]],
    "credential": None,
    "credential.issued_at": [0],
    "credential.ttl": [5],
}
PARENT_OF = {"args": "args.n", "task": "task.intent", "approval": "approval.granted", "credential": "credential.issued_at"}


def requests() -> list[dict]:
    out = []
    for pid, groups, action, tool, intent, n, resource, approval, chain, (credential, now) in itertools.product(
        PRINCIPALS, GROUPS_GIVEN, ACTIONS, TOOLS, INTENTS, ARG_N, RESOURCES, APPROVALS, CHAINS, CREDENTIALS_NOW
    ):
        req: dict = {"principal": {"id": pid, "groups": groups} if groups else pid, "action": action, "tool": tool}
        if intent is not None:
            req["task"] = {"intent": intent}
        if n is not None:
            req["args"] = {"n": n}
        if resource is not None:
            req["resource"] = resource
        if approval is not None:
            req["approval"] = {"granted": approval}
        if chain:
            req["delegation"] = {"chain": list(chain)}
        if credential is not None:
            req["credential"] = dict(credential)
        if now is not None:
            req["now"] = now
        out.append(req)
    return out


def _one_of(expr, values) -> z3.BoolRef:
    return z3.Or([expr == string_literal(v) for v in values])


def restrict(space) -> list:
    """The finite request space above, as constraints on ``space``."""
    conds = [
        _one_of(space.principal_id, PRINCIPALS),
        _one_of(space.action, ACTIONS),
        _one_of(space.tool, TOOLS),
        z3.Implies(space.has_resource, _one_of(space.resource, [r for r in RESOURCES if r])),
        z3.Implies(space.has_now, z3.And(space.now == 10, space.roots["credential"].sym.present)),
        space.chain_length <= 2,
        z3.Implies(space.chain_length == 1, space.chain[0] == string_literal("a1")),
        z3.Implies(space.chain_length == 2, z3.And(space.chain[0] == string_literal("a2"), space.chain[1] == string_literal("a1"))),
    ]
    # every path the space gives a value is a node, read by a condition or not, so a
    # reported request always spells out the whole of one request of the space
    for path in NODE_VALUES:
        root, *rest = path.split(".")
        node = space.principal_attr(rest[0]) if root == "principal" else space.roots[root]
        for name in rest[1 if root == "principal" else 0 :]:
            node = node.child(name)
    nodes: list[RequestNode] = []

    def walk(node: RequestNode) -> None:
        nodes.append(node)
        for child in node.children.values():
            walk(child)

    for root in space.roots.values():
        walk(root)
    for node in space.principal_attrs.values():
        walk(node)
    by_path = {node.path: node for node in nodes}
    credential = space.roots["credential"].sym.present
    for key in ("issued_at", "ttl"):  # a credential carries both or is absent
        child = by_path.get(f"credential.{key}")
        conds.append(credential == (child.sym.present if child is not None else z3.BoolVal(False)))
    for node in nodes:
        present = node.sym.present
        if node.path not in NODE_VALUES:
            conds.append(z3.Not(present))
            continue
        values = NODE_VALUES[node.path]
        if values is not None:
            conds.append(z3.Implies(present, z3.Or([equal(node.sym, const(v)) for v in values])))
        else:  # a root present exactly when its one child is
            child = by_path.get(PARENT_OF[node.path])
            conds.append(present == (child.sym.present if child is not None else z3.BoolVal(False)))
    return [c for c in conds if c is not TRUE]


# ---- policies ------------------------------------------------------------------------------

ATOMS = (
    "args.n > 1",
    "args.n == 2",
    "args has n",
    "args.n in [1, 2]",
    'task.intent == "i1"',
    "approval.granted",
    'principal.owner == "o1"',
    "tool.sensitive",
    "delegation.depth >= 1",
    'principal.id matches "a*"',
    "args.n",
    'resource startswith "r:"',
    '"g1" in principal.groups',
    "credential has ttl",
    "credential.age > credential.ttl",
    "credential has age",
    'resource matches "r:*"',
    'tool.name endswith ".x"',
    'principal.groups == ["g1"]',
    'context.env == "prod"',
    "now >= 10",
)
SUBJECTS = ('any agent', 'agent "a1"', 'agent "a*"', 'agent in "g1"', 'agent in "g2"')
TARGETS = ('"t.x"', '"t.*"', '"*.x"', '"*"', '"u.x"', '"a1"', '"a*"')


def condition(rng: random.Random) -> str:
    a, b = rng.choice(ATOMS), rng.choice(ATOMS)
    return rng.choice([a, f"{a} and {b}", f"{a} or {b}", f"not ({a})"])


def rule(rng: random.Random) -> str:
    effect = rng.choice(["permit", "permit", "forbid", "require approval for"])
    text = f"{effect} {rng.choice(SUBJECTS)} to {rng.choice(ACTIONS)} " + ", ".join(rng.sample(TARGETS, rng.randint(1, 2)))
    if rng.random() < 0.2:
        text += rng.choice([' on "r:*"', ' on "r:2"'])
    if rng.random() < 0.5:
        text += " when " + condition(rng)
    if rng.random() < 0.25:
        text += " unless " + condition(rng)
    if effect == "permit" and rng.random() < 0.4:
        text += rng.choice([" grant ttl 1m", " grant ttl 5m"])
    text += ";"
    if rng.random() < 0.2:
        text = f'task "{rng.choice(["i1", "i2"])}" {{ {text} }}'
    return text


def header(rng: random.Random) -> list[str]:
    lines = []
    if rng.random() < 0.5:
        lines.append("attenuate delegation;")
    lines.append(rng.choice(['agent "a1" { groups: ["g1"], owner: "o1", max_credential_ttl: 3m }', 'agent "a1" { owner: "o2" }']))
    if rng.random() < 0.6:
        lines.append('agent "a2" { groups: ["g2"] }')
    if rng.random() < 0.5:
        lines.append('tool "t.*" { sensitive: true }')
    return lines


def policy_pair(rng: random.Random) -> tuple[str, str]:
    head = header(rng)
    rules = [rule(rng) for _ in range(rng.randint(1, 4))]
    new_head, new_rules = list(head), list(rules)
    roll = rng.random()
    if roll < 0.35:
        new_rules[rng.randrange(len(new_rules))] = rule(rng)
    elif roll < 0.55:
        new_rules.append(rule(rng))
    elif roll < 0.7 and len(new_rules) > 1:
        del new_rules[rng.randrange(len(new_rules))]
    elif roll < 0.85:
        new_head = header(rng)
    else:
        new_rules = list(reversed(new_rules))  # the same decisions
    return "\n".join(head + rules), "\n".join(new_head + new_rules)


def load_pair(pair: tuple[str, str]):
    return nhipl.loads(pair[0], source="old.nhipl"), nhipl.loads(pair[1], source="new.nhipl")
