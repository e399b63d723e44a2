"""Expanding a config into runs: one :class:`RunSpec` per (point, seed).

A grid is the product of the listed axes; random mode draws ``samples`` points
from a generator seeded by ``sample_seed``. Every point is run once per seed in
``seeds``, and every point gets the same seeds (common random numbers: two
points differ only by their parameters, which narrows the comparison).

A run's id is a digest of the study, its parameters, its seed and its policy
text: the same run always has the same id, however the config is reordered or
extended, which is what lets an interrupted sweep resume.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass

from .config import PolicyVariant, Range, SweepConfig


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything a worker needs for one run; small and picklable."""

    run_id: str
    study: str
    params: tuple[tuple[str, object], ...]  # in column order
    seed: int
    policy: PolicyVariant | None  # None: the study's own policy


def run_id(study: str, params: dict, seed: int, variant: PolicyVariant | None) -> str:
    policy = None
    if variant is not None:
        policy = hashlib.sha256(variant.text.encode()).hexdigest() + ("+builtin" if variant.extends else "")
    key = json.dumps({"study": study, "params": params, "seed": seed, "policy": policy},
                     sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def points(config: SweepConfig) -> list[dict]:
    """The parameter points, each a dict in the config's parameter order."""
    if config.mode == "grid":
        names = [n for n in config.order if n in config.axes]
        out = []
        for combo in itertools.product(*(config.axes[n] for n in names)):
            chosen = dict(zip(names, combo))
            out.append({n: chosen[n] if n in chosen else config.fixed[n] for n in config.order})
        return out
    rng = random.Random(config.sample_seed)
    params = config.study.parameters()
    out, seen = [], set()
    for _ in range(config.samples):
        point = {}
        for name in config.order:
            if name in config.fixed:
                point[name] = config.fixed[name]
            elif name in config.axes:
                point[name] = rng.choice(config.axes[name])
            else:
                point[name] = _draw(rng, config.ranges[name], params[name].kind)
        key = json.dumps(point, sort_keys=True)
        if key not in seen:  # two draws of the same choices are one point
            seen.add(key)
            out.append(point)
    return out


def _draw(rng: random.Random, span: Range, kind: type):
    if span.log:
        value = math.exp(rng.uniform(math.log(span.minimum), math.log(span.maximum)))
    else:
        value = rng.uniform(span.minimum, span.maximum)
    if kind is int:
        return min(max(round(value), int(span.minimum)), int(span.maximum))
    return float(f"{value:.6g}")  # short, readable and exact in the CSV


def plan(config: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep, point by point, seed by seed."""
    runs = []
    for point in points(config):
        variant = config.policies.get(point.get("policy"))
        for seed in config.seeds:
            runs.append(RunSpec(
                run_id(config.study.name, point, seed, variant),
                config.study.name,
                tuple(point.items()),
                seed,
                variant,
            ))
    return runs


def columns(config: SweepConfig) -> tuple[str, ...]:
    """The CSV header: run id, parameters, seed, then the study's metrics."""
    header = ("run_id", *config.order, "seed", *config.study.metrics())
    if len(set(header)) != len(header):  # a study bug: a parameter named like a metric
        raise ValueError(f"duplicate columns in {header}")
    return header
