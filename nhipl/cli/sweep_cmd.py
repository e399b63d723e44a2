"""``nhipl sweep``: parameter grids over simulated swarms."""

from __future__ import annotations

import importlib.util
import sys

import click

from ._base import EXIT_BAD_INPUT, EXIT_FINDINGS, main


def _print_parameters(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from nhipl.simulator.sweep.studies import STUDIES, parameter_table

    for name, study in STUDIES.items():
        click.echo(f"study `{name}`: {study.description}\n\n{parameter_table(name)}\n")
    ctx.exit(0)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--parameters", is_flag=True, is_eager=True, expose_value=False, callback=_print_parameters,
              help="Print each study's parameters (name, type, default, values, meaning) and exit.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder for results.csv and the plots [default: ./NAME-results].")
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
              help="Where runs execute: a local process pool, or dask.distributed [default: local].")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Address of an existing dask scheduler (implies --executor dask).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (local pool or dask LocalCluster) [default: the cores].")
@click.option("--plots/--no-plots", default=True, help="Draw the config's plots when the sweep is done.")
def sweep(config: str, out: str | None, executor: str | None, scheduler: str | None,
          workers: int | None, plots: bool) -> None:
    """Run the sweep in CONFIG (TOML); resumes where an interrupted run stopped.

    Exit 0 done, 1 a run failed, 2 bad config or input, 130 interrupted.
    """
    from nhipl.simulator.sweep import (
        ConfigError, DaskExecutor, ExecutorError, LocalExecutor, RunFailed, load_config, run_sweep,
    )

    try:
        settings = load_config(config)
    except ConfigError as err:
        click.echo(err.render(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    if plots and settings.plots and importlib.util.find_spec("matplotlib") is None:
        click.echo(f"{config}: the config's plots need matplotlib\n  help: install it with `pip install 'nhipl[sweep]'`, "
                   "or pass `--no-plots`", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if scheduler and executor == "local":
        raise click.UsageError("`--scheduler` needs `--executor dask`")
    if scheduler or executor == "dask":
        runner = DaskExecutor(scheduler=scheduler, workers=workers)
    else:
        runner = LocalExecutor(workers=workers)
    folder = out or f"{settings.name}-results"
    try:
        result = run_sweep(settings, folder, runner, plots=plots)
    except ConfigError as err:
        click.echo(err.render(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    except ExecutorError as err:
        if scheduler or executor == "dask":
            raise click.BadParameter(str(err), param_hint="'--scheduler'" if scheduler else "'--executor'") from None
        click.echo(f"{config}: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except RunFailed as err:
        click.echo(f"error: {err}", err=True)
        click.echo("  help: finished runs are kept; fix the cause and run the same command to resume", err=True)
        sys.exit(EXIT_FINDINGS)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished runs are in {folder}/results.csv; run the same command to resume", err=True)
        sys.exit(130)
    click.echo(
        f"{result.total} runs: {result.ran} ran, {result.skipped} already done -> {result.table}"
    )
    for path in result.plots:
        click.echo(f"plot: {path}")
