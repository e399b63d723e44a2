"""``nhipl import``: recorded runs from other formats as an nhipl trace (JSON lines)."""

from __future__ import annotations


import click

from ..source import refuse_existing, write_atomically
from ._base import handle_errors, main


@main.command("import")
@click.argument("format", type=click.Choice(["agentdojo", "whowhen", "otel", "decisions"]))
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), help="write the trace here (default: stdout)")
@click.option("--force", is_flag=True, help="overwrite the -o file when it exists")
@handle_errors
def import_(format: str, files: tuple[str, ...], output: str | None, force: bool) -> None:
    """Convert recorded runs (FILES: files or folders) in FORMAT to a trace of JSON lines.

    \b
    agentdojo  AgentDojo runs: one task per run, one tool_call per tool call
    whowhen    Who&When runs: speakers as agents, hand-offs as delegations
    otel       OpenTelemetry GenAI spans (OTLP JSON)
    decisions  the runtime's decision log
    """
    from nhipl.simulator.importers import dumps_trace, import_runs

    refuse_existing(output, force=force)
    events = import_runs(format, files)
    text = dumps_trace(events)
    if output is None:
        click.echo(text, nl=False)
        return
    write_atomically(output, text, force=force)
    click.echo(f"wrote {len(events)} events to {output}", err=True)
