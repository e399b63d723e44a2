"""``nhipl schema``: print the JSON Schema of one of nhipl's formats."""

from __future__ import annotations

import click

from ..schemas import NAMES, schema_text
from ._base import handle_errors, main


@main.command("schema")
@click.argument("name", type=click.Choice(NAMES), required=False)
@click.option("--list", "list_names", is_flag=True, help="List the schema names.")
@handle_errors
def schema_cmd(name: str | None, list_names: bool) -> None:
    """Print the JSON Schema (draft 2020-12) of NAME: request, decision, trace-event, report
    or decision-log. Exit 0."""
    if list_names or name is None:
        if name is None and not list_names:
            raise click.UsageError("name a schema: " + ", ".join(NAMES))
        for n in NAMES:
            click.echo(n)
        return
    click.echo(schema_text(name), nl=False)
