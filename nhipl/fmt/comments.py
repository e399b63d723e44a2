"""Comment placement: which output line each source comment goes before or after.

The layout prints code lines that remember the source line they came from;
:func:`place_comments` then walks the comments in source order and attaches each
one to an output line: an own-line comment before the first line whose code
comes after it, a trailing comment after the line holding its code (or on a
line of its own just below, when that line already has one), never before a
comment that came earlier in the source. :func:`comment_inside` tells the
layout when a construct holds a comment, so it is broken over several lines
rather than joined onto one.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from .. import ast as A
from ..errors import Span

if TYPE_CHECKING:
    from .layout import _Line


def comment_inside(comments: list[A.Comment], span: Span | None, start_line: int | None = None) -> bool:
    """Whether a comment sits within ``span`` (from ``start_line``), not after its end."""
    if span is None:
        return False
    first = span.line if start_line is None else start_line
    for c in comments:
        if first <= c.line <= span.end_line and not (c.line == span.end_line and c.column >= span.end_column):
            return True
    return False


def place_comments(out: list[_Line], comments: list[A.Comment], text_lines: list[str]) -> list[tuple[str, int]]:
    """Attach comments to output lines, in source order: an own-line comment
    before the first line whose code comes after it, a trailing comment
    after the line holding its code (or on a line of its own just below it,
    when that line already has one). Returns the comments after all code."""
    tail: list[tuple[str, int]] = []
    srcs = [line.src for line in out]
    last = (-1, 0)  # (output line, 0 before it / 1 trailing it) of the previous comment
    for c in comments:
        text = c.text.rstrip()
        own_line = c.line > len(text_lines) or not text_lines[c.line - 1][: c.column - 1].strip()
        i = bisect.bisect_right(srcs, c.line) - 1
        if own_line or i < 0:
            place = (bisect.bisect_left(srcs, c.line), 0)
        elif out[i].trailing is None:
            place = (i, 1)
        else:
            place = (i + 1, 0)
        if place < last:  # never before a comment that came earlier in the source
            place = last if last[1] == 0 else (last[0] + 1, 0)
        if place[1] == 1 and out[place[0]].trailing is not None:
            place = (place[0] + 1, 0)
        index, slot = place
        if slot == 1:
            out[index].trailing = text
        elif index < len(out):
            out[index].before.append(text)
            out[index].before_src.append(c.line)
        else:
            tail.append((text, c.line))
        last = place
    return tail
