"""nhipl against the engines users would pick instead, on one workload.

The seeded workload of ``benchmarks/workload.py`` (agents in groups, tools in
services, permit rules with task-intent and delegation-depth conditions, three
forbids) is rendered into each engine's own language:

* **nhipl**: the policy text, ``Policies.evaluate``;
* **cedar** (cedarpy): one Cedar policy per rule, agents and tools as entities
  (``Agent`` in ``Group``, ``Tool`` in ``Service``), parsed once into a
  ``PolicySet``; **cedar-sliced**: the same policies, one ``PolicySet`` per tool
  holding only the policies whose resource can be that tool;
* **cel** (common-expression-language, Rust): a host-side index by (action,
  tool), and per bucket one CEL program ``!(forbids) && (permits)``;
* **rego** (regopy): one Rego rule body per rule, group membership as data,
  one compiled bundle, ``set_input_term`` + ``query_bundle`` per request;
* **casbin**: an ABAC model with deny-override, ``g`` for groups, one policy
  row per rule, ``keyMatch`` for service globs;
* **oso** (when installed): one Polar rule per rule.

Every engine decides requests built from the same nhipl request (intent,
delegation depth, approval); every decision is cross-checked against nhipl's
effect, and any mismatch stops the run. Engines not installed are skipped with
a note. Each engine gets a time budget per size (``--budget``), so the slow ones
at 10,000 rules time fewer requests (shown as ``timed``). All engines of a size
are loaded before any is timed, and every pass times them in turn (interleaved),
so a slow spell on a shared machine falls on all of them alike. A first pass
over the same requests comes before the timed ones: it is each engine's first
sight of them (nhipl, for one, remembers per (action, tool, principal) which
rules can apply), reported in a table of its own and left out of the medians,
which measure the steady state.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/peers.py                     # 10 .. 10,000 rules
    .venv/bin/python benchmarks/peers.py --sizes 10,100 --engines nhipl,cel
"""

from __future__ import annotations

import abc
import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from array import array
from importlib import metadata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:  # regopy first: its RE2 clashes with google-re2 if that is loaded before it
    import regopy
except ImportError:
    regopy = None

import nhipl  # noqa: E402
from workload import Rule, Workload, conditions, generate, to_nhipl  # noqa: E402


def neutral(request: dict) -> tuple[str, str, str, str, int, bool]:
    """(principal, action, tool, intent, depth, approved) of an nhipl request."""
    approval = request.get("approval") or {}
    return (
        request["principal"],
        request.get("action", "call"),
        request["tool"],
        request["task"]["intent"],
        len(request["delegation"]["chain"]),
        approval.get("granted") is True,
    )


def _q(text: str) -> str:
    return json.dumps(text)


class Engine(abc.ABC):
    """One engine under test: `load` the workload in its own language, then `decide` requests."""

    name = "?"
    dists: tuple[str, ...] = ()
    mapping = ""

    @abc.abstractmethod
    def load(self, wl: Workload) -> None: ...

    @abc.abstractmethod
    def decide(self, request: dict) -> bool: ...


# ---- nhipl --------------------------------------------------------------------------


class Nhipl(Engine):
    name = "nhipl"
    dists = ("nhipl",)
    mapping = "the policy text as generated; Policies.evaluate(request)"

    def load(self, wl):
        self.policies = nhipl.loads(to_nhipl(wl), source="bench.nhipl")
        self.policies.compiled  # noqa: B018 - build the indexes as part of the load
        self.evaluate = self.policies.evaluate

    def decide(self, request):
        return self.evaluate(request).effect == "allow"


# ---- Cedar --------------------------------------------------------------------------


def _cedar_policy(r: Rule) -> str:
    kind, who = r.subject
    principal = {"any": "principal", "agent": f"principal == Agent::{_q(who or '')}", "group": f"principal in Group::{_q(who or '')}"}[kind]
    if r.target == "*":
        resource = "resource"
    elif r.target.endswith(".*"):
        resource = f"resource in Service::{_q(r.target[:-2])}"
    else:
        resource = f"resource == Tool::{_q(r.target)}"
    conds = conditions(r, "context.intent == {}", "context.depth {op} {n}")
    text = f"@id({_q(r.id)})\n{r.effect}({principal}, action == Action::{_q(r.action)}, {resource})"
    if conds:
        text += " when { " + " && ".join(conds) + " }"
    if r.unless_approved:
        text += " unless { context.approved }"
    return text + ";"


def _cedar_entities(wl: Workload) -> str:
    ents = [{"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []} for g in wl.groups]
    ents += [{"uid": {"type": "Service", "id": s}, "attrs": {}, "parents": []} for s in wl.services]
    for agent, groups in wl.agents.items():
        ents.append({"uid": {"type": "Agent", "id": agent}, "attrs": {}, "parents": [{"type": "Group", "id": g} for g in groups]})
    for tool, service in wl.service_of.items():
        ents.append({"uid": {"type": "Tool", "id": tool}, "attrs": {}, "parents": [{"type": "Service", "id": service}]})
    return json.dumps(ents)


def _applies_to_tool(target: str, tool: str) -> bool:
    return target == "*" or target == tool or (target.endswith("*") and tool.startswith(target[:-1]))


class Cedar(Engine):
    name = "cedar"
    dists = ("cedarpy",)
    mapping = "one Cedar policy per rule; Agent in Group, Tool in Service entities; one PolicySet"

    def __init__(self):
        import cedarpy

        self.cedarpy = cedarpy

    def load(self, wl):
        self.entities = self.cedarpy.Entities.from_json_str(_cedar_entities(wl))
        self.policies = self.cedarpy.PolicySet.from_str("\n".join(_cedar_policy(r) for r in wl.rules))

    def _policies_for(self, tool):
        return self.policies

    def decide(self, request):
        principal, action, tool, intent, depth, approved = neutral(request)
        result = self.cedarpy.is_authorized(
            {
                "principal": f"Agent::{_q(principal)}",
                "action": f"Action::{_q(action)}",
                "resource": f"Tool::{_q(tool)}",
                "context": {"intent": intent, "depth": depth, "approved": approved},
            },
            self._policies_for(tool),
            self.entities,
        )
        return result.allowed


class CedarSliced(Cedar):
    name = "cedar-sliced"
    mapping = "the same policies, one PolicySet per tool with the policies whose resource can be that tool"

    def load(self, wl):
        self.entities = self.cedarpy.Entities.from_json_str(_cedar_entities(wl))
        texts = [(r.target, _cedar_policy(r)) for r in wl.rules]
        self.slices = {
            tool: self.cedarpy.PolicySet.from_str("\n".join(t for target, t in texts if _applies_to_tool(target, tool)))
            for tool in wl.tools
        }

    def _policies_for(self, tool):
        return self.slices[tool]


# ---- CEL ----------------------------------------------------------------------------


def _cel_rule(r: Rule) -> str:
    kind, who = r.subject
    parts = []
    if kind == "agent":
        parts.append(f"principal == {_q(who or '')}")
    elif kind == "group":
        parts.append(f"{_q(who or '')} in groups")
    parts += conditions(r, "intent == {}", "depth {op} {n}")
    if r.unless_approved:
        parts.append("!approved")
    return "(" + (" && ".join(parts) or "true") + ")"


class Cel(Engine):
    name = "cel"
    dists = ("common-expression-language",)
    mapping = "host index by (action, tool); per bucket one CEL program `!(forbids) && (permits)`"

    def __init__(self):
        import cel

        self.cel = cel

    def load(self, wl):
        self.groups = wl.agents
        self.programs = {}
        for action in {r.action for r in wl.rules}:
            for tool in wl.tools:
                rules = [r for r in wl.rules if r.action == action and _applies_to_tool(r.target, tool)]
                permits = " || ".join(_cel_rule(r) for r in rules if r.effect == "permit") or "false"
                forbids = " || ".join(_cel_rule(r) for r in rules if r.effect == "forbid") or "false"
                self.programs[(action, tool)] = self.cel.compile(f"!({forbids}) && ({permits})")

    def decide(self, request):
        principal, action, tool, intent, depth, approved = neutral(request)
        program = self.programs.get((action, tool))
        if program is None:
            return False
        return program.execute(
            {
                "principal": principal,
                "groups": self.groups.get(principal, []),
                "intent": intent,
                "depth": depth,
                "approved": approved,
            }
        ) is True


# ---- Rego ---------------------------------------------------------------------------


def _rego_rule(r: Rule) -> str:
    kind, who = r.subject
    body = [f"input.action == {_q(r.action)}"]
    if r.target.endswith("*"):
        if r.target != "*":
            body.append(f"startswith(input.tool, {_q(r.target[:-1])})")
    else:
        body.append(f"input.tool == {_q(r.target)}")
    if kind == "agent":
        body.append(f"input.principal == {_q(who or '')}")
    elif kind == "group":
        body.append(f"{_q(who or '')} in data.agents[input.principal]")
    body += conditions(r, "input.intent == {}", "input.depth {op} {n}")
    if r.unless_approved:
        body.append("not input.approved")
    head = "permit" if r.effect == "permit" else "deny"
    return f"{head} if {{\n  " + "\n  ".join(body) + "\n}"


class Rego(Engine):
    name = "rego"
    dists = ("regopy",)
    mapping = "one Rego rule body per rule, groups as data; one bundle; set_input_term + query_bundle"

    def __init__(self):
        if regopy is None:
            raise ImportError("regopy is not installed")

    def load(self, wl):
        self.rego = regopy.Interpreter()
        module = "package authz\nimport rego.v1\n\ndefault allow := false\n\nallow if {\n  permit\n  not deny\n}\n\n"
        self.rego.add_module("authz", module + "\n\n".join(_rego_rule(r) for r in wl.rules) + "\n")
        self.rego.add_data_json(json.dumps({"agents": wl.agents}))
        self.bundle = self.rego.build("data.authz.allow")

    def decide(self, request):
        principal, action, tool, intent, depth, approved = neutral(request)
        self.rego.set_input_term(
            json.dumps({"principal": principal, "action": action, "tool": tool, "intent": intent, "depth": depth, "approved": approved})
        )
        return str(self.rego.query_bundle(self.bundle)) == '{"expressions":[true]}'


# ---- Casbin -------------------------------------------------------------------------

_CASBIN_MODEL = """
[request_definition]
r = sub, act, obj, intent, depth, approved

[policy_definition]
p = sub, act, obj, intent, mindepth, maxdepth, gate, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.sub == "*" || g(r.sub, p.sub)) && r.act == p.act && keyMatch(r.obj, p.obj) \
&& (p.intent == "*" || r.intent == p.intent) && depthWithin(r.depth, p.mindepth, p.maxdepth) \
&& (p.gate == "none" || !r.approved)
"""


def _depth_within(depth: int, low: str, high: str) -> bool:
    return int(low) <= depth <= int(high)


class Casbin(Engine):
    name = "casbin"
    dists = ("casbin",)
    mapping = "ABAC model, deny-override, g() for groups, one policy row per rule, keyMatch for globs"

    def __init__(self):
        import casbin

        self.casbin = casbin

    def load(self, wl):
        model = self.casbin.Model()
        model.load_model_from_text(_CASBIN_MODEL)
        self.enforcer = self.casbin.Enforcer(model)
        self.enforcer.add_function("depthWithin", _depth_within)
        rows = []
        for r in wl.rules:
            kind, who = r.subject
            sub = "*" if kind == "any" else who
            rows.append(
                [
                    sub,
                    r.action,
                    r.target,
                    r.intent or "*",
                    str(r.min_depth if r.min_depth is not None else 0),
                    str(r.max_depth if r.max_depth is not None else 1_000_000),
                    "unapproved" if r.unless_approved else "none",
                    "allow" if r.effect == "permit" else "deny",
                ]
            )
        self.enforcer.add_policies(rows)
        self.enforcer.add_grouping_policies([[agent, g] for agent, groups in wl.agents.items() for g in groups])

    def decide(self, request):
        principal, action, tool, intent, depth, approved = neutral(request)
        return self.enforcer.enforce(principal, action, tool, intent, depth, approved)


# ---- Oso ----------------------------------------------------------------------------


def _polar_rule(r: Rule) -> str:
    """Action and exact tool as constants in the rule head, which Polar indexes."""
    kind, who = r.subject
    body = []
    if r.target == "*":
        tool = "_tool"
    elif r.target.endswith("*"):
        tool = "tool"
        body.append(f"tool.startswith({_q(r.target[:-1])})")
    else:
        tool = _q(r.target)
    if kind == "agent":
        body.append(f"req.principal = {_q(who or '')}")
    elif kind == "group":
        body.append(f"{_q(who or '')} in req.groups")
    body += conditions(r, "req.intent = {}", "req.depth {op} {n}")
    if r.unless_approved:
        body.append("not req.approved")
    head = "permit" if r.effect == "permit" else "forbid"
    req = "req" if any("req." in part for part in body) else "_req"
    if not body:
        return f"{head}({req}, {_q(r.action)}, {tool});"
    return f"{head}({req}, {_q(r.action)}, {tool}) if " + " and ".join(body) + ";"


class Oso(Engine):
    name = "oso"
    dists = ("oso",)
    mapping = "one Polar rule per rule, action and exact tool as head constants (indexed); allow if permit and not forbid"

    def __init__(self):
        import oso

        self.oso = oso

    def load(self, wl):
        self.groups = wl.agents
        self.engine = self.oso.Oso()
        rules = "\n".join(_polar_rule(r) for r in wl.rules)
        base = "allow(req, action, tool) if permit(req, action, tool) and not forbid(req, action, tool);\n"
        self.engine.load_str(base + rules)

    def decide(self, request):
        principal, action, tool, intent, depth, approved = neutral(request)
        req = {
            "principal": principal,
            "groups": self.groups.get(principal, []),
            "action": action,
            "tool": tool,
            "intent": intent,
            "depth": depth,
            "approved": approved,
        }
        return self.engine.is_allowed(req, action, tool)


ENGINES = [Nhipl, Cel, CedarSliced, Cedar, Rego, Casbin, Oso]


# ---- measuring ----------------------------------------------------------------------


def _version(dists: tuple[str, ...]) -> str:
    out = []
    for d in dists:
        try:
            out.append(f"{d} {metadata.version(d)}")
        except metadata.PackageNotFoundError:
            out.append(f"{d} ?")
    return ", ".join(out)


def load_and_calibrate(engine: Engine, wl: Workload, expected: list[bool], budget: float, passes: int) -> dict:
    """Load ``engine`` (timed) and work out how many requests it can time per pass."""
    gc.collect()
    start = time.perf_counter()
    engine.load(wl)
    load_s = time.perf_counter() - start
    requests = wl.requests
    clock = time.perf_counter_ns
    start = clock()
    probed = 0
    for i, request in enumerate(requests[:50]):  # at most 50 requests or half a second
        if engine.decide(request) != expected[i]:
            raise SystemExit(f"{engine.name} disagrees with nhipl on {request}")
        probed += 1
        if probed >= 5 and clock() - start > 5e8:
            break
    cost = (clock() - start) / 1e9 / probed
    count = max(min(probed, 20), min(len(requests), int(budget / passes / max(cost, 1e-9))))
    return {
        "engine": engine, "load_s": load_s, "count": count, "k": 0,
        "first": array("q", bytes(8 * count)), "ns": array("q", bytes(8 * count * passes)),
    }  # fmt: skip


def time_pass(cell: dict, wl: Workload, expected: list[bool], first: bool = False) -> None:
    """One timed pass of ``cell``'s engine over its requests, then their check.
    Samples go into a preallocated array: the timing loop allocates nothing. The
    first pass (``first``) goes into an array of its own: it is each engine's
    first sight of the requests, reported apart from the steady-state median."""
    engine, count = cell["engine"], cell["count"]
    ns = cell["first"] if first else cell["ns"]
    requests = wl.requests
    decided = array("b", bytes(count))
    clock = time.perf_counter_ns
    k = 0 if first else cell["k"]
    gc.disable()
    try:
        for i in range(count):
            request = requests[i]
            t0 = clock()
            allowed = engine.decide(request)
            ns[k] = clock() - t0
            decided[i] = allowed
            k += 1
    finally:
        gc.enable()
    if not first:
        cell["k"] = k
    for i in range(count):
        if bool(decided[i]) != expected[i]:
            raise SystemExit(f"{engine.name} disagrees with nhipl on {requests[i]}: {bool(decided[i])}")


def _us(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.1f}" if x >= 10 else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description="nhipl against peer engines")
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timed decisions per engine and size")
    parser.add_argument("--engines", default=",".join(e.name for e in ENGINES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    wanted = args.engines.split(",")
    engines: list[type[Engine]] = []
    notes = []
    for cls in ENGINES:
        if cls.name not in wanted:
            continue
        try:
            cls()
        except ImportError as err:
            notes.append(f"- {cls.name}: skipped, not installed ({err})")
            continue
        engines.append(cls)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[int, dict]] = {cls.name: {} for cls in engines}
    for n in sizes:
        wl = generate(n, args.requests, args.seed)
        reference = Nhipl()
        reference.load(wl)
        expected = [reference.decide(r) for r in wl.requests]
        allowed = sum(expected) / len(expected)
        print(f"{n:>6} rules: {len(wl.rules)} rules, {len(wl.agents)} agents, {len(wl.tools)} tools, {allowed:.0%} allowed", file=sys.stderr)
        # Every engine of this size is loaded first, then each pass times them in
        # turn: a slow spell on this shared machine falls on all engines alike.
        cells = {cls.name: load_and_calibrate(cls(), wl, expected, args.budget, args.passes) for cls in engines}
        for cell in cells.values():
            time_pass(cell, wl, expected, first=True)
        for _ in range(args.passes):
            for cell in cells.values():
                time_pass(cell, wl, expected)
        for name, cell in cells.items():
            row = {
                "load_s": cell["load_s"], "median_us": statistics.median(cell["ns"]) / 1000,
                "first_pass_median_us": statistics.median(cell["first"]) / 1000,
                "timed": cell["count"], "checked": cell["count"],
            }  # fmt: skip
            results[name][n] = row
            print(f"        {name:13s} load {row['load_s']:7.3f}s  median {_us(row['median_us']):>9} µs  ({row['timed']} timed)", file=sys.stderr)
        cells.clear()
        del reference
        gc.collect()

    lines = [
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.requests:,} requests per size, seed {args.seed}, {args.passes} passes, budget {args.budget:g}s per cell; "
        "every decision cross-checked against nhipl: all identical",
        "",
        "Median µs per decision (single requests, from the request dict):",
        "",
        "| engine | versions | " + " | ".join(f"{n:,} rules" for n in sizes) + " | largest / smallest |",
        "|---|---|" + "---:|" * (len(sizes) + 1),
    ]
    for cls in engines:
        row = results[cls.name]
        medians = [row[n]["median_us"] for n in sizes]
        lines.append(
            f"| {cls.name} | {_version(cls.dists)} | " + " | ".join(_us(m) for m in medians) + f" | {medians[-1] / medians[0]:.1f}× |"
        )
    others = [cls.name for cls in engines if cls.name != "nhipl"]
    if "nhipl" in results and others:
        lines += ["", "Fastest peer and nhipl's ratio to it (target ≤ 0.5):", ""]
        lines.append("| rules | fastest peer | its median µs | nhipl median µs | nhipl / fastest |")
        lines.append("|---:|---|---:|---:|---:|")
        for n in sizes:
            best = min(others, key=lambda e: results[e][n]["median_us"])
            peer, own = results[best][n]["median_us"], results["nhipl"][n]["median_us"]
            lines.append(f"| {n:,} | {best} | {_us(peer)} | {_us(own)} | {own / peer:.2f} |")
    lines += [
        "",
        "First pass, not in the medians above: median µs of each engine's first sight of the requests"
        " (caches and lazily built indexes are filled here):",
        "",
    ]
    lines.append("| engine | " + " | ".join(f"{n:,}" for n in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    for cls in engines:
        lines.append(f"| {cls.name} | " + " | ".join(_us(results[cls.name][n]["first_pass_median_us"]) for n in sizes) + " |")
    lines += ["", "Load seconds (render to the engine's form + parse/compile/index):", ""]
    lines.append("| engine | " + " | ".join(f"{n:,}" for n in sizes) + " |")
    lines.append("|---|" + "---:|" * len(sizes))
    for cls in engines:
        lines.append(f"| {cls.name} | " + " | ".join(f"{results[cls.name][n]['load_s']:.3f}" for n in sizes) + " |")
    timed = [f"{e}@{n:,}: {results[e][n]['timed']}" for e in results for n in sizes if results[e][n]["timed"] < args.requests]
    if timed:
        lines += ["", "Requests timed where the budget cut them short: " + ", ".join(timed)]
    lines += ["", "Mappings:", ""] + [f"- {cls.name}: {cls.mapping}" for cls in engines] + notes
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({e: {str(n): r for n, r in rows.items()} for e, rows in results.items()}, f, indent=2)


if __name__ == "__main__":
    main()
