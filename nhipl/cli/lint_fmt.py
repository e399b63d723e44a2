"""``nhipl lint`` and ``nhipl fmt``."""

from __future__ import annotations

import difflib
import os
import sys

import click

from .. import source as user_files
from ..errors import LocatedError, PolicyError
from ..fmt import FormatError, format_text
from ..lint import ConfigFinder, fails, format_json, format_sarif, lint_paths, load_config
from ..lint import format_text as findings_text
from ..loader import decode, read_text
from ._base import EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_OK, handle_errors, main


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--format", "output", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(),
    default=None,
    help="A pyproject.toml with [tool.nhipl.lint], or an nhipl.toml with [lint], for every file "
    "(default: for each file, the nearest nhipl.toml or pyproject.toml with lint settings in its folder or above).",
)
@click.option("--exact", is_flag=True, help="Decide NHI004, NHI006 and NHI012 over every request with the SMT solver (needs `nhipl[analyze]`).")
@handle_errors
def lint(files: tuple[str, ...], output: str, config_path: str | None, exact: bool) -> None:
    """Lint policy FILES (files or folders). Exit 0 no findings, 1 findings, 2 bad input."""
    config = load_config(config_path) if config_path is not None else ConfigFinder()
    assumptions: list[str] | None = [] if exact else None
    findings = lint_paths(list(files), config, assumptions)
    render = {"text": findings_text, "json": format_json, "sarif": format_sarif}[output]
    click.echo(render(findings))
    if exact and output == "text":
        from ..lint.exact import exact_notice

        click.echo(exact_notice(assumptions))
    sys.exit(EXIT_FINDINGS if fails(findings, config) else EXIT_OK)


def policy_sources(paths: tuple[str, ...]) -> list[str]:
    """Files to format: each file given, and every ``*.nhipl`` under each folder."""
    out: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".nhipl"))
        else:
            out.append(path)
    return out


def _diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), f"{path}\toriginal", f"{path}\tformatted"
        )
    )


@main.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file would change.")
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print a unified diff of the changes.")
def fmt(files: tuple[str, ...], check: bool, show_diff: bool) -> None:
    """Format policy FILES (files, folders, or - for stdin) in the canonical layout.

    Exit 0 done, 1 a file would change (--check or --diff), 2 bad input."""
    bad = changed = unchanged = 0
    for path in policy_sources(files):
        try:
            if path == "-":
                original = decode(user_files.read_stream(sys.stdin.buffer, "<stdin>"), "<stdin>")
                formatted = format_text(original, "<stdin>")
            else:
                original = read_text(path)
                formatted = format_text(original, path)
        except PolicyError as err:
            click.echo(err.render(), err=True)
            bad += 1
            continue
        except FormatError as err:
            click.echo(f"{err.source}: {err.message}", err=True)
            bad += 1
            continue
        except LocatedError as err:
            click.echo(err.render(), err=True)
            bad += 1
            continue
        if path == "-":
            if not check:
                click.echo(formatted, nl=False)
            changed += formatted != original
            continue
        if formatted == original:
            unchanged += 1
            continue
        changed += 1
        if show_diff:
            click.echo(_diff(path, original, formatted), nl=False)
        if check or show_diff:
            click.echo(f"would reformat {path}", err=True)
            continue
        try:  # in place: through a symlink to the file it names, keeping the file's mode
            target = os.path.realpath(path)
            user_files.write_atomically(target, formatted, force=True, mode=os.stat(target).st_mode & 0o7777)
        except OSError as err:
            click.echo(f"{path}: cannot write file: {(err.strerror or str(err)).lower()}", err=True)
            bad += 1
            continue
        except LocatedError as err:
            click.echo(err.render(), err=True)
            bad += 1
            continue
        click.echo(f"reformatted {path}", err=True)
    verb = "would be reformatted" if (check or show_diff) else "reformatted"
    click.echo(f"{changed} file{'s' * (changed != 1)} {verb}, {unchanged} unchanged" + (f", {bad} with errors" if bad else ""), err=True)
    if bad:
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(EXIT_FINDINGS if changed and (check or show_diff) else EXIT_OK)
