"""The formatter keeps meaning and is stable: for every example, every stdlib
policy and generated policy texts, ``fmt(fmt(x)) == fmt(x)``,
``parse(fmt(x)) == parse(x)`` (ASTs, spans aside), the comments survive, and
the formatted policies decide generated requests exactly as the originals."""

from __future__ import annotations

import json
import random
import shutil
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nhipl
from nhipl import ast as A
from nhipl.fmt import format_text, parse_module, same_policies
from nhipl.loader import stdlib_names

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(ROOT.glob("examples/**/*.nhipl"))  # others add examples: found at test time


def _comments(text: str, source: str) -> list[str]:
    return [c.text.rstrip() for c in parse_module(text, source).comments]


def assert_round_trip(text: str, source: str) -> str:
    once = format_text(text, source)
    assert format_text(once, source) == once, "fmt is not idempotent"
    assert same_policies(parse_module(text, source), parse_module(once, source))
    assert _comments(text, source) == _comments(once, source)
    return once


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_round_trip(path):
    assert_round_trip(path.read_text(encoding="utf-8"), path.name)


@pytest.mark.parametrize("name", stdlib_names())
def test_stdlib_round_trip_and_is_canonical(name):
    text = (resources.files("nhipl.stdlib_policies") / f"{name}.nhipl").read_text(encoding="utf-8")
    assert assert_round_trip(text, f"{name}.nhipl") == text, "the stdlib is kept in canonical form"


def test_examples_exist():
    assert EXAMPLES, "no example policies found"


# ---- decisions ------------------------------------------------------------------------


def _vocabulary(policies: nhipl.Policies) -> dict:
    principals, tools, intents, resources_ = set(policies.agents), set(), set(), set()
    for rule in policies.rules:
        for t in rule.targets:
            tools.add(t.replace("*", "x"))
        if isinstance(rule.subject, A.AgentIds):
            principals.update(i.replace("*", "x") for i in rule.subject.ids)
        if rule.task_intent:
            intents.add(rule.task_intent)
        for r in rule.resources or ():
            resources_.add(r.replace("*", "x"))
    return {
        "principals": sorted(principals) or ["spiffe://acme.org/a"],
        "tools": sorted(tools) or ["t.read"],
        "intents": sorted(intents) + ["other"],
        "resources": sorted(resources_) or ["r:1"],
        "actions": sorted({r.action for r in policies.rules}) or ["call"],
        "groups": sorted({r.subject.group for r in policies.rules if isinstance(r.subject, A.AgentGroup)}) or ["g"],
    }


def random_request(rng: random.Random, vocab: dict) -> dict:
    principal = rng.choice(vocab["principals"])
    req: dict = {"principal": principal, "tool": rng.choice(vocab["tools"]), "action": rng.choice(vocab["actions"])}
    if rng.random() < 0.3:
        req["principal"] = {"id": principal, "groups": rng.sample(vocab["groups"], k=min(len(vocab["groups"]), 1))}
    if rng.random() < 0.7:
        req["task"] = {"id": "t", "intent": rng.choice(vocab["intents"])}
    if rng.random() < 0.4:
        req["resource"] = rng.choice(vocab["resources"])
    if rng.random() < 0.5:
        req["args"] = {k: rng.choice([1, 5000, "user", "x@acme.com", True]) for k in rng.sample(["a", "b", "to", "amount", "recipient"], 2)}
    if rng.random() < 0.3:
        req["provenance"] = {"to": rng.choice(["user", "tool:web", "unknown"]), "recipient": "user"}
    if rng.random() < 0.3:
        req["approval"] = {"granted": rng.random() < 0.5, "by": "alice"}
    if rng.random() < 0.3:
        req["delegation"] = {"chain": rng.sample(vocab["principals"], k=min(2, len(vocab["principals"])))}
    if rng.random() < 0.3:
        req["credential"] = {"id": "c", "issued_at": 0, "ttl": 300}
        req["now"] = rng.choice([10, 400])
    if rng.random() < 0.3:
        req["context"] = {"env": rng.choice(["prod", "dev"]), "data_classification": "internal"}
    return req


def _decisions(policies: nhipl.Policies, requests: list[dict]) -> list[tuple]:
    position = {r.id: i for i, r in enumerate(policies.rules)}  # ids of rules without @id move with lines
    out = []
    for decision in policies.evaluate_many(requests):
        out.append(
            (
                decision.effect,
                tuple(sorted(position.get(r, r) for r in decision.rules)),
                decision.credential_ttl,
                tuple(sorted(position.get(e.rule, e.rule) for e in decision.errors)),
            )
        )
    return out


def assert_same_decisions(original: nhipl.Policies, formatted: nhipl.Policies, count: int = 200, seed: int = 7) -> None:
    vocab = _vocabulary(original)
    rng = random.Random(seed)
    requests = [random_request(rng, vocab) for _ in range(count)]
    assert _decisions(original, requests) == _decisions(formatted, requests)


EXAMPLE_FOLDERS = sorted({p.parent for p in EXAMPLES if any(q.name.endswith(".nhipl") and not q.name.endswith("_test.nhipl") for q in p.parent.iterdir())})


@pytest.mark.parametrize("folder", EXAMPLE_FOLDERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_formatted_examples_decide_the_same(folder, tmp_path):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    for path in copy.rglob("*.nhipl"):
        path.write_text(format_text(path.read_text(encoding="utf-8"), path.name), encoding="utf-8")
    assert_same_decisions(nhipl.load(str(folder)), nhipl.load(str(copy)))


@pytest.mark.parametrize("name", stdlib_names())
def test_formatted_stdlib_decides_the_same(name):
    text = (resources.files("nhipl.stdlib_policies") / f"{name}.nhipl").read_text(encoding="utf-8")
    permissive = 'permit any agent to call "*" grant ttl 5m;\npermit any agent to delegate "*";\n'
    body = text.replace(f'import "baseline";', "")  # keep the comparison to this file's own rules
    original = nhipl.loads(body + permissive, f"{name}.nhipl")
    formatted = nhipl.loads(format_text(body + permissive, f"{name}.nhipl"), f"{name}.nhipl")
    assert_same_decisions(original, formatted, count=300)


# ---- generated policy texts -----------------------------------------------------------------
#
# A small generator of its own: random rules, declarations, task blocks and tests,
# rendered with random layout between tokens (spaces, newlines, indentation and
# comments), so the formatter sees the shapes people write.

PRINCIPALS = ["spiffe://acme.org/a", "spiffe://acme.org/b", "spiffe://acme.org/agents/*"]
TOOLS = ["t.read", "t.write", "u.x", "t.*", "*", "payments.send"]
PATHS = ["args.a", "args.amount", "args.to", "context.env", "task.intent", "principal.owner",
         "delegation.depth", "credential.age", "approval.granted", "tool.sensitive", "resource",
         "provenance.to", "tool.name"]
HAS = ["args has a", "context has env", "principal has owner", "credential has age", "args has in"]

_words = st.sampled_from(["x", "y", "acme", "", "with \"quote\"", "tab\tand\\slash", "ünï"])
literal = st.one_of(
    st.integers(-5, 6000).map(str),
    st.sampled_from(["1.5", "-0.25", "0.0", "30s", "5m", "2h", "1d", "true", "false", "null"]),
    _words.map(json.dumps),
)
operand = st.one_of(literal, st.sampled_from(PATHS), st.lists(literal, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"))


separator = st.sampled_from([" ", " ", " ", "\n    ", "\n", "  # note\n", "\n\n", " # a, b; (c)\n        "])


def _conditions():
    atom = st.one_of(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), operand).map(" ".join),
        st.tuples(operand, st.just("in"), st.sampled_from(["[1, 2]", '["x", "user"]', "principal.groups"])).map(" ".join),
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["startswith", "endswith", "contains", "matches"]), _words.map(json.dumps)).map(" ".join),
        st.sampled_from(HAS),
        st.sampled_from(["true", "false"]),
    )
    return st.recursive(
        atom,
        lambda inner: st.one_of(
            st.tuples(inner, separator, st.sampled_from(["and", "or"]), separator, inner).map("".join),
            inner.map(lambda e: f"not {e}"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"not ({e})"),
        ),
        max_leaves=6,
    )


conditions = _conditions()


@st.composite
def rules(draw, ids: list[str]):
    effect = draw(st.sampled_from(["permit", "forbid", "require approval for"]))
    subject = draw(st.one_of(
        st.just("any agent"),
        st.lists(st.sampled_from(PRINCIPALS), min_size=1, max_size=3, unique=True).map(lambda xs: "agent " + ", ".join(map(json.dumps, xs))),
        st.sampled_from(["g1", "g2"]).map(lambda g: f"agent in {json.dumps(g)}"),
    ))
    action = draw(st.sampled_from(["call", "call", "delegate", "issue_credential"]))
    targets = draw(st.lists(st.sampled_from(TOOLS), min_size=1, max_size=8))
    parts = [effect, subject, "to", action, ", ".join(map(json.dumps, targets))]
    if draw(st.booleans()) and draw(st.booleans()):
        parts += ["on", ", ".join(map(json.dumps, draw(st.lists(st.sampled_from(["r:1", "r:*", "s:2"]), min_size=1, max_size=2))))]
    if draw(st.booleans()):
        parts += ["when", draw(conditions)]
    if draw(st.booleans()) and draw(st.booleans()):
        parts += ["unless", draw(conditions)]
    if effect == "permit" and draw(st.booleans()):
        parts += ["grant ttl", draw(st.sampled_from(["30s", "5m", "1h", "2d"]))]
    if draw(st.booleans()) and draw(st.booleans()):
        parts += ["because", json.dumps(draw(_words))]
    text = parts[0]
    for part in parts[1:]:
        text += draw(separator) + part
    annotations = ""
    if draw(st.booleans()):
        rule_id = f"r{len(ids)}"
        ids.append(rule_id)
        annotations += f'@id("{rule_id}")' + draw(separator)
    if draw(st.booleans()) and draw(st.booleans()):
        annotations += '@maps("owasp-asi:2026:ASI03", "nist-airmf:1.0:MANAGE-2.4")' + draw(separator)
    return annotations + text + ";"


@st.composite
def policy_texts(draw):
    ids: list[str] = []
    items = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["rule", "rule", "rule", "task", "agent", "tool", "attenuate", "test", "comment"]))
        if kind == "rule":
            items.append(draw(rules(ids)))
        elif kind == "task":
            inner = [draw(rules(ids)) for _ in range(draw(st.integers(0, 2)))]
            sep = draw(separator)
            items.append(f'task "i{draw(st.integers(1, 2))}" {{' + sep + "\n".join(inner) + "\n}")
        elif kind == "agent":
            items.append(
                f'agent "{draw(st.sampled_from(PRINCIPALS[:2]))}" {{ owner: "team",{draw(separator)}groups: ["g1"], max_credential_ttl: 15m }}'
            )
        elif kind == "tool":
            items.append(f'tool "{draw(st.sampled_from(TOOLS))}" {{{draw(separator)}sensitive: {draw(st.sampled_from(["true", "false"]))}, tags: ["financial"] }}')
        elif kind == "attenuate":
            items.append("attenuate delegation;")
        elif kind == "test":
            items.append('test "t" { request { principal: "spiffe://acme.org/a",' + draw(separator) + 'tool: "t.read", task: { intent: "i1" } } expect deny }')
        else:
            items.append("# " + draw(st.sampled_from(["a comment", "nhipl: ignore[NHI002]", "", "###"])))
    # every item starts on its own line, so rules without @id get distinct ids
    return "\n".join(items) + draw(st.sampled_from(["", "\n", "\n\n", "  # end"]))


FMT_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FMT_SETTINGS
@given(policy_texts())
def test_generated_policies_round_trip(text):
    assert_round_trip(text, "gen.nhipl")


@FMT_SETTINGS
@given(policy_texts(), st.integers(0, 2**16))
def test_generated_policies_decide_the_same(text, seed):
    try:
        original = nhipl.loads(text, "gen.nhipl")
    except nhipl.PolicyError:
        return  # fmt only needs to parse; decisions need a policy set that loads
    formatted = nhipl.loads(format_text(text, "gen.nhipl"), "gen.nhipl")
    assert_same_decisions(original, formatted, count=20, seed=seed)
