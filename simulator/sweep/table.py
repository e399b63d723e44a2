"""The results table: one CSV row per run, appended so that a killed sweep
never leaves a corrupt file.

Each row is rendered whole, then written with one ``write`` on a file opened
for appending, then flushed and ``fsync``-ed. A kill can only cut the last row
short; on resume a trailing partial line is dropped (it has no newline yet),
and the runs whose rows are complete are skipped. When the sweep completes, the
rows are rewritten in plan order into a temporary file that replaces the table
atomically, so a finished table has the same bytes whatever the executor and
the order in which runs finished.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from nhipl.errors import LocatedError
from nhipl.source import write_atomically

from .config import ConfigError

RESULTS = "results.csv"


def format_value(value: object) -> str:
    """One cell: booleans as `true`/`false`, floats in their shortest exact form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)  # shortest text that reads back exactly
    text = str(value)
    return text.replace("\r", " ").replace("\n", " ")


def render_row(values: list[object]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([format_value(v) for v in values])
    return buffer.getvalue().encode("utf-8")


def parse_cell(text: str) -> object:
    """A cell back to a value: int, float, bool, None or the string itself."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


class ResultsTable:
    """``results.csv`` in an output folder: open (resuming), append, finish."""

    def __init__(self, folder: str | os.PathLike, header: tuple[str, ...]):
        self.folder = Path(folder)
        self.path = self.folder / RESULTS
        self.header = tuple(header)
        self.rows: dict[str, bytes] = {}  # run id -> the row's bytes
        self._fd: int | None = None

    def open(self) -> set[str]:
        """Open for appending; return the ids of runs already finished."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"{self.folder}:1:1", f"cannot create folder: {(err.strerror or str(err)).lower()}") from None
        if self.path.exists():
            self._recover()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fd = fd
        if os.fstat(fd).st_size == 0:
            self._write(render_row(list(self.header)))
        return set(self.rows)

    def _recover(self) -> None:
        data = self.path.read_bytes()
        if not data:
            return
        end = data.rfind(b"\n") + 1
        try:
            header = tuple(next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8")]), ()))
            lines = data[:end].decode("utf-8").splitlines(keepends=True)
        except UnicodeDecodeError:
            header, lines = None, []
        if end == 0 and render_row(list(self.header)).startswith(data):  # the header cut short by a kill
            header = self.header
        if header != self.header:  # checked before the file is touched: it may be someone else's
            raise ConfigError(
                f"{self.path}:1:1",
                "this results table has other columns than the sweep",
                "it was written by another config or version; pass another `--out` folder",
            )
        if end < len(data):  # a row cut short by a kill: drop it
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
        for number, line in enumerate(lines[1:], start=2):
            cells = next(csv.reader([line]))
            if len(cells) != len(self.header):
                raise ConfigError(f"{self.path}:{number}:1", f"row has {len(cells)} cells, expected {len(self.header)}",
                                  "the table was edited by hand; pass another `--out` folder")
            self.rows[cells[0]] = line.encode("utf-8")

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        written = os.write(self._fd, data)
        if written != len(data):  # a short write: finish it, still one row
            os.write(self._fd, data[written:])
        os.fsync(self._fd)

    def append(self, run_id: str, values: dict) -> None:
        row = render_row([run_id] + [values.get(c) for c in self.header[1:]])
        self._write(row)
        self.rows[run_id] = row

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def finish(self, order: list[str]) -> None:
        """Rewrite the rows in ``order`` (run ids), atomically."""
        self.close()
        rows = b"".join(self.rows[run] for run in order if run in self.rows)
        try:
            write_atomically(str(self.path), render_row(list(self.header)) + rows, force=True)
        except LocatedError as err:
            raise ConfigError(err.location, err.message) from None


def read_results(path: str | os.PathLike) -> tuple[tuple[str, ...], list[dict]]:
    """A results table as (header, rows of parsed values); ``run_id`` stays text."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        rows = []
        for cells in reader:
            if len(cells) == len(header):
                row = dict(zip(header, map(parse_cell, cells)))
                row["run_id"] = cells[0]  # a hex digest, always text (`12e45678...` is not a number)
                rows.append(row)
    return header, rows
