"""Importers: recorded agent runs from other formats as nhipl trace events.

``import_runs(format, paths)`` returns the events of a trace, in time order, ready for
:func:`nhipl.simulator.simulate` or to be written as JSON lines. Formats:

- ``agentdojo``: AgentDojo benchmark runs (one task per run, see :mod:`.agentdojo`);
- ``whowhen``: Who&When multi-agent runs (Magentic-One and CaptainAgent, see :mod:`.whowhen`);
- ``otel``: OpenTelemetry GenAI spans in OTLP JSON (see :mod:`.otel`);
- ``decisions``: the runtime's decision log (``nhipl.runtime.log.log_to_trace``).

Bad input raises :class:`SourceError` with a ``file:line:col`` location.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Iterable

from nhipl import source as user_files

from .agentdojo import import_agentdojo
from .otel import import_otel
from .sources import SourceError, read_text, source_files
from .whowhen import attribute_mistake, import_whowhen


def import_decisions(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Trace events from runtime decision logs (JSON lines written by ``nhipl.runtime.DecisionLog``)."""
    from nhipl.runtime.errors import LogLineError
    from nhipl.runtime.log import log_to_trace

    events: list[dict] = []
    for path in source_files(paths, (".jsonl", ".json", ".log")):
        lines = user_files.lines(read_text(path))  # at \n only: U+2028 in a string is not a line end
        try:
            events.extend(log_to_trace(lines, source=path))
        except LogLineError as err:
            raise SourceError(f"{err.source}:{err.line}:1", err.message) from None
    events.sort(key=lambda event: event["t"])
    return events


FORMATS: dict[str, Callable[[Iterable[str | os.PathLike]], list[dict]]] = {
    "agentdojo": import_agentdojo,
    "whowhen": import_whowhen,
    "otel": import_otel,
    "decisions": import_decisions,
}


def import_runs(format: str, paths: Iterable[str | os.PathLike]) -> list[dict]:
    """The trace events of the runs in ``paths`` (files or folders), read as ``format``."""
    try:
        importer = FORMATS[format]
    except KeyError:
        raise ValueError(f"unknown format `{format}`; known: {', '.join(FORMATS)}") from None
    return importer(list(paths))


def dumps_trace(events: Iterable[dict]) -> str:
    """Events as JSON lines, one event a line."""
    return "".join(json.dumps(event, ensure_ascii=False, sort_keys=False) + "\n" for event in events)


__all__ = [
    "FORMATS", "SourceError", "attribute_mistake", "dumps_trace", "import_agentdojo", "import_decisions",
    "import_otel", "import_runs", "import_whowhen",
]
