"""Hypothesis strategies for the core's own tests: random policy texts (every
construct, conditions that error included) and random requests over one small
shared vocabulary, so that rules and requests actually meet."""

from __future__ import annotations

import json

from hypothesis import strategies as st

PRINCIPALS = ["spiffe://x/a", "spiffe://x/b", "spiffe://y/c", "spiffe://x/a/sub"]
GROUPS = ["g1", "g2"]
TOOLS = ["t.read", "t.write", "u.x", "ux", "t.", ""]
TARGET_GLOBS = TOOLS + ["t.*", "*", "*.read", "*x*", "u*x", "**", "t.*e"]
SUBJECT_GLOBS = PRINCIPALS + ["spiffe://x/*", "*", "spiffe://*/c", "*sub"]
ACTIONS = ["call", "delegate"]
INTENTS = ["i1", "i2"]
RESOURCES = ["r:1", "r:2", "s:1"]
RESOURCE_GLOBS = RESOURCES + ["r:*", "*:1"]
PATHS = [
    "args.a", "args.b", "args.s", "args.l", "args", "args.a.b", "context.n", "context.flag",
    "task.intent", "task.id", "principal.owner", "principal.groups", "principal.id",
    "delegation.depth", "delegation.chain", "credential.age", "credential.ttl", "approval.granted",
    "approval.by", "tool.sensitive", "tool.name", "tool.tags", "resource", "now", "action",
    "provenance.a", "context.missing.x",
]
HAS_PATHS = ["args", "context", "task", "principal", "credential", "args.a", "tool"]
ATTRS = ["a", "b", "s", "intent", "n", "groups", "age", "in", "not"]


def _lit(value) -> str:
    return json.dumps(value)


literals = st.one_of(
    st.integers(-3, 3).map(str),
    st.sampled_from(["1.5", "-0.5", "5m", "1h", "30s"]),
    st.sampled_from(["x", "y", "", "r:1", "spiffe://x/a", "i1", "g1"]).map(_lit),
    st.sampled_from(["true", "false"]),
)


def _list(children) -> st.SearchStrategy[str]:
    return st.lists(children, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")


operands = st.one_of(
    literals,
    st.sampled_from(PATHS),
    _list(st.one_of(literals, st.sampled_from(PATHS))),
)


# ---- version 2: quantifiers, functions, arithmetic -------------------------------------------
STEP_PATHS = ["h.tool", "h.effect", "h.t", "h.agent", "h.args.a", "h.action", "h", "h.resource"]
NUMBERS = ["now", "context.n", "args.a", "credential.age", "len(args)", "len(history)", "len(args.s)", "1", "0", "5m", "args.b"]


def _sum(parts) -> str:
    return " ".join(parts)


arithmetic = st.tuples(
    st.sampled_from(NUMBERS), st.sampled_from(["+", "-"]), st.sampled_from(NUMBERS + ["1h", "args.s", "true"])
).map(_sum)

step_operands = st.one_of(
    st.sampled_from(STEP_PATHS),
    literals,
    st.sampled_from(['"allow"', '"deny"', '"t.read"', "now - 1h", "now", "h.t + 5"]),
)

step_atoms = st.one_of(
    st.tuples(step_operands, st.sampled_from(["==", "!=", ">=", "<"]), step_operands).map(" ".join),
    st.tuples(st.sampled_from(["h.tool", "h.agent", "h"]), st.sampled_from(["matches", "startswith"]), st.sampled_from(['"t.*"', '"spiffe://x/*"', '"t"'])).map(" ".join),
    st.sampled_from(["h has tool", "h has args", "h.effect in [\"allow\", \"approval_required\"]", "h.tool == tool.name", "true", "false", "h.t"]),
)

step_conditions = st.one_of(
    step_atoms,
    st.lists(step_atoms, min_size=2, max_size=2).map(lambda es: " and ".join(f"({e})" for e in es)),
    st.lists(step_atoms, min_size=2, max_size=2).map(lambda es: " or ".join(f"({e})" for e in es)),
)

value_conditions = st.sampled_from(
    [
        'v startswith "tool:"', 'v == "user"', "v == 1", "v > 0", "v", 'v in ["x", "user"]', "len(v) > 0",
        "any(w in v where w == 1)",
    ]
)


def _quantifiers() -> st.SearchStrategy[str]:
    lists = st.sampled_from(["values(provenance)", "keys(args)", "values(args)", "args.l", "args", "[1, \"x\", []]", "[]", "history"])
    return st.one_of(
        st.tuples(st.sampled_from(["any", "all"]), step_conditions).map(lambda t: f"{t[0]}(h in history where {t[1]})"),
        st.tuples(step_conditions, st.sampled_from([">=", "==", "<"]), st.sampled_from(["0", "1", "2", "len(history) - 1"])).map(
            lambda t: f"count(h in history where {t[0]}) {t[1]} {t[2]}"
        ),
        st.sampled_from(["0", "1", "2"]).map(lambda n: f"count(h in history) >= {n}"),
        st.tuples(st.sampled_from(["any", "all"]), lists, value_conditions).map(lambda t: f"{t[0]}(v in {t[1]} where {t[2]})"),
        st.tuples(lists, value_conditions).map(lambda t: f"count(v in {t[0]} where {t[1]}) > 0"),
        st.tuples(arithmetic, st.sampled_from(["==", ">", "<="]), st.sampled_from(NUMBERS)).map(" ".join),
        st.sampled_from(['"a" in keys(args)', "len(args.l) == 2", "keys(args) == keys(context)", "len(provenance) > 0"]),
    )


def _atoms() -> st.SearchStrategy[str]:
    return st.one_of(
        _quantifiers(),
        st.tuples(operands, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), operands).map(" ".join),
        st.tuples(operands, st.just("in"), operands).map(" ".join),
        st.tuples(operands, st.sampled_from(["matches", "startswith", "endswith", "contains"]), operands).map(" ".join),
        st.tuples(st.sampled_from(HAS_PATHS), st.just("has"), st.sampled_from(ATTRS)).map(" ".join),
        st.sampled_from(["true", "false"]),
        st.sampled_from(PATHS),  # a bare path: an error unless it is a boolean
        # the intent test the compiled evaluator uses as a guard when it comes first
        st.sampled_from(INTENTS).map(lambda i: f"task.intent == {_lit(i)}"),
        st.sampled_from(INTENTS).map(lambda i: f"{_lit(i)} == task.intent"),
    )


conditions = st.recursive(
    _atoms(),
    lambda inner: st.one_of(
        inner.map(lambda e: f"not ({e})"),
        st.lists(inner, min_size=2, max_size=3).map(lambda es: " and ".join(f"({e})" for e in es)),
        st.lists(inner, min_size=2, max_size=3).map(lambda es: " or ".join(f"({e})" for e in es)),
    ),
    max_leaves=5,
)


@st.composite
def rules(draw, index: int) -> str:
    effect = draw(st.sampled_from(["permit", "forbid", "require approval for"]))
    subject = draw(
        st.one_of(
            st.just("any agent"),
            st.lists(st.sampled_from(SUBJECT_GLOBS), min_size=1, max_size=2).map(
                lambda ids: "agent " + ", ".join(_lit(i) for i in ids)
            ),
            st.sampled_from(GROUPS).map(lambda g: f"agent in {_lit(g)}"),
            st.lists(st.sampled_from(GROUPS + ["g3"]), min_size=2, max_size=3).map(lambda gs: "agent in " + ", ".join(_lit(g) for g in gs)),
        )
    )
    action = ", ".join(draw(st.lists(st.sampled_from(ACTIONS + ["issue_credential"]), min_size=1, max_size=3)))
    targets = draw(st.lists(st.sampled_from(TARGET_GLOBS), min_size=1, max_size=3))
    text = f'@id("r{index}") {effect} {subject} to {action} ' + ", ".join(_lit(t) for t in targets)
    if draw(st.booleans()) and draw(st.booleans()):
        text += " on " + ", ".join(_lit(r) for r in draw(st.lists(st.sampled_from(RESOURCE_GLOBS), min_size=1, max_size=2)))
    if draw(st.booleans()):
        text += f" when {draw(conditions)}"
    if draw(st.booleans()) and draw(st.booleans()):
        text += f" unless {draw(conditions)}"
    if effect == "permit" and draw(st.booleans()):
        text += f" grant ttl {draw(st.integers(1, 120))}{draw(st.sampled_from('smhd'))}"
    if draw(st.booleans()) and draw(st.booleans()):
        text += ' because "reason"'
    return text + ";"


@st.composite
def policy_texts(draw) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append("attenuate delegation;")
    for pid in draw(st.lists(st.sampled_from(PRINCIPALS), unique=True, max_size=3)):
        entries = []
        if draw(st.booleans()):
            entries.append("groups: [" + ", ".join(_lit(g) for g in draw(st.lists(st.sampled_from(GROUPS), max_size=2))) + "]")
        if draw(st.booleans()):
            entries.append(f"owner: {_lit(draw(st.sampled_from(['x', 'y'])))}")
        if draw(st.booleans()):
            entries.append(f"max_credential_ttl: {draw(st.integers(1, 100))}s")
        parts.append(f"agent {_lit(pid)} {{ {', '.join(entries)} }}")
    for pattern in draw(st.lists(st.sampled_from([g for g in TARGET_GLOBS if g]), unique=True, max_size=2)):
        parts.append(
            f"tool {_lit(pattern)} {{ sensitive: {draw(st.sampled_from(['true', 'false']))}, tags: [\"x\"] }}"
        )
    n = draw(st.integers(1, 8))
    index = 0
    for _ in range(n):
        if draw(st.integers(0, 4)) == 0:
            intent = draw(st.sampled_from(INTENTS))
            inner = []
            for _ in range(draw(st.integers(1, 2))):
                inner.append(draw(rules(index)))
                index += 1
            parts.append(f"task {_lit(intent)} {{ " + " ".join(inner) + " }")
        else:
            parts.append(draw(rules(index)))
            index += 1
    return "\n".join(parts) + "\n"


json_values = st.recursive(
    st.one_of(
        st.integers(-3, 3),
        st.sampled_from([1.5, 0.0, 1.7e308]),
        st.booleans(),
        st.sampled_from(["x", "y", "", "r:1", "i1"]),
        st.none(),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)),
    max_leaves=4,
)


def _optional(strategy):
    return st.one_of(st.none(), strategy)


@st.composite
def requests(draw) -> dict:
    pid = draw(st.sampled_from(PRINCIPALS + ["spiffe://z/zz"]))
    principal: object = pid
    if draw(st.integers(0, 3)) == 0:
        principal = {"id": pid}
        if draw(st.booleans()):
            principal["groups"] = draw(st.lists(st.sampled_from(GROUPS), max_size=2))
        if draw(st.booleans()):
            principal["owner"] = draw(st.sampled_from(["x", "y"]))
        if draw(st.booleans()):
            principal["max_credential_ttl"] = draw(st.integers(1, 500))
    request = {"principal": principal, "tool": draw(st.sampled_from(TOOLS + ["other"]))}
    if draw(st.integers(0, 5)) == 0:
        request["action"] = "issue_credential"
    fields = {
        "action": _optional(st.sampled_from(ACTIONS)),
        "resource": _optional(st.sampled_from(RESOURCES)),
        "args": _optional(st.dictionaries(st.sampled_from(["a", "b", "s", "l", "in"]), json_values, max_size=4)),
        "context": _optional(st.fixed_dictionaries({}, optional={"n": st.integers(0, 5), "flag": st.booleans()})),
        "task": _optional(st.fixed_dictionaries({}, optional={"intent": st.sampled_from(INTENTS), "id": st.just("t1")})),
        "delegation": _optional(st.fixed_dictionaries({"chain": st.lists(st.sampled_from(PRINCIPALS), max_size=3)})),
        "credential": _optional(
            st.fixed_dictionaries({}, optional={"issued_at": st.integers(0, 100), "ttl": st.integers(0, 100), "id": st.just("c1")})
        ),
        "approval": _optional(st.fixed_dictionaries({}, optional={"granted": st.booleans(), "by": st.just("h")})),
        "now": _optional(st.integers(0, 200)),
        "provenance": _optional(
            st.fixed_dictionaries(
                {}, optional={k: st.sampled_from(["user", "tool:t.read", "tool:web.get", "unknown"]) for k in ("a", "b", "s")}
            )
        ),
        "history": _optional(histories()),
    }
    for name, strategy in fields.items():
        if draw(st.booleans()):
            value = draw(strategy)
            if value is not None:
                request[name] = value
    return request


steps = st.fixed_dictionaries(
    {},
    optional={
        "t": st.integers(0, 200),
        "agent": st.sampled_from(PRINCIPALS),
        "action": st.sampled_from(ACTIONS),
        "tool": st.sampled_from(TOOLS),
        "resource": st.sampled_from(RESOURCES),
        "args": st.dictionaries(st.sampled_from(["a", "b"]), json_values, max_size=2),
        "effect": st.sampled_from(["allow", "deny", "approval_required"]),
    },
)


@st.composite
def histories(draw):
    """A task's earlier steps: a list, or (as the simulator gives it) a read-only view of
    the first steps of a longer shared list."""
    from nhipl.values import ListView

    listed = draw(st.lists(steps, max_size=5))
    if draw(st.booleans()):
        return listed
    later = draw(st.lists(steps, max_size=2))
    return ListView(listed + later, len(listed))
