"""The canonical formatter: AST plus comments in, one canonical layout out.

``format_text(text)`` parses and lowers the text, prints every item from the AST
and puts each comment back next to the code it was written beside. Before it
returns, it re-parses its own output and checks that the policies and the
comments are the same as before (``FormatError`` otherwise), so a caller that
writes the result never changes what a policy means. ``write_atomically``
writes through a temporary file and :func:`os.replace`, so a file is never left
half-written.

The layout:

* items in source order; one blank line kept where the source had one or more
  between two items (or rules of a task block), none elsewhere;
* four-space indentation; annotations one a line above their rule;
* a rule on one line when it fits in :data:`LINE_LENGTH` columns and has no
  comment inside it, otherwise ``when``, ``unless``, ``grant ttl`` and
  ``because`` each on their own line, indented, the ``;`` after the last one;
* declarations and test requests on one line when they fit, otherwise one
  entry a line;
* expressions with single spaces around operators and only the parentheses the
  grammar needs; strings with JSON escapes; ``;`` after every statement.

The package has three parts: :mod:`nhipl.fmt.unparse` turns nodes into text,
:mod:`nhipl.fmt.layout` breaks that text into indented lines of at most
:data:`LINE_LENGTH` columns, and :mod:`nhipl.fmt.comments` decides where each
comment goes. This module holds the public API and the re-parse check.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

from .. import ast as A
from ..errors import NhiplError, PolicyError
from ..lower import lower
from ..parse import parse
from .layout import LINE_LENGTH, _Printer
from .unparse import (
    format_annotation,
    format_expr,
    format_literal,
    format_rule_header,
    format_string,
    format_subject,
    format_value,
)


class FormatError(NhiplError):
    """The formatter's output would not mean the same as its input (a formatter bug)."""

    def __init__(self, source: str, message: str):
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")



def parse_module(text: str, source: str = "<string>") -> A.Module:
    """Parse and lower one file (no imports, no checks); PolicyError on bad text."""
    return lower(parse(text, source), text, source)


def format_module(module: A.Module, text: str) -> str:
    """``module`` (parsed from ``text``) in canonical layout, comments kept."""
    lines = text.split("\n")
    comments = sorted(module.comments, key=lambda c: (c.line, c.column))
    printer = _Printer(module, comments, lines)
    for item in module.items:
        printer.item(item, 0)
    return printer.render()


def _without_line_ids(items: tuple[A.Item, ...]) -> tuple[A.Item, ...]:
    """Items with the ids of rules without ``@id`` blanked: those ids are
    ``file:line`` and move whenever a line does."""

    def rule(r: A.Rule) -> A.Rule:
        return r if r.explicit_id else dataclasses.replace(r, id="")

    out: list[A.Item] = []
    for item in items:
        if isinstance(item, A.Rule):
            item = rule(item)
        elif isinstance(item, A.TaskBlock):
            item = dataclasses.replace(item, rules=tuple(rule(r) for r in item.rules))
        out.append(item)
    return tuple(out)


def same_policies(a: A.Module, b: A.Module) -> bool:
    """AST equality (spans and line-number rule ids excluded), also telling
    ``1``, ``1.0`` and ``true`` apart."""
    x, y = _without_line_ids(a.items), _without_line_ids(b.items)
    return x == y and repr(x) == repr(y)


def _comment_texts(module: A.Module) -> list[str]:
    return [c.text.rstrip() for c in sorted(module.comments, key=lambda c: (c.line, c.column))]


def format_text(text: str, source: str = "<string>") -> str:
    """The canonical form of ``text``: a fixed point, so ``format_text`` of the
    result is the result. PolicyError on bad input; FormatError if a pass would
    not re-parse to the same policies and comments, or the layout does not
    settle (neither is expected; the caller then leaves the file alone)."""
    module = parse_module(text, source)
    current, current_module = text, module
    for _ in range(_MAX_PASSES):
        formatted = format_module(current_module, current)
        try:
            again = parse_module(formatted, source)
        except PolicyError as err:
            raise FormatError(source, f"formatted text does not parse ({err.message}); file left unchanged") from None
        if not same_policies(module, again):
            raise FormatError(source, "formatting would change the policies; file left unchanged")
        if _comment_texts(module) != _comment_texts(again):
            raise FormatError(source, "formatting would lose or reorder comments; file left unchanged")
        if formatted == current:
            return formatted
        current, current_module = formatted, again
    raise FormatError(source, "the layout does not settle; file left unchanged")


# A comment can move out of the construct it sat in (say, to the end of a rule),
# which changes the layout once more; two passes settle every case seen so far.
_MAX_PASSES = 4


def write_atomically(path: str, text: str) -> None:
    """Replace ``path``'s content with ``text`` via a temporary file in the same
    folder and :func:`os.replace`: readers see the old file or the new one."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=".nhipl-fmt-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


__all__ = [
    "FormatError",
    "LINE_LENGTH",
    "format_annotation",
    "format_expr",
    "format_literal",
    "format_module",
    "format_rule_header",
    "format_string",
    "format_subject",
    "format_text",
    "format_value",
    "parse_module",
    "same_policies",
    "write_atomically",
]
