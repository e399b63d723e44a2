"""A stdio MCP proxy that gates every ``tools/call`` through the policy.

It sits between an MCP client (our stdin/stdout) and an MCP server (a child process) and
relays newline-delimited JSON-RPC both ways, untouched, except:

- ``tools/call`` from the client is evaluated as ``{principal: identity, action: "call",
  tool: NAME (or PREFIX.NAME), args: ARGUMENTS, task: {id: SESSION, intent: INTENT},
  context: {tool_annotations: {...}}}``. ``allow``: the original line is forwarded.
  ``deny``: the client gets a tool error result (``isError: true``) stating the reasons.
  ``approval_required``: when the client declared the elicitation capability (form mode)
  in ``initialize``, the proxy asks through ``elicitation/create`` and evaluates again
  with ``approval: {granted, by}``; otherwise the client gets an error result saying that
  approval is needed.
- The ``annotations`` of each tool in the server's ``tools/list`` results are remembered
  and given to the policy as ``context.tool_annotations`` (``readOnlyHint``,
  ``destructiveHint``, ...; ``{}`` when the server gave none); before the first call, and
  after ``notifications/tools/list_changed``, the proxy lists the tools itself if the client
  has not, so no client dodges an annotation gate by never listing. They come from the server
  and are never trusted to allow anything: when a tool has annotations, the call is also
  evaluated with ``tool_annotations: {}`` and the more restrictive decision wins.
- A line from the client that is not JSON-RPC gets a JSON-RPC error back and goes no
  further; a ``tools/call`` without a string ``name`` or with non-object ``arguments``
  gets ``-32602``. A line from the server that is not JSON fails every request still
  waiting for the server with a JSON-RPC error. When the server exits, every request it
  had not answered gets an error naming its exit code, and the proxy exits.

It needs only the standard library (not the MCP SDK).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import uuid
from typing import Any, BinaryIO

from ..decision import ALLOW, APPROVAL_REQUIRED, RESTRICTIVENESS, Decision
from ..errors import NhiplError, RequestError
from .errors import DecisionLogError
from .log import DecisionLog, failed_closed
from .redact import DEFAULT_REDACTOR

PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32602, -32603
# Server output lines can be large (tools/list of a big server, file contents).
_LINE_LIMIT = 64 * 1024 * 1024


class ProxyError(NhiplError):
    """The proxy could not start (e.g. the server command does not exist)."""


def _key(request_id: Any) -> str:
    # JSON-RPC ids 1 and "1" are different requests.
    return json.dumps(request_id, sort_keys=True)


def _tool_error(request_id: Any, text: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": {"content": [{"type": "text", "text": text}], "isError": True}}


def _rpc_error(request_id: Any, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _encode(message: dict) -> bytes:
    return (json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class McpProxy:
    """The proxy for one session. ``run()`` returns the exit code, 0 whether the client or
    the server ended the session; a server that failed is reported on stderr
    and to every request it left unanswered."""

    def __init__(
        self,
        policies,
        identity: str,
        server_command: list[str],
        *,
        intent: str | None = None,
        prefix: str | None = None,
        decision_log: DecisionLog | None = None,
        approval_timeout: float = 300.0,
        client_in: BinaryIO | None = None,
        client_out: BinaryIO | None = None,
        errors: Any = None,
    ):
        if not server_command:
            raise ProxyError("no MCP server command given")
        self.policies = policies
        self.identity = identity
        self.server_command = list(server_command)
        self.prefix = prefix
        self.task: dict = {"id": uuid.uuid4().hex}
        if intent is not None:
            self.task["intent"] = intent
        self.log = decision_log
        self.approval_timeout = approval_timeout
        self._in = client_in if client_in is not None else sys.stdin.buffer
        self._out = client_out if client_out is not None else sys.stdout.buffer
        self._err = errors if errors is not None else sys.stderr
        # Session state.
        self.annotations: dict[str, dict] = {}
        self.elicitation = False
        self.client_name = "client"
        self._pending: dict[str, str] = {}  # client request id -> method, waiting for the server
        self._tool_lists: set[str] = set()
        self._tools_known = False  # a full tools/list has been seen since the last change
        self._own: dict[str, asyncio.Future] = {}  # our own requests to the server -> answer
        self._own_seq = 0
        self._asks: dict[str, asyncio.Future] = {}  # our elicitation ids -> answer
        self._gates: dict[str, asyncio.Task] = {}  # tools/call waiting for approval
        self._ask_seq = 0
        self._server: asyncio.subprocess.Process | None = None

    # -- plumbing -----------------------------------------------------------------------
    def _note(self, message: str) -> None:
        print(f"nhipl mcp-proxy: {message}", file=self._err, flush=True)

    def _to_client(self, data: bytes | dict) -> None:
        if isinstance(data, dict):
            data = _encode(data)
        try:
            self._out.write(data)
            self._out.flush()
        except (BrokenPipeError, ValueError):
            pass  # the client went away; stdin's end will stop us

    async def _to_server(self, data: bytes) -> None:
        server = self._server
        if server is None or server.stdin is None or server.stdin.is_closing():
            return
        try:
            server.stdin.write(data if data.endswith(b"\n") else data + b"\n")
            await server.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server died; its stdout's end reports it

    def _record(self, request: dict, decision: Decision, approval=None, gates=()) -> Decision:
        if self.log is None:
            return decision
        try:
            self.log.record_decision(request, decision, source="mcp-proxy", approval=approval, approval_rules=gates)
        except DecisionLogError as err:
            if not self.log.fail_closed:
                self._note(f"decision not logged: {err}")
                return decision
            return failed_closed(decision, err)
        return decision

    def _record_task(self, event: str) -> None:
        if self.log is None:
            return
        try:
            self.log.record_task(event, self.task, self.identity, source="mcp-proxy")
        except DecisionLogError as err:
            self._note(f"{event} not logged: {err}")

    # -- run ----------------------------------------------------------------------------
    async def run(self) -> int:
        try:
            self._server = await asyncio.create_subprocess_exec(
                *self.server_command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_LINE_LIMIT,
            )
        except FileNotFoundError:
            raise ProxyError(f"cannot start the MCP server `{self.server_command[0]}`: no such file") from None
        except PermissionError:
            raise ProxyError(f"cannot start the MCP server `{self.server_command[0]}`: permission denied") from None
        self._record_task("task_start")
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue = asyncio.Queue()
        threading.Thread(target=self._read_client, args=(loop, lines), daemon=True, name="nhipl-mcp-stdin").start()
        client = asyncio.create_task(self._client_loop(lines))
        server = asyncio.create_task(self._server_loop())
        done, _ = await asyncio.wait({client, server}, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if server in done:
            code = server.result()
            client.cancel()
        else:
            client.result()
            code = await self._stop_server(server)
        for task in list(self._gates.values()):
            task.cancel()
        self._record_task("task_end")
        return code

    def _read_client(self, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue) -> None:
        # A thread, so that stdin may be a pipe, a file or a terminal alike. It reads the
        # raw descriptor: a daemon thread blocked inside a buffered reader would stop the
        # interpreter from shutting down cleanly.
        fd = self._in.fileno()
        pending = bytearray()
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                start = len(pending)
                pending += chunk
                cut = pending.rfind(b"\n", start)
                if cut >= 0:
                    for line in bytes(pending[:cut]).split(b"\n"):
                        loop.call_soon_threadsafe(lines.put_nowait, line + b"\n")
                    del pending[: cut + 1]
        except (OSError, RuntimeError):
            pass
        try:
            if pending:
                loop.call_soon_threadsafe(lines.put_nowait, bytes(pending))
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:
            pass  # the loop is already closed

    async def _client_loop(self, lines: asyncio.Queue) -> None:
        while True:
            line = await lines.get()
            if line is None:
                return
            await self._from_client(line)

    async def _server_loop(self) -> int:
        server = self._server
        assert server is not None and server.stdout is not None
        while True:
            try:
                line = await server.stdout.readline()
            except ValueError:  # longer than the limit
                self._server_broke("the MCP server sent a line longer than 64 MiB")
                continue
            if not line:
                break
            await self._from_server(line)
        code = await server.wait()
        why = f"the MCP server exited (code {code})" if code >= 0 else f"the MCP server was killed (signal {-code})"
        for request_id, method in list(self._pending.items()):
            self._to_client(_rpc_error(json.loads(request_id), INTERNAL_ERROR, f"{why} before answering `{method}`"))
        self._pending.clear()
        for future in self._own.values():
            if not future.done():
                future.set_result({"error": {"message": why}})
        self._own.clear()
        if code != 0:
            self._note(why)
        return 0  # the session ended; the client got errors, stderr says why

    async def _stop_server(self, server_task: asyncio.Task) -> int:
        server = self._server
        assert server is not None
        if server.stdin is not None and not server.stdin.is_closing():
            server.stdin.close()
        for signal_it, wait in ((None, 5.0), (server.terminate, 2.0), (server.kill, 2.0)):
            if signal_it is not None:
                try:
                    signal_it()
                except ProcessLookupError:
                    pass
            try:
                await asyncio.wait_for(asyncio.shield(server_task), wait)
                break
            except asyncio.TimeoutError:
                continue
        return 0

    # -- client -> server -----------------------------------------------------------------
    async def _from_client(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            why = err.msg.lower() if isinstance(err, json.JSONDecodeError) else "not UTF-8"
            self._to_client(_rpc_error(None, PARSE_ERROR, f"parse error: the proxy received invalid JSON ({why})"))
            return
        if isinstance(message, list):
            self._to_client(_rpc_error(None, INVALID_REQUEST, "invalid request: JSON-RPC batches are not supported"))
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            request_id = message.get("id") if isinstance(message, dict) else None
            self._to_client(_rpc_error(request_id, INVALID_REQUEST, 'invalid request: not a JSON-RPC 2.0 message (`"jsonrpc": "2.0"` missing)'))
            return
        method = message.get("method")
        has_id = "id" in message
        if method is None:
            if has_id and ("result" in message or "error" in message):
                ask = self._asks.pop(_key(message["id"]), None)
                if ask is not None:
                    if not ask.done():
                        ask.set_result(message)
                    return
                await self._to_server(line)  # the client answering the server
                return
            self._to_client(_rpc_error(message.get("id"), INVALID_REQUEST, "invalid request: neither a request, a notification nor a response"))
            return
        if not isinstance(method, str):
            self._to_client(_rpc_error(message.get("id"), INVALID_REQUEST, "invalid request: `method` must be a string"))
            return
        if not has_id:
            if method == "notifications/cancelled":
                params = message.get("params")
                gate = self._gates.pop(_key(params.get("requestId")), None) if isinstance(params, dict) else None
                if gate is not None:
                    gate.cancel()  # it was never forwarded: nothing to cancel upstream
                    return
            await self._to_server(line)
            return
        request_id = message["id"]
        if method == "initialize":
            self._note_client(message.get("params"))
        elif method == "tools/call":
            await self._gate(message, line)
            return
        elif method == "tools/list":
            self._tool_lists.add(_key(request_id))
        self._pending[_key(request_id)] = method
        await self._to_server(line)

    def _note_client(self, params) -> None:
        if not isinstance(params, dict):
            return
        capabilities = params.get("capabilities")
        elicitation = capabilities.get("elicitation") if isinstance(capabilities, dict) else None
        # `{}` means form mode (2025-06-18); later revisions list the modes.
        self.elicitation = isinstance(elicitation, dict) and (not elicitation or "form" in elicitation)
        info = params.get("clientInfo")
        if isinstance(info, dict) and isinstance(info.get("name"), str):
            self.client_name = info["name"]

    # -- the gate -------------------------------------------------------------------------
    def _request(self, name: str, arguments: dict) -> dict:
        tool = f"{self.prefix}.{name}" if self.prefix else name
        return {
            "principal": self.identity,
            "action": "call",
            "tool": tool,
            "args": arguments,
            "task": self.task,
            "context": {"tool_annotations": self.annotations.get(name, {})},
        }

    def evaluate(self, request: dict) -> Decision:
        """The decision for ``request``; annotations can only make it more restrictive."""
        claimed = request["context"]["tool_annotations"]
        decision = self.policies.evaluate(request)
        if not claimed:
            return decision
        bare = self.policies.evaluate({**request, "context": {**request["context"], "tool_annotations": {}}})
        if RESTRICTIVENESS[bare.effect] <= RESTRICTIVENESS[decision.effect]:
            if decision.effect == ALLOW and bare.credential_ttl is not None and (
                decision.credential_ttl is None or bare.credential_ttl < decision.credential_ttl
            ):
                return Decision(decision.effect, decision.rules, bare.credential_ttl, decision.errors, decision.reasons, decision.restricted_by)
            return decision
        note = (
            f"tool annotations from the server are never trusted to allow: "
            f"without them the decision is `{bare.effect}`"
        )
        return Decision(bare.effect, bare.rules, None, bare.errors, bare.reasons + (note,), bare.restricted_by)

    async def _gate(self, message: dict, line: bytes) -> None:
        request_id = message["id"]
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        arguments = params.get("arguments") if isinstance(params, dict) else None
        if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
            self._to_client(
                _rpc_error(request_id, INVALID_PARAMS, "invalid params: `tools/call` needs a string `name` and object `arguments`")
            )
            return
        if not self._tools_known:
            await self._list_tools()
        request = self._request(name, arguments or {})
        try:
            decision = self.evaluate(request)
        except RequestError as err:
            self._to_client(_rpc_error(request_id, INVALID_PARAMS, f"invalid params: {err.message}"))
            return
        if decision.effect == APPROVAL_REQUIRED and self.elicitation:
            key = _key(request_id)
            task = asyncio.create_task(self._ask_then_forward(request_id, request, decision, line))
            self._gates[key] = task
            task.add_done_callback(lambda _t, key=key: self._gates.pop(key, None))
            return
        decision = self._record(request, decision)
        await self._finish(request_id, request["tool"], decision, line)

    async def _finish(self, request_id, tool: str, decision: Decision, line: bytes, asked: bool = False) -> None:
        if decision.effect == ALLOW:
            self._pending[_key(request_id)] = "tools/call"
            await self._to_server(line)
            return
        reasons = "\n".join(f"- {r}" for r in decision.reasons)
        if decision.effect == APPROVAL_REQUIRED:
            if asked:
                head = f"approval for `{tool}` was not given; the call was not made"
            else:
                head = (
                    f"`{tool}` needs human approval, and this MCP client cannot be asked "
                    "(it did not declare the elicitation capability); the call was not made"
                )
        else:
            head = f"`{tool}` was denied by policy; the call was not made"
        self._to_client(_tool_error(request_id, f"{head}\n{reasons}" if reasons else head))

    async def _ask_then_forward(self, request_id, request: dict, gate: Decision, line: bytes) -> None:
        granted, extra = await self._ask(request, gate)
        approval = {"granted": granted, "by": f"mcp-client:{self.client_name}"}
        second = {**request, "approval": approval}
        decision = self.evaluate(second)
        if extra and decision.effect != ALLOW:
            decision = Decision(decision.effect, decision.rules, None, decision.errors, decision.reasons + (extra,), decision.restricted_by)
        decision = self._record(second, decision, approval, gate.rules)
        await self._finish(request_id, request["tool"], decision, line, asked=True)

    async def _ask(self, request: dict, gate: Decision) -> tuple[bool, str | None]:
        self._ask_seq += 1
        ask_id = f"nhipl-approval-{self._ask_seq}"
        shown = json.dumps(DEFAULT_REDACTOR.value(request["args"]), ensure_ascii=False)
        if len(shown) > 1000:
            shown = shown[:1000] + "..."
        why = "; ".join(gate.reasons)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._asks[_key(ask_id)] = future
        self._to_client(
            {
                "jsonrpc": "2.0",
                "id": ask_id,
                "method": "elicitation/create",
                "params": {
                    "message": (
                        f"Policy asks for your approval.\nAgent: {self.identity}\nTool: {request['tool']}\n"
                        f"Arguments: {shown}\nWhy: {why}\nApprove this call?"
                    ),
                    "requestedSchema": {
                        "type": "object",
                        "properties": {
                            "approve": {
                                "type": "boolean",
                                "title": "Approve",
                                "description": f"Let the agent call {request['tool']}",
                            }
                        },
                        "required": ["approve"],
                    },
                },
            }
        )
        try:
            answer = await asyncio.wait_for(future, self.approval_timeout)
        except asyncio.TimeoutError:
            self._asks.pop(_key(ask_id), None)
            return False, f"nobody answered the approval request within {self.approval_timeout:g}s"
        if "error" in answer:
            error = answer["error"]
            message = error.get("message") if isinstance(error, dict) else None
            return False, f"the client could not ask for approval: {message or 'error'}"
        result = answer.get("result")
        if not isinstance(result, dict):
            return False, "the client's answer to the approval request was not understood"
        content = result.get("content")
        action = result.get("action")
        granted = action == "accept" and isinstance(content, dict) and content.get("approve") is True
        if granted:
            return True, None
        return False, f"approval answer: {action if action in ('decline', 'cancel') else 'not approved'}"

    # -- server -> client -----------------------------------------------------------------
    async def _from_server(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._server_broke("the MCP server sent a line that is not JSON")
            return
        if isinstance(message, dict) and "id" in message and "method" not in message:
            key = _key(message.get("id"))
            own = self._own.pop(key, None)
            if own is not None:  # the answer to the proxy's own tools/list
                if not own.done():
                    own.set_result(message)
                return
            self._pending.pop(key, None)
            if key in self._tool_lists:
                self._tool_lists.discard(key)
                result = message.get("result")
                self._remember_tools(result)
                if isinstance(result, dict) and not isinstance(result.get("nextCursor"), str):
                    self._tools_known = True
        elif isinstance(message, dict) and message.get("method") == "notifications/tools/list_changed":
            self._tools_known = False
        self._to_client(line if line.endswith(b"\n") else line + b"\n")

    async def _list_tools(self) -> None:
        """Ask the server for its tools (every page) so that annotations are known even
        when the client calls a tool without listing first: a client must not escape an
        annotation-based gate by never asking."""
        cursor = None
        for _ in range(100):  # pages
            self._own_seq += 1
            own_id = f"nhipl-tools-{self._own_seq}"
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            self._own[_key(own_id)] = future
            message: dict = {"jsonrpc": "2.0", "id": own_id, "method": "tools/list"}
            if cursor is not None:
                message["params"] = {"cursor": cursor}
            await self._to_server(_encode(message))
            try:
                answer = await asyncio.wait_for(future, 10.0)
            except asyncio.TimeoutError:
                self._own.pop(_key(own_id), None)
                self._note("the MCP server did not list its tools within 10s; deciding without annotations")
                return
            result = answer.get("result")
            if not isinstance(result, dict):
                self._note("the MCP server refused to list its tools; deciding without annotations")
                return
            self._remember_tools(result)
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str):
                self._tools_known = True
                return

    def _remember_tools(self, result) -> None:
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                annotations = tool.get("annotations")
                self.annotations[tool["name"]] = dict(annotations) if isinstance(annotations, dict) else {}

    def _server_broke(self, why: str) -> None:
        self._note(why)
        for request_id, method in list(self._pending.items()):
            self._to_client(_rpc_error(json.loads(request_id), INTERNAL_ERROR, f"{why}; `{method}` cannot be answered"))
        self._pending.clear()
        self._tool_lists.clear()
        for future in self._own.values():
            if not future.done():
                future.set_result({"error": {"message": why}})
        self._own.clear()


def run_proxy(
    policies,
    identity: str,
    server_command: list[str],
    *,
    intent: str | None = None,
    prefix: str | None = None,
    log_path: str | None = None,
    log_fail_closed: bool = True,
    approval_timeout: float = 300.0,
) -> int:
    """Run the proxy on this process's stdin/stdout until the session ends; the exit code."""
    log = None
    if log_path is not None:
        log = DecisionLog(log_path, fail_closed=log_fail_closed, source="mcp-proxy")
        log.open()
    proxy = McpProxy(
        policies,
        identity,
        server_command,
        intent=intent,
        prefix=prefix,
        decision_log=log,
        approval_timeout=approval_timeout,
    )
    try:
        return asyncio.run(proxy.run())
    finally:
        if log is not None:
            log.close()
        sys.stdout.flush()
