"""Running the decision service: bind, load, serve with uvicorn; several worker processes on
one listening socket when asked; signals (``SIGHUP`` reloads, ``SIGTERM``/``SIGINT`` drain
in-flight requests and stop)."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass

from ..errors import NhiplError
from .app import App
from .policyset import PolicySet, ReloadError

GRACE = 30  # seconds SIGTERM waits for in-flight requests
_QUICK_FAILURES = 5


class ServeError(Exception):
    """A reason the service cannot start; ``option`` names the command-line option at fault."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option
        self.message = message


@dataclass
class Options:
    paths: list[str]
    host: str = "127.0.0.1"
    port: int = 8181
    token: str | None = None
    log_path: str | None = None
    workers: int = 1
    watch: float = 1.0
    store: str = "memory"  # the runtime's store: "memory" or "redis://host:port/db"
    key_path: str | None = None  # the credentials' signing key (None: one made per process)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (IPv6 when ``host`` is an IPv6 address)."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ServeError("--host", f"cannot resolve `{host}`: {err.strerror}") from None
    family, kind, proto, _, address = infos[0]
    # the protocol matters: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    # that say IPPROTO_TCP, and without that a response written in two parts waits ~40 ms
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise ServeError("--port", f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _exit_quietly(signum, frame):
    raise SystemExit(0)


def run_worker(options: Options, sock: socket.socket, policyset: PolicySet | None = None, *, supervised: bool = False) -> None:
    """Serve on ``sock`` in this process until SIGTERM or SIGINT (then drain and return)."""
    import uvicorn

    early_hup = threading.Event()  # a SIGHUP before the app listens for it: reload once it does
    signal.signal(signal.SIGHUP, lambda signum, frame: early_hup.set())
    # uvicorn drains on these, then re-raises them: make that a clean exit
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, _exit_quietly)
    if policyset is None:
        policyset = PolicySet(options.paths)
    log = None
    if options.log_path is not None:
        from ..runtime.log import DecisionLog

        log = DecisionLog(options.log_path, source="serve")
        log.open()
    parent = os.getppid()
    on_reload = (lambda: os.kill(parent, signal.SIGHUP)) if supervised else None
    if options.workers > 1 and not shares_sessions(options.store):
        runtime, no_runtime = None, UNSHARED  # each worker would hold tasks the others never see
    else:
        runtime, no_runtime = make_runtime(options, policyset.current.policies, log), ""
    app = App(policyset, token=options.token, log=log, watch=options.watch, on_reload=on_reload, early_hup=early_hup, runtime=runtime,
              no_runtime=no_runtime)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http="httptools",
        # the standard loop: uvloop gave more requests a second under some loads, but under
        # 64 connections of CPU-bound batches it left some connections waiting seconds (p99
        # 3 s against 0.5 s); see benchmarks/serve.py --stacks
        loop="asyncio",
        server_header=False,
        timeout_graceful_shutdown=GRACE,
        backlog=2048,
    )
    uvicorn.Server(config).run(sockets=[sock])


UNSHARED = (
    "task sessions and credentials are not served by several workers on the `memory` store (each worker would hold "
    "its own tasks and keys); restart with `--store redis://HOST:PORT/DB` to share them, or with `--workers 1`"
)


def shares_sessions(store: str) -> bool:
    """Whether the store ``store`` names keeps task sessions for every process (Redis)."""
    return store not in (None, "memory")


def make_runtime(options: Options, policies, log=None):
    """The runtime that keeps the task sessions: its store, its log (the decision log the
    service writes), its signing key."""
    from ..runtime.session import Runtime

    return Runtime(policies, store=options.store, log=log, key=options.key_path, source="serve")


def serve(options: Options) -> int:
    """Bind, load and serve; returns the exit code. Raises :class:`ServeError` or
    ``nhipl.PolicyError`` before serving when it cannot start."""
    try:
        policyset = PolicySet(options.paths)  # a bad policy set stops here, before binding
    except ReloadError as err:
        raise ServeError(options.paths[0] if options.paths else "-p", err.message) from None
    if options.log_path is not None:
        from ..runtime.log import DecisionLog

        try:
            DecisionLog(options.log_path, source="serve").open()
        except Exception as err:
            raise ServeError("--log", str(err)) from None
    try:
        make_runtime(options, policyset.current.policies).close()  # a bad store or key stops here
    except NhiplError as err:
        raise ServeError("--key" if options.key_path is not None and "key" in str(err) else "--store", str(err)) from None
    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"nhipl serve: listening on http://{shown}:{port} (policy version {policyset.current.version}, "
        f"{options.workers} worker{'s' if options.workers != 1 else ''})",
        file=sys.stderr,
        flush=True,
    )
    if options.workers > 1 and not shares_sessions(options.store):
        print(f"nhipl serve: {UNSHARED}", file=sys.stderr, flush=True)
    if options.workers <= 1:
        run_worker(options, sock, policyset)
        return 0
    return _supervise(options, sock)


def _supervise(options: Options, sock: socket.socket) -> int:
    """Fork ``options.workers`` workers on ``sock``; forward SIGHUP (reload) and SIGTERM or
    SIGINT (drain and stop) to them; restart a worker that dies on its own."""
    children: dict[int, float] = {}
    stopping = False
    quick_failures = 0

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # not the parent's forwarder; a SIGHUP before the worker loads is moot (it
                # loads the files as they are then)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                run_worker(options, sock, supervised=True)
            except SystemExit as err:
                code = err.code if isinstance(err.code, int) else 1
            except BaseException as err:  # a worker must never print a traceback
                print(f"nhipl serve: worker {os.getpid()} failed: {err}", file=sys.stderr, flush=True)
                code = 2
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = time.monotonic()

    def forward(sig: int) -> None:
        for pid in list(children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def on_stop(signum, frame):
        nonlocal stopping
        stopping = True
        forward(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, lambda signum, frame: forward(signal.SIGHUP))
    for _ in range(options.workers):
        spawn()
    code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = children.pop(pid, None)
        if started is None or stopping:
            continue
        quick_failures = quick_failures + 1 if time.monotonic() - started < 2 else 0
        print(f"nhipl serve: worker {pid} exited ({_describe(status)}); starting another", file=sys.stderr, flush=True)
        if quick_failures >= _QUICK_FAILURES:
            print("nhipl serve: workers keep failing at start; stopping", file=sys.stderr, flush=True)
            stopping = True
            forward(signal.SIGTERM)
            code = 1
            continue
        time.sleep(0.2 * quick_failures)
        spawn()
    sock.close()
    return code


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}"
