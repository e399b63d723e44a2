"""`nhipl generate --from-policy`: a swarm cast from a policy's identities, tools and intents."""

from __future__ import annotations

import json
import pathlib

import nhipl

from .cli import run, write_policy

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def _generate(tmp_path, *args) -> tuple[pathlib.Path, list[dict]]:
    code, out, err = run("generate", "--tasks", "6", "--seed", "4", *args)
    assert code == 0, err
    path = tmp_path / "trace.jsonl"
    path.write_text(out)
    return path, [json.loads(line) for line in out.splitlines()]


def _findings(trace, policy) -> list[dict]:
    code, out, err = run("simulate", str(trace), "-p", str(policy), "--format", "json")
    assert code == 0, err
    return json.loads(out)["findings"]


def test_the_cast_is_the_policy_s_own_and_its_intended_behaviour_is_allowed(tmp_path):
    policy = EXAMPLES / "support-triage"
    trace, events = _generate(tmp_path, "--from-policy", str(policy))
    policies = nhipl.load(str(policy))
    declared = set(policies.agents)
    steps = [e for e in events if e["kind"] == "tool_call"]
    assert steps and {e["agent"] for e in steps} <= declared
    from nhipl.simulator.cast import cast_from_policy

    cast = cast_from_policy(policies)
    assert {"answer-customer", "triage-ticket"} <= set(cast.intents)
    assert {e["intent"] for e in events if e["kind"] == "task_start"} <= set(cast.intents)
    assert {e["tool"] for e in steps} <= set(cast.tools)
    assert not [f for f in _findings(trace, policy) if f["kind"] == "overreach"]


def test_planted_drift_is_found_as_overreach(tmp_path):
    policy = EXAMPLES / "support-triage"
    labels = tmp_path / "labels.jsonl"
    trace, events = _generate(tmp_path, "--from-policy", str(policy), "--drift", "0.5", "--labels-out", str(labels))
    planted = [json.loads(line)["line"] for line in labels.read_text().splitlines() if json.loads(line)["label"] == "drift"]
    assert planted
    denied = {f["line"] for f in _findings(trace, policy) if (f["kind"], f["subkind"]) == ("overreach", "denied")}
    assert set(planted) <= denied


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    args = ("generate", "--tasks", "4", "--seed", "9", "--from-policy", str(EXAMPLES / "coding-delegation"))
    assert run(*args)[1] == run(*args)[1]
    assert run(*args)[1] != run("generate", "--tasks", "4", "--seed", "10", "--from-policy", str(EXAMPLES / "coding-delegation"))[1]


def test_a_policy_that_names_no_identity_is_refused(tmp_path):
    policy = write_policy(tmp_path, 'permit any agent to call "x" grant ttl 5m;\n')
    code, out, err = run("generate", "--from-policy", str(policy))
    assert code == 2
    assert "names no identity" in err and "Traceback" not in err and out == ""
