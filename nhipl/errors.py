"""Diagnostics: every load error carries a span, a stable code and renders as
``file:line:col: message`` followed by the source line and a caret.

Messages follow the house style: lowercase, no final period, user text quoted in
backticks, the fix on a separate ``help`` line.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True, slots=True)
class Span:
    """Where a piece of source text sits: 1-based line and column, end exclusive."""

    source: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found while loading policies. ``whole_file``: the problem is the file
    itself (missing, unreadable, a folder), not a place in it; it renders as
    ``file: message``, while ``span`` (line 1, column 1) still gives editors and JSON
    output a valid range."""

    code: str
    message: str
    span: Span | None = None
    help: str | None = None
    source_line: str | None = field(default=None, compare=False)
    whole_file: bool = field(default=False, compare=False)

    def location(self) -> str:
        if self.span is None:
            return "<unknown>"
        return self.span.source if self.whole_file else str(self.span)

    def render(self) -> str:
        lines = [f"{self.location()}: {self.message} [{self.code}]"]
        if self.span is not None and self.source_line is not None and not self.whole_file:
            text = self.source_line.rstrip("\n").expandtabs(1)
            lines.append(f"  {text}")
            width = 1
            if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
                width = self.span.end_column - self.span.column
            lines.append("  " + " " * (self.span.column - 1) + "^" * max(1, min(width, 80)))
        if self.help:
            lines.append(f"  help: {self.help}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        span = self.span
        return {
            "code": self.code,
            "message": self.message,
            "file": span.source if span else None,
            "line": span.line if span else None,
            "column": span.column if span else None,
            "help": self.help,
        }


class NhiplError(Exception):
    """Base class of every error nhipl raises on purpose."""


class LocatedError(NhiplError):
    """Bad user input at one place: renders as ``file:line:col: message`` (``column`` None:
    ``file:line: message``; ``line`` None, a problem with the file itself such as a missing
    or unreadable file: ``file: message``) and, when there is a fix to suggest, a ``help``
    line. Every reader, importer and config loader raises it (or a subclass), and the
    command line turns it into exit 2."""

    def __init__(self, source: str, line: int | None, column: int | None, message: str, help: str | None = None,
                 code: str = "bad-input"):
        self.source = source
        self.code = code
        self.line = line
        self.column = column
        self.message = message
        self.help = help
        super().__init__(self.render())

    @property
    def location(self) -> str:
        """``file:line:col``, ``file:line`` for input read a line at a time (a trace), or
        ``file`` for a problem with the whole file."""
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}" + (f":{self.column}" if self.column is not None else "")

    def render(self) -> str:
        text = f"{self.location}: {self.message}"
        return text + (f"\n  help: {self.help}" if self.help else "")

    def diagnostic(self) -> "Diagnostic":
        return Diagnostic(self.code, self.message, Span(self.source, self.line or 1, self.column or 1), self.help,
                          whole_file=self.line is None)


class PolicyError(NhiplError):
    """Policies could not be loaded. Holds every diagnostic, sorted by position."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        diags = sorted(
            diagnostics,
            key=lambda d: (
                d.span.source if d.span else "",
                d.span.line if d.span else 0,
                d.span.column if d.span else 0,
            ),
        )
        if not diags:
            raise ValueError("PolicyError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diags)
        super().__init__(self.render())

    # The first diagnostic's position, for callers that want one place.
    @property
    def source(self) -> str | None:
        span = self.diagnostics[0].span
        return span.source if span else None

    @property
    def line(self) -> int | None:
        span = self.diagnostics[0].span
        return span.line if span else None

    @property
    def column(self) -> int | None:
        span = self.diagnostics[0].span
        return span.column if span else None

    @property
    def code(self) -> str:
        return self.diagnostics[0].code

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


class RequestError(NhiplError, ValueError):
    """A request is not a valid nhipl request. ``field`` names the offending field
    (dotted), ``index`` the request's position in a batch."""

    def __init__(self, message: str, field: str | None = None, index: int | None = None):
        self.message = message
        self.field = field
        self.index = index
        super().__init__(message if index is None else f"request {index}: {message}")


def did_you_mean(word: str, candidates: Sequence[str] | Iterable[str]) -> str | None:
    """A "did you mean" help line, or None when nothing is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.7)
    return f"did you mean `{close[0]}`?" if close else None
