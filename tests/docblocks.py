"""The code blocks of a Markdown page, the one way every docs test reads them."""

from __future__ import annotations

import pathlib
import re
from typing import NamedTuple

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.S | re.M)


class Block(NamedTuple):
    info: str  # what follows the opening fence: `nhipl`, `python`, `nhipl bad NHI001`, ...
    text: str
    line: int  # the page's line of the block's first line


def code_blocks(page: pathlib.Path | str, language: str | None = None) -> list[Block]:
    """The fenced blocks of ``page`` (a path) in order; with ``language``, only the
    blocks whose info string is exactly that (```` ```nhipl file=x ```` is not ``nhipl``)."""
    text = pathlib.Path(page).read_text(encoding="utf-8")
    blocks = [Block(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 2) for m in FENCE.finditer(text)]
    if language is None:
        return blocks
    return [b for b in blocks if b.info == language]
