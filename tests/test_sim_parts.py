"""The replay's parts work as plain objects: credential tracking and request building each
without the event loop, and every name the replay module offered is still importable from it."""

from __future__ import annotations

import importlib

import nhipl
from nhipl.simulator.credentials import Credentials
from nhipl.simulator.requests import Requests, reads_history
from nhipl.simulator.tally import Tally


def _task(tasks: dict, requests: Requests) -> None:
    requests.task_start({"kind": "task_start", "t": 0, "task": "t1", "agent": "spiffe://a/x", "intent": "research"})


def test_credential_tracker_alone_finds_use_after_revoke_and_exposure():
    tally, tasks = Tally(), {}
    creds = Credentials(tasks, tally, grace=5.0)
    requests = Requests(tasks, tally, creds.use, lambda: None, approval_per_call=True, history=False)
    _task(tasks, requests)
    creds.issue(2, {"credential": "c1", "agent": "spiffe://a/x", "t": 1, "ttl": 100, "task": "t1"}, tasks["t1"])
    assert creds.use(3, "spiffe://a/x", "agent:spiffe://a/x", "db.read", tasks["t1"], "c1", 2) == {
        "id": "c1", "issued_at": 1, "ttl": 100}
    assert tally.findings == []
    creds.revoke({"credential": "c1", "t": 10})
    creds.use(5, "spiffe://a/x", "agent:spiffe://a/x", "db.read", tasks["t1"], "c1", 11)
    assert [(f.subkind, f.line) for f in tally.findings] == [("used_after_revoke", 5)]
    creds.issue(6, {"credential": "c2", "agent": "spiffe://a/x", "t": 12, "ttl": 60, "task": "t1"}, tasks["t1"])
    creds.task_ended(requests.task_end({"task": "t1", "t": 20}), 20)
    creds.finish()
    assert [(f.subkind, f.credential, f.exposure) for f in tally.findings[1:]] == [("valid_after_task_end", "c2", 52)]
    creds.revoke({"credential": "never-issued", "t": 30})
    assert creds.unknown == {"never-issued"}
    assert tally.edges[("agent:spiffe://a/x", "credential:c1", "use")][0] == 2


def test_request_builder_alone_builds_a_delegated_call():
    tally, tasks = Tally(), {}
    creds = Credentials(tasks, tally, grace=5.0)
    requests = Requests(tasks, tally, creds.use, lambda: None, approval_per_call=True, history=False)
    _task(tasks, requests)
    request, _ = requests.delegate(2, {"agent": "spiffe://a/x", "to": "spiffe://a/y", "task": "t1", "t": 1})
    assert request["delegation"] == {"chain": []}
    request, context = requests.tool_call(3, {"agent": "spiffe://a/y", "tool": "search.web", "task": "t1", "t": 2,
                                              "args": {"q": "hello"}})
    assert request["delegation"] == {"chain": ["spiffe://a/x"]}
    assert request["task"] == {"id": "t1", "intent": "research"}
    assert "provenance" in request and context[:3] == (3, "call", "spiffe://a/y")
    assert tally.findings == []
    requests.tool_call(4, {"agent": "spiffe://a/z", "tool": "search.web", "task": "t1", "t": 3})
    assert [(f.kind, f.subkind) for f in tally.findings] == [("attribution", "unknown_origin")]


def test_reads_history_sees_only_rules_that_read_it():
    assert not reads_history(nhipl.loads('permit any agent to call "search.web" when context.x == 1;'))
    assert reads_history(nhipl.loads('forbid any agent to call "web.get" when count(h in history where h.effect == "deny") >= 1;'))


def test_replay_module_keeps_its_public_names():
    module = importlib.import_module("nhipl.simulator.replay")
    for name in ("Replay", "replay", "Finding", "FINDING_KINDS", "Chain", "NO_CHAIN", "TimelineStep", "TIMELINE_STEPS",
                 "reads_history", "APPROVAL_SCOPES", "DEFAULT_GRACE", "OVERREACH", "UNUSED_PERMIT", "REVOCATION_GAP",
                 "ATTRIBUTION"):
        assert hasattr(module, name), name
