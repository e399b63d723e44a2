"""Latency: the policy's measured cost per step and the modelled delay per task.

Measured cost goes into a :class:`Histogram` with logarithmic buckets (about 2%
wide), so percentiles over millions of steps take constant memory. Modelled
delays are drawn from :class:`Distribution` objects with a seeded generator, in
event order, so the same trace, policy and seed give the same figures.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

DISTRIBUTIONS = {
    # name: parameter names
    "const": ("seconds",),
    "uniform": ("low", "high"),
    "exp": ("mean",),
    "lognormal": ("median", "sigma"),
}


@dataclass(frozen=True, slots=True)
class Distribution:
    """A delay distribution in seconds: ``const:S``, ``uniform:LOW,HIGH``, ``exp:MEAN``
    or ``lognormal:MEDIAN,SIGMA``."""

    name: str
    params: tuple[float, ...]

    def __post_init__(self):
        expected = DISTRIBUTIONS.get(self.name)
        if expected is None:
            raise ValueError(f"unknown distribution `{self.name}`; expected one of {', '.join(DISTRIBUTIONS)}")
        if len(self.params) != len(expected):
            raise ValueError(f"`{self.name}` takes {len(expected)} parameter(s): {', '.join(expected)}")
        if any(p < 0 or not math.isfinite(p) for p in self.params):
            raise ValueError(f"`{self.name}` parameters must be finite and not negative")
        if any(p > 1e9 for p in self.params):  # a larger delay overflows the per-task sums
            raise ValueError(f"`{self.name}` parameters must be at most 1e9 seconds (about 32 years)")
        if self.name == "lognormal" and self.params[1] > 10:
            raise ValueError("`lognormal` sigma must be at most 10")
        if self.name == "uniform" and self.params[0] > self.params[1]:
            raise ValueError("`uniform` needs low <= high")

    @classmethod
    def parse(cls, text: str) -> "Distribution":
        """``"lognormal:120,0.8"`` → Distribution; ValueError with a clear message otherwise."""
        name, _, rest = text.partition(":")
        try:
            params = tuple(float(p) for p in rest.split(",")) if rest else ()
        except ValueError:
            raise ValueError(f"parameters of `{text}` must be numbers, like `lognormal:120,0.8`") from None
        return cls(name.strip(), params)

    def draw(self, rng: random.Random) -> float:
        name, p = self.name, self.params
        if name == "const":
            return p[0]
        if name == "uniform":
            return rng.uniform(p[0], p[1])
        if name == "exp":
            return rng.expovariate(1.0 / p[0]) if p[0] > 0 else 0.0
        return rng.lognormvariate(math.log(p[0]), p[1]) if p[0] > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.name}:" + ",".join(f"{p:g}" for p in self.params)


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """How long a human approval and a credential issuance take (seconds)."""

    approval_wait: Distribution = field(default_factory=lambda: Distribution("lognormal", (120.0, 0.8)))
    credential_issue: Distribution = field(default_factory=lambda: Distribution("lognormal", (0.25, 0.5)))

    def to_dict(self) -> dict:
        return {"approval_wait": str(self.approval_wait), "credential_issue": str(self.credential_issue)}


_LOG_BASE = math.log(1.02)


class Histogram:
    """Counts of positive values in ~2%-wide logarithmic buckets."""

    __slots__ = ("counts", "n", "total", "max", "min")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.total = 0.0
        self.max = 0.0
        self.min = math.inf

    def add(self, value: float) -> None:
        bucket = int(math.log(value) / _LOG_BASE) if value > 0 else -(10**9)
        counts = self.counts
        counts[bucket] = counts.get(bucket, 0) + 1
        self.n += 1
        self.total += value
        if value > self.max:
            self.max = value
        if value < self.min:
            self.min = value

    @staticmethod
    def _value(bucket: int) -> float:
        return 0.0 if bucket == -(10**9) else math.exp((bucket + 0.5) * _LOG_BASE)

    def percentile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..100), within about 1%; None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.n))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min(max(self._value(bucket), self.min), self.max)
        return self.max

    def buckets(self, bins: int = 30) -> list[tuple[float, float, int]]:
        """Re-binned into at most ``bins`` log-spaced bins: (low, high, count)."""
        if not self.n:
            return []
        low = max(self.min, 1e-12)
        high = max(self.max, low * 1.0001)
        step = (math.log(high) - math.log(low)) / bins
        out = [0] * bins
        for bucket, count in self.counts.items():
            value = min(max(self._value(bucket), low), high)
            i = min(bins - 1, int((math.log(value) - math.log(low)) / step)) if step > 0 else 0
            out[i] += count
        return [(math.exp(math.log(low) + i * step), math.exp(math.log(low) + (i + 1) * step), c) for i, c in enumerate(out)]
