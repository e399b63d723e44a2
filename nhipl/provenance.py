"""Provenance: where each argument of a step came from.

One function for every enforcement point and for replay, so that a step gets the same
``provenance`` live and in the simulator. An argument's origin is ``"user"`` when its
value (as text) appears in the task's instruction, ``"tool:<name>"`` when it first
appeared in that tool's output, else ``"unknown"``. A list is ``"user"`` when every
element is; otherwise it takes the origin of its first element that is not from the
user. An empty value is ``"unknown"``.

Values that are not strings are compared as their compact JSON text (keys sorted).

A value that is a whole web address with its scheme (:data:`URL`: ``http://`` or
``https://``, a host of ASCII letters, digits, ``-`` and at least one dot, an optional port,
then nothing or a path, query or fragment) is also found where the user (or a tool) wrote the
same address another usual way: without the scheme (an explicit ``http://`` never matches an
explicit ``https://``), with the host in another case, with or without a lone ``/`` path.
Only whole addresses are compared, never part of one: ``http://evil.com/www.x.com`` is not
``www.x.com``, nor is ``http://www.x.com.evil.com`` or ``http://www.x.com@evil.com``. The
port, path, query and fragment are compared verbatim (they can carry data), and so is
anything outside ASCII (no look-alike letter of another alphabet becomes a Latin one). A
value without a scheme (``Report.PDF`` could be a file name, where case matters), or longer
than :data:`ADDRESS_CHARS`, is compared verbatim only.

:class:`Outputs` keeps a task's tool outputs, at most :data:`OUTPUTS_PER_TASK` of them and
about :data:`OUTPUT_CHARS_PER_TASK` characters; later outputs are not kept (an argument
that appears only in them is ``"unknown"``, which rules treat as not from the user).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Mapping

USER = "user"
UNKNOWN = "unknown"

OUTPUTS_PER_TASK = 256
OUTPUT_CHARS_PER_TASK = 1 << 20

_HOST = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
URL = re.compile(rf"(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?://)?(?P<host>{_HOST})(?P<port>:[0-9]+)?"
                 r"(?P<rest>[/?#][^\s]*)?", re.ASCII)
"""A whole web address; a value must match it with its scheme to be compared in normal form."""

_IN_TEXT = re.compile(rf"(?<![\w.@/:%+=&~-])(?:{URL.pattern})", re.ASCII)
"""An address written in running text: not the tail of a longer token (an e-mail address,
another address's path, a longer host)."""

ADDRESS_CHARS = 4096
"""The longest value compared as a web address (longer ones are compared verbatim only)."""

_TRAILING_PUNCTUATION = ".,;:!?)]}>'\"*"


def as_text(value: Any) -> str:
    """``value`` as the text provenance searches for: a string as it is, anything else
    as compact JSON with sorted keys."""
    cls = value.__class__
    if cls is str:
        return value
    if cls is int:
        return int.__repr__(value)  # what JSON writes, without the encoder's cost
    if cls is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):  # keys of mixed types, nesting too deep
        return str(value)


Address = tuple[str | None, str, str, str]
"""An address in normal form: scheme (``http://`` / ``https://``, lowercase) or ``None``,
host (lowercase), port, and path, query and fragment (verbatim; a lone ``/`` left out)."""


def _address(match: re.Match) -> Address:
    scheme, host, port, rest = match.group("scheme", "host", "port", "rest")
    if rest == "/":
        rest = None
    return (scheme.lower() if scheme else None, host.lower(), port or "", rest or "")


def address(text: str) -> Address | None:
    """``text`` in the normal form of a web address, or ``None`` when it is not one whole
    address with its scheme (or is longer than :data:`ADDRESS_CHARS`)."""
    if len(text) > ADDRESS_CHARS or not text[:8].lower().startswith(("http://", "https://")):
        return None
    match = URL.fullmatch(text)
    return _address(match) if match is not None and match.group("scheme") else None


def addresses_in(text: str) -> frozenset[Address]:
    """Every web address written in ``text``, in normal form. Punctuation that ends a sentence
    or closes a bracket after an address is not part of it."""
    found = set()
    for match in _IN_TEXT.finditer(text):
        written = match.group(0)
        trimmed = written.rstrip(_TRAILING_PUNCTUATION)
        if trimmed != written:
            match = URL.fullmatch(trimmed)
            if match is None:
                continue
        found.add(_address(match))
    return frozenset(found)


def same_address(value: Address, written: frozenset[Address]) -> bool:
    """Whether ``value`` (an address with its scheme) is one of the ``written`` addresses: the
    same host, port, path, query and fragment, and the same scheme or none written."""
    return value in written or (None, *value[1:]) in written


_prompt_addresses = lru_cache(maxsize=64)(addresses_in)


class Outputs:
    """The tool outputs a task has seen, oldest first, as ``(tool, text)`` pairs."""

    __slots__ = ("items", "chars", "seen", "addresses")

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.chars = 0
        self.seen: set[str] = set()
        self.addresses: list[frozenset[Address] | None] = []
        """The web addresses in each kept output, found the first time an address is asked for."""

    def add(self, tool: str, output: Any) -> bool:
        """Keep ``output`` of ``tool`` unless the task's budget is spent or the same text was
        kept before (an origin is where a value *first* appeared, so a repeat changes
        nothing); whether it was kept."""
        if len(self.items) >= OUTPUTS_PER_TASK or self.chars >= OUTPUT_CHARS_PER_TASK:
            return False
        text = as_text(output)
        if text in self.seen:
            return False
        self.seen.add(text)
        self.items.append((tool, text))
        self.addresses.append(None)
        self.chars += len(text)
        return True

    def clear(self) -> None:
        self.items = []
        self.chars = 0
        self.seen = set()
        self.addresses = []

    def addresses_of(self, index: int) -> frozenset[Address]:
        """The web addresses written in the ``index``-th kept output."""
        found = self.addresses[index]
        if found is None:
            found = self.addresses[index] = addresses_in(self.items[index][1])
        return found

    def __len__(self) -> int:
        return len(self.items)


def origin(text: str, prompt: str | None, outputs: Outputs | None) -> str:
    """The origin of one value's text (see the module's description)."""
    if not text:
        return UNKNOWN
    if prompt is not None and text in prompt:
        return USER
    url = address(text)
    if url is not None and prompt is not None and same_address(url, _prompt_addresses(prompt)):
        return USER
    if outputs is not None:
        for index, (tool, output) in enumerate(outputs.items):
            if text in output or (url is not None and same_address(url, outputs.addresses_of(index))):
                return "tool:" + tool
    return UNKNOWN


def provenance(args: Mapping[str, Any], prompt: str | None, outputs: Outputs | None) -> dict[str, str]:
    """The origin of every argument in ``args``."""
    out: dict[str, str] = {}
    for name, value in args.items():
        if isinstance(value, list) and value:
            foreign = USER
            for item in value:
                found = origin(as_text(item), prompt, outputs)
                if found != USER:
                    foreign = found
                    break
            out[name] = foreign
        else:
            out[name] = origin(as_text(value), prompt, outputs)
    return out
