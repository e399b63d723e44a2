"""Plain JSON at the boundary: every value an enforcement point puts in a request is made
plain JSON first, the only types both evaluators read alike."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

from ..errors import RequestError
from ..values import ListView

DEPTH_LIMIT = 64


def json_request(request: Mapping[str, Any]) -> dict:
    """``request`` with every value made plain JSON (see :func:`json_value`)."""
    return json_value(request, "request")


class _NotJSON(Exception):
    def __init__(self, reason: str):
        self.reason = reason
        self.path: list[str] = []


_PLAIN = frozenset({str, int, bool, type(None)})


def json_value(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON types, the only ones both evaluators read alike.

    A ``str`` subclass (a string enum) becomes its string, an ``int`` subclass (an int
    enum) its int, a ``float`` subclass its float; any mapping (``OrderedDict``, a
    ``MappingProxyType``) a dict with string keys; a list or tuple a list; a path
    (``os.PathLike``) its string. Anything else (sets, bytes, objects), a non-string key,
    a NaN or infinite float, or nesting deeper than 64 raises
    :class:`~nhipl.errors.RequestError` naming where. Plain values come back as they are
    (the same objects), so the common case costs one walk and no copies."""
    try:
        return _plain(value, 0)
    except _NotJSON as err:
        path = where + "".join(reversed(err.path))
        raise RequestError(f"`{path}` {err.reason}", path) from None


def _string(value: Any, where: str) -> str:
    if value.__class__ is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    raise RequestError(f"`{where}` must be a string, not {type(value).__name__}", where)


def _plain(value: Any, depth: int) -> Any:
    cls = value.__class__
    if cls in _PLAIN:
        return value
    if cls is float:
        if math.isfinite(value):
            return value
        raise _NotJSON(f"is {value!r}; only finite numbers are allowed")
    if depth >= DEPTH_LIMIT:
        raise _NotJSON(f"is nested more than {DEPTH_LIMIT} deep")
    if cls is dict:
        out = None
        for key, item in value.items():
            if key.__class__ is str and item.__class__ in _PLAIN:
                continue
            try:
                if key.__class__ is not str:
                    raise _NotJSON(f"has a key that is not a string: {type(key).__name__}")
                plain = _plain(item, depth + 1)
            except _NotJSON as err:
                err.path.append(f".{key}")
                raise
            if plain is not item:
                if out is None:
                    out = dict(value)
                out[key] = plain
        return value if out is None else out
    if cls is list:
        changed = None
        for index, item in enumerate(value):
            if item.__class__ in _PLAIN:
                continue
            try:
                plain = _plain(item, depth + 1)
            except _NotJSON as err:
                err.path.append(f"[{index}]")
                raise
            if plain is not item:
                if changed is None:
                    changed = list(value)
                changed[index] = plain
        return value if changed is None else changed
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise _NotJSON(f"has a key that is not a string: {type(key).__name__}")
        return _plain({str.__str__(k): v for k, v in value.items()}, depth)
    if isinstance(value, (tuple, ListView)):
        return _plain(list(value), depth)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return _plain(float.__float__(value), depth)
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise _NotJSON(
        f"is a {type(value).__name__}, which is not a JSON value (strings, numbers, booleans, null, lists and objects only)"
    )
