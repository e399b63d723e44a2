"""The runtime's decision logs as traces (``nhipl import decisions``).

A decision log (written by :class:`nhipl.runtime.DecisionLog`) has one JSON record a
line: ``task_start`` / ``task_end`` and ``decision`` records. :func:`log_to_trace` maps
them to trace events so that a day's log replays in the simulator.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Iterable, Iterator

from nhipl import source as user_files
from nhipl.jsontext import JSONTextError, parse_json

from .sources import SourceError, read_text, source_files

# The decision-log format version this importer reads.
FORMAT_VERSION = 1

_KNOWN_EVENTS = ("decision", "task_start", "task_end")


def _number(value) -> bool:
    return (value.__class__ is int or value.__class__ is float) and math.isfinite(value)


def log_to_trace(
    lines: Iterable[str | bytes],
    *,
    source: str = "<log>",
    on_bad_line: Callable[[SourceError], None] | None = None,
    sort: bool = True,
) -> Iterator[dict]:
    """Trace events from the lines of a decision log.

    A log written as a trace (records with ``kind``, as :class:`nhipl.runtime.Runtime`
    writes them) passes through as it is. Older logs are mapped record by record:

    - ``task_start`` → ``task_start`` {t, task: task.id, agent, intent}; ``task_end`` →
      ``task_end`` {t, task}.
    - ``decision`` with action ``delegate`` → ``delegate`` {t, task, agent, to: tool}.
    - ``decision`` with action ``call`` → an ``approval`` {t, task, tool, granted, by}
      when a human was asked (and the call has a task), then ``tool_call``
      {t, task, agent, tool, resource, args}. Every *attempt* becomes a step, whatever
      the logged effect, so the simulator judges what agents tried under the policy
      being tested. Arguments are the redacted ones.
    - A call or delegation in a task not seen before first yields a ``task_start`` for
      it (agent: the first identity seen in it, intent: the logged intent or ``""``).
    - Other actions and unknown record kinds are skipped; a step without a task has no
      ``task`` field (the simulator reports it as ``no_task``).

    Blank lines are skipped. A line that is not JSON or lacks a field raises
    :class:`SourceError` (at ``source:line:1``), or is passed to ``on_bad_line`` and
    skipped. With ``sort`` (default) events are ordered by time (stably), which needs the
    whole log in memory; logs written by :class:`DecisionLog` are in time order already.
    """
    events = _events(lines, source, on_bad_line)
    if not sort:
        yield from events
        return
    yield from sorted(events, key=lambda e: e["t"])


def _events(lines, source, on_bad_line) -> Iterator[dict]:
    started: set[str] = set()
    for line_no, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield from _bad(source, line_no, "line is not valid UTF-8", on_bad_line)
                continue
        if not raw.strip():
            continue
        try:
            record = parse_json(raw)
        except JSONTextError as err:
            yield from _bad(source, line_no, err.message, on_bad_line)
            continue
        problem, out = _convert(record, started)
        if problem is not None:
            yield from _bad(source, line_no, problem, on_bad_line)
            continue
        yield from out


def _bad(source, line_no, message, on_bad_line) -> Iterator[dict]:
    err = SourceError(f"{source}:{line_no}:1", message)
    if on_bad_line is None:
        raise err
    on_bad_line(err)
    return iter(())


def _convert(record, started: set[str]) -> tuple[str | None, list[dict]]:
    if record.__class__ is not dict:
        return "a decision-log record must be a JSON object", []
    version = record.get("v")
    if version is not None and version != FORMAT_VERSION:
        return f"unsupported decision-log format version `{version}` (this nhipl reads {FORMAT_VERSION})", []
    event = record.get("event")
    if event is None and record.get("kind").__class__ is str:
        # A log the runtime writes as a trace: its events are trace events already.
        if not _number(record.get("t")):
            return "field `t` must be a number of seconds", []
        return None, [record]
    if event.__class__ is not str:
        return "missing required field `event`", []
    if event not in _KNOWN_EVENTS:
        return None, []
    t = record.get("t")
    if not _number(t):
        return "field `t` must be a number of seconds", []
    task = record.get("task")
    if task is not None and task.__class__ is not dict:
        return "field `task` must be an object or null", []
    task_id = task.get("id") if task else None
    if task_id is not None and task_id.__class__ is not str:
        return "field `task.id` must be a string", []
    intent = task.get("intent") if task else None
    intent = intent if intent.__class__ is str else ""
    agent = record.get("agent")
    if event == "task_end":
        if task_id is None:
            return "`task_end` record is missing `task.id`", []
        return None, [{"kind": "task_end", "t": t, "task": task_id}]
    if agent.__class__ is not str:
        return f"`{event}` record is missing required field `agent`", []
    out: list[dict] = []
    if event == "task_start":
        if task_id is None:
            return "`task_start` record is missing `task.id`", []
        started.add(task_id)
        return None, [{"kind": "task_start", "t": t, "task": task_id, "agent": agent, "intent": intent}]
    action = record.get("action") or "call"
    tool = record.get("tool")
    if tool.__class__ is not str:
        return "`decision` record is missing required field `tool`", []
    if action not in ("call", "delegate"):
        return None, []
    if task_id is not None and task_id not in started:
        started.add(task_id)
        out.append({"kind": "task_start", "t": t, "task": task_id, "agent": agent, "intent": intent})
    step: dict = {"t": t}
    if task_id is not None:
        step["task"] = task_id
    if action == "delegate":
        out.append({"kind": "delegate", **step, "agent": agent, "to": tool})
        return None, out
    approval = record.get("approval")
    if isinstance(approval, dict) and task_id is not None:
        by = approval.get("by")
        out.append(
            {
                "kind": "approval",
                "t": t,
                "task": task_id,
                "tool": tool,
                "granted": approval.get("granted") is True,
                "by": by if by.__class__ is str else "unknown",
            }
        )
    call = {"kind": "tool_call", **step, "agent": agent, "tool": tool}
    resource = record.get("resource")
    if resource.__class__ is str:
        call["resource"] = resource
    args = record.get("args")
    if args.__class__ is dict:
        call["args"] = args
    out.append(call)
    return None, out


def import_decisions(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Trace events from runtime decision logs (JSON lines written by ``nhipl.runtime.DecisionLog``)."""
    events: list[dict] = []
    for path in source_files(paths, (".jsonl", ".json", ".log")):
        # JSON lines end at `\n` only: a U+2028 inside a logged string is not a line end.
        events.extend(log_to_trace(user_files.lines(read_text(path)), source=path))
    events.sort(key=lambda event: event["t"])
    return events
