"""The OpenTelemetry GenAI importer on hand-written OTLP JSON fixtures (tests/data/otel/)."""

from __future__ import annotations

import json
import pathlib

import pytest

from nhipl.simulator import read_trace, simulate
from nhipl.simulator.importers import SourceError, import_otel

DATA = pathlib.Path(__file__).parent / "data" / "otel"
PLANNER, RESEARCHER = "spiffe://acme.org/agents/planner", "spiffe://acme.org/agents/researcher"


def test_agents_delegation_tools_and_approvals():
    events = import_otel([DATA / "research-delegation.json"])
    assert [e["kind"] for e in events] == ["task_start", "tool_call", "delegate", "tool_call", "approval", "tool_call", "task_end"]
    start, search, delegate, fetch, approval, mail, end = events
    assert start == {"t": 1717000000.0, "kind": "task_start", "task": "conv-research-1", "agent": PLANNER,
                     "intent": "research", "prompt": "Find the 2024 revenue of ACME Corp and mail it to cfo@acme.org"}
    assert (search["agent"], search["tool"], search["args"]) == (PLANNER, "search.web", {"query": "ACME Corp 2024 revenue"})
    assert search["output"].startswith("ACME Corp investor page")
    assert delegate == {"t": 1717000010.0, "kind": "delegate", "task": "conv-research-1", "agent": PLANNER, "to": RESEARCHER}
    # under a chat span under the researcher's span: the nearest enclosing agent is the researcher
    assert (fetch["agent"], fetch["resource"]) == (RESEARCHER, "web:investors.acme.example")
    assert approval == {"t": 1717000045.0, "kind": "approval", "task": "conv-research-1", "tool": "email.send",
                        "granted": True, "by": "alice@acme.org"}
    assert mail["agent"] == PLANNER and "output" not in mail
    assert end == {"t": 1717000060.0, "kind": "task_end", "task": "conv-research-1"}


def test_json_lines_two_traces_and_fallbacks():
    events = import_otel([DATA / "two-traces.jsonl"])
    starts = [e for e in events if e["kind"] == "task_start"]
    # no conversation id: the trace id names the task; no agent id: the agent's name
    assert [(s["task"], s["agent"], s["intent"]) for s in starts] == [
        ("0af7651916cd43dd8448eb211c80319c", "triage", "triage-ticket"),
        ("b7ad6b7169203331b7ad6b7169203331", "spiffe://acme.org/agents/responder", "answer-customer")]
    assert starts[0]["prompt"] == "Triage ticket 4711" and "prompt" not in starts[1]
    assert [e["tool"] for e in events if e["kind"] == "tool_call"] == ["zendesk.read_ticket", "email.send"]  # embeddings skipped
    assert [e["granted"] for e in events if e["kind"] == "approval"] == [False]


def test_events_are_in_time_order_and_replay():
    events = import_otel([DATA])
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert len(list(read_trace(events))) == len(events) == 14
    report = simulate(events, None)
    assert not [f for f in report.findings if f.kind == "attribution"]


def test_provenance_follows_the_tool_output_into_the_delegatee_call():
    import nhipl

    policies = nhipl.loads('@id("fetch")\nrequire approval for any agent to call "fetch.page" unless provenance.url == "user";\n'
                           '@id("all")\npermit any agent to call "*";\n@id("hand")\npermit any agent to delegate "*";')
    report = simulate(import_otel([DATA / "research-delegation.json"]), policies)
    gated = [f for f in report.findings if f.kind == "overreach"]
    assert [(f.subkind, f.tool, f.rule) for f in gated] == [("unapproved", "fetch.page", "fetch")]


def _otlp(*spans):
    return {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}


def _span(**attributes):
    return {"traceId": "t1", "spanId": "s1", "startTimeUnixNano": "1000000000", "endTimeUnixNano": "2000000000",
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]}


@pytest.mark.parametrize("document, message", [
    ({"spans": []}, "not OTLP JSON: expected an object with `resourceSpans`"),
    (_otlp(_span(**{"gen_ai.operation.name": "execute_tool"})),
     "an `execute_tool` span without `gen_ai.tool.name` (span `resourceSpans[0].scopeSpans[0].spans[0]`)"),
    (_otlp(_span(**{"gen_ai.operation.name": "invoke_agent"})),
     "an `invoke_agent` span without `gen_ai.agent.id` or `gen_ai.agent.name` (span `resourceSpans[0].scopeSpans[0].spans[0]`)"),
    (_otlp(_span(**{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x", "gen_ai.agent.id": "a",
                    "gen_ai.tool.call.arguments": "{oops"})),
     "`gen_ai.tool.call.arguments` is not valid JSON: expecting property name enclosed in double quotes "
     "(span `resourceSpans[0].scopeSpans[0].spans[0]`)"),
    (_otlp({"traceId": "t1", "spanId": "s1"}), "the span lacks `startTimeUnixNano` (span `resourceSpans[0].scopeSpans[0].spans[0]`)"),
])
def test_bad_spans_are_reported_with_the_file(tmp_path, document, message):
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SourceError) as err:
        import_otel([path])
    assert (err.value.location, err.value.message) == (f"{path}:1:1", message)


def test_bad_json_line_is_reported_at_its_line(tmp_path):
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(_otlp()) + "\n" + "{not json\n")
    with pytest.raises(SourceError) as err:
        import_otel([path])
    assert err.value.location == f"{path}:2:2"
