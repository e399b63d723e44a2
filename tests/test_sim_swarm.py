"""Generated swarms: planted faults are all found, and nothing else is (recall and precision 100%)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nhipl
from nhipl.simulator import generate, simulate
from nhipl.simulator.swarm import LABELS, TOPOLOGIES, SwarmStream, swarm_config

rates = st.fixed_dictionaries({name: st.sampled_from([0.0, 0.05, 0.2, 0.5]) for name in LABELS})


def score(swarm):
    """(missed, unplanted) against the swarm's own policy."""
    policies = nhipl.loads(swarm.policy_text, source="swarm.nhipl")
    report = simulate(swarm.events, policies)
    found = defaultdict(set)
    for f in report.findings:
        found[f.line].add((f.kind, f.subkind))
    planted = defaultdict(lambda: (set(), set()))
    for p in swarm.planted:
        required, allowed = planted[p.line]
        required |= p.required
        allowed |= p.allowed
    missed = [(p.line, p.label) for p in swarm.planted if not p.required <= found.get(p.line, set())]
    unplanted = []
    for line, kinds in sorted(found.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        required, allowed = planted.get(line, (set(), set()))
        extra = kinds - required - allowed
        if extra:
            unplanted.append((line, sorted(extra, key=str)))
    return missed, unplanted, report


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), topology=st.sampled_from(TOPOLOGIES), agents=st.integers(1, 9),
       max_depth=st.integers(0, 4), rates=rates)
def test_every_planted_fault_found_and_nothing_else(seed, topology, agents, max_depth, rates):
    swarm = generate(agents=agents, tasks=6, topology=topology, max_depth=max_depth, seed=seed, steps=2, **rates)
    missed, unplanted, _ = score(swarm)
    assert missed == [], f"planted but not found: {missed}"
    assert unplanted == [], f"found but not planted: {unplanted}"


def test_clean_swarm_has_no_findings():
    swarm = generate(agents=10, tasks=15, seed=3)
    assert swarm.planted == []
    report = simulate(swarm.events, nhipl.loads(swarm.policy_text))
    assert report.findings == []
    assert report.summary["steps"] > 50


def test_every_label_is_planted_and_found_at_high_rates():
    swarm = generate(agents=8, tasks=30, seed=11, **{name: 0.3 for name in LABELS})
    labels = {p.label for p in swarm.planted}
    assert labels == set(LABELS)
    missed, unplanted, report = score(swarm)
    assert missed == [] and unplanted == []
    for kind, subs in report.summary["subkinds"].items():
        assert all(count > 0 for count in subs.values()), (kind, subs)


def test_planted_events_carry_their_label():
    swarm = generate(agents=6, tasks=10, seed=5, drift=0.3, missed_revocation=0.3)
    for p in swarm.planted:
        assert swarm.events[p.line - 1]["injected"] == p.label


def test_the_policy_misses_a_fault_when_it_grants_too_much():
    """The score can fail: a policy granting everything hides drift."""
    swarm = generate(agents=6, tasks=10, seed=2, drift=0.5)
    report = simulate(swarm.events, nhipl.loads('permit any agent to call "*";\npermit any agent to delegate "*";'))
    assert report.summary["overreach"] == 0
    assert any(p.label == "drift" for p in swarm.planted)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_same_seed_same_bytes(topology):
    a = list(generate(agents=7, tasks=8, topology=topology, seed=9, drift=0.2, sharing=0.2).lines())
    b = list(generate(agents=7, tasks=8, topology=topology, seed=9, drift=0.2, sharing=0.2).lines())
    c = list(generate(agents=7, tasks=8, topology=topology, seed=10, drift=0.2, sharing=0.2).lines())
    assert a == b
    assert a != c


def test_events_are_in_time_order_and_valid():
    from nhipl.simulator import read_trace

    swarm = generate(agents=9, tasks=25, topology="mesh", seed=4, late_use=0.5)
    lines = list(swarm.lines())
    events = [e for _, e in read_trace(lines)]
    assert len(events) == len(lines)
    times = [e["t"] for e in events]
    assert times == sorted(times)


def test_topologies_shape_delegation():
    pipeline = generate(agents=5, tasks=3, topology="pipeline", max_depth=4, seed=1)
    delegations = {(e["agent"][-3:], e["to"][-3:]) for e in pipeline.events if e["kind"] == "delegate"}
    assert delegations == {("a00", "a01"), ("a01", "a02"), ("a02", "a03"), ("a03", "a04")}
    hierarchy = generate(agents=12, tasks=20, topology="hierarchy", max_depth=2, seed=1)
    report = simulate(hierarchy.events, nhipl.loads(hierarchy.policy_text))
    assert report.analyses["longest_delegation_chain"]["length"] <= 2
    flat = generate(agents=5, tasks=5, max_depth=0, seed=1)
    assert not any(e["kind"] == "delegate" for e in flat.events)


def test_mesh_can_show_delegation_cycles():
    swarm = generate(agents=3, tasks=40, topology="mesh", max_depth=2, seed=6)
    report = simulate(swarm.events, nhipl.loads(swarm.policy_text))
    assert report.analyses["delegation_cycles"]


def test_stream_keeps_few_tasks_in_memory():
    stream = SwarmStream(swarm_config(agents=10, tasks=300, steps=3, seed=1))
    count = sum(1 for _ in stream)
    assert count > 3000
    assert "task \"" in stream.policy_text


@pytest.mark.parametrize("bad", [dict(agents=0), dict(topology="ring"), dict(drift=1.5), dict(typo=0.1), dict(steps=0)])
def test_bad_configuration(bad):
    with pytest.raises(ValueError):
        generate(**bad)


def test_planted_to_dict():
    swarm = generate(agents=4, tasks=5, seed=1, late_use=1.0)
    d = swarm.planted[0].to_dict()
    assert d["label"] == "late_use" and d["expect"] == ["revocation_gap/used_after_task_end"]
    json.dumps(d)
