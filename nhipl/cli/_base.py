"""Shared plumbing for the command modules: the root group and error handling."""

from __future__ import annotations

import functools
import sys

import click

from ..errors import NhiplError, PolicyError, RequestError

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(NhiplError):
    """Bad user input found by the CLI itself; ``location`` is ``file:line:col``."""

    def __init__(self, location: str, message: str):
        self.location = location
        self.message = message
        super().__init__(f"{location}: {message}")


class NumberRange(click.FloatRange):
    """`click.FloatRange` that also refuses `nan`, which compares false with every bound."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nhipl", prog_name="nhipl")
def main() -> None:
    """nhipl: policies for AI agents and other workload identities."""


def handle_errors(func):
    """Turn nhipl's own errors into `file:line:col: message` and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except PolicyError as err:
            click.echo(err.render(), err=True)
            sys.exit(EXIT_BAD_INPUT)
        except BadInput as err:
            click.echo(f"{err.location}: {err.message}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except RequestError as err:
            click.echo(f"<request>:1:1: {err}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except BrokenPipeError:
            sys.exit(EXIT_OK)

    return wrapper
