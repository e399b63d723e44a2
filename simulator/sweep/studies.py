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

Metrics that are measured with a clock (policy evaluation time) differ from
run to run; every other column is a function of the parameters and the seed.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Callable

from . import revocation

BUILTIN_POLICY = "builtin"  # the value of `policy` that means the study's own policy


@dataclass(frozen=True, slots=True)
class Parameter:
    """A knob a study takes. ``kind`` is int, float, str or bool."""

    name: str
    kind: type
    default: object
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    help: str = ""
    check: Callable[[object], str | None] | None = None  # more validation: a problem or None

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


def _simulate(events: list[dict], policy_text: str, policy_source: str, seed: int, options: dict):
    simulate = _simulator().simulate
    accepted = inspect.signature(simulate).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted}
    waits = {k: options[k] for k in _LATENCY_KNOBS if k in options}
    if waits and "latency" in accepted:
        from nhipl.simulator import Distribution, LatencyModel

        kwargs["latency"] = LatencyModel(**{k: Distribution.parse(v) for k, v in waits.items()})
    if "seed" in accepted:
        kwargs["seed"] = seed
    return simulate(events, _policies(policy_text, policy_source), **kwargs)


def _summary_columns(report_summary: dict) -> dict[str, object]:
    """The report summary as columns; ``subkinds.overreach.denied`` becomes
    ``overreach.denied``, beside the ``overreach`` total."""
    out = {}
    for key, value in flatten(report_summary).items():
        out[key.removeprefix("subkinds.")] = value
    return out


# ---------------------------------------------------------------------------
# swarm: generate + simulate


_NOT_GENERATOR = {"seed", "self"}
# Generator arguments whose names would collide with a summary column.
_GENERATOR_ALIASES = {"steps_per_task": "steps"}
_NOT_SIMULATOR = {"seed", "events", "policies", "trace", "batch_size", "skip_bad_lines", "progress"}
# The modelled latency, as distribution texts (`const:S`, `uniform:LO,HI`,
# `exp:MEAN`, `lognormal:MEDIAN,SIGMA`), seconds.
_LATENCY_KNOBS = {
    "approval_wait": "lognormal:120,0.8",
    "credential_issue": "lognormal:0.25,0.5",
}


def _distribution_problem(value: object) -> str | None:
    from nhipl.simulator import Distribution

    try:
        Distribution.parse(str(value))
    except ValueError as err:
        return str(err)
    return None


def _signature_parameters(func, skip: set[str]) -> dict[str, Parameter]:
    params: dict[str, Parameter] = {}
    for p in inspect.signature(func).parameters.values():
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is p.empty:
            continue
        default = p.default
        if isinstance(default, bool):
            kind = bool
        elif isinstance(default, int):
            kind = int
        elif isinstance(default, float):
            kind = float
        elif isinstance(default, str):
            kind = str
        else:
            continue  # not a plain value: not sweepable
        minimum = 0 if kind in (int, float) and (default is None or default >= 0) else None
        maximum = 1.0 if kind is float and re.search(r"(rate|drift|sharing|missed|late|long|probability|fraction|share)", p.name) and 0 <= default <= 1 else None
        params[p.name] = Parameter(p.name, kind, default, minimum=minimum, maximum=maximum)
    return params


@functools.lru_cache(maxsize=1)
def _swarm_parameters() -> dict[str, Parameter]:
    from nhipl.simulator import swarm as generator

    sim = _simulator()
    params = _signature_parameters(sim.generate, _NOT_GENERATOR | {"domain"})
    for config_name, generator_name in _GENERATOR_ALIASES.items():
        if generator_name in params:
            p = params.pop(generator_name)
            params[config_name] = Parameter(config_name, p.kind, p.default)
    limits = {"agents": (1, 100_000), "tasks": (0, 1_000_000), "steps_per_task": (1, 10_000), "max_depth": (0, 64)}
    for name, (low, high) in limits.items():
        if name in params:
            p = params[name]
            params[name] = Parameter(name, p.kind, p.default, minimum=low, maximum=high)
    if "topology" in params and hasattr(generator, "TOPOLOGIES"):
        params["topology"] = Parameter("topology", str, params["topology"].default, choices=tuple(generator.TOPOLOGIES))
    for name in getattr(generator, "FAULT_RATES", ()):
        params[name] = Parameter(name, float, 0.0, minimum=0.0, maximum=1.0, help="a fault rate between 0 and 1")
    for name, p in _signature_parameters(sim.simulate, _NOT_SIMULATOR).items():
        params.setdefault(name, p)
    if "latency" in inspect.signature(sim.simulate).parameters:
        for name, default in _LATENCY_KNOBS.items():
            params.setdefault(name, Parameter(name, str, default, check=_distribution_problem,
                                              help="a delay distribution, like `lognormal:120,0.8` or `const:30`"))
    params["policy"] = Parameter("policy", str, BUILTIN_POLICY, help="a policy variant from [policies], or `builtin` for the swarm's own policy")
    return params


def _generator_kwargs(params: dict) -> tuple[dict, dict]:
    """Split a run's parameters into the generator's and the simulator's."""
    sim = _simulator()
    simulator_side = set(inspect.signature(sim.simulate).parameters) | set(_LATENCY_KNOBS) | {"policy"}
    gen = {_GENERATOR_ALIASES.get(k, k): v for k, v in params.items() if k not in simulator_side}
    rest = {k: v for k, v in params.items() if k in simulator_side and k != "policy"}
    return gen, rest


def _policy(variant, own_text: str, own_source: str) -> tuple[str, str]:
    """The text and source name of the policy a run is checked against."""
    if variant is None:
        return own_text, own_source
    if variant.extends:
        return f"{own_text}\n# policy variant `{variant.name}`\n{variant.text}", variant.source
    return variant.text, variant.source


def _run_swarm(params: dict, seed: int, variant) -> dict:
    sim = _simulator()
    gen, options = _generator_kwargs(params)
    swarm = sim.generate(seed=seed, **gen)
    policy_text, policy_source = _policy(variant, swarm.policy_text, "generated.nhipl")
    report = _simulate(swarm.events, policy_text, policy_source, seed, options)
    return _summary_columns(report.summary)


@functools.lru_cache(maxsize=1)
def _swarm_metrics() -> tuple[str, ...]:
    """The summary's columns, found by simulating a two-agent swarm."""
    probe = _run_swarm({"agents": 2, "tasks": 2} if "tasks" in _swarm_parameters() else {}, 0, None)
    return tuple(probe)


def _swarm_measured() -> frozenset[str]:
    return frozenset(c for c in _swarm_metrics() if is_measured(c))


# ---------------------------------------------------------------------------
# revocation: speed x TTL, capped by an operation budget


def _revocation_parameters() -> dict[str, Parameter]:
    return {
        "agents": Parameter("agents", int, 8, minimum=1, maximum=10_000, help="agents, each revoked once"),
        "speed": Parameter("speed", float, 1.0, minimum=1e-6, maximum=1_000.0, help="operations per second"),
        "ttl": Parameter("ttl", int, 60, minimum=1, maximum=86_400, help="credential time to live, seconds"),
        "max_ops": Parameter("max_ops", int, 0, minimum=0, help="operations per credential, 0 for no cap"),
        "arrivals": Parameter("arrivals", str, "poisson", choices=("poisson", "steady"), help="how calls are spaced"),
        "policy": Parameter("policy", str, BUILTIN_POLICY, help="a policy variant from [policies], or `builtin`"),
    }


def _run_revocation(params: dict, seed: int, variant) -> dict:
    p = {name: spec.default for name, spec in _revocation_parameters().items()} | params
    swarm = revocation.build(
        agents=p["agents"], speed=float(p["speed"]), ttl=p["ttl"], max_ops=p["max_ops"],
        arrivals=p["arrivals"], seed=seed,
    )
    policy_text, policy_source = _policy(variant, revocation.POLICY, "revocation.nhipl")
    report = _simulate(swarm.events, policy_text, policy_source, seed, {})
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
