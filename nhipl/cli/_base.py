"""Shared plumbing for the command modules: the root group and error handling."""

from __future__ import annotations

import functools
import sys

import click

from ..errors import LocatedError, PolicyError, RequestError
from ..source import imports_outside_allowed

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(LocatedError):
    """Bad user input found by the CLI itself, at ``location`` (``file:line:col``)."""

    def __init__(self, location: str, message: str):
        source, line, column = location.rsplit(":", 2)
        super().__init__(source, int(line), int(column), message)


class BadFile(LocatedError):
    """A file (or folder) given to the CLI that is wrong as a whole, not at a place in it:
    renders as ``path: message``."""

    def __init__(self, path: str, message: str, help: str | None = None):
        super().__init__(path, None, None, message, help)


class NumberRange(click.FloatRange):
    """`click.FloatRange` that also refuses `nan`, which compares false with every bound."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nhipl", prog_name="nhipl")
@click.option("--allow-import-outside", is_flag=True,
              help="Let a policy's `import` name a .nhipl file outside its own folder and the current folder.")
@click.pass_context
def main(ctx: click.Context, allow_import_outside: bool) -> None:
    """nhipl: policies for AI agents and other workload identities."""
    if allow_import_outside:
        ctx.with_resource(imports_outside_allowed())


def handle_errors(func):
    """Turn nhipl's own errors into `file:line:col: message` and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PolicyError as err:
            click.echo(err.render(), err=True)
            sys.exit(EXIT_BAD_INPUT)
        except LocatedError as err:
            click.echo(err.render(), err=True)
            sys.exit(EXIT_BAD_INPUT)
        except RequestError as err:
            click.echo(f"<request>:1:1: {err}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except BrokenPipeError:
            sys.exit(EXIT_OK)

    return wrapper
