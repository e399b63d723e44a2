"""The simulator fills each step's `history` from the trace: every earlier step of the same
task, denied ones too, with the effect it got, through a view of one shared list per task."""

from __future__ import annotations

import nhipl
from nhipl.simulator import simulate
from nhipl.values import ListView

POLICY = """
@id("reads") permit any agent to call "vault.read", "web.get", "email.send";
@id("hands") permit any agent to delegate "*";
@id("nothing-leaves") forbid any agent to call "email.send"
    when any(h in history where h.tool matches "vault.*" and h.effect == "allow");
@id("one-denied-is-enough") forbid any agent to call "web.get"
    when count(h in history where h.effect == "deny") >= 1;
"""


def _steps(*tools, task="t1"):
    yield {"kind": "task_start", "t": 0, "task": task, "agent": "a", "intent": "work"}
    for i, tool in enumerate(tools):
        yield {"kind": "tool_call", "t": i + 1, "task": task, "agent": "a", "tool": tool, "args": {"n": i}}


def _requests(events, policy=POLICY):
    seen = []
    report = simulate(list(events), nhipl.loads(policy, source="p.nhipl"), on_request=lambda line, r: seen.append(r))
    return report, seen


def test_each_step_sees_the_earlier_steps_of_its_task_with_their_effects():
    _, seen = _requests(_steps("web.get", "vault.read", "email.send", "web.get"))
    assert [len(r["history"]) for r in seen] == [0, 1, 2, 3]
    last = list(seen[-1]["history"])
    assert [(h["tool"], h["effect"]) for h in last] == [("web.get", "allow"), ("vault.read", "allow"), ("email.send", "deny")]
    assert last[0] == {"t": 1, "agent": "a", "action": "call", "tool": "web.get", "args": {"n": 0}, "effect": "allow"}


def test_history_conditions_decide_the_replayed_steps():
    report, seen = _requests(_steps("web.get", "email.send", "vault.read", "email.send", "web.get"))
    effects = [f.tool for f in report.findings if f.kind == "overreach"]
    # mail before the secret is fine; after it, denied; the denial then stops `web.get`
    assert effects == ["email.send", "web.get"]


def test_history_is_per_task_and_a_view_not_a_copy():
    events = list(_steps("vault.read", task="t1")) + list(_steps("email.send", task="t2"))
    report, seen = _requests(events)
    assert [f for f in report.findings if f.kind == "overreach"] == []  # t2 never read a secret
    assert all(r["history"].__class__ is ListView for r in seen)
    first, second = seen[0]["history"], seen[1]["history"]
    assert len(first) == len(second) == 0 and first.items is not second.items


def test_delegations_are_steps_of_the_history():
    events = [
        {"kind": "task_start", "t": 0, "task": "t1", "agent": "a", "intent": "work"},
        {"kind": "delegate", "t": 1, "task": "t1", "agent": "a", "to": "b"},
        {"kind": "tool_call", "t": 2, "task": "t1", "agent": "b", "tool": "web.get"},
    ]
    _, seen = _requests(events)
    (step,) = list(seen[-1]["history"])
    assert step == {"t": 1, "agent": "a", "action": "delegate", "tool": "b", "effect": "allow"}


def test_no_history_is_kept_when_no_rule_reads_it():
    _, seen = _requests(_steps("web.get", "email.send"), policy='permit any agent to call "*";')
    assert all("history" not in r for r in seen)
