"""The served policy set: loaded once, swapped atomically on reload.

A :class:`Snapshot` is one loaded set and its version (a digest of the policy files' text).
A request reads :attr:`PolicySet.current` once and is decided wholly by that snapshot; a
reload builds a new snapshot aside and replaces the reference in one assignment, so no
request ever sees half of one set and half of another. A reload that fails keeps the old
snapshot and remembers the error.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass

from .. import NhiplError, load

_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Snapshot:
    policies: object  # nhipl.Policies
    version: str
    loaded_at: float


class ReloadError(Exception):
    """A policy set that did not load; ``cause`` is the load error itself when there is one."""

    def __init__(self, message: str, cause: Exception | None = None):
        super().__init__(message)
        self.message = message
        self.cause = cause


def policy_files(paths: list[str]) -> list[str]:
    """The files whose text makes up the set: each file given, and every ``*.nhipl`` under
    each folder given (imports that live elsewhere are not included)."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(".nhipl"))
        else:
            files.append(path)
    return files


def _digest(files: list[str]) -> str:
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode("utf-8", "surrogateescape") + b"\0")
        try:
            with open(name, "rb") as f:
                h.update(f.read())
        except OSError as err:
            h.update(f"unreadable: {err.strerror}".encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def stamp(paths: list[str]) -> tuple:
    """A cheap signature of the files' state (names, sizes, modification times)."""
    out = []
    for name in policy_files(paths):
        try:
            st = os.stat(name)
            out.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((name, -1, -1))
    return tuple(out)


def build(paths: list[str]) -> Snapshot:
    """Load ``paths`` into a snapshot, or raise :class:`ReloadError`.

    The version is the digest of the files read before and after loading; when they differ
    (a file changed while it was being loaded), loading is tried again."""
    for _ in range(_ATTEMPTS):
        before = _digest(policy_files(paths))
        try:
            policies = load(list(paths))
        except NhiplError as err:
            raise ReloadError(str(err), err) from None
        except (OSError, RecursionError, ValueError) as err:
            raise ReloadError(f"cannot load the policies: {err}") from None
        if _digest(policy_files(paths)) == before:
            return Snapshot(policies, before, time.time())
    raise ReloadError("the policy files kept changing while they were loaded")


class PolicySet:
    """The current snapshot of ``paths`` and the outcome of the last reload."""

    def __init__(self, paths: list[str]):
        self.paths = list(paths)
        try:
            self.current: Snapshot = build(self.paths)
        except ReloadError as err:  # a load error at start is the caller's, as it came
            if err.cause is not None:
                raise err.cause from None
            raise
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.reloads_ok = 0
        self.reloads_failed = 0
        self._stamp = stamp(self.paths)
        self._lock = threading.Lock()

    def reload(self) -> tuple[bool, str]:
        """Load the files again and swap them in. Returns ``(ok, message)``; on failure the
        old snapshot stays and ``last_error`` says why."""
        with self._lock:  # one reload at a time; requests never wait on it
            seen = stamp(self.paths)
            try:
                snap = build(self.paths)
            except ReloadError as err:
                self._stamp = seen
                self.reloads_failed += 1
                self.last_error, self.last_error_at = err.message, time.time()
                return False, err.message
            self._stamp = seen
            self.current = snap
            self.reloads_ok += 1
            self.last_error = self.last_error_at = None
            return True, snap.version

    def changed(self) -> bool:
        """Whether the files look different from when they were last loaded."""
        return stamp(self.paths) != self._stamp
