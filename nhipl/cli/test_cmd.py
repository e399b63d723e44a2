"""``nhipl test``: run policy tests and invariants, report failures, coverage and JUnit XML."""

from __future__ import annotations

import os
import sys

import click

from ..source import refuse_existing, write_atomically
from ._base import EXIT_FINDINGS, EXIT_OK, BadFile, NumberRange, handle_errors, main

# Keep in step with nhipl.testing.invariants (not imported at start-up, see below).
DEFAULT_MAX_EXAMPLES, DEFAULT_SEED = 300, 0


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@main.command("test")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-k", "pattern", metavar="PATTERN", help="Run only tests and invariants whose name or file contains PATTERN (case-insensitive).")
@click.option("--junit-xml", "junit_path", type=click.Path(dir_okay=False), help="Write a JUnit XML report to FILE.")
@click.option("--coverage", "show_coverage", is_flag=True, help="Report the rules no test made determining, per file and in total.")
@click.option("--fail-under", type=NumberRange(0, 100), metavar="PCT", help="Exit 1 when total rule coverage is below PCT.")
@click.option("--include-imports", is_flag=True,
              help="Count the rules of imported files (the standard library, files outside PATHS and the current folder) in the total.")
@click.option("--max-examples", type=click.IntRange(1), default=DEFAULT_MAX_EXAMPLES, show_default=True, help="Requests tried per invariant.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Seed of the invariant search (runs are reproducible).")
@click.option("--no-invariants", is_flag=True, help="Skip the invariant search.")
@click.option("-v", "--verbose", is_flag=True, help="List every test and invariant, passed or not.")
@click.option("--force", is_flag=True, help="Replace the --junit-xml file when it exists.")
@handle_errors
def test_(
    paths: tuple[str, ...],
    pattern: str | None,
    junit_path: str | None,
    show_coverage: bool,
    fail_under: float | None,
    include_imports: bool,
    max_examples: int,
    seed: int,
    no_invariants: bool,
    verbose: bool,
    force: bool,
) -> None:
    """Run the policy tests in PATHS (`*_test.nhipl` files, or folders searched for them).

    Exit 0 when every test and invariant passes, 1 when one fails (or coverage is below
    --fail-under), 2 on bad input.
    """
    # Imported here: the testing package pulls in Hypothesis, which other commands don't need.
    from ..testing import coverage as measure_coverage
    from ..testing import discover, junit_xml, run_files
    from ..testing.runner import explain_invariant, invariant_location

    files = discover(paths)
    if not files:
        raise BadFile(paths[0], "no `*_test.nhipl` files found")
    if junit_path is not None and os.path.isdir(junit_path):
        raise BadFile(junit_path, "is a folder, not a file")
    refuse_existing(junit_path, force=force)
    run = run_files(files, pattern=pattern, invariants=not no_invariants, max_examples=max_examples, seed=seed)
    if run.total == 0:
        where = f"matches `-k {pattern}`" if pattern else "in " + ", ".join(f"`{p}`" for p in paths)
        if pattern:
            raise click.BadParameter(f"no test or invariant matches `{pattern}`", param_hint="'-k'")
        raise click.UsageError(f"no test or invariant {where}")

    for file in run.files:
        for case in file.cases:
            if not case.passed:
                click.echo(f"FAIL {case.location}: test \"{case.name}\"")
                click.echo(_indent(case.explain()) + "\n")
            elif verbose:
                click.echo(f"ok   {case.location}: test \"{case.name}\"")
        for result in file.invariants:
            if not result.holds:
                click.echo(f"FAIL {invariant_location(result)}: invariant \"{result.invariant.name}\"")
                click.echo(_indent(explain_invariant(result)) + "\n")
            elif result.in_scope == 0:
                click.echo(
                    f"warning: {invariant_location(result)}: invariant \"{result.invariant.name}\" held vacuously: "
                    f"none of {result.examples} requests tried was in its scope"
                )
            elif verbose:
                click.echo(
                    f"ok   {invariant_location(result)}: invariant \"{result.invariant.name}\" ({explain_invariant(result)})"
                )

    status = EXIT_OK if run.ok else EXIT_FINDINGS
    if show_coverage or fail_under is not None:
        measured = measure_coverage(run, paths, include_imports=include_imports)
        if show_coverage:
            click.echo(measured.report())
        if fail_under is not None and measured.percent < fail_under:
            click.echo(f"coverage {measured.percent:.1f}% is below --fail-under {fail_under:g}%")
            status = EXIT_FINDINGS

    if junit_path is not None:
        write_atomically(junit_path, junit_xml(run), force=force)

    counts = [f"{run.passed} passed"] + ([f"{run.failed} failed"] if run.failed else [])
    click.echo(f"{', '.join(counts)} ({_plural(len(run.files), 'file')}) in {run.seconds:.2f}s")
    sys.exit(status)
