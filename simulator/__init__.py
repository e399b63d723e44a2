"""The nhipl simulator, installed as ``nhipl.simulator``: replay agent traces against a
policy, find overreach, revocation gaps and attribution gaps, model latency, and
draw the run as a graph.

>>> import nhipl
>>> from nhipl.simulator import simulate
>>> policies = nhipl.loads('permit any agent to call "search.web";')
>>> trace = [
...     {"kind": "task_start", "t": 0, "task": "t1", "agent": "spiffe://a/x", "intent": "research"},
...     {"kind": "tool_call", "t": 1, "task": "t1", "agent": "spiffe://a/x", "tool": "search.web"},
...     {"kind": "tool_call", "t": 2, "task": "t1", "agent": "spiffe://a/x", "tool": "email.send"},
... ]
>>> report = simulate(trace, policies)
>>> [(f.kind, f.subkind, f.line) for f in report.findings]
[('overreach', 'denied', 3)]
"""

from __future__ import annotations

if __name__ != "nhipl.simulator":  # the repository's `simulator/` folder, imported by its folder name
    raise ImportError("the simulator is part of nhipl: import `nhipl.simulator`, not `simulator`")

from typing import Callable  # noqa: E402

from .latency import Distribution, Histogram, LatencyModel
from .replay import APPROVAL_SCOPES, DEFAULT_GRACE, FINDING_KINDS, Finding, Replay, replay
from .report import Report
from .swarm import Swarm, generate
from .trace import TraceError, TraceReader, read_trace


def _policies(policies):
    if policies is None or hasattr(policies, "evaluate_many"):
        return policies
    import nhipl

    return nhipl.load(policies)


def simulate(trace, policies, *, seed: int = 0, latency: LatencyModel | None = None, skip_bad_lines: bool = False,
             batch_size: int = 256, revocation_grace: float = DEFAULT_GRACE,
             progress: Callable[[TraceReader, int], None] | None = None, approvals: str = "call",
             on_request: Callable[[int, dict], None] | None = None, exact: bool = False) -> Report:
    """Replay ``trace`` against ``policies`` and return a :class:`Report`.

    ``trace``: a path, a :class:`TraceReader`, or an iterable of event dicts or JSON
    lines. ``policies``: a loaded ``Policies``, a path or list of paths, or None (the
    run's structure, revocation and attribution findings only). ``seed`` drives the
    modelled latency; ``revocation_grace`` is the exposure in seconds tolerated after
    a task's end before ``valid_after_task_end`` is reported (default 5). ``approvals``:
    an ``approval`` event covers the next call of its tool in its task (``"call"``, as
    enforcement does) or every later call of it (``"task"``). ``on_request(line, request)``
    is called with the request built for each step, in trace order. ``exact``: the blast
    radius comes from the SMT solver over every request (``nhipl[analyze]``).
    """
    policies = _policies(policies)
    reader = trace if isinstance(trace, TraceReader) else read_trace(trace, skip_bad_lines=skip_bad_lines)
    state = replay(reader, policies, seed=seed, latency=latency, batch_size=batch_size,
                   revocation_grace=revocation_grace, progress=progress, approvals=approvals, on_request=on_request)
    return Report(state, source=reader.name, bad_lines=reader.bad_lines, policies=policies, exact=exact)


__all__ = [
    "APPROVAL_SCOPES",
    "DEFAULT_GRACE",
    "Distribution",
    "FINDING_KINDS",
    "Finding",
    "Histogram",
    "LatencyModel",
    "Replay",
    "Report",
    "Swarm",
    "TraceError",
    "TraceReader",
    "generate",
    "read_trace",
    "replay",
    "simulate",
]
