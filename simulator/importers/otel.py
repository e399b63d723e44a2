"""OpenTelemetry GenAI spans (OTLP JSON) as nhipl trace events.

Input: OTLP JSON, a file holding one ``ExportTraceServiceRequest`` (``{"resourceSpans": [...]}``)
or JSON lines of them (what the OTLP file exporter writes), or a bare list of spans.

- a span with ``gen_ai.operation.name`` = ``invoke_agent`` is an agent at work, its identity
  ``gen_ai.agent.id``, else ``gen_ai.agent.name``;
- the first such span of a trace (by start time) starts the task: id ``gen_ai.conversation.id``,
  else the trace id; intent the attribute ``nhipl.task.intent`` (``""`` without it); ``prompt`` the attribute
  ``nhipl.task.prompt``, else the first user text of ``gen_ai.input.messages``;
- an ``invoke_agent`` span under another agent's span is a ``delegate`` from that agent;
- an ``execute_tool`` span is a ``tool_call`` by the nearest enclosing agent: tool
  ``gen_ai.tool.name``, args the JSON string ``gen_ai.tool.call.arguments``, output
  ``gen_ai.tool.call.result``, resource ``nhipl.resource``; an ``execute_tool`` span carrying
  ``nhipl.approval.granted`` is preceded by an ``approval`` event for that tool, by
  ``nhipl.approval.by``;
- ``t`` is the span's start in seconds; other spans (chat, embeddings, ...) are skipped; the task
  ends at the end of its first span.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterable

from nhipl.jsontext import JSONTextError, parse_json

from .sources import Document, SourceError, read_json_documents, source_files

INVOKE_AGENT = "invoke_agent"
EXECUTE_TOOL = "execute_tool"


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: float
    end: float
    attributes: dict
    location: str
    where: str
    """The span's place in its file (``resourceSpans[0].scopeSpans[0].spans[3]``)."""

    def error(self, message: str) -> SourceError:
        return SourceError(self.location, f"{message} (span `{self.where}`)")

    @property
    def operation(self) -> str | None:
        return self.attributes.get("gen_ai.operation.name")

    @property
    def agent(self) -> str | None:
        value = self.attributes.get("gen_ai.agent.id") or self.attributes.get("gen_ai.agent.name")
        return str(value) if value is not None else None


def read_spans(path: str) -> list[Span]:
    """Every span in one OTLP JSON (or JSON-lines) file."""
    spans = []
    for document in read_json_documents(path):
        value = document.value
        if isinstance(value, dict) and "resourceSpans" in value:
            resource_spans = value["resourceSpans"]
            if not isinstance(resource_spans, list):
                raise SourceError(document.location, "`resourceSpans` is not a list")
            for r, resource in enumerate(resource_spans):
                scopes = _list(document, resource, "scopeSpans", f"resourceSpans[{r}]",
                               legacy="instrumentationLibrarySpans")
                for s, scope in enumerate(scopes):
                    where = f"resourceSpans[{r}].scopeSpans[{s}]"
                    for i, raw in enumerate(_list(document, scope, "spans", where)):
                        spans.append(_span(document, raw, f"{where}.spans[{i}]"))
        elif isinstance(value, list):
            spans.extend(_span(document, raw, f"[{i}]") for i, raw in enumerate(value))
        elif isinstance(value, dict) and "traceId" in value and "spanId" in value:
            spans.append(_span(document, value, "span"))
        else:
            raise SourceError(document.location, "not OTLP JSON: expected an object with `resourceSpans`",
                              help="export spans with the OTLP JSON (file) exporter")
    return spans


def import_otel(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Trace events for the GenAI spans in every OTLP JSON file under ``paths``."""
    spans: list[Span] = []
    for path in source_files(paths, (".json", ".jsonl")):
        spans.extend(read_spans(path))
    by_trace: dict[str, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    events: list[tuple[float, int, int, dict]] = []
    for order, trace_spans in enumerate(by_trace.values()):
        events.extend((t, rank, order, event) for t, rank, event in _trace_events(trace_spans))
    events.sort(key=lambda item: (item[0], item[1], item[2]))
    return [event for _, _, _, event in events]


# rank orders events that share a start time: a task starts before its steps, ends after them
_START, _STEP, _END = 0, 1, 2


def _trace_events(spans: list[Span]) -> list[tuple[float, int, dict]]:
    by_id = {span.span_id: span for span in spans}
    agents = sorted((s for s in spans if s.operation == INVOKE_AGENT), key=lambda s: (s.start, s.end))
    tools = [s for s in spans if s.operation == EXECUTE_TOOL]
    if not agents and not tools:
        return []

    def enclosing_agent(span: Span) -> Span | None:
        seen = set()
        parent = by_id.get(span.parent_id) if span.parent_id else None
        while parent is not None and parent.span_id not in seen:
            if parent.operation == INVOKE_AGENT:
                return parent
            seen.add(parent.span_id)
            parent = by_id.get(parent.parent_id) if parent.parent_id else None
        return None

    out: list[tuple[float, int, dict]] = []
    task = None
    if agents:
        first = agents[0]
        if first.agent is None:
            raise first.error("an `invoke_agent` span without `gen_ai.agent.id` or `gen_ai.agent.name`")
        task = str(first.attributes.get("gen_ai.conversation.id") or first.trace_id)
        start = {"t": first.start, "kind": "task_start", "task": task, "agent": first.agent}
        intent = first.attributes.get("nhipl.task.intent")
        start["intent"] = str(intent) if intent is not None else ""
        prompt = first.attributes.get("nhipl.task.prompt") or _user_text(first)
        if prompt:
            start["prompt"] = str(prompt)
        out.append((first.start, _START, start))
        out.append((first.end, _END, {"t": first.end, "kind": "task_end", "task": task}))
        for span in agents[1:]:
            if span.agent is None:
                raise span.error("an `invoke_agent` span without `gen_ai.agent.id` or `gen_ai.agent.name`")
            parent = enclosing_agent(span)
            if parent is not None and parent.agent is not None and parent.agent != span.agent:
                out.append((span.start, _STEP, {"t": span.start, "kind": "delegate", "task": task,
                                                "agent": parent.agent, "to": span.agent}))
    for span in tools:
        tool = span.attributes.get("gen_ai.tool.name")
        if tool is None:
            raise span.error("an `execute_tool` span without `gen_ai.tool.name`")
        owner = enclosing_agent(span)
        agent = owner.agent if owner is not None else span.agent
        if agent is None:
            raise span.error(f"the `execute_tool` span of `{tool}` has no enclosing `invoke_agent` span "
                                 "and no `gen_ai.agent.id`")
        call = {"t": span.start, "kind": "tool_call"}
        if task is not None:
            call["task"] = task
        call.update({"agent": agent, "tool": str(tool)})
        if span.attributes.get("nhipl.resource") is not None:
            call["resource"] = str(span.attributes["nhipl.resource"])
        arguments = span.attributes.get("gen_ai.tool.call.arguments")
        if arguments is not None:
            call["args"] = _arguments(span, arguments)
        result = span.attributes.get("gen_ai.tool.call.result")
        if result is not None:
            call["output"] = result if isinstance(result, str) else json.dumps(result, sort_keys=True)
        granted = span.attributes.get("nhipl.approval.granted")
        if granted is not None:
            if not isinstance(granted, bool):
                raise span.error("`nhipl.approval.granted` is not a boolean")
            approval = {"t": span.start, "kind": "approval"}
            if task is not None:
                approval["task"] = task
            approval.update({"tool": str(tool), "granted": granted,
                             "by": str(span.attributes.get("nhipl.approval.by", "unknown"))})
            out.append((span.start, _STEP, approval))
        out.append((span.start, _STEP, call))
    return out


def _arguments(span: Span, arguments: object) -> dict:
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str):
        raise span.error("`gen_ai.tool.call.arguments` is not a JSON string")
    try:
        value = parse_json(arguments)
    except JSONTextError as err:
        raise span.error(f"`gen_ai.tool.call.arguments` is not valid JSON: {err.reason}") from None
    if not isinstance(value, dict):
        raise span.error("`gen_ai.tool.call.arguments` is not a JSON object")
    return value


def _user_text(span: Span) -> str | None:
    """The first user text part of ``gen_ai.input.messages`` (a JSON string of messages)."""
    raw = span.attributes.get("gen_ai.input.messages")
    if isinstance(raw, str):
        try:
            raw = parse_json(raw)
        except JSONTextError:
            return None
    if not isinstance(raw, list):
        return None
    for message in raw:
        if isinstance(message, dict) and message.get("role") == "user":
            for part in message.get("parts") or ():
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("content"), str):
                    return part["content"]
            if isinstance(message.get("content"), str):
                return message["content"]
    return None


def _list(document: Document, container: object, name: str, where: str, legacy: str | None = None) -> list:
    if not isinstance(container, dict):
        raise SourceError(document.location, f"`{where}` is not an object")
    value = container.get(name)
    if value is None and legacy is not None:
        value = container.get(legacy)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SourceError(document.location, f"`{where}.{name}` is not a list")
    return value


def _span(document: Document, raw: object, where: str) -> Span:
    location = document.location

    def error(message: str) -> SourceError:
        return SourceError(location, f"{message} (span `{where}`)")

    if not isinstance(raw, dict):
        raise error("a span is not an object")
    for name in ("traceId", "spanId", "startTimeUnixNano"):
        if raw.get(name) in (None, ""):
            raise error(f"the span lacks `{name}`")
    start = _nanos(error, raw, "startTimeUnixNano")
    end = _nanos(error, raw, "endTimeUnixNano") if raw.get("endTimeUnixNano") not in (None, "") else start
    attributes = {}
    for i, attribute in enumerate(raw.get("attributes") or ()):
        if not isinstance(attribute, dict) or not isinstance(attribute.get("key"), str):
            raise error(f"`attributes[{i}]` is not a `{{key, value}}` object")
        attributes[attribute["key"]] = _any_value(error, attribute.get("value"))
    parent = raw.get("parentSpanId") or None
    return Span(trace_id=str(raw["traceId"]), span_id=str(raw["spanId"]), parent_id=parent,
                name=str(raw.get("name", "")), start=start, end=end, attributes=attributes,
                location=location, where=where)


def _nanos(error, raw: dict, name: str) -> float:
    value = raw[name]
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        raise error(f"`{name}` is `{value}`, expected nanoseconds since the epoch") from None
    return nanos / 1e9


def _any_value(error, value: object) -> object:
    """An OTLP ``AnyValue`` as a Python value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            raise error(f"`intValue` `{value['intValue']}` is not an integer") from None
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_any_value(error, v) for v in (value["arrayValue"] or {}).get("values", ())]
    if "kvlistValue" in value:
        return {kv["key"]: _any_value(error, kv.get("value"))
                for kv in (value["kvlistValue"] or {}).get("values", ()) if isinstance(kv, dict) and "key" in kv}
    if "bytesValue" in value:
        return value["bytesValue"]
    return None
