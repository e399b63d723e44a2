"""The MCP proxy's relay: the server process, the pipes and the timers.

``nhipl mcp-proxy`` sits between an MCP client (our stdin/stdout) and an MCP server (a
child process) and speaks newline-delimited JSON-RPC both ways. Every line goes through
the :class:`~nhipl.runtime.gate.Gate`, which decides what to send where (reading lines
with :mod:`nhipl.runtime.jsonrpc`); this module only moves bytes, runs the timers the gate
asks for, and ends the session:

- a thread reads the client's lines (stdin may be a pipe, a file or a terminal); asyncio
  reads the server's, at most 64 MiB a line;
- when the client's input ends, the server's stdin is closed and the server gets 5 s to
  exit, then is terminated, then killed; when the server exits, every request it had not
  answered gets an error naming its exit code, and the proxy exits;
- the exit code is 0 whichever side ended the session; a server that failed is named on
  stderr.

It needs only the standard library (not the MCP SDK).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any, BinaryIO

from ..errors import NhiplError
from . import jsonrpc
from .errors import DecisionLogError
from .gate import CLIENT, Gate, Note, Send, Timer, _Distrusting
from .log import DecisionLog
from .resource import ResourceTemplate


class ProxyError(NhiplError):
    """The proxy could not start (e.g. the server command does not exist); ``option`` names
    the command-line option at fault, when one is."""

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


class McpProxy:
    """The relay for one session around a :class:`Gate`. ``run()`` returns the exit code:
    0 whether the client or the server ended the session; a server that failed is
    reported on stderr and to every request it left unanswered."""

    def __init__(
        self,
        gate: Gate,
        server_command: list[str],
        *,
        client_in: BinaryIO | None = None,
        client_out: BinaryIO | None = None,
        errors: Any = None,
    ):
        if not server_command:
            raise ProxyError("no MCP server command given")
        self.gate = gate
        self.server_command = list(server_command)
        self._in = client_in if client_in is not None else sys.stdin.buffer
        self._out = client_out if client_out is not None else sys.stdout.buffer
        self._err = errors if errors is not None else sys.stderr
        self._server: asyncio.subprocess.Process | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # -- carrying out the gate's actions ----------------------------------------------------
    def _note(self, message: str) -> None:
        print(f"nhipl mcp-proxy: {message}", file=self._err, flush=True)

    async def _act(self, actions: list) -> None:
        for action in actions:
            if action.__class__ is Send:
                try:
                    data = jsonrpc.encode(action.message)
                except (UnicodeEncodeError, ValueError, TypeError, RecursionError) as err:
                    self._note(f"a message could not be encoded and was dropped ({type(err).__name__})")
                    continue
                if action.to == CLIENT:
                    self._to_client(data)
                else:
                    await self._to_server(data)
            elif action.__class__ is Timer:
                old = self._timers.pop(action.key, None)
                if old is not None:
                    old.cancel()
                loop = asyncio.get_running_loop()
                self._timers[action.key] = loop.call_later(action.seconds, self._expire, action.key)
            elif action.__class__ is Note:
                self._note(action.text)

    def _expire(self, key: str) -> None:
        self._timers.pop(key, None)
        asyncio.ensure_future(self._act(self.gate.expire(key)))

    def _to_client(self, data: bytes) -> None:
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
            server.stdin.write(data)
            await server.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server died; its stdout's end reports it

    def _start_task(self) -> None:
        try:
            self.gate.session()
        except DecisionLogError as err:
            self._note(f"task_start not logged: {err}")

    def _end_task(self) -> None:
        try:
            self.gate.close()
        except DecisionLogError as err:
            self._note(f"task_end not logged: {err}")

    # -- run --------------------------------------------------------------------------------
    async def run(self) -> int:
        try:
            self._server = await asyncio.create_subprocess_exec(
                *self.server_command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=jsonrpc.LINE_LIMIT,
            )
        except FileNotFoundError:
            raise ProxyError(f"cannot start the MCP server `{self.server_command[0]}`: no such file") from None
        except PermissionError:
            raise ProxyError(f"cannot start the MCP server `{self.server_command[0]}`: permission denied") from None
        self._start_task()
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue = asyncio.Queue()
        threading.Thread(target=self._read_client, args=(loop, lines), daemon=True, name="nhipl-mcp-stdin").start()
        client = asyncio.create_task(self._client_loop(lines))
        server = asyncio.create_task(self._server_loop())
        done, _ = await asyncio.wait({client, server}, return_when=asyncio.FIRST_COMPLETED)
        if server in done:
            server.result()
            client.cancel()
        else:
            client.result()
            await self._stop_server(server)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._end_task()
        return 0

    def _read_client(self, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue) -> None:
        # A thread, so that stdin may be a pipe, a file or a terminal alike. It reads the
        # raw descriptor: a daemon thread blocked inside a buffered reader would stop the
        # interpreter from shutting down cleanly. A line longer than the limit is cut off
        # and handed on as too long (the gate refuses it), never kept growing.
        fd = self._in.fileno()
        pending = bytearray()
        skipping = False
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
                        if skipping:
                            skipping = False
                            continue
                        loop.call_soon_threadsafe(lines.put_nowait, line + b"\n")
                    del pending[: cut + 1]
                if len(pending) > jsonrpc.LINE_LIMIT:
                    if not skipping:
                        loop.call_soon_threadsafe(lines.put_nowait, bytes(pending[: jsonrpc.LINE_LIMIT + 1]))
                    skipping = True
                    pending.clear()
        except (OSError, RuntimeError):
            pass
        try:
            if pending and not skipping:
                loop.call_soon_threadsafe(lines.put_nowait, bytes(pending))
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:
            pass  # the loop is already closed

    async def _client_loop(self, lines: asyncio.Queue) -> None:
        while True:
            line = await lines.get()
            if line is None:
                return
            await self._act(self.gate.from_client(line))

    async def _server_loop(self) -> None:
        server = self._server
        assert server is not None and server.stdout is not None
        while True:
            try:
                line = await server.stdout.readline()
            except ValueError:  # longer than the limit
                await self._act(self.gate.server_broke("the MCP server sent a line longer than 64 MiB"))
                continue
            if not line:
                break
            await self._act(self.gate.from_server(line))
        code = await server.wait()
        why = f"the MCP server exited (code {code})" if code >= 0 else f"the MCP server was killed (signal {-code})"
        await self._act(self.gate.server_ended(why))
        if code != 0:
            self._note(why)

    async def _stop_server(self, server_task: asyncio.Task) -> None:
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


def run_proxy(
    policies,
    identity: str,
    server_command: list[str],
    *,
    intent: str | None = None,
    prefix: str | None = None,
    resource: str | None = None,
    log_path: str | None = None,
    log_fail_closed: bool = True,
    approval_timeout: float = 300.0,
    prompt: str | None = None,
    store: str = "memory",
    key: str | None = None,
) -> int:
    """Run the proxy on this process's stdin/stdout until the session ends; the exit code.

    The session is one runtime task (``intent``, ``prompt``: the user's instruction) in a
    runtime with ``store`` and the signing ``key`` (a path; None: one made for this process)."""
    from .session import Runtime

    template = ResourceTemplate(resource) if resource is not None else None
    log = None
    if log_path is not None:
        log = DecisionLog(log_path, fail_closed=log_fail_closed, source="mcp-proxy")
        log.open()
    gate = Gate(
        policies,
        identity,
        intent=intent,
        prefix=prefix,
        resource=template,
        decision_log=log,
        approval_timeout=approval_timeout,
        prompt=prompt,
    )
    try:
        gate.runtime = Runtime(_Distrusting(gate), store=store, log=log, key=key, source="mcp-proxy")
    except NhiplError as err:
        raise ProxyError(str(err), "--key" if key is not None and "key" in str(err) else "--store") from None
    proxy = McpProxy(gate, server_command)
    try:
        return asyncio.run(proxy.run())
    finally:
        if log is not None:
            log.close()
        sys.stdout.flush()
