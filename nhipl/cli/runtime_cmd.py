"""``nhipl mcp-proxy``: the stdio MCP proxy that gates ``tools/call``."""

from __future__ import annotations

import sys

import click

from ..loader import load
from ._base import BadFile, BadInput, NumberRange, handle_errors, main


@main.command(
    "mcp-proxy",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("-p", "--policies", "policy_paths", multiple=True, required=True, type=click.Path(), help="Policy file or folder (repeatable).")
@click.option("--identity", required=True, help="The agent's SPIFFE ID: the principal of every call.")
@click.option("--intent", default=None, help="Task intent sent with every call (task-scoped rules).")
@click.option("--prefix", default=None, help="Tool names become PREFIX.NAME (e.g. `github`).")
@click.option(
    "--resource",
    default=None,
    help="The request's resource, rendered from the call's arguments (`file:{arguments.path}`).",
)
@click.option("--prompt", default=None, help="The user's instruction for this session: an argument whose value appears in it has provenance `user`.")
@click.option("--store", default="memory", show_default=True, help="Where the task and its credentials live: `memory` or `redis://host:port/db` (shared with other proxies and `nhipl serve`).")
@click.option("--key", "key_path", default=None, type=click.Path(dir_okay=False), help="The private key that signs credentials (PEM or JWK). Default: one made at start.")
@click.option("--log", "log_path", default=None, type=click.Path(dir_okay=False), help="Append decisions to this JSON-lines file.")
@click.option(
    "--log-fail-open",
    is_flag=True,
    help="Keep serving when the log cannot be written (default: deny every call).",
)
@click.option(
    "--approval-timeout",
    default=300.0,
    show_default=True,
    type=NumberRange(min=0, min_open=True),
    help="Seconds to wait for a human's answer to an approval request.",
)
@click.argument("server", nargs=-1, required=True, type=click.UNPROCESSED)
@handle_errors
def mcp_proxy(
    policy_paths: tuple[str, ...],
    identity: str,
    intent: str | None,
    prefix: str | None,
    resource: str | None,
    prompt: str | None,
    store: str,
    key_path: str | None,
    log_path: str | None,
    log_fail_open: bool,
    approval_timeout: float,
    server: tuple[str, ...],
) -> None:
    """Run SERVER (after `--`) as a stdio MCP server and gate its `tools/call` by policy.

    Stdin/stdout speak MCP to the client. Only the message decided is sent on, re-serialised;
    a line another JSON parser could read another way (duplicate keys in any case, NaN,
    huge integers, lone surrogates, unknown methods) gets a JSON-RPC error. Exit 0 when the
    session ends (a server that fails is reported on stderr and to the client), 2 on bad
    input.

    The session is one runtime task: each call is decided with the provenance of its
    arguments (from --prompt and the results of earlier calls), the task's history and the
    approval in force; an allowed call with a credential TTL gets a signed credential, sent
    to the server in params._meta["nhipl/credential"] and revoked when the session ends.
    """
    from ..runtime.errors import DecisionLogError
    from ..runtime.proxy import ProxyError, run_proxy
    from ..runtime.resource import ResourceTemplate

    policies = load(list(policy_paths))
    if not identity.strip():
        raise click.BadParameter("the identity must not be empty", param_hint="'--identity'")
    if resource is not None:
        try:
            ResourceTemplate(resource)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="'--resource'") from None
    try:
        code = run_proxy(
            policies,
            identity,
            list(server),
            intent=intent,
            prefix=prefix,
            resource=resource,
            log_path=log_path,
            log_fail_closed=not log_fail_open,
            approval_timeout=approval_timeout,
            prompt=prompt,
            store=store,
            key=key_path,
        )
    except DecisionLogError as err:
        raise BadFile(err.path, err.message) from None
    except ProxyError as err:
        if err.option is not None:  # a bad --store or --key: named as serve names its options
            raise BadInput(f"{err.option}:1:1", str(err)) from None
        raise BadFile(server[0], str(err)) from None
    sys.exit(code)
