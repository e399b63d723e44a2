"""Long delegation chains: the replay keeps one node per delegation (chains share
their prefixes), so memory grows linearly with the chain, and each step still
carries exactly the chain that reached its agent."""

from __future__ import annotations

import tracemalloc

import pytest

import nhipl
from nhipl.request import MAX_CHAIN_LENGTH as MAX_CHAIN
from nhipl.simulator import TraceError, simulate

PERMITS = 'permit any agent to delegate "*";\npermit any agent to call "repo.read";\n'


def _chain_trace(n: int):
    """One task in which agent i delegates to agent i+1, who then reads the repo."""
    yield {"kind": "task_start", "t": 0, "task": "t1", "agent": "a0", "intent": "work"}
    for i in range(n):
        yield {"kind": "delegate", "t": i + 1, "task": "t1", "agent": f"a{i}", "to": f"a{i + 1}"}
        yield {"kind": "tool_call", "t": i + 1.5, "task": "t1", "agent": f"a{i + 1}", "tool": "repo.read"}


def test_a_4000_delegation_chain_stops_at_the_chain_bound_in_linear_memory():
    """A request carries at most MAX_CHAIN_LENGTH delegators, so the replay stops with a located
    error at the first step past it; up to there chains share their prefixes."""
    n = 4000
    events = list(_chain_trace(n))
    policies = nhipl.loads(PERMITS, source="p.nhipl")
    policies.evaluate_many([])  # compiled before measuring
    tracemalloc.start()
    try:
        with pytest.raises(TraceError) as err:
            simulate(events, policies)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"at most {MAX_CHAIN}" in err.value.message
    # The first step whose chain is past the bound: the call by a{MAX_CHAIN + 1}, whose chain
    # is a0 ... a{MAX_CHAIN}.
    assert err.value.line == 3 + 2 * MAX_CHAIN
    assert peak < 40_000_000, f"peak {peak / 1e6:.1f} MB"


def test_a_chain_at_the_bound_replays_with_every_step_allowed():
    n = MAX_CHAIN
    report = simulate(list(_chain_trace(n)), nhipl.loads(PERMITS, source="p.nhipl"))
    longest = report.analyses["longest_delegation_chain"]
    assert (longest["length"], longest["chain"][0], longest["chain"][-1], longest["task"]) == (n, "a0", f"a{n}", "t1")
    assert not [f for f in report.findings if f.kind == "overreach"]


def test_the_chain_a_step_carries_is_the_one_that_reached_its_agent():
    events = [
        {"kind": "task_start", "t": 0, "task": "t1", "agent": "root", "intent": "work"},
        {"kind": "delegate", "t": 1, "task": "t1", "agent": "root", "to": "left"},
        {"kind": "delegate", "t": 2, "task": "t1", "agent": "root", "to": "right"},
        {"kind": "delegate", "t": 3, "task": "t1", "agent": "left", "to": "leaf"},
        {"kind": "tool_call", "t": 4, "task": "t1", "agent": "right", "tool": "repo.write"},
        {"kind": "tool_call", "t": 5, "task": "t1", "agent": "leaf", "tool": "repo.write"},
    ]
    report = simulate(events, nhipl.loads(PERMITS, source="p.nhipl"))
    denied = [f for f in report.findings if f.kind == "overreach"]
    assert [(f.agent, f.chain) for f in denied] == [("right", ("root",)), ("leaf", ("root", "left"))]

