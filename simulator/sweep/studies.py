"""Studies: what one run of a sweep does, which parameters it takes and which
columns it reports.

A run is ``(parameters, seed) -> metrics``. Two studies ship:

- ``swarm``: :func:`nhipl.simulator.generate` a synthetic swarm with the run's
  generator parameters, then :func:`nhipl.simulator.simulate` it against the
  swarm's own policy (or a named policy variant); metrics are the report's
  summary.
- ``revocation``: build the revocation trace of :mod:`.revocation` (agent speed,
  credential TTL, operation cap) and simulate it; metrics are calls and seconds
  of exposure after revocation, plus the report's summary.

Each study's parameters are written out in one table (:data:`SWARM_PARAMETERS`,
:data:`REVOCATION_PARAMETERS`): name, type, default, bounds, help, and where the value
goes. The config checker, ``nhipl sweep --parameters`` and the tables in the docs are all
built from it.

Metrics that are measured with a clock (policy evaluation time) differ from
run to run; every other column is a function of the parameters and the seed.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Callable

from . import revocation

BUILTIN_POLICY = "builtin"  # the value of `policy` that means the study's own policy


# Where a parameter's value goes.
GENERATOR = "generator"  # a keyword argument of nhipl.simulator.generate
SIMULATOR = "simulator"  # a keyword argument of nhipl.simulator.simulate
LATENCY = "latency"      # a delay of the simulator's LatencyModel
VARIANT = "variant"      # the policy variant the run is checked against
STUDY = "study"          # read by the study itself


@dataclass(frozen=True, slots=True)
class Parameter:
    """A knob a study takes. ``kind`` is int, float, str or bool; ``goes_to`` says where its
    value goes, under the name ``argument`` (default: the parameter's own name)."""

    name: str
    kind: type
    default: object
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    help: str = ""
    check: Callable[[object], str | None] | None = None  # more validation: a problem or None
    goes_to: str = STUDY
    argument: str = ""

    @property
    def keyword(self) -> str:
        return self.argument or self.name

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not valid for this parameter, or None."""
        expected = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[self.kind]
        if self.kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = type(value) is self.kind
        if not ok:
            return f"`{self.name}` must be {expected}, not {describe(value)}"
        if self.kind is float and not math.isfinite(value):
            return f"`{self.name}` must be a finite number"
        if self.minimum is not None and value < self.minimum:
            return f"`{self.name}` must be at least {_number(self.minimum)}, not {_number(value)}"
        if self.maximum is not None and value > self.maximum:
            return f"`{self.name}` must be at most {_number(self.maximum)}, not {_number(value)}"
        if self.choices and value not in self.choices:
            listed = ", ".join(f"`{c}`" for c in self.choices)
            return f"`{self.name}` must be one of {listed}, not `{value}`"
        if self.check is not None:
            return self.check(value)
        return None


def describe(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"the integer `{value}`"
    if isinstance(value, float):
        return f"the number `{value}`"
    if isinstance(value, str):
        return f"the string `{value}`"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    parameters: Callable[[], dict[str, Parameter]]
    metrics: Callable[[], tuple[str, ...]]
    measured: Callable[[], frozenset[str]]
    run: Callable[[dict, int, object], dict]  # (parameters, seed, policy variant or None) -> metrics
    notes: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# The simulator, through its public API.


def _simulator():
    from nhipl import simulator

    return simulator


@functools.lru_cache(maxsize=16)
def _policies(text: str, source: str):
    """Policies parsed once per worker process for each distinct text."""
    import nhipl

    return nhipl.loads(text, source=source)


def flatten(summary: dict, prefix: str = "") -> dict[str, object]:
    """``{"latency": {"p50": 1}}`` -> ``{"latency.p50": 1}``; lists are dropped."""
    out: dict[str, object] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[name] = value
    return out


# Summary figures measured with a clock: the policy's own evaluation time, and
# the per-task delay, which the simulator models as seeded approval and issuance
# waits *plus* the measured evaluation time of the task's steps (so its last
# digits move from run to run).
_MEASURED = re.compile(r"(^|\.)policy_us\.(p\d+|mean|min|max|first_step)$|_(us|ns)$")


def is_measured(column: str) -> bool:
    """True for summary figures measured with a clock (not reproducible)."""
    return bool(_MEASURED.search(column))


def _simulate(events: list[dict], policy_text: str, policy_source: str, seed: int, options: dict, waits: dict):
    """``options``: keyword arguments of ``simulate``; ``waits``: the latency model's delays."""
    kwargs = dict(options)
    if waits:
        from nhipl.simulator import Distribution, LatencyModel

        kwargs["latency"] = LatencyModel(**{k: Distribution.parse(v) for k, v in waits.items()})
    return _simulator().simulate(events, _policies(policy_text, policy_source), seed=seed, **kwargs)


def _summary_columns(report_summary: dict) -> dict[str, object]:
    """The report summary as columns; ``subkinds.overreach.denied`` becomes
    ``overreach.denied``, beside the ``overreach`` total."""
    out = {}
    for key, value in flatten(report_summary).items():
        out[key.removeprefix("subkinds.")] = value
    return out


# ---------------------------------------------------------------------------
# swarm: generate + simulate


def _distribution_problem(value: object) -> str | None:
    from nhipl.simulator import Distribution

    try:
        Distribution.parse(str(value))
    except ValueError as err:
        return str(err)
    return None


def _fault(name: str, what: str) -> Parameter:
    return Parameter(name, float, 0.0, minimum=0.0, maximum=1.0, help=f"fault rate: {what}", goes_to=GENERATOR)


_DELAY_HELP = "`const:S`, `uniform:LO,HI`, `exp:MEAN` or `lognormal:MEDIAN,SIGMA`, seconds"

SWARM_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("agents", int, 10, minimum=1, maximum=100_000, help="agents in the swarm", goes_to=GENERATOR),
    Parameter("tasks", int, 20, minimum=0, maximum=1_000_000, help="tasks the swarm runs", goes_to=GENERATOR),
    Parameter("topology", str, "hierarchy", choices=("hierarchy", "mesh", "pipeline"),
              help="how agents delegate", goes_to=GENERATOR),
    Parameter("max_depth", int, 3, minimum=0, maximum=64, help="longest delegation chain", goes_to=GENERATOR),
    Parameter("steps_per_task", int, 3, minimum=1, maximum=10_000,
              help="the generator's `steps` (renamed: `steps` is a report column)", goes_to=GENERATOR, argument="steps"),
    _fault("drift", "a call outside the task's permits"),
    _fault("unapproved", "a gated call without approval"),
    _fault("sharing", "a credential used by another agent"),
    _fault("late_use", "a call after the task ended"),
    _fault("expired_use", "a call on an expired credential"),
    _fault("missed_revocation", "a credential not revoked at the task's end"),
    _fault("long_ttl", "a credential issued for 30 days"),
    _fault("orphan", "a call from an agent nobody started"),
    _fault("no_task", "a call outside any task"),
    Parameter("revocation_grace", float, 5.0, minimum=0,
              help="seconds of exposure after a task's end tolerated before `valid_after_task_end`", goes_to=SIMULATOR),
    Parameter("approvals", str, "call", choices=("call", "task"),
              help="an approval covers the next `call` of its tool, or every later call in the `task`", goes_to=SIMULATOR),
    Parameter("exact", bool, False, help="the blast radius from the SMT solver (needs `nhipl[analyze]`)", goes_to=SIMULATOR),
    Parameter("approval_wait", str, "lognormal:120,0.8", help="modelled wait for a human approval: " + _DELAY_HELP,
              check=_distribution_problem, goes_to=LATENCY),
    Parameter("credential_issue", str, "lognormal:0.25,0.5", help="modelled credential issuance: " + _DELAY_HELP,
              check=_distribution_problem, goes_to=LATENCY),
    Parameter("policy", str, BUILTIN_POLICY, help="a policy variant from `[policies]`, or `builtin` for the swarm's own policy",
              goes_to=VARIANT),
)
"""The ``swarm`` study's parameters, in the order the docs list them."""


def _by_name(table: tuple[Parameter, ...]) -> dict[str, Parameter]:
    return {p.name: p for p in table}


def _swarm_parameters() -> dict[str, Parameter]:
    return _by_name(SWARM_PARAMETERS)


def _split(params: dict) -> tuple[dict, dict, dict]:
    """A run's parameters as the generator's, the simulator's and the latency model's keyword
    arguments (the policy variant is the study's business)."""
    table = _swarm_parameters()
    out: dict[str, dict] = {GENERATOR: {}, SIMULATOR: {}, LATENCY: {}, VARIANT: {}, STUDY: {}}
    for name, value in params.items():
        spec = table[name]
        out[spec.goes_to][spec.keyword] = value
    return out[GENERATOR], out[SIMULATOR], out[LATENCY]


def _policy(variant, own_text: str, own_source: str) -> tuple[str, str]:
    """The text and source name of the policy a run is checked against."""
    if variant is None:
        return own_text, own_source
    if variant.extends:
        return f"{own_text}\n# policy variant `{variant.name}`\n{variant.text}", variant.source
    return variant.text, variant.source


def _run_swarm(params: dict, seed: int, variant) -> dict:
    sim = _simulator()
    gen, options, waits = _split(params)
    swarm = sim.generate(seed=seed, **gen)
    policy_text, policy_source = _policy(variant, swarm.policy_text, "generated.nhipl")
    report = _simulate(swarm.events, policy_text, policy_source, seed, options, waits)
    return _summary_columns(report.summary)


@functools.lru_cache(maxsize=1)
def _swarm_metrics() -> tuple[str, ...]:
    """The summary's columns, found by simulating a two-agent swarm."""
    probe = _run_swarm({"agents": 2, "tasks": 2}, 0, None)
    return tuple(probe)


def _swarm_measured() -> frozenset[str]:
    return frozenset(c for c in _swarm_metrics() if is_measured(c))


# ---------------------------------------------------------------------------
# revocation: speed x TTL, capped by an operation budget


REVOCATION_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("agents", int, 8, minimum=1, maximum=10_000, help="agents, each revoked once"),
    Parameter("speed", float, 1.0, minimum=1e-6, maximum=1_000.0, help="operations per second"),
    Parameter("ttl", int, 60, minimum=1, maximum=86_400, help="credential time to live, seconds"),
    Parameter("max_ops", int, 0, minimum=0, help="operations per credential, 0 for no cap"),
    Parameter("arrivals", str, "poisson", choices=("poisson", "steady"), help="how calls are spaced"),
    Parameter("policy", str, BUILTIN_POLICY, help="a policy variant from `[policies]`, or `builtin` (allows the agents' work)",
              goes_to=VARIANT),
)
"""The ``revocation`` study's parameters."""


def _revocation_parameters() -> dict[str, Parameter]:
    return _by_name(REVOCATION_PARAMETERS)


def _run_revocation(params: dict, seed: int, variant) -> dict:
    p = {name: spec.default for name, spec in _revocation_parameters().items()} | params
    swarm = revocation.build(
        agents=p["agents"], speed=float(p["speed"]), ttl=p["ttl"], max_ops=p["max_ops"],
        arrivals=p["arrivals"], seed=seed,
    )
    policy_text, policy_source = _policy(variant, revocation.POLICY, "revocation.nhipl")
    report = _simulate(swarm.events, policy_text, policy_source, seed, {}, {})
    last_use: dict[str, float] = {}
    after = 0
    for finding in report.findings:
        if _get(finding, "subkind") != "used_after_revoke":
            continue
        line = _get(finding, "line")
        event = swarm.events[line - 1]
        after += 1
        agent = event.get("agent", "")
        last_use[agent] = max(last_use.get(agent, 0.0), event["t"] - swarm.revoked_at.get(agent, event["t"]))
    metrics: dict[str, object] = {
        "ops_after_revoke": after,
        "ops_after_revoke_per_agent": after / swarm.agents,
        "ops_after_revoke_model": revocation.expected_ops_after_revoke(float(p["speed"]), p["ttl"], p["max_ops"]),
        "exposure_after_revoke_s": round(sum(last_use.values()) / swarm.agents, 6),
        "speed_x_ttl": float(p["speed"]) * p["ttl"],
    }
    metrics.update(_summary_columns(report.summary))
    return metrics


def _get(finding, name: str):
    return finding.get(name) if isinstance(finding, dict) else getattr(finding, name, None)


@functools.lru_cache(maxsize=1)
def _revocation_metrics() -> tuple[str, ...]:
    probe = _run_revocation({"agents": 1, "speed": 1.0, "ttl": 2}, 0, None)
    return tuple(probe)


STUDIES: dict[str, Study] = {
    "swarm": Study(
        "swarm",
        "generate a synthetic swarm and simulate it",
        _swarm_parameters,
        _swarm_metrics,
        _swarm_measured,
        _run_swarm,
    ),
    "revocation": Study(
        "revocation",
        "agents that keep using a revoked credential: speed x TTL, capped by an operation budget",
        _revocation_parameters,
        _revocation_metrics,
        lambda: frozenset(c for c in _revocation_metrics() if is_measured(c)),
        _run_revocation,
    ),
}


_KIND_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _values(spec: Parameter) -> str:
    if spec.choices:
        return ", ".join(f"`{_toml(c)}`" for c in spec.choices)
    low = None if spec.minimum is None else _number(spec.minimum)
    high = None if spec.maximum is None else _number(spec.maximum)
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return "a delay distribution" if spec.check is not None else ""


def parameter_table(study: str) -> str:
    """The parameters of ``study`` as a Markdown table (the docs and ``nhipl sweep
    --parameters`` print this)."""
    lines = ["| parameter | type | default | values | meaning |", "|---|---|---|---|---|"]
    for spec in STUDIES[study].parameters().values():
        lines.append(f"| `{spec.name}` | {_KIND_NAMES[spec.kind]} | `{_toml(spec.default)}` | {_values(spec)} | {spec.help} |")
    return "\n".join(lines)
