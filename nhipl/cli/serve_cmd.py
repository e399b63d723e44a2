"""``nhipl serve``: the decision service over HTTP."""

from __future__ import annotations

import sys

import click

from ._base import BadFile, BadInput, handle_errors, main


@main.command("serve")
@click.option("-p", "--policies", "policy_paths", multiple=True, required=True, type=click.Path(), help="Policy file or folder (repeatable).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8181, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on (0: any free port).")
@click.option("--log", "log_path", default=None, type=click.Path(dir_okay=False), help="Append every decision to this JSON-lines file.")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False), help="File holding the bearer token every endpoint but /healthz and /readyz needs.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without --token-file.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes sharing the port (each loads the policies). Task sessions and credentials need --store redis://... with more than one.")
@click.option("--store", default="memory", show_default=True, help="Where task sessions, credentials, revocations and signing keys live: `memory` (this process) or `redis://host:port/db` (shared by every worker and replica: any of them continues any task).")
@click.option("--key", "key_path", default=None, type=click.Path(dir_okay=False), help="The private key that signs credentials (PEM or JWK); replicas sharing a store need the same key. Default: one made at start.")
@click.option("--watch", default=1.0, show_default=True, type=click.FloatRange(0), help="Seconds between checks of the policy files for changes (0: do not watch).")
@handle_errors
def serve_command(
    policy_paths: tuple[str, ...],
    host: str,
    port: int,
    log_path: str | None,
    token_file: str | None,
    insecure: bool,
    workers: int,
    watch: float,
    store: str,
    key_path: str | None,
) -> None:
    """Serve decisions over HTTP: the AuthZEN Authorization API 1.0 and nhipl's own API.

    Task sessions (/v1/tasks...) decide each step of an agent's task with its provenance,
    history and approvals, issue signed credentials (checked at /v1/credentials/introspect,
    keys at /v1/jwks) and revoke them when the task ends or a reload takes their permit away.

    Policies reload when their files change, on SIGHUP and on POST /v1/reload; a reload that
    fails keeps the old set. SIGTERM drains in-flight requests, then exits 0. Exit 2 on bad
    input (policies, options, a port that cannot be bound).
    """
    try:
        import httptools  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise BadInput("serve:1:1", f"the `serve` extra is not installed (no `{err.name}`): pip install 'nhipl[serve]'") from None
    from ..serve import Options, ServeError, serve
    from ..serve.server import is_loopback

    token = None
    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as err:
            raise BadFile(token_file, f"cannot read the token file: {getattr(err, 'strerror', None) or err}") from None
        if not token or any(c.isspace() for c in token) or not token.isprintable():
            raise BadFile(token_file, "the token file must hold one token: printable, no spaces")
    if token is None and not is_loopback(host) and not insecure:
        raise BadInput(
            "--host:1:1",
            f"refusing to serve on `{host}` without --token-file; give a token file, or --insecure to serve anyone who can reach it",
        )
    options = Options(list(policy_paths), host=host, port=port, token=token, log_path=log_path, workers=workers, watch=watch, store=store, key_path=key_path)
    try:
        code = serve(options)
    except ServeError as err:
        raise BadInput(f"{err.option}:1:1", err.message) from None
    sys.exit(code)
