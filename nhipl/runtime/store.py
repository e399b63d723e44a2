"""Where a runtime keeps what other processes must see: credentials, revocations, keys.

``memory`` (the default) serves one process. ``redis://host:port/db`` serves every process
and machine that names the same Redis database: a credential revoked through one is
refused by every other at its next :meth:`~nhipl.runtime.Runtime.verify`, which reads the
store each time. Every Redis key expires with what it holds (a credential's record and its
revocation at the credential's expiry, a signing key when the last credential it signed
expires), so a store never grows without bound.

Task sessions themselves (instruction, outputs, approvals, history) live in the process
that runs the task.
"""

from __future__ import annotations

import json
import math
import threading
import time
from abc import ABC, abstractmethod

from ..errors import NhiplError

PREFIX = "nhipl:"


class StoreError(NhiplError):
    """The store could not be read or written (enforcement fails closed)."""


class Store(ABC):
    """The interface both stores implement. Records are plain JSON dicts."""

    @abstractmethod
    def add_credential(self, record: dict) -> None:
        """Keep ``record`` (``jti``, ``exp``, ``task``, ``request``, ...) until ``exp``."""

    @abstractmethod
    def credential(self, jti: str) -> dict | None:
        """The record kept for ``jti``, or None once it has expired (or was never kept)."""

    @abstractmethod
    def revoke(self, jti: str, exp: float, reason: str) -> bool:
        """Mark ``jti`` revoked until ``exp``; False when it already was."""

    @abstractmethod
    def revoked(self, jti: str) -> str | None:
        """The reason ``jti`` was revoked, or None."""

    @abstractmethod
    def task_credentials(self, task: str) -> list[str]:
        """The ids of the credentials issued for ``task`` that the store still holds."""

    @abstractmethod
    def live_credentials(self, now: float) -> list[dict]:
        """Every unexpired credential record, revoked or not."""

    @abstractmethod
    def add_key(self, kid: str, jwk: dict, exp: float) -> None:
        """Publish a public key until at least ``exp``."""

    @abstractmethod
    def keys(self) -> list[dict]:
        """Every public key still published (JWKs), for verifiers and ``jwks()``."""

    def close(self) -> None:
        pass


class MemoryStore(Store):
    """The one-process store: dictionaries, pruned of expired entries as they are read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credentials: dict[str, dict] = {}
        self._revoked: dict[str, tuple[str, float]] = {}
        self._tasks: dict[str, list[str]] = {}
        self._keys: dict[str, tuple[dict, float]] = {}

    def __repr__(self) -> str:
        return "<MemoryStore>"

    def add_credential(self, record: dict) -> None:
        with self._lock:
            if len(self._credentials) % 1024 == 1023:
                self._prune(time.time())
            self._credentials[record["jti"]] = record
            task = record.get("task")
            if task is not None:
                self._tasks.setdefault(task, []).append(record["jti"])

    def credential(self, jti: str) -> dict | None:
        return self._credentials.get(jti)

    def revoke(self, jti: str, exp: float, reason: str) -> bool:
        with self._lock:
            if jti in self._revoked:
                return False
            self._revoked[jti] = (reason, exp)
            return True

    def revoked(self, jti: str) -> str | None:
        entry = self._revoked.get(jti)
        return entry[0] if entry is not None else None

    def task_credentials(self, task: str) -> list[str]:
        return list(self._tasks.get(task, ()))

    def live_credentials(self, now: float) -> list[dict]:
        with self._lock:
            self._prune(now)
            return list(self._credentials.values())

    def _prune(self, now: float) -> None:
        gone = [jti for jti, record in self._credentials.items() if record["exp"] <= now]
        for jti in gone:
            record = self._credentials.pop(jti)
            self._revoked.pop(jti, None)
            task = record.get("task")
            if task is not None and task in self._tasks:
                remaining = [j for j in self._tasks[task] if j != jti]
                if remaining:
                    self._tasks[task] = remaining
                else:
                    del self._tasks[task]

    def add_key(self, kid: str, jwk: dict, exp: float) -> None:
        with self._lock:
            old = self._keys.get(kid)
            self._keys[kid] = (jwk, max(exp, old[1]) if old else exp)

    def keys(self) -> list[dict]:
        now = time.time()
        return [jwk for jwk, exp in self._keys.values() if exp > now]


class RedisStore(Store):
    """A store in Redis (the ``redis`` client package). ``url``: ``redis://host:port/db``."""

    def __init__(self, url: str, *, timeout: float = 2.0):
        try:
            import redis
        except ImportError:
            raise StoreError(f"`{url}`: the redis store needs the redis client (pip install 'nhipl[redis]')") from None
        self.url = url
        self._errors = (redis.exceptions.RedisError, OSError)
        try:
            self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        except (ValueError, *self._errors) as err:
            raise StoreError(f"`{url}`: {err}") from None

    def __repr__(self) -> str:
        return f"<RedisStore {self.url}>"

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except self._errors as err:
            raise StoreError(f"the credential store `{self.url}` failed: {err}") from None

    def ping(self) -> None:
        self._call(self._redis.ping)

    def add_credential(self, record: dict) -> None:
        jti, exp = record["jti"], _at(record["exp"])
        pipe = self._redis.pipeline()
        pipe.set(PREFIX + "cred:" + jti, json.dumps(record, separators=(",", ":")), exat=exp)
        pipe.zadd(PREFIX + "live", {jti: record["exp"]})
        pipe.expireat(PREFIX + "live", exp, gt=True)
        pipe.expireat(PREFIX + "live", exp, nx=True)
        task = record.get("task")
        if task is not None:
            key = PREFIX + "task:" + task
            pipe.sadd(key, jti)
            pipe.expireat(key, exp, gt=True)
            pipe.expireat(key, exp, nx=True)
        self._call(pipe.execute)

    def credential(self, jti: str) -> dict | None:
        raw = self._call(self._redis.get, PREFIX + "cred:" + jti)
        return json.loads(raw) if raw is not None else None

    def revoke(self, jti: str, exp: float, reason: str) -> bool:
        at = max(_at(exp), int(time.time()) + 1)
        return bool(self._call(lambda: self._redis.set(PREFIX + "revoked:" + jti, reason, exat=at, nx=True)))

    def revoked(self, jti: str) -> str | None:
        raw = self._call(self._redis.get, PREFIX + "revoked:" + jti)
        return raw.decode("utf-8", "replace") if raw is not None else None

    def task_credentials(self, task: str) -> list[str]:
        return sorted(j.decode() for j in self._call(self._redis.smembers, PREFIX + "task:" + task))

    def live_credentials(self, now: float) -> list[dict]:
        self._call(self._redis.zremrangebyscore, PREFIX + "live", "-inf", now)
        jtis = self._call(self._redis.zrange, PREFIX + "live", 0, -1)
        if not jtis:
            return []
        raws = self._call(self._redis.mget, [PREFIX + "cred:" + j.decode() for j in jtis])
        return [json.loads(raw) for raw in raws if raw is not None]

    def add_key(self, kid: str, jwk: dict, exp: float) -> None:
        at = _at(exp)
        pipe = self._redis.pipeline()
        pipe.set(PREFIX + "key:" + kid, json.dumps(jwk, separators=(",", ":")), exat=at, nx=True)
        pipe.expireat(PREFIX + "key:" + kid, at, gt=True)
        pipe.zadd(PREFIX + "keys", {kid: exp}, gt=True)
        pipe.expireat(PREFIX + "keys", at, gt=True)
        pipe.expireat(PREFIX + "keys", at, nx=True)
        self._call(pipe.execute)

    def keys(self) -> list[dict]:
        self._call(self._redis.zremrangebyscore, PREFIX + "keys", "-inf", time.time())
        kids = self._call(self._redis.zrange, PREFIX + "keys", 0, -1)
        if not kids:
            return []
        raws = self._call(self._redis.mget, [PREFIX + "key:" + k.decode() for k in kids])
        return [json.loads(raw) for raw in raws if raw is not None]

    def close(self) -> None:
        try:
            self._redis.close()
        except self._errors:
            pass


def _at(exp: float) -> int:
    """An expiry for Redis: whole seconds, never earlier than ``exp``."""
    return int(math.ceil(exp))


def open_store(store: "Store | str | None") -> Store:
    """``"memory"`` (or None), a ``redis://`` URL, or a :class:`Store` as it is."""
    if store is None or store == "memory":
        return MemoryStore()
    if isinstance(store, Store):
        return store
    if isinstance(store, str) and store.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(store)
    raise StoreError(f"unknown store `{store}`: use \"memory\" or a redis:// URL")
