"""JSON text from users (requests, traces, imported runs, decision logs), with every
failure, too-deep nesting included, as one error that knows its place."""

from __future__ import annotations

import json


class JSONTextError(ValueError):
    """Text that is not JSON: where (1-based ``line`` and ``column`` of the text
    given) and why (``reason``, e.g. ``expecting value``); ``message`` is
    ``invalid JSON: <reason>``."""

    def __init__(self, line: int, column: int, reason: str):
        super().__init__(f"invalid JSON: {reason}")
        self.line, self.column, self.reason = line, column, reason

    @property
    def message(self) -> str:
        return str(self)


def parse_json(text: str | bytes) -> object:
    """``json.loads``, raising :class:`JSONTextError` for any text it refuses
    (nesting too deep for the decoder is reported at 1:1)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JSONTextError(1, 1, "nested too deeply") from None
    except json.JSONDecodeError as err:
        raise JSONTextError(err.lineno, err.colno, err.msg.lower()) from None


def parse_json_documents(text: str) -> list[tuple[int, object]]:
    """One JSON value, or JSON lines (one value a line, blank lines skipped), as
    (line, value) pairs; positions in errors are those of the whole text."""
    try:
        return [(1, json.loads(text))]
    except RecursionError:
        raise JSONTextError(1, 1, "nested too deeply") from None
    except json.JSONDecodeError as err:
        if err.msg != "Extra data":  # more than one value: read it as JSON lines
            raise JSONTextError(err.lineno, err.colno, err.msg.lower()) from None
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, parse_json(line)))
        except JSONTextError as err:
            raise JSONTextError(lineno, err.column, err.reason) from None
    return out
