"""``nhipl lsp``: the language server for editors."""

from __future__ import annotations

import sys

import click

from ._base import EXIT_BAD_INPUT, main


@main.command()
@click.option("--stdio", is_flag=True, help="Talk over stdin and stdout (the default and only transport).")
def lsp(stdio: bool) -> None:
    """Run the language server on stdin/stdout, for editors (VS Code, Neovim, Helix, ...)."""
    try:
        from ..lsp.server import serve
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        click.echo(f"<nhipl lsp>:1:1: the language server needs pygls: pip install 'nhipl[lsp]' ({err})", err=True)
        sys.exit(EXIT_BAD_INPUT)
    serve()
