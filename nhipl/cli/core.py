"""``nhipl check`` and ``nhipl eval``."""

from __future__ import annotations

import json
import sys

import click

from ..errors import RequestError
from ..jsontext import JSONTextError, parse_json_documents
from .. import source as user_files
from ..loader import load
from ._base import EXIT_FINDINGS, EXIT_OK, BadFile, BadInput, handle_errors, main


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@handle_errors
def check(files: tuple[str, ...]) -> None:
    """Parse and validate policy FILES (files or folders). Exit 0 ok, 2 errors."""
    policies = load(list(files))
    click.echo(
        f"ok: {_count(len(policies.rules), 'rule')}, {_count(len(policies.agents), 'agent')}, "
        f"{_count(len(policies.tools), 'tool declaration')} in {_count(len(policies.modules), 'module')}"
    )


def _read_input(path: str) -> tuple[str, str]:
    if path == "-":
        return "<stdin>", user_files.decode(user_files.read_stream(sys.stdin.buffer, "<stdin>"), "<stdin>")
    return path, user_files.read_text(path)


def read_requests(path: str) -> list[tuple[int, object]]:
    """Requests from a JSON file (one object) or a JSON-lines file: (line, request) pairs."""
    name, text = _read_input(path)
    if not text.strip():
        raise BadFile(name, "no request: the input is empty")
    try:
        return parse_json_documents(text)
    except JSONTextError as err:
        raise BadInput(f"{name}:{err.line}:{err.column}", err.message) from None


def _text(decision) -> str:
    lines = [decision.effect]
    if decision.rules:
        lines.append("  rules: " + ", ".join(decision.rules))
    if decision.credential_ttl is not None:
        lines.append(f"  credential_ttl: {decision.credential_ttl}s")
    if decision.restricted_by:
        lines.append(f"  restricted_by: {decision.restricted_by}")
    for reason in decision.reasons:
        lines.append(f"  reason: {reason}")
    for error in decision.errors:
        lines.append(f"  error: {error.rule}: {error.message}")
    return "\n".join(lines)


@main.command("eval")
@click.option("-p", "--policies", "policy_paths", multiple=True, required=True, type=click.Path(), help="Policy file or folder (repeatable).")
@click.option("-r", "--request", "request_path", required=True, help="Request JSON file, JSON-lines file of many, or - for stdin.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--fail-on", "fail_on", type=click.Choice(["deny", "approval"]), default=None,
              help="Exit 1 when a decision is deny (`deny`), or deny or approval_required (`approval`).")
@handle_errors
def eval_(policy_paths: tuple[str, ...], request_path: str, fmt: str, fail_on: str | None) -> None:
    """Decide one request, or each request of a JSON-lines file.

    Exit 0; with --fail-on, 1 when any decision is at least that restrictive; 2 on bad input."""
    policies = load(list(policy_paths))
    requests = read_requests(request_path)
    name = "<stdin>" if request_path == "-" else request_path
    decisions = []
    for lineno, raw in requests:
        try:
            decisions.append(policies.evaluate(raw))
        except RequestError as err:
            raise BadInput(f"{name}:{lineno}:1", str(err.message)) from None
    many = len(requests) > 1
    for (lineno, _), decision in zip(requests, decisions):
        if fmt == "json":
            click.echo(json.dumps(decision.to_dict(), indent=None if many else 2, sort_keys=False))
        else:
            if many:
                click.echo(f"{name}:{lineno}: ", nl=False)
            click.echo(_text(decision))
    failing = _FAILING.get(fail_on, ())
    sys.exit(EXIT_FINDINGS if any(d.effect in failing for d in decisions) else EXIT_OK)


# `--fail-on`: the effects that make `nhipl eval` exit 1.
_FAILING = {"deny": ("deny",), "approval": ("deny", "approval_required")}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
