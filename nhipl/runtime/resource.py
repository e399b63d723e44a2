"""Resource templates: the ``resource`` of a request rendered from a call's arguments.

``"file:{path}"`` (the guard, a Python format string over the arguments) and
``"file:{arguments.path}"`` (the MCP proxy, dotted paths into the call's ``arguments``)
put argument values into a resource that policies match with globs. A value could dodge a
glob by spelling a path another way, so every value put into a template is checked:

- repeated ``/`` are collapsed and ``.`` segments dropped (``/srv//a/./b`` is ``/srv/a/b``);
  a ``scheme://authority`` at the start of a value keeps its ``//``;
- a ``..`` segment is **refused**: resolving it by text is wrong as soon as a folder on the
  way is a symbolic link, and only the server can resolve it against its file system. The
  segments are read split on ``/`` and ``\\`` after percent-decoding, so ``%2e%2e`` and
  ``..\\`` are refused too;
- control characters are refused.

A template that cannot be rendered (a missing argument, a value that is an object, a list
or null, or a refused value) raises :class:`ResourceError`; callers deny the call.
"""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Any, Mapping
from urllib.parse import unquote

_SCHEME_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*")
_SEPARATORS = re.compile(r"[/\\]")


class ResourceError(ValueError):
    """A resource template could not be rendered for a call; ``message`` says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def normalise_value(value: str) -> str:
    """``value`` as it may go into a resource: see the module docs."""
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise ResourceError("a value in the resource holds a control character")
    decoded = unquote(unquote(value))
    if any(segment == ".." for segment in _SEPARATORS.split(decoded)) or any(
        segment == ".." for segment in _SEPARATORS.split(value)
    ):
        raise ResourceError(f"`{value[:80]}` climbs out of its folder with `..`; refused")
    head = ""
    match = _SCHEME_AUTHORITY.match(value)
    if match:
        head, value = match.group(0), value[match.end() :]
    if "/" not in value:
        return head + value
    leading = value.startswith("/")
    trailing = value.endswith("/") or value.endswith("/.")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    out = ("/" if leading else "") + "/".join(parts)
    if trailing and parts:
        out += "/"
    return head + out


class _Formatter(string.Formatter):
    def __init__(self, dotted: bool):
        self.dotted = dotted

    def get_field(self, field_name, args, kwargs):
        if not self.dotted:
            return super().get_field(field_name, args, kwargs)
        head, *rest = field_name.split(".")
        if head != "arguments" or not rest:
            raise ResourceError(f"`{{{field_name}}}`: a placeholder names `arguments.NAME`")
        value: Any = kwargs
        for part in rest:
            if not isinstance(value, Mapping) or part not in value:
                raise ResourceError(f"the call has no argument `{'.'.join(rest)}` for the resource")
            value = value[part]
        return value, field_name

    def format_field(self, value, format_spec):
        if value is None or isinstance(value, (bool, Mapping, list, tuple, set, frozenset, bytes, bytearray)):
            raise ResourceError(f"a resource value must be a string or a number, not {_kind(value)}")
        return normalise_value(super().format_field(value, format_spec))


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    return "a list"


class ResourceTemplate:
    """A template such as ``"file:{arguments.path}"`` (``dotted``, the proxy's form) or
    ``"file:{path}"`` (the guard's Python format string). Bad templates raise ValueError
    at construction."""

    def __init__(self, template: str, *, dotted: bool = True):
        self.template = template
        self._formatter = _Formatter(dotted)
        try:
            fields = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
        except ValueError as err:
            raise ValueError(f"resource template `{template}`: {err}") from None
        if dotted:
            for _, field, spec, conv in string.Formatter().parse(template):
                if field is None:
                    continue
                if spec or conv or not re.fullmatch(r"arguments(\.[^.\[\]{}!:]+)+", field):
                    raise ValueError(
                        f"resource template `{template}`: `{{{field}}}` must be `{{arguments.NAME}}` "
                        "(dotted names, no conversions or format specs)"
                    )
        self.fields = tuple(fields)

    def render(self, arguments: Mapping[str, Any]) -> str:
        try:
            return self._formatter.vformat(self.template, (), arguments)
        except ResourceError:
            raise
        except (KeyError, IndexError, AttributeError) as err:
            raise ResourceError(f"resource template `{self.template}` names no argument {err}") from None
        except (ValueError, TypeError) as err:
            raise ResourceError(f"resource template `{self.template}`: {err}") from None
