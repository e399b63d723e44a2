"""TOML text from users (the lint settings in ``pyproject.toml``, sweep configs): decoding
with a located error, and a locator that finds where a key was written.

:mod:`tomllib` reports where a syntax error is, but not where a valid value sits; a
config checker needs that to say which line holds a bad setting. :class:`TomlLocator`
scans the text for ``[table]`` and ``[[array]]`` headers, ``key =`` lines and the keys
of one-line inline tables: enough for the configs people write. When it finds nothing,
the nearest enclosing table that it did find answers instead.
"""

from __future__ import annotations

import re
import tomllib

from .errors import LocatedError
from .source import lines as text_lines

_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_END = "(at end of document)"
_ARRAY_HEADER = re.compile(r"\[\[\s*([A-Za-z0-9_.\"-]+)\s*\]\]")
_HEADER = re.compile(r"\[\s*([A-Za-z0-9_.\"-]+)\s*\]")
_KEY = re.compile(r'("?)([A-Za-z0-9_.-]+)\1\s*=')
_INLINE_KEY = re.compile(r'[{,]\s*("?)([A-Za-z0-9_-]+)\1\s*=')


def parse_toml(text: str, source: str, code: str = "invalid-toml") -> dict:
    """The TOML document in ``text``; a syntax error is a :class:`LocatedError` at its place."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        line, column = 1, 1
        match = _POSITION.search(message)
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            message = message[: match.start()]
        elif message.endswith(_END):
            all_lines = text_lines(text) or [""]
            line, column = len(all_lines), len(all_lines[-1]) + 1
            message = message[: -len(_END)].rstrip()
        message = message[:1].lower() + message[1:]
        raise LocatedError(source, line, column, f"invalid TOML: {message}", code=code) from None
    except RecursionError:
        raise LocatedError(source, 1, 1, "invalid TOML: nested too deeply", code=code) from None


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip('"') for p in dotted.split("."))


class TomlLocator:
    """Where each table and key of a TOML text was written: :meth:`find` gives the
    ``(line, column, width)`` of a key path; the ``n``-th ``[[array]]`` table is the
    path ``(array, "n")``, counted from 0."""

    def __init__(self, text: str):
        self.lines = text_lines(text)
        self.entries: dict[tuple[str, ...], tuple[int, int, int]] = {}
        table: tuple[str, ...] = ()
        arrays: dict[tuple[str, ...], int] = {}
        for lineno, line in enumerate(self.lines, start=1):
            stripped = line.lstrip()
            col = len(line) - len(stripped) + 1
            header = _ARRAY_HEADER.match(stripped)
            if header:
                parts = _parts(header.group(1))
                arrays[parts] = arrays.get(parts, -1) + 1
                table = parts + (str(arrays[parts]),)
                self._add(table, lineno, col, len(stripped.rstrip()))
                continue
            header = _HEADER.match(stripped)
            if header:
                table = _parts(header.group(1))
                self._add(table, lineno, col, len(stripped.rstrip()))
                continue
            key = _KEY.match(stripped)
            if key:
                path = table + _parts(key.group(2))
                self._add(path, lineno, col + key.start(2), len(key.group(2)))
                rest = stripped[key.end():]
                offset = col + key.end() - 1
                if rest.lstrip().startswith("{"):
                    for inner in _INLINE_KEY.finditer(rest):
                        self._add(path + (inner.group(2),), lineno, offset + inner.start(2) + 1, len(inner.group(2)))

    def _add(self, path: tuple[str, ...], line: int, column: int, width: int) -> None:
        self.entries.setdefault(path, (line, column, width))

    def find(self, *path: str | int) -> tuple[int, int, int] | None:
        """Where ``path`` (or, failing that, its nearest written ancestor) is; None when
        not even its first part was found."""
        wanted = tuple(str(p) for p in path)
        while wanted:
            found = self.entries.get(wanted)
            if found is not None:
                return found
            wanted = wanted[:-1]
        return None

    def line_text(self, line: int) -> str | None:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else None
