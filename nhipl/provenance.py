"""Provenance: where each argument of a step came from.

One function for every enforcement point and for replay, so that a step gets the same
``provenance`` live and in the simulator. An argument's origin is ``"user"`` when its
value (as text) appears in the task's instruction, ``"tool:<name>"`` when it first
appeared in that tool's output, else ``"unknown"``. A list is ``"user"`` when every
element is; otherwise it takes the origin of its first element that is not from the
user. An empty value is ``"unknown"``.

Values that are not strings are compared as their compact JSON text (keys sorted).
:class:`Outputs` keeps a task's tool outputs, at most :data:`OUTPUTS_PER_TASK` of them and
about :data:`OUTPUT_CHARS_PER_TASK` characters; later outputs are not kept (an argument
that appears only in them is ``"unknown"``, which rules treat as not from the user).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

USER = "user"
UNKNOWN = "unknown"

OUTPUTS_PER_TASK = 256
OUTPUT_CHARS_PER_TASK = 1 << 20


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


class Outputs:
    """The tool outputs a task has seen, oldest first, as ``(tool, text)`` pairs."""

    __slots__ = ("items", "chars", "seen")

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.chars = 0
        self.seen: set[str] = set()

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
        self.chars += len(text)
        return True

    def clear(self) -> None:
        self.items = []
        self.chars = 0
        self.seen = set()

    def __len__(self) -> int:
        return len(self.items)


def origin(text: str, prompt: str | None, outputs: Outputs | None) -> str:
    """The origin of one value's text (see the module's description)."""
    if not text:
        return UNKNOWN
    if prompt is not None and text in prompt:
        return USER
    if outputs is not None:
        for tool, output in outputs.items:
            if text in output:
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
