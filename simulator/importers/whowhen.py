"""Who&When runs (ag2ai/Agents_Failure_Attribution) as nhipl trace events, and the attribution
of each run's labelled mistake to its delegation chain.

Two kinds of run:

- *hand-crafted*: Magentic-One. ``history[i].role`` is the speaker: ``human`` (the question),
  ``Orchestrator (thought)``, ``Orchestrator (-> WebSurfer)`` (a hand-off), or a worker's name.
  The Orchestrator starts the task; each hand-off is a ``delegate`` from the Orchestrator to the
  worker; each worker turn is a ``tool_call`` by the worker, its ``args.instruction`` the hand-off
  it answers and its ``output`` what it reported. Orchestrator thoughts are not steps.
- *algorithm-generated*: CaptainAgent group chats. ``history[i].name`` is the speaker. AutoGen's
  group chat manager picks every speaker, so the manager (``chat_manager``) starts the task and
  each change of speaker is a ``delegate`` from it to the new speaker; each turn is a
  ``tool_call`` by the speaker. These hand-offs are inferred from the turns: the runs do not
  record them.

One run is one task (intent ``answer-question``, ``prompt`` the question). The runs carry no
timestamps: history entry ``i`` of a run happens at second ``t0 + i``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable

from .sources import Document, SourceError, field, read_json, source_files, unique_tasks

INTENT = "answer-question"
ORCHESTRATOR = "Orchestrator"
CHAT_MANAGER = "chat_manager"
_HANDOFF = re.compile(r"^\s*Orchestrator\s*\(\s*->\s*(?P<to>[^)]+?)\s*\)\s*$")
_ORCHESTRATOR_TURN = re.compile(r"^\s*Orchestrator\s*\((?P<what>[^)]*)\)\s*$")

# What each known speaker does when it takes a turn, as a tool name; other speakers `chat.reply`.
TOOLS = {
    "WebSurfer": "web.browse",
    "FileSurfer": "file.read",
    "ComputerTerminal": "code.execute",
    "Computer_terminal": "code.execute",
    "Assistant": "llm.reply",
}


def agent_id(system: str, name: str) -> str:
    """The SPIFFE ID of speaker ``name`` in a ``system`` (``magentic-one`` or ``captain-agent``)."""
    return f"spiffe://{system}/{name}"


def agent_name(agent: str) -> str:
    """The speaker name inside an id made by :func:`agent_id`."""
    return agent.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Turn:
    """One history entry: who spoke, and what kind of step it is."""

    index: int
    speaker: str
    kind: str
    """``question`` (the human's), ``thought`` (orchestrator planning), ``handoff`` or ``turn``."""
    content: str
    to: str | None = None
    """The delegatee, for a hand-off."""


@dataclass(frozen=True, slots=True)
class Run:
    path: str
    task: str
    """``<folder>/<file stem>``: ``hand-crafted/12``."""
    system: str
    """``magentic-one`` (hand-crafted) or ``captain-agent`` (algorithm-generated)."""
    question: str
    turns: tuple[Turn, ...]
    mistake_agent: str | None
    mistake_step: int | None
    mistake_reason: str | None

    @property
    def originator(self) -> str:
        return ORCHESTRATOR if self.system == "magentic-one" else CHAT_MANAGER

    def agent(self, name: str) -> str:
        return agent_id(self.system, name)

    def events(self, t0: int = 0) -> list[dict]:
        """The run as trace events; history entry ``i`` at second ``t0 + i``."""
        return [event for _, event in self.steps(t0)]

    def steps(self, t0: int = 0) -> list[tuple[int | None, dict]]:
        """``(history index, event)`` pairs in order; the index is None for events that no single
        history entry holds (the task's end, a group-chat hand-off before a turn)."""
        task = self.task
        start = {"t": t0, "kind": "task_start", "task": task, "agent": self.agent(self.originator),
                 "intent": INTENT, "prompt": self.question}
        out: list[tuple[int | None, dict]] = [(0 if self.turns and self.turns[0].kind == "question" else None, start)]
        instruction: dict[str, str] = {}
        speaker = None
        for turn in self.turns:
            t = t0 + turn.index
            if turn.kind == "handoff":
                instruction[turn.to] = turn.content
                out.append((turn.index, {"t": t, "kind": "delegate", "task": task,
                                         "agent": self.agent(self.originator), "to": self.agent(turn.to)}))
            elif turn.kind == "turn":
                if self.system == "captain-agent" and turn.speaker != speaker:
                    out.append((None, {"t": t, "kind": "delegate", "task": task,
                                       "agent": self.agent(CHAT_MANAGER), "to": self.agent(turn.speaker)}))
                speaker = turn.speaker
                call = {"t": t, "kind": "tool_call", "task": task, "agent": self.agent(turn.speaker),
                        "tool": TOOLS.get(turn.speaker, "chat.reply")}
                if turn.speaker in instruction:
                    call["args"] = {"instruction": instruction.pop(turn.speaker)}
                call["output"] = turn.content
                out.append((turn.index, call))
        end = t0 + (self.turns[-1].index + 1 if self.turns else 1)
        out.append((None, {"t": end, "kind": "task_end", "task": task}))
        return out

    def chain_at(self, index: int) -> tuple[str, list[str]]:
        """The speaker of history entry ``index`` and the delegation chain that reached them
        (names, originator first): the originator's own steps have an empty chain."""
        turn = self.turns[index]
        if turn.kind in ("question", "thought") or turn.speaker == self.originator:
            return self.originator, []
        return turn.speaker, [self.originator]


def read_run(path: str) -> Run:
    return parse_run(read_json(path))


def parse_run(document: Document) -> Run:
    run = document.value
    if not isinstance(run, dict):
        raise SourceError(document.location, "a Who&When run is a JSON object")
    history = field(document, run, "history", list, "run")
    group_chat = any(isinstance(entry, dict) and "name" in entry for entry in history)
    turns = []
    for index, entry in enumerate(history):
        where = f"history[{index}]"
        content = field(document, entry, "content", str, where)
        if group_chat:
            speaker = field(document, entry, "name", str, where)
            turns.append(Turn(index, speaker, "turn", content))
            continue
        role = field(document, entry, "role", str, where)
        handoff = _HANDOFF.match(role)
        if role == "human":
            turns.append(Turn(index, "human", "question", content))
        elif handoff:
            turns.append(Turn(index, ORCHESTRATOR, "handoff", content, to=handoff["to"]))
        elif _ORCHESTRATOR_TURN.match(role) or role == ORCHESTRATOR:
            turns.append(Turn(index, ORCHESTRATOR, "thought", content))
        else:
            turns.append(Turn(index, role.strip(), "turn", content))
    question = run.get("question")
    if not isinstance(question, str):
        first = turns[0] if turns else None
        if first is None or first.kind != "question":
            raise SourceError(document.location, "the run has no `question` and no human message to start the task with")
        question = first.content
    step = run.get("mistake_step")
    try:
        mistake_step = int(step) if step is not None and step != "" else None
    except (TypeError, ValueError):
        raise SourceError(document.location, f"`run.mistake_step` is `{step}`, expected a step number") from None
    agent = run.get("mistake_agent")
    reason = run.get("mistake_reason")
    folder = os.path.basename(os.path.dirname(os.path.abspath(document.path)))
    return Run(
        path=document.path,
        task=f"{folder}/{os.path.splitext(os.path.basename(document.path))[0]}",
        system="captain-agent" if group_chat else "magentic-one",
        question=question,
        turns=tuple(turns),
        mistake_agent=agent if isinstance(agent, str) else None,
        mistake_step=mistake_step,
        mistake_reason=reason if isinstance(reason, str) else None,
    )


def read_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    return [read_run(path) for path in source_files(paths, (".json",))]


def import_whowhen(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Trace events for every Who&When run under ``paths``, one task per run."""
    events: list[dict] = []
    t0 = 0
    for run in unique_tasks(read_runs(paths)):
        run_events = run.events(t0)
        events.extend(run_events)
        t0 = run_events[-1]["t"] + 1
    return events


@dataclass(frozen=True, slots=True)
class Attribution:
    """A run's labelled mistake placed on its delegation chain."""

    task: str
    path: str
    step: int
    labelled_agent: str
    speaker: str
    """Who actually speaks at ``step`` (the orchestrator for its thoughts and hand-offs)."""
    step_kind: str
    chain: tuple[str, ...]
    """The delegation chain that reached ``speaker``, originator first, names."""
    line: int | None
    """The 1-based line of the step's event in the run's imported trace, when it is a step."""

    @property
    def agrees(self) -> bool:
        """The labelled agent is the one speaking at the labelled step."""
        return self.labelled_agent == self.speaker

    @property
    def on_chain(self) -> bool:
        """The labelled agent is the speaker or one of its delegators."""
        return self.labelled_agent == self.speaker or self.labelled_agent in self.chain

    def to_dict(self) -> dict:
        return {"task": self.task, "path": self.path, "step": self.step, "labelled_agent": self.labelled_agent,
                "speaker": self.speaker, "step_kind": self.step_kind, "chain": list(self.chain),
                "line": self.line, "agrees": self.agrees, "on_chain": self.on_chain}


def attribute_mistake(run: Run) -> Attribution | None:
    """Where the run's labelled mistake sits: the speaker at ``mistake_step``, the delegation chain
    that reached it, and the trace line of that step. None for a run without a usable label."""
    if run.mistake_step is None or run.mistake_agent is None:
        return None
    if not 0 <= run.mistake_step < len(run.turns):
        return None
    speaker, chain = run.chain_at(run.mistake_step)
    line = None
    for number, (index, _event) in enumerate(run.steps(), start=1):
        if index == run.mistake_step:
            line = number
    return Attribution(
        task=run.task, path=run.path, step=run.mistake_step, labelled_agent=run.mistake_agent,
        speaker=speaker, step_kind=run.turns[run.mistake_step].kind, chain=tuple(chain), line=line,
    )
