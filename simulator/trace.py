"""Reading traces: JSON lines in, validated ``(line, event)`` pairs out.

The reader streams: it holds one line at a time, so a trace of any length reads
in flat memory. A line that is not a JSON object, has an unknown ``kind``, or
lacks a required field (or has one of the wrong type) raises :class:`TraceError`
naming ``source:line``; with ``skip_bad_lines=True`` it is counted in
:attr:`TraceReader.bad_lines` and skipped instead.
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Iterator

from nhipl.errors import LocatedError, did_you_mean
from nhipl.jsontext import loads as strict_loads
from nhipl import source as user_files
from nhipl.source import open_input

# Times, ttls and other numbers of an event: finite, and small enough that differences of
# them never overflow.
_NUMBER_LIMIT = 1e300

# Per kind: (required fields, optional fields), each field with its type check.
_STR, _NUM, _BOOL, _OBJ, _ANY, _SCOPE = "a string", "a number", "a boolean", "an object", "any", "a string or a list of strings"

KINDS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "task_start": ({"t": _NUM, "task": _STR, "agent": _STR, "intent": _STR}, {"prompt": _STR, "owner": _STR}),
    # `task` is optional on steps: a step without one is an attribution finding (`no_task`).
    "delegate": ({"t": _NUM, "agent": _STR, "to": _STR}, {"task": _STR}),
    "credential_issue": ({"t": _NUM, "credential": _STR, "agent": _STR, "ttl": _NUM}, {"scope": _SCOPE, "task": _STR}),
    "tool_call": (
        {"t": _NUM, "agent": _STR, "tool": _STR},
        {"task": _STR, "action": _STR, "resource": _STR, "args": _OBJ, "credential": _STR, "output": _ANY,
         "context": _OBJ, "provenance": _OBJ},
    ),
    # What a tool returned, recorded after its call (a runtime logs the call before the tool runs).
    "tool_output": ({"t": _NUM, "task": _STR, "tool": _STR}, {"output": _ANY}),
    # A scoped approval: `args` that the call's arguments must include, `uses` (absent: one
    # call; 0: any number), `expires` (seconds since the epoch).
    "approval": ({"t": _NUM, "task": _STR, "tool": _STR, "granted": _BOOL, "by": _STR},
                 {"args": _OBJ, "uses": _NUM, "expires": _NUM}),
    "credential_revoke": ({"t": _NUM, "credential": _STR}, {"reason": _STR}),
    "task_end": ({"t": _NUM, "task": _STR}, {}),
}
KIND_NAMES = tuple(KINDS)


class TraceError(LocatedError):
    """A bad trace line: renders as ``source:line: message`` (a trace file that cannot be
    read at all: ``source: message``)."""

    def __init__(self, source: str, line: int | None, message: str):
        super().__init__(source, line, None, message, code="bad-trace")


def _type_ok(value: object, expected: str) -> bool:
    cls = value.__class__
    if expected is _STR:
        return cls is str
    if expected is _NUM:
        return (cls is int or cls is float) and -_NUMBER_LIMIT < value < _NUMBER_LIMIT  # type: ignore[operator]
    if expected is _BOOL:
        return cls is bool
    if expected is _OBJ:
        return cls is dict
    if expected is _SCOPE:
        return cls is str or (cls is list and all(v.__class__ is str for v in value))  # type: ignore[union-attr]
    return True


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if value.__class__ is bool:
        return "a boolean"
    if value.__class__ in (int, float):
        return "a number"
    if value.__class__ is str:
        return "a string"
    if value.__class__ is list:
        return "a list"
    return "an object"


def check_event(event: object) -> str | None:
    """The problem with one decoded event, or None when it is valid."""
    if event.__class__ is not dict:
        return f"an event must be a JSON object, not {_type_name(event)}"
    kind = event.get("kind")  # type: ignore[union-attr]
    if kind is None:
        return "missing required field `kind`"
    spec = KINDS.get(kind) if kind.__class__ is str else None
    if spec is None:
        hint = did_you_mean(str(kind), KIND_NAMES) if kind.__class__ is str else None
        return f"unknown event kind `{kind}`" + (f"; {hint}" if hint else f"; expected one of {', '.join(KIND_NAMES)}")
    required, optional = spec
    for name, expected in required.items():
        value = event.get(name)  # type: ignore[union-attr]
        if value is None:
            unknown = [k for k in event if isinstance(k, str) and k != "kind" and k not in required and k not in optional]  # type: ignore[union-attr]
            typo = next((k for k in unknown if did_you_mean(k, [name])), None)
            return f"`{kind}` event is missing required field `{name}`" + (f"; did you mean `{name}` instead of `{typo}`?" if typo else "")
        if not _type_ok(value, expected):
            return f"field `{name}` must be {expected}, not {_type_name(value)}"
    for name, expected in optional.items():
        value = event.get(name)  # type: ignore[union-attr]
        if value is not None and not _type_ok(value, expected):
            return f"field `{name}` must be {expected}, not {_type_name(value)}"
    return None


class TraceReader:
    """Iterate ``(line, event)`` over a trace; see :func:`read_trace`."""

    def __init__(self, source: str | os.PathLike | Iterable, *, skip_bad_lines: bool = False, name: str | None = None):
        self.skip_bad_lines = skip_bad_lines
        self.bad_lines: list[tuple[int, str]] = []
        self.bytes_read = 0
        self.total_bytes: int | None = None
        if isinstance(source, (str, os.PathLike)):
            self.name = name or os.fspath(source)
            self._path: str | None = os.fspath(source)
            self._lines: Iterable | None = None
        else:
            self.name = name or "<trace>"
            self._path = None
            self._lines = source

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        if self._path is not None:
            return self._read_file(self._path)
        if hasattr(self._lines, "readline"):  # a binary stream (stdin): bounded lines too
            return self._read(bounded_lines(self._lines, self.name))
        return self._read(self._lines)  # type: ignore[arg-type]

    def _open(self, path: str):
        try:
            fh = open_input(path)
        except LocatedError as err:
            message = "is a folder, not a trace file" if err.message == "is a folder, not a file" else err.message
            raise TraceError(path, None, message) from None
        try:
            self.total_bytes = os.fstat(fh.fileno()).st_size
        except OSError:
            self.total_bytes = None
        return fh

    def _read_file(self, path: str) -> Iterator[tuple[int, dict]]:
        with self._open(path) as fh:
            yield from self._read(bounded_lines(fh, self.name))

    def _bad(self, line: int, message: str) -> None:
        if not self.skip_bad_lines:
            raise TraceError(self.name, line, message)
        self.bad_lines.append((line, message))

    def _read(self, lines: Iterable) -> Iterator[tuple[int, dict]]:
        loads = strict_loads
        line_no = 0
        for raw in lines:
            line_no += 1
            if raw.__class__ is dict:  # already decoded events (the Python API)
                event = raw
            else:
                if raw.__class__ is bytes:
                    self.bytes_read += len(raw)
                    try:
                        raw = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        self._bad(line_no, "not UTF-8 text")
                        continue
                elif raw.__class__ is not str:
                    self._bad(line_no, f"a trace line must be text or an event object, not {_type_name(raw)}")
                    continue
                if not raw or raw.isspace():
                    continue
                try:
                    event = loads(raw, False)
                except json.JSONDecodeError as err:
                    self._bad(line_no, f"invalid JSON at column {err.colno}: {err.msg.lower()}")
                    continue
                except RecursionError:
                    self._bad(line_no, "invalid JSON: nested too deeply")
                    continue
                except ValueError as err:  # a number or string the strict decoder refuses
                    self._bad(line_no, f"invalid JSON: {err}")
                    continue
            # Fast path: the common, valid event passes one lookup per field.
            if event.__class__ is dict:
                kind = event.get("kind")  # type: ignore[union-attr]
                fast = _FAST.get(kind) if kind.__class__ is str else None  # type: ignore[arg-type]
                if fast is not None and fast(event):
                    yield line_no, event
                    continue
            problem = check_event(event)
            if problem is None:
                yield line_no, event
            else:
                self._bad(line_no, problem)


def bounded_lines(fh, name: str, limit: int | None = None) -> Iterator[bytes]:
    """The lines of a binary file, each at most ``limit`` bytes (default
    :data:`nhipl.source.MAX_LINE_BYTES`): a longer line (a file with no line ends, say) is an
    error at its line, not an attempt to hold it in memory."""
    limit = user_files.MAX_LINE_BYTES if limit is None else limit
    line_no = 0
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        line_no += 1
        if len(line) > limit and not line.endswith(b"\n"):
            raise TraceError(name, line_no, f"line longer than the {limit} byte limit")
        yield line


_CLASSES = {_STR: (str,), _NUM: (int, float), _BOOL: (bool,), _OBJ: (dict,)}


def _fast_check(kind: str):
    """A quick validity test for one kind: true means valid; false means look closer."""
    required, optional = KINDS[kind]
    req = tuple((name, _CLASSES[expected]) for name, expected in required.items())
    opt = tuple((name, _CLASSES[expected]) for name, expected in optional.items() if expected in _CLASSES)
    slow = tuple(name for name, expected in optional.items() if expected not in _CLASSES and expected is not _ANY)
    numbers = tuple(name for name, expected in {**required, **optional}.items() if expected is _NUM)

    def check(event: dict) -> bool:
        get = event.get
        for name, classes in req:
            if get(name).__class__ not in classes:
                return False
        for name, classes in opt:
            value = get(name)
            if value is not None and value.__class__ not in classes:
                return False
        for name in slow:
            if get(name) is not None:
                return False
        for name in numbers:
            value = get(name)
            if value is not None and not -_NUMBER_LIMIT < value < _NUMBER_LIMIT:
                return False
        return True

    return check


_FAST = {kind: _fast_check(kind) for kind in KINDS}


def read_trace(path_or_lines, *, skip_bad_lines: bool = False, name: str | None = None) -> TraceReader:
    """Stream ``(line, event)`` pairs from a trace file path, or from an iterable of
    JSON lines (str or bytes) or of already decoded event dicts.

    Lines are numbered from 1; blank lines are skipped but counted. A bad line raises
    :class:`TraceError`, or with ``skip_bad_lines`` is recorded in ``.bad_lines``.
    """
    return TraceReader(path_or_lines, skip_bad_lines=skip_bad_lines, name=name)
