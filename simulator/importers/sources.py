"""Reading recorded runs from disk: files, folders and JSON, with errors that name the place.

Every importer reads its input through :func:`source_files` and :func:`read_json` so that bad
input is reported the same way everywhere: ``file:line:col: message``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from nhipl import source as user_files
from nhipl.errors import LocatedError
from nhipl.jsontext import JSONTextError, parse_json, parse_json_documents


class SourceError(LocatedError):
    """A recorded run that cannot be imported, at ``location`` (``file:line:col``; with
    ``whole_file``, the file or folder itself: ``location`` is its path)."""

    def __init__(self, location: str, message: str, help: str | None = None, *, whole_file: bool = False):
        if whole_file:
            super().__init__(location, None, None, message, help)
            return
        source, line, column = location.rsplit(":", 2)
        super().__init__(source, int(line), int(column), message, help)


@dataclass(frozen=True, slots=True)
class Document:
    """One JSON value read from a source file, with the line it starts on."""

    path: str
    line: int
    value: object

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:1"


def source_files(paths: Iterable[str | os.PathLike], suffixes: tuple[str, ...]) -> Iterator[str]:
    """The files named by ``paths``; a folder stands for its files ending in ``suffixes``, recursively,
    in name order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                (p for p in path.rglob("*") if p.is_file() and p.name.endswith(suffixes)),
                key=lambda p: p.relative_to(path).parts,
            )
            if not found:
                raise SourceError(str(raw), f"no `{'`, `'.join(suffixes)}` files in this folder", whole_file=True)
            yield from (str(p) for p in found)
        elif path.exists():
            yield str(raw)
        else:
            raise SourceError(str(raw), "no such file", whole_file=True)


def read_text(path: str) -> str:
    """The text of a recorded run (see :func:`nhipl.source.read_text`)."""
    return user_files.read_text(path)


def read_json(path: str) -> Document:
    """The single JSON value in ``path``."""
    text = read_text(path)
    if not text.strip():
        raise SourceError(f"{path}:1:1", "the file is empty")
    try:
        return Document(path, 1, parse_json(text))
    except JSONTextError as err:
        raise SourceError(f"{path}:{err.line}:{err.column}", err.message) from None


def read_json_documents(path: str) -> list[Document]:
    """One JSON value, or JSON lines (one value a line), from ``path``."""
    text = read_text(path)
    if not text.strip():
        raise SourceError(f"{path}:1:1", "the file is empty")
    try:
        return [Document(path, lineno, value) for lineno, value in parse_json_documents(text)]
    except JSONTextError as err:
        raise SourceError(f"{path}:{err.line}:{err.column}", err.message) from None


def field(document: Document, container: object, name: str, kind: type | tuple[type, ...], where: str):
    """``container[name]``, which must exist and be of ``kind``; ``where`` names the container
    in the message (``messages[3]``)."""
    if not isinstance(container, dict):
        raise SourceError(document.location, f"`{where}` is not an object")
    if name not in container or container[name] is None:
        raise SourceError(document.location, f"`{where}` lacks `{name}`")
    value = container[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise SourceError(document.location, f"`{where}.{name}` is {_describe(value)}, expected {_names(kind)}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


_NAMES = {str: "a string", dict: "an object", list: "a list", int: "a number", float: "a number", bool: "a boolean"}


def _names(kind: type | tuple[type, ...]) -> str:
    names = []
    for k in _kinds(kind):
        if _NAMES.get(k, k.__name__) not in names:
            names.append(_NAMES.get(k, k.__name__))
    return " or ".join(names)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    for k, name in _NAMES.items():
        if isinstance(value, bool):
            return "a boolean"
        if isinstance(value, k):
            return name
    return "an unexpected value"


def unique_tasks(runs: Iterable) -> list:
    """``runs`` (dataclasses with a ``task`` id) with repeated task ids made unique by a ``#2``,
    ``#3``, ... suffix, so that two runs never share a task in one trace."""
    seen: dict[str, int] = {}
    out = []
    for run in runs:
        count = seen.get(run.task, 0) + 1
        seen[run.task] = count
        out.append(run if count == 1 else dataclasses.replace(run, task=f"{run.task}#{count}"))
    return out
