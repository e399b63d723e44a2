"""A one-line progress bar on stderr, drawn only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total: int, done: int = 0, stream: TextIO | None = None, width: int = 30):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.done = done
        self.start_done = done
        self.width = width
        self.started = time.monotonic()
        self.drawn = 0.0
        self.draw(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.draw()

    def line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(self.width * fraction)
        elapsed = time.monotonic() - self.started
        ran = self.done - self.start_done
        eta = ""
        if ran and self.done < self.total:
            eta = f" eta {_clock(elapsed / ran * (self.total - self.done))}"
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} runs {_clock(elapsed)}{eta}"

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.drawn < 0.1 and self.done < self.total:
            return
        self.drawn = now
        self.stream.write("\r" + self.line() + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
