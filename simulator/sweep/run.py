"""Running a sweep: plan the runs, skip the finished ones, execute the rest,
append each result to the table as it arrives, then draw the plots."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .config import ConfigError, SweepConfig
from .plan import RunSpec, columns, plan
from .progress import Progress
from .studies import STUDIES
from .table import RESULTS, ResultsTable


def execute(spec: RunSpec) -> dict:
    """One run, in a worker: its row as a dict (parameters, seed, metrics)."""
    study = STUDIES[spec.study]
    params = dict(spec.params)
    metrics = study.run(params, spec.seed, spec.policy)
    return {"run_id": spec.run_id, **params, "seed": spec.seed, **metrics}


@dataclass(frozen=True)
class SweepResult:
    table: Path
    total: int
    skipped: int
    ran: int
    plots: tuple[Path, ...] = ()


def run_sweep(config: SweepConfig, out: str | os.PathLike, executor, *,
              stream: TextIO | None = None, plots: bool = True) -> SweepResult:
    """Run every run of ``config`` not already in ``out/results.csv``."""
    runs = plan(config)
    table = ResultsTable(out, columns(config))
    finished = table.open()
    try:
        stray = finished - {run.run_id for run in runs}
        if stray:
            raise ConfigError(
                str(table.path),
                f"the results table holds {len(stray)} runs that are not in this sweep",
                "it was written by another config; pass another `--out` folder",
            )
        todo = [run for run in runs if run.run_id not in finished]
        progress = Progress(len(runs), len(finished), stream if stream is not None else sys.stderr)
        try:
            for spec, row in executor.run(execute, todo):
                table.append(spec.run_id, row)
                progress.advance()
        finally:
            progress.close()
    finally:
        table.close()
    table.finish([run.run_id for run in runs])
    drawn: tuple[Path, ...] = ()
    if plots and config.plots:
        from .plot import draw_all

        drawn = tuple(draw_all(config, table.path, Path(out)))
    return SweepResult(Path(out) / RESULTS, len(runs), len(finished), len(todo), drawn)
