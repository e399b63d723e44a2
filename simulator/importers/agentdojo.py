"""AgentDojo runs (ethz-spylab/agentdojo, ``runs/<model>/<suite>/<user_task>/<attack>/<injection>.json``)
as nhipl trace events.

One run is one task: ``task_start`` (intent = the suite, ``prompt`` = the user's instruction, the
first user message), one ``tool_call`` per tool call the assistant asked for, with its ``args`` and
the tool's ``output`` (the matching tool message; its error text when the tool failed), then
``task_end``. A call the run stopped before executing (the step limit) has no ``output``.
AgentDojo records no timestamps: events are one second apart, runs follow one another.
"""

from __future__ import annotations

import json

import os
from collections import deque
from dataclasses import dataclass
from typing import Iterable

from .sources import Document, SourceError, field, read_json, source_files, unique_tasks

AGENT = "spiffe://agentdojo/assistant"
"""The identity of the single agent of every AgentDojo run (the model under test)."""


@dataclass(frozen=True, slots=True)
class Run:
    """One AgentDojo run: what it is, how it ended, and its steps as trace events."""

    path: str
    task: str
    """``<suite>/<user task>/<attack or none>/<injection task or none>``."""
    suite: str
    user_task: str
    injection_task: str | None
    attack: str | None
    utility: bool
    security: bool
    prompt: str
    calls: tuple[dict, ...]
    """``{tool, args, output?}`` in the order the assistant asked for them."""
    error: str | None = None
    """AgentDojo's own ``error``: the run ended in an error (the agent crashed, or hit a
    context limit) instead of an answer."""
    injections: tuple[str, ...] = ()
    """The attacker's texts AgentDojo placed in the environment for this run (its
    ``injections``, in name order); empty for a benign run or a record without them."""

    @property
    def benign(self) -> bool:
        """A run without an attack (``none/none.json``); its ``security`` field means nothing."""
        return self.attack is None

    def events(self, t0: int = 0) -> list[dict]:
        """The run as trace events, the first at second ``t0``."""
        events = [{"t": t0, "kind": "task_start", "task": self.task, "agent": AGENT,
                   "intent": self.suite, "prompt": self.prompt}]
        for call in self.calls:
            events.append({"t": t0 + len(events), "kind": "tool_call", "task": self.task, "agent": AGENT, **call})
        events.append({"t": t0 + len(events), "kind": "task_end", "task": self.task})
        return events


def read_run(path: str) -> Run:
    """Read one AgentDojo run file."""
    document = read_json(path)
    return parse_run(document)


def parse_run(document: Document) -> Run:
    run = document.value
    if not isinstance(run, dict):
        raise SourceError(document.location, "an AgentDojo run is a JSON object")
    suite = field(document, run, "suite_name", str, "run")
    user_task = field(document, run, "user_task_id", str, "run")
    injection_task = _optional_name(document, run, "injection_task_id")
    attack = _optional_name(document, run, "attack_type")
    messages = field(document, run, "messages", list, "run")
    utility = bool(run.get("utility"))
    security = bool(run.get("security"))
    error = run.get("error")
    if error is not None and not isinstance(error, str):
        error = json.dumps(error)
    injections = run.get("injections")
    if injections is None:
        injections = {}
    if not isinstance(injections, dict) or not all(isinstance(text, str) for text in injections.values()):
        raise SourceError(document.location, "`run.injections` is not an object of texts")

    prompt = None
    calls: list[dict] = []
    # Calls waiting for their tool message, per call id, oldest first: models reuse call ids
    # within a run, so a tool message answers the oldest unanswered call with its id.
    waiting: dict[str | None, deque[dict]] = {}
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = field(document, message, "role", str, where)
        if role == "user" and prompt is None:
            prompt = _text(document, message, where)
        elif role == "assistant":
            for position, call in enumerate(message.get("tool_calls") or ()):
                call_where = f"{where}.tool_calls[{position}]"
                tool = field(document, call, "function", str, call_where)
                args = call.get("args")
                if args is None:
                    args = {}
                if not isinstance(args, dict):
                    raise SourceError(document.location, f"`{call_where}.args` is not an object")
                step = {"tool": tool, "args": args}
                calls.append(step)
                waiting.setdefault(call.get("id"), deque()).append(step)
        elif role == "tool":
            queue = waiting.get(message.get("tool_call_id"))
            if not queue:
                continue
            output = _text(document, message, where) if message.get("content") is not None else ""
            if not output and isinstance(message.get("error"), str):
                output = message["error"]
            queue.popleft()["output"] = output
    if prompt is None:
        raise SourceError(document.location, "the run has no user message: no instruction to start the task with")
    return Run(
        path=document.path, task=f"{suite}/{user_task}/{attack or 'none'}/{injection_task or 'none'}", suite=suite, user_task=user_task, injection_task=injection_task,
        attack=attack, utility=utility, security=security, prompt=prompt, calls=tuple(calls), error=error or None,
        injections=tuple(injections[name] for name in sorted(injections)),
    )


def read_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    """Every run under ``paths`` (files, or folders searched for ``*.json``), in path order."""
    return [read_run(path) for path in source_files(paths, (".json",))]


def import_agentdojo(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Trace events for every AgentDojo run under ``paths``, one task per run."""
    events: list[dict] = []
    for run in unique_tasks(read_runs(paths)):
        events.extend(run.events(t0=len(events)))
    return events


def _optional_name(document: Document, run: dict, name: str) -> str | None:
    value = run.get(name)
    if value is None or value == "none":
        return None
    if not isinstance(value, str):
        raise SourceError(document.location, f"`run.{name}` is not a string")
    return value


def _text(document: Document, message: dict, where: str) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # newer AgentDojo versions: [{type: "text", content: "..."}]
        parts = [part.get("content") or part.get("text") or "" for part in content if isinstance(part, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    raise SourceError(document.location, f"`{where}.content` is not text")
