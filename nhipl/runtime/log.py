"""Decision logs: one JSON line per decision, safe to append from many threads and processes.
``nhipl import decisions`` (:mod:`nhipl.simulator.importers.decisions`) reads them as traces.

Every record has ``v`` (format version, 1), ``event``, ``t`` (seconds since the epoch),
``time`` (the same instant, ISO 8601 UTC), ``source`` (``guard`` or ``mcp-proxy``) and
``pid``. ``event`` is one of:

``decision``
    ``id``, ``agent``, ``action``, ``tool``, ``resource``?, ``task`` ({id, intent}, or
    null), ``delegation`` (the chain, originator first), ``args`` and ``context``
    (redacted), ``effect``, ``rules``, ``reasons``, ``errors`` ([{rule, message}]),
    ``credential_ttl``, ``restricted_by``; when a human was asked, ``approval``
    ({granted, by}) and ``approval_rules`` (the gates that asked).
``task_start`` / ``task_end``
    ``task`` ({id, intent}), ``agent``.

Appending: the complete line is written with one ``os.write`` on an ``O_APPEND`` file
descriptor while holding a thread lock and an exclusive ``flock`` on the file, and the
timestamp is taken under that lock, so lines never interleave, none is lost, and the
file is in time order even with many writing processes. A write that fails part-way is
truncated back so no broken line is left behind. Before each write the path is checked
against the open file (device and inode): when the log was renamed or deleted (rotation),
it is opened again at its path, so no record goes to a file nobody reads; if it cannot be
opened, the write fails (and enforcement points fail closed).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import weakref
from typing import Iterable

from .errors import DecisionLogError
from .redact import DEFAULT_REDACTOR, Redactor

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the thread lock and O_APPEND remain
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = 1

# One encoder for every line: `json.dumps` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

_OPEN_LOGS: "weakref.WeakSet[DecisionLog]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child,
    # and the inherited descriptor shares its flock with the parent: start afresh.
    for log in list(_OPEN_LOGS):
        log._lock = threading.Lock()
        log._fd = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_last_second: tuple[int, str] = (-1, "")


def _iso(t: float) -> str:
    global _last_second
    second = int(t)
    micros = min(int((t - second) * 1_000_000), 999_999)
    cached = _last_second  # one read: another thread may replace it meanwhile
    if cached[0] != second:
        cached = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{micros:06d}Z"


class DecisionLog:
    """An append-only JSON-lines decision log at ``path``.

    ``redactor`` removes secrets from arguments and context (and any token-like text from
    every other string). ``fail_closed`` (default) tells enforcement points to deny when
    the log cannot be written; with ``False`` they log a warning and carry on. ``fsync``
    forces each line to disk (slower).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        redactor: Redactor | None = None,
        fail_closed: bool = True,
        fsync: bool = False,
        source: str = "guard",
    ):
        self.path = os.fspath(path)
        self.redactor = redactor if redactor is not None else DEFAULT_REDACTOR
        self.fail_closed = fail_closed
        self.fsync = fsync
        self.source = source
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = os.getpid()
        self._seq = itertools.count(1)
        self._last_task: tuple | None = None
        _OPEN_LOGS.add(self)

    def __repr__(self) -> str:
        return f"<DecisionLog {self.path!r}>"

    def __enter__(self) -> "DecisionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def open(self) -> None:
        """Open (or create) the file now, so a bad path is reported before the first call."""
        with self._lock:
            self._descriptor()

    # -- records -------------------------------------------------------------------------
    def next_id(self) -> str:
        # next() on a count is atomic under the GIL: no two threads get the same id.
        return f"{os.getpid():x}-{id(self) & 0xFFFF:04x}-{next(self._seq)}"

    def record_decision(
        self,
        request: dict,
        decision,
        *,
        source: str | None = None,
        approval: dict | None = None,
        approval_rules: Iterable[str] = (),
        call_id: str | None = None,
    ) -> None:
        """Append one ``decision`` record for ``request`` (a request dict)."""
        text = self.redactor.text
        principal = request.get("principal")
        agent = principal.get("id") if isinstance(principal, dict) else principal
        task = request.get("task")
        delegation = request.get("delegation") or {}
        body: dict = {
            "v": FORMAT_VERSION,
            "event": "decision",
            "source": source or self.source,
            "pid": os.getpid(),
            "id": call_id or self.next_id(),
            "agent": text(str(agent)),
            "action": request.get("action") or "call",
            "tool": text(str(request.get("tool"))),
        }
        resource = request.get("resource")
        if resource is not None:
            body["resource"] = text(str(resource))
        body["task"] = self._task(task) if isinstance(task, dict) else None
        body["delegation"] = [text(c) if c.__class__ is str else text(str(c)) for c in (delegation.get("chain") or ())]
        body["args"] = self.redactor.value(request.get("args") or {})
        context = request.get("context")
        if context:
            body["context"] = self.redactor.value(context)
        body["effect"] = decision.effect
        body["rules"] = list(decision.rules)
        body["reasons"] = [text(r) for r in decision.reasons]
        body["errors"] = [{"rule": e.rule, "message": text(e.message)} for e in decision.errors]
        body["credential_ttl"] = decision.credential_ttl
        body["restricted_by"] = decision.restricted_by
        if approval is not None:
            body["approval"] = {
                "granted": approval.get("granted") is True,
                "by": text(str(approval["by"])) if approval.get("by") is not None else None,
            }
            body["approval_rules"] = list(approval_rules)
        self.append(body)

    def _task(self, task: dict) -> dict:
        # A task's dict is the same object for all its calls: redact it once.
        cached = self._last_task
        if cached is not None and cached[0] is task and cached[1] == task:
            return cached[2]
        text = self.redactor.text
        out = {k: text(str(task[k])) for k in ("id", "intent", "owner") if task.get(k) is not None}
        self._last_task = (task, dict(task), out)
        return out

    def record_task(self, event: str, task: dict, agent: str, *, source: str | None = None) -> None:
        """Append a ``task_start`` or ``task_end`` record."""
        text = self.redactor.text
        self.append(
            {
                "v": FORMAT_VERSION,
                "event": event,
                "source": source or self.source,
                "pid": os.getpid(),
                "agent": text(str(agent)),
                "task": {k: text(str(task[k])) for k in ("id", "intent", "owner") if task.get(k) is not None},
            }
        )

    # -- appending ------------------------------------------------------------------------
    def append(self, body: dict, t: float | None = None) -> None:
        """Write ``body`` as one line, stamped with ``t`` and ``time`` under the lock
        (``t``: the instant the event happened; default, the time of writing).

        ``body`` must already be redacted and JSON-safe. Raises :class:`DecisionLogError`."""
        try:
            rest = _ENCODER.encode(body)
        except (TypeError, ValueError) as err:
            raise DecisionLogError(self.path, f"record is not JSON: {err}") from None
        with self._lock:
            fd = self._descriptor()
            if fcntl is not None:
                self._flock(fd, fcntl.LOCK_EX)
            if self._moved(fd):
                # Renamed or deleted (log rotation): write to a file at the path again,
                # never into a file nobody will read.
                if fcntl is not None:
                    self._flock(fd, fcntl.LOCK_UN)
                fd = self._descriptor(reopen=True)
                if fcntl is not None:
                    self._flock(fd, fcntl.LOCK_EX)
            try:
                if t is None:
                    t = time.time()
                # "replace": a lone surrogate from a Python caller becomes `?`, never a crash.
                line = f'{{"t":{t!r},"time":"{_iso(t)}",{rest[1:]}\n'.encode("utf-8", "replace")
                self._write_line(fd, line)
            finally:
                if fcntl is not None:
                    self._flock(fd, fcntl.LOCK_UN)

    def _descriptor(self, reopen: bool = False) -> int:
        pid = os.getpid()
        if self._fd is not None and self._pid == pid and not reopen:
            return self._fd
        if self._fd is not None and self._pid == pid:
            os.close(self._fd)
        self._fd = None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.path, flags, 0o600)
        except OSError as err:
            raise DecisionLogError(self.path, f"cannot open the decision log: {_why(err)}") from None
        self._pid = pid
        return self._fd

    def _moved(self, fd: int) -> bool:
        """Whether the path no longer names the open file (renamed, deleted, replaced)."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return True
        except OSError:
            return False  # e.g. a device such as /dev/full: keep the descriptor
        opened = os.fstat(fd)
        return (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino)

    def _flock(self, fd: int, op: int) -> None:
        try:
            fcntl.flock(fd, op)
        except OSError as err:
            raise DecisionLogError(self.path, f"cannot lock the decision log: {_why(err)}") from None

    def _write_line(self, fd: int, line: bytes) -> None:
        done = 0
        try:
            while done < len(line):
                done += os.write(fd, line[done:])
            if self.fsync:
                os.fsync(fd)
        except OSError as err:
            if done:
                # Leave no broken line: cut back what this call wrote (we hold the lock).
                try:
                    os.ftruncate(fd, os.fstat(fd).st_size - done)
                except OSError:
                    pass
            raise DecisionLogError(self.path, f"cannot write the decision log: {_why(err)}") from None


def failed_closed(decision, err: DecisionLogError):
    """The decision to enforce when ``decision`` could not be logged: a deny that says so."""
    from ..decision import DENY, Decision

    return Decision(
        DENY, (), None, decision.errors, (f"the decision log could not be written ({err.message}); failing closed",)
    )


def _why(err: OSError) -> str:
    return (err.strerror or str(err)).lower()


def open_log(log, *, source: str = "guard") -> DecisionLog | None:
    """``log`` as a :class:`DecisionLog`: None stays None, a path opens one."""
    if log is None or isinstance(log, DecisionLog):
        return log
    if isinstance(log, (str, os.PathLike)):
        return DecisionLog(log, source=source)
    raise TypeError(f"decision_log must be a path or a DecisionLog, not {type(log).__name__}")
