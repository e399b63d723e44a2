"""Where a runtime keeps what other processes must see: credentials, revocations, keys and
(with Redis) task sessions.

``memory`` (the default) serves one process. ``redis://host:port/db`` serves every process
and machine that names the same Redis database: a credential revoked through one is
refused by every other at its next :meth:`~nhipl.runtime.Runtime.verify`, which reads the
store each time. Every Redis key expires with what it holds (a credential's record and its
revocation at the credential's expiry, a signing key when the last credential it signed
expires), so a store never grows without bound.

Task sessions: with ``memory`` a task lives in the process that started it. With Redis a
task's session is shared too: every process that names the store can continue a task any
other started (:mod:`nhipl.runtime.session` keeps each task as an append-only list of the
changes made to it, under a per-task lock). A session's keys expire after
:data:`SESSION_IDLE` seconds without a change, and :data:`SESSION_ENDED` seconds after the
task ended; the store holds at most :data:`MAX_SESSIONS` running tasks.
"""

from __future__ import annotations

import json
import math
import threading
import time
from abc import ABC, abstractmethod

from ..errors import NhiplError

PREFIX = "nhipl:"
SESSION_IDLE = 24 * 3600
"""Seconds a shared task session is kept after its last change."""
SESSION_ENDED = 60
"""Seconds an ended task's session is kept (so that every process learns it ended)."""
MAX_SESSIONS = 1_000_000
"""Tasks a Redis store holds at once (started, not ended, not idle for
:data:`SESSION_IDLE`): a client that never ends its tasks cannot fill the store."""


class StoreError(NhiplError):
    """The store could not be read or written (enforcement fails closed)."""


class Store(ABC):
    """The interface both stores implement. Records are plain JSON dicts.

    A store whose ``shares_sessions`` is true also keeps task sessions (the ``session_*``
    methods); otherwise each task lives in the process that started it."""

    shares_sessions = False

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
        self._scripts: dict = {}
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

    # -- task sessions: a meta hash (``meta``: the task's start, ``base``: how many changes
    # the ``snapshot`` holds), the list of changes after it, and a lock, all under one hash
    # tag; and ``nhipl:sessions``, the tasks held, by when they go idle (to count them).
    shares_sessions = True

    def _session_keys(self, task: str) -> list[str]:
        key = PREFIX + "session:{" + task + "}"
        return [key, key + ":events", key + ":lock", PREFIX + "sessions"]

    def _script(self, name: str, source: str):
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._redis.register_script(source)
        return script

    def session_create(self, task: str, meta: str) -> bool:
        """Keep a new task's ``meta`` (JSON text); False when the id is taken; raises
        :class:`StoreError` when :data:`MAX_SESSIONS` tasks are held."""
        keys = self._session_keys(task)
        script = self._script("create", _CREATE)
        done = self._call(script, [keys[0], keys[3]], [meta, SESSION_IDLE, time.time(), MAX_SESSIONS, task])
        if done == -1:
            raise StoreError(f"{MAX_SESSIONS} tasks are running in `{self.url}`; end some before starting more")
        return bool(done)

    def session_load(self, task: str, index: int, lock: str = "", lock_ms: int = 0, revoked: str | None = None):
        """The changes of ``task`` after the first ``index`` (-1: all, from the snapshot):
        ``(meta, base, snapshot, changes, revocation)``, JSON as bytes but ``base``, and
        ``revocation`` what :meth:`revoked` says of the credential ``revoked`` (None when not
        asked); None when the task is not in the store; False when ``lock`` was asked for (a
        token) and another holds it. With ``lock``, it is taken for ``lock_ms`` milliseconds
        when free."""
        script = self._script("load", _LOAD)
        keys = self._session_keys(task)[:3]
        if revoked is not None:
            keys.append(PREFIX + "revoked:" + revoked)
        got = self._call(script, keys, [index, lock, lock_ms])
        if got[0] == 0:
            return False
        if got[0] == -1:
            return None
        meta, base, snapshot, changes, reason = got[1:]
        reason = reason.decode("utf-8", "replace") if reason else None
        return meta, int(base), snapshot or None, changes, reason

    def session_commit(self, task: str, lock: str, changes: list[str], snapshot: str | None = None, base: int = 0,
                       ended: bool = False) -> None:
        """Append ``changes`` (or, with ``snapshot``, replace every change with it, ``base``
        being how many it holds) and release ``lock``, all at once; raises
        :class:`StoreError` when the lock was lost (nothing is written then) or the task
        has left the store."""
        script = self._script("commit", _COMMIT)
        keep = SESSION_ENDED if ended else SESSION_IDLE
        done = self._call(script, self._session_keys(task), [lock, keep, snapshot or "", base, int(ended), task, *changes])
        if done == 0:
            raise StoreError(f"task `{task}`: its lock in `{self.url}` expired before the step was saved; nothing was saved")
        if done == -1:
            raise StoreError(f"task `{task}` is no longer in `{self.url}` (ended or expired)")

    def session_release(self, task: str, lock: str) -> None:
        """Release ``lock`` without writing anything (when it is still held)."""
        self._call(self._script("release", _RELEASE), self._session_keys(task)[2:3], [lock])

    def close(self) -> None:
        try:
            self._redis.close()
        except self._errors:
            pass


_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return -1 end
redis.call('HSET', KEYS[1], 'meta', ARGV[1], 'base', 0)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""

_LOAD = """
if ARGV[2] ~= '' and not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[3]) then return {0} end
local meta = redis.call('HMGET', KEYS[1], 'meta', 'base', 'snapshot')
if not meta[1] then
  if ARGV[2] ~= '' then redis.call('DEL', KEYS[3]) end
  return {-1}
end
local base = tonumber(meta[2])
local index = tonumber(ARGV[1])
local revoked = false
if KEYS[4] then revoked = redis.call('GET', KEYS[4]) end
if index < base then
  return {1, meta[1], base, meta[3] or '', redis.call('LRANGE', KEYS[2], 0, -1), revoked}
end
return {1, meta[1], base, '', redis.call('LRANGE', KEYS[2], index - base, -1), revoked}
"""

_COMMIT = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[3])
  return -1
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'snapshot', ARGV[3], 'base', ARGV[4])
  redis.call('DEL', KEYS[2])
elseif #ARGV > 6 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 7))
end
if #ARGV > 6 or ARGV[3] ~= '' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
if ARGV[5] == '1' then redis.call('ZREM', KEYS[4], ARGV[6]) end
redis.call('DEL', KEYS[3])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


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
