"""Prometheus text exposition for one server process (format 0.0.4).

Counters live in the process that serves the request; with several workers each one keeps
its own, labelled with its ``pid`` so a scrape through a load balancer never mixes them up.
"""

from __future__ import annotations

import bisect
import os

# seconds: decision latency is measured from the body read to the response built
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
EFFECTS = ("allow", "deny", "approval_required", "error")


class Metrics:
    def __init__(self):
        self.decisions = dict.fromkeys(EFFECTS, 0)
        self.requests: dict[tuple[str, int], int] = {}
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def decided(self, effect: str, n: int = 1) -> None:
        self.decisions[effect] = self.decisions.get(effect, 0) + n

    def observe(self, endpoint: str, status: int, seconds: float | None) -> None:
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        if seconds is not None:
            self.bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum += seconds
            self.latency_count += 1

    def render(self, policyset) -> str:
        pid = os.getpid()
        lines = [
            "# HELP nhipl_decisions_total Decisions made, by effect (error: an item that could not be decided).",
            "# TYPE nhipl_decisions_total counter",
        ]
        lines += [f'nhipl_decisions_total{{effect="{e}",pid="{pid}"}} {n}' for e, n in self.decisions.items()]
        lines += [
            "# HELP nhipl_http_requests_total HTTP requests answered, by endpoint and status.",
            "# TYPE nhipl_http_requests_total counter",
        ]
        lines += [
            f'nhipl_http_requests_total{{endpoint="{ep}",status="{st}",pid="{pid}"}} {n}'
            for (ep, st), n in sorted(self.requests.items())
        ]
        lines += [
            "# HELP nhipl_decision_seconds Time to decide a decision request (one evaluation or a whole batch).",
            "# TYPE nhipl_decision_seconds histogram",
        ]
        running = 0
        for bound, n in zip(BUCKETS, self.bucket_counts):
            running += n
            lines.append(f'nhipl_decision_seconds_bucket{{le="{bound}",pid="{pid}"}} {running}')
        lines.append(f'nhipl_decision_seconds_bucket{{le="+Inf",pid="{pid}"}} {self.latency_count}')
        lines.append(f'nhipl_decision_seconds_sum{{pid="{pid}"}} {self.latency_sum!r}')
        lines.append(f'nhipl_decision_seconds_count{{pid="{pid}"}} {self.latency_count}')
        lines += [
            "# HELP nhipl_reloads_total Policy reloads, by result.",
            "# TYPE nhipl_reloads_total counter",
            f'nhipl_reloads_total{{result="ok",pid="{pid}"}} {policyset.reloads_ok}',
            f'nhipl_reloads_total{{result="failed",pid="{pid}"}} {policyset.reloads_failed}',
            "# HELP nhipl_policy_info The policy version being served.",
            "# TYPE nhipl_policy_info gauge",
            f'nhipl_policy_info{{version="{policyset.current.version}",pid="{pid}"}} 1',
            "# HELP nhipl_policy_loaded_timestamp_seconds When the served policy version was loaded.",
            "# TYPE nhipl_policy_loaded_timestamp_seconds gauge",
            f'nhipl_policy_loaded_timestamp_seconds{{pid="{pid}"}} {policyset.current.loaded_at!r}',
            "# HELP nhipl_reload_failing 1 while the last reload failed (the previous version is served).",
            "# TYPE nhipl_reload_failing gauge",
            f'nhipl_reload_failing{{pid="{pid}"}} {int(policyset.last_error is not None)}',
        ]
        return "\n".join(lines) + "\n"
