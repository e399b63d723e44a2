"""A small help-desk MCP server, written with the MCP Python SDK.

Run it behind `nhipl mcp-proxy` (see README.md beside this file); on its own it trusts
every caller, as most MCP servers do.
"""

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

app = MCPServer("helpdesk")

TICKETS = {"T-1": "printer on fire", "T-2": "password reset for bob@acme.com"}


@app.tool(annotations=ToolAnnotations(readOnlyHint=True))
def read_ticket(ticket: str) -> str:
    """Read a ticket."""
    return TICKETS.get(ticket, "no such ticket")


@app.tool(annotations=ToolAnnotations(destructiveHint=True))
def delete_ticket(ticket: str) -> str:
    """Delete a ticket for good."""
    TICKETS.pop(ticket, None)
    return f"deleted {ticket}"


@app.tool()
def send_mail(to: str, body: str) -> str:
    """Send an e-mail."""
    return f"sent to {to}"


if __name__ == "__main__":
    app.run("stdio")
