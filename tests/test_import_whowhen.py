"""The Who&When importer on the shared runs (agents, hand-offs, turns counted from the raw
JSON) and the attribution of each labelled mistake to its delegation chain."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from nhipl.simulator import read_trace, simulate
from nhipl.simulator.importers import SourceError, attribute_mistake, import_whowhen
from nhipl.simulator.importers.whowhen import agent_name, read_run, read_runs

from .realdata import WHOWHEN as DATA

HAND = DATA / "hand-crafted"
ALGO = DATA / "algorithm-generated"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="the shared Who&When runs are not here")


def raw(folder):
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_magentic_one_counts_match_the_source_files():
    runs = raw(HAND)
    events = import_whowhen([HAND])
    kinds = [e["kind"] for e in events]
    assert kinds.count("task_start") == len(runs) == 58
    handoffs = [m["role"] for r in runs for m in r["history"] if m["role"].startswith("Orchestrator (->")]
    assert kinds.count("delegate") == len(handoffs)
    workers = [m for r in runs for m in r["history"] if m["role"] != "human" and not m["role"].startswith("Orchestrator")]
    assert kinds.count("tool_call") == len(workers)
    delegated_to = sorted(agent_name(e["to"]) for e in events if e["kind"] == "delegate")
    assert delegated_to == sorted(re.match(r"Orchestrator \(-> (\w+)\)", h)[1] for h in handoffs)
    agents = {agent_name(e["agent"]) for e in events if "agent" in e}
    assert agents == {"Orchestrator"} | {m["role"] for m in workers}


def test_captain_agent_counts_match_the_source_files():
    runs = raw(ALGO)
    events = import_whowhen([ALGO])
    kinds = [e["kind"] for e in events]
    assert kinds.count("task_start") == len(runs) == 126
    assert kinds.count("tool_call") == sum(len(r["history"]) for r in runs)
    changes = 0
    for run in runs:
        previous = None
        for message in run["history"]:
            changes += message["name"] != previous
            previous = message["name"]
    assert kinds.count("delegate") == changes
    speakers = {m["name"] for r in runs for m in r["history"]}
    assert {agent_name(e["agent"]) for e in events if e["kind"] == "tool_call"} == speakers


def test_a_magentic_one_run_as_events():
    run = read_run(str(HAND / "1.json"))
    events = run.events()
    start = events[0]
    assert start == {"t": 0, "kind": "task_start", "task": "hand-crafted/1", "agent": "spiffe://magentic-one/Orchestrator",
                     "intent": "answer-question", "prompt": run.question}
    assert events[1] == {"t": 3, "kind": "delegate", "task": "hand-crafted/1", "agent": "spiffe://magentic-one/Orchestrator",
                         "to": "spiffe://magentic-one/WebSurfer"}
    call = events[2]
    assert (call["t"], call["agent"], call["tool"]) == (4, "spiffe://magentic-one/WebSurfer", "web.browse")
    assert call["args"]["instruction"].startswith("Please search for martial arts schools")
    assert call["output"].startswith("I typed 'martial arts schools near the New York Stock Exchange'")


def test_the_replay_finds_every_worker_reached_by_a_delegation():
    events = import_whowhen([HAND, ALGO])
    assert len(list(read_trace(events))) == len(events)
    report = simulate(events, None)
    assert not [f for f in report.findings if f.kind == "attribution"]
    chains = {tuple(f.chain or ()) for f in simulate(events, _deny_all()).findings if f.kind == "overreach"}
    assert ("spiffe://magentic-one/Orchestrator",) in chains and () in chains


def _deny_all():
    import nhipl

    return nhipl.loads('forbid any agent to call "*";\nforbid any agent to delegate "*";')


def test_attribution_of_a_worker_mistake():
    run = read_run(str(HAND / "1.json"))
    attribution = attribute_mistake(run)
    assert (attribution.step, attribution.labelled_agent, attribution.speaker) == (12, "WebSurfer", "WebSurfer")
    assert attribution.chain == ("Orchestrator",) and attribution.step_kind == "turn"
    event = run.events()[attribution.line - 1]
    assert (event["kind"], event["t"], agent_name(event["agent"])) == ("tool_call", 12, "WebSurfer")
    assert attribution.agrees and attribution.on_chain


def test_attribution_of_an_orchestrator_mistake_has_an_empty_chain():
    runs = [r for r in read_runs([HAND]) if r.mistake_agent == "Orchestrator"]
    assert len(runs) == 18
    for run in runs:
        attribution = attribute_mistake(run)
        assert attribution.speaker == "Orchestrator" and attribution.chain == ()
        assert attribution.step_kind in ("thought", "handoff")


def test_every_labelled_mistake_is_attributed_and_label_disagreements_are_reported():
    runs = read_runs([HAND, ALGO])
    attributions = [attribute_mistake(run) for run in runs]
    assert all(a is not None for a in attributions)
    disagree = sorted(a.task for a in attributions if not a.agrees)
    # counted from the raw files: the speaker at `mistake_step` is not `mistake_agent`
    expected = []
    for folder in (HAND, ALGO):
        for path in sorted(folder.glob("*.json")):
            run = json.loads(path.read_text())
            entry = run["history"][int(run["mistake_step"])]
            speaker = entry.get("name") or re.match(r"\w+", entry["role"])[0]
            if speaker != run["mistake_agent"]:
                expected.append(f"{folder.name}/{path.stem}")
    assert disagree == sorted(expected) and len(disagree) == 6


def test_a_bad_mistake_step_is_reported(tmp_path):
    bad = tmp_path / "9.json"
    bad.write_text(json.dumps({"question": "q", "history": [{"role": "human", "content": "q"}], "mistake_step": "two"}))
    with pytest.raises(SourceError) as err:
        import_whowhen([bad])
    assert err.value.message == "`run.mistake_step` is `two`, expected a step number"
    bad.write_text(json.dumps({"history": [{"role": "WebSurfer"}]}))
    with pytest.raises(SourceError) as err:
        import_whowhen([bad])
    assert err.value.message == "`history[0]` lacks `content`"


def test_attribution_script_summary(capsys):
    import importlib.util

    path = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "whowhen.py"
    spec = importlib.util.spec_from_file_location("whowhen_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(HAND), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["runs"]) == 58
    assert out["summary"]["hand-crafted"] == {
        "by_delegated_agent": 39, "by_originator": 19, "label_names_speaker": 55, "label_on_chain": 55, "runs": 58,
        "step_handoff": 6, "step_thought": 13, "step_turn": 39}
