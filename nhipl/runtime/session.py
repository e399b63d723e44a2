"""Task sessions: the runtime that decides each step of a task, issues the credential an
allowed step needs, and revokes it when the task ends or the policies change.

A :class:`Runtime` holds the policies, a signing key, a store (credentials, revocations and
public keys; :mod:`nhipl.runtime.store`) and optionally a decision log. A :class:`Task`
holds what a step's request is built from: the task's intent, owner and instruction, the
delegations made in it, the tool outputs seen (for provenance), the approvals in force and
the history of its steps.

With the ``memory`` store a task lives in the process that started it. With a store that
shares sessions (Redis), a task is an append-only list of its changes in the store (a
delegation reached, an output kept, an approval given, a credential issued, a step and its
effect, the end), and each process's :class:`Task` is a cache of it: every operation takes
the task's lock in the store, applies the changes other processes made since, does what it
does here, and appends its own changes as it releases the lock. Any process can then
continue a task any other started; when the store cannot be read or written, the step is
denied (fail closed).

The decision log is a trace: one JSON line per event, of the simulator's kinds
(``task_start``, ``delegate``, ``tool_call``, ``approval``, ``credential_issue``,
``credential_revoke``, ``task_end``), each step with the decision it got, the provenance it
was decided with and its redacted arguments. Every line is written with one ``write`` before
the step's tool may run; when it cannot be written, the step is denied (fail closed).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from itertools import islice
from typing import Any, Callable, Mapping

from ..approval import ScopedApproval, take
from ..decision import ALLOW, DENY, Decision
from ..errors import NhiplError
from ..provenance import Outputs, provenance
from ..request import MAX_HISTORY
from ..values import ListView
from .credentials import Signer, _b64, new_id
from .errors import DecisionLogError, Denied, Expired, Invalid, Revoked
from .log import DecisionLog, failed_closed, open_log
from .plain import _string, json_value
from .store import Store, StoreError, open_store

logger = logging.getLogger("nhipl.runtime")

ISSUER = "nhipl"
HISTORY_LIMIT = MAX_HISTORY
"""A step's request carries the latest this many steps of its task."""
LOCK_MS = 10_000
"""How long a process may hold a shared task's lock (milliseconds); a step saved after
that is refused and denied."""
LOCK_WAIT = 5.0
"""How long a step waits for a shared task's lock (seconds) before it is denied."""
COMPACT_AFTER = 2 * HISTORY_LIMIT
"""A shared task's changes are folded into one snapshot (its latest :data:`HISTORY_LIMIT`
steps and the rest of its state) once this many have piled up."""
SHARED_CACHE = 10_000
"""Shared tasks a runtime keeps cached (the store holds them all)."""


def history_view(history: list) -> ListView:
    """The latest :data:`HISTORY_LIMIT` steps of ``history`` as a read-only view: no copy
    per step (each step was made plain JSON when it was recorded)."""
    stop = len(history)
    return ListView(history, stop, max(0, stop - HISTORY_LIMIT))


class Credential:
    """A credential issued for a step: ``token`` (the compact JWT), ``id`` (its ``jti``),
    ``expires_at`` and ``issued_at`` (seconds since the epoch), ``scope``, ``agent``,
    ``task``."""

    __slots__ = ("token", "id", "issued_at", "expires_at", "ttl", "scope", "agent", "task")

    def __init__(self, token: str, jti: str, issued_at: float, ttl: float, scope: str, agent: str, task: str):
        self.token = token
        self.id = jti
        self.issued_at = issued_at
        self.ttl = ttl
        self.expires_at = issued_at + ttl
        self.scope = scope
        self.agent = agent
        self.task = task

    def __repr__(self) -> str:
        return f"<Credential {self.id} {self.scope!r} for {self.agent} until {self.expires_at:g}>"

    def request(self) -> dict:
        """The request's ``credential`` field for a step that uses this credential."""
        return {"id": self.id, "issued_at": self.issued_at, "ttl": self.ttl, "scope": self.scope}


class StepDecision(Decision):
    """A :class:`~nhipl.Decision` with the step's ``credential`` (None unless the step was
    allowed with a credential TTL). Equal to the plain decision with the same fields."""

    credential: Credential | None = None
    request: dict | None = None
    """The request the step was decided with."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return False if isinstance(other, tuple) else NotImplemented
        return self._key() == other._key()

    __hash__ = Decision.__hash__


def _step(decision: Decision, credential: Credential | None, request: dict | None) -> StepDecision:
    out = tuple.__new__(StepDecision, tuple(decision))
    out.credential = credential
    out.request = request
    return out


def scope_of(action: str, tool: str, resource: str | None) -> str:
    """A credential's ``scope``: ``<action>:<tool>``, then the resource after a space."""
    return f"{action}:{tool}" if resource is None else f"{action}:{tool} {resource}"


class Runtime:
    """Task sessions over ``policies`` (a :class:`~nhipl.Policies`, or paths to load).

    ``store``: ``"memory"`` (default), a ``redis://`` URL or a
    :class:`~nhipl.runtime.store.Store`. ``log``: a path or a
    :class:`~nhipl.runtime.DecisionLog` (None: no log). ``key``: the Ed25519 signing key, a
    path to a PEM or JWK file (None: a key generated for this process). ``issuer``: the
    tokens' ``iss``. ``clock``: the time in seconds since the epoch (tests pass their own).
    """

    def __init__(self, policies, store: Store | str | None = "memory", log: DecisionLog | str | os.PathLike | None = None,
                 *, key: str | os.PathLike | bytes | None = None, issuer: str = ISSUER, source: str = "runtime",
                 clock: Callable[[], float] = time.time):
        self.policies = _policies(policies)
        self.store = open_store(store)
        self.log = open_log(log, source=source)
        self._key = key
        self._signer: Signer | None = Signer(key) if key is not None else None
        self.issuer = issuer
        self.source = source
        self.clock = clock
        self._lock = threading.RLock()
        self._reuse: dict[tuple, Credential] = {}
        self._tasks: dict[str, Task] = {}
        self._published_until = 0.0
        self._shared = bool(getattr(self.store, "shares_sessions", False))

    def __repr__(self) -> str:
        return f"<Runtime {self.store!r}>"

    @property
    def signer(self) -> Signer:
        """The signing key: the one given, else one generated on first use."""
        if self._signer is None:
            with self._lock:
                if self._signer is None:
                    self._signer = Signer(self._key)
        return self._signer

    # -- tasks ------------------------------------------------------------------------------
    def start_task(self, agent: str, intent: str, prompt: str | None = None, task_id: str | None = None,
                   owner: str | None = None) -> "Task":
        """Start a task for ``agent`` (its originator) with ``intent``; ``prompt`` is the
        user's instruction (arguments found in it have provenance ``user``)."""
        _require_str(agent, "agent")
        _require_str(intent, "intent", empty=True)
        if prompt is not None:
            _require_str(prompt, "prompt", empty=True)
        if owner is not None:
            _require_str(owner, "owner")
        task_id = task_id if task_id is not None else uuid.uuid4().hex
        _require_str(task_id, "task_id")
        if task_id in self._tasks:
            raise ValueError(f"task `{task_id}` is already running in this runtime")
        task = Task(self, task_id, agent, intent, prompt, owner)
        if self._shared:
            nonce = uuid.uuid4().hex
            meta = {"agent": agent, "intent": intent, "prompt": prompt, "owner": owner, "nonce": nonce}
            if not self.store.session_create(task_id, json.dumps(meta, separators=(",", ":"))):
                raise ValueError(f"task `{task_id}` is already running (in the shared store)")
            task._share(nonce)
        now = self.clock()
        event = {"kind": "task_start", "task": task_id, "agent": agent, "intent": intent}
        if owner is not None:
            event["owner"] = owner
        if prompt is not None:
            event["prompt"] = prompt
        self._write(event, now, required=True)
        self._remember(task)
        return task

    def task(self, task_id: str) -> "Task | None":
        """The running task ``task_id``, or None (never started, ended or expired). With the
        ``memory`` store, only tasks started in this runtime; with a store that shares
        sessions, a task started by any process on it (raises
        :class:`~nhipl.runtime.store.StoreError` when the store cannot be read)."""
        task = self._tasks.get(task_id)
        if self._shared:
            if task is None:
                task = Task._load(self, task_id)
                if task is not None and not task.ended:
                    self._remember(task)
            else:
                with task._lock:  # it may have ended in another process
                    task._refresh()
        return None if task is None or task.ended else task

    def _remember(self, task: "Task") -> None:
        with self._lock:
            self._tasks[task.id] = task
            if self._shared and len(self._tasks) > SHARED_CACHE:  # the store holds every task
                del self._tasks[next(iter(self._tasks))]

    @property
    def running(self) -> int:
        """How many tasks this runtime holds open (with a shared store: those it has cached;
        the store bounds how many it holds)."""
        return len(self._tasks)

    # -- credentials --------------------------------------------------------------------------
    def _credential(self, task: "Task", agent: str, chain: list, request: dict, decision: Decision, now: float) -> Credential:
        action, tool, resource = request.get("action", "call"), request["tool"], request.get("resource")
        key = (agent, task.id, action, tool, resource)
        ttl = decision.credential_ttl
        iat = now  # a NumericDate may have a fraction: the credential is issued at the step's instant
        jti = new_id()
        scope = scope_of(action, tool, resource)
        claims: dict[str, Any] = {"iss": self.issuer, "sub": agent, "aud": tool, "scope": scope, "txn": task.id,
                                  "iat": iat, "exp": iat + ttl, "jti": jti}
        act = _actor(chain)
        if act is not None:
            claims["act"] = act
        token = self.signer.sign(claims)
        credential = Credential(token, jti, iat, ttl, scope, agent, task.id)
        exp = credential.expires_at
        if exp > self._published_until:
            self.store.add_key(self.signer.kid, self.signer.public_jwk, max(exp, now + 3600))
            self._published_until = max(exp, now + 3600)
        self.store.add_credential({"jti": jti, "exp": exp, "iat": iat, "task": task.id, "agent": agent, "scope": scope,
                                   "request": _stored_request(request)})
        self._write({"kind": "credential_issue", "credential": jti, "agent": agent, "ttl": ttl, "scope": scope,
                     "task": task.id}, iat, required=True)
        self._reuse[key] = credential
        return credential

    def _live(self, key: tuple, now: float, read: tuple | None = None) -> Credential | None:
        """The live credential for ``(agent, task, action, tool, resource)``, if any.
        ``read``: ``(jti, reason)``, a revocation just read from the store with the task."""
        live = self._reuse.get(key)
        if live is None:
            return None
        try:
            if now < live.expires_at and (read[1] if read is not None and read[0] == live.id else self.store.revoked(live.id)) is None:
                return live
        except StoreError:
            return None  # minting a new one fails too: the step fails closed
        self._reuse.pop(key, None)
        return None

    def revoke(self, jti: str, reason: str = "revoked by hand") -> bool:
        """Revoke the credential ``jti``; False when it was already revoked or is unknown."""
        _require_str(jti, "jti")
        record = self.store.credential(jti)
        if record is None:
            return False
        return self._revoke(jti, record["exp"], reason)

    def _revoke(self, jti: str, exp: float, reason: str) -> bool:
        now = self.clock()
        if not self.store.revoke(jti, exp, reason):
            return False
        for key, live in list(self._reuse.items()):
            if live.id == jti:
                del self._reuse[key]
        self._write({"kind": "credential_revoke", "credential": jti, "reason": reason}, now, required=False)
        return True

    def verify(self, token: str, tool: str, resource: str | None = None) -> dict:
        """The claims of ``token`` when it is a live credential this runtime's store knows,
        issued for ``tool`` (and ``resource``); else raises :class:`Invalid`,
        :class:`Expired` or :class:`Revoked`."""
        keys = {self.signer.kid: self.signer.public_jwk}
        try:
            if not token or not isinstance(token, str) or _kid(token) not in keys:
                keys.update({k["kid"]: k for k in self.store.keys() if isinstance(k.get("kid"), str)})
        except StoreError as err:
            raise Invalid(f"cannot check the credential: {err}") from None
        claims = self.signer.decode(token, keys)
        jti = claims.get("jti")
        if not isinstance(jti, str):
            raise Invalid("the token has no `jti`")
        if claims.get("iss") != self.issuer:
            raise Invalid(f"the token was issued by `{claims.get('iss')}`, not `{self.issuer}`", jti)
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise Invalid("the token has no `exp`", jti)
        if self.clock() >= exp:
            raise Expired(f"credential `{jti}` expired at {exp:g}", jti)
        if claims.get("aud") != tool:
            raise Invalid(f"credential `{jti}` is for `{claims.get('aud')}`, not `{tool}`", jti)
        scope = claims.get("scope")
        action = scope.split(":", 1)[0] if isinstance(scope, str) else None
        if not isinstance(scope, str) or scope != scope_of(action, tool, resource):
            want = f"`{tool}`" + (f" on `{resource}`" if resource is not None else "")
            raise Invalid(f"credential `{jti}` has scope `{scope}`, which does not cover {want}", jti)
        try:
            reason = self.store.revoked(jti)
        except StoreError as err:
            raise Invalid(f"cannot check the credential: {err}", jti) from None
        if reason is not None:
            raise Revoked(f"credential `{jti}` was revoked: {reason}", jti)
        return claims

    def jwks(self) -> dict:
        """The public keys that verify this runtime's credentials, as a JWKS."""
        keys = {self.signer.kid: self.signer.public_jwk}
        for jwk in self.store.keys():
            if isinstance(jwk.get("kid"), str):
                keys.setdefault(jwk["kid"], jwk)
        return {"keys": [dict(k) for k in keys.values()]}

    # -- policies ------------------------------------------------------------------------------
    def reload(self, policies) -> list[str]:
        """Decide with ``policies`` from now on, and re-decide the original request of every
        live credential under them: each one no longer allowed is revoked, the log saying
        why. Returns the ids revoked."""
        new = _policies(policies)
        with self._lock:
            self.policies = new
        revoked = []
        now = self.clock()
        for record in self.store.live_credentials(now):
            jti = record["jti"]
            if self.store.revoked(jti) is not None:
                continue
            request = dict(record["request"])
            request["now"] = now
            try:
                decision = new.evaluate(request)
            except NhiplError as err:  # a request the new policies cannot read: fail closed
                reason = f"the policy context changed: the request can no longer be decided ({err})"
            else:
                if decision.effect == ALLOW:
                    continue
                why = "; ".join(decision.reasons) or decision.effect
                reason = f"the policy context changed: the request is now {decision.effect} ({why})"
            if self._revoke(jti, record["exp"], reason):
                revoked.append(jti)
        return revoked

    # -- the log -----------------------------------------------------------------------------
    def record(self, request: dict, decision: Decision, approval: dict | None = None) -> "StepDecision":
        """Log a step decided outside a task session (``request`` as given) and return the
        decision to enforce: a deny when the log fails closed and cannot be written."""
        try:
            if self.log is not None:
                self._write(step_event(request, decision, approval=approval), request.get("now") or self.clock(), required=True)
        except DecisionLogError as err:
            decision = failed_closed(decision, err)
        return _step(decision, None, request)

    def _write(self, event: dict, t: float, *, required: bool) -> None:
        """Append one trace event. Raises :class:`DecisionLogError` when it cannot be
        written, the log fails closed and ``required``."""
        log = self.log
        if log is None:
            return
        body = {"kind": event["kind"], "source": self.source, "pid": os.getpid()}
        redactor = log.redactor
        for name, value in event.items():
            if name in ("kind",):
                continue
            if name in ("args", "output", "context"):
                body[name] = redactor.value(value)
            elif name in ("provenance", "ttl", "expires", "uses", "granted", "rules", "credential_ttl"):
                body[name] = value
            elif isinstance(value, str):
                body[name] = redactor.text(value)
            else:
                body[name] = redactor.value(value)
        try:
            log.append(body, t)
        except DecisionLogError as err:
            if required and log.fail_closed:
                raise
            logger.warning("decision not logged (%s event): %s", event["kind"], err)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        self.store.close()


class Task:
    """One task's session; made by :meth:`Runtime.start_task` (or, for a task another
    process started on a shared store, by :meth:`Runtime.task`)."""

    def __init__(self, runtime: Runtime, task_id: str, agent: str, intent: str, prompt: str | None, owner: str | None):
        self.runtime = runtime
        self.id = task_id
        self.agent = agent
        self.intent = intent
        self.prompt = prompt
        self.owner = owner
        self.request_task = {"id": task_id, "intent": intent} if owner is None else {"id": task_id, "intent": intent, "owner": owner}
        self.reached: dict[str, list[str]] = {agent: []}
        self.outputs = Outputs()
        self.approvals: dict[str, ScopedApproval] = {}
        self.history: list[dict] = []
        self.credentials: list[Credential] = []
        self.ended = False
        self._lock = threading.RLock()
        # A shared session (see the module's description): the changes applied from the
        # store (-1: reload them all), how many the store's snapshot holds, the task's
        # incarnation, and while an operation holds the store's lock, its token and the
        # changes it made.
        self._shared = False
        self._index = 0
        self._base = 0
        self._nonce: str | None = None
        self._token: str | None = None
        self._journal: list[dict] | None = None
        self._read: tuple | None = None  # (jti, revocation) read with the session, for the step

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.intent!r}{' ended' if self.ended else ''}>"

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc) -> None:
        self.end()

    def chain(self, agent: str) -> list[str] | None:
        """The delegation chain that reached ``agent`` in this task (originator first), or
        None when it is not part of the task."""
        if self._shared:
            with self._lock:
                self._refresh()
        chain = self.reached.get(agent)
        return None if chain is None else list(chain)

    # -- steps --------------------------------------------------------------------------------
    def delegate(self, agent: str, to: str) -> "Delegation":
        """Decide ``agent`` handing work to ``to``; raises :class:`Denied` unless allowed.
        After it, ``to`` acts in the task with ``agent`` appended to its chain."""
        _require_str(to, "to")
        decision, request = (self._decide_shared if self._shared else self._decide_here)(agent, "delegate", to, None, None, None)
        if decision.effect != ALLOW:
            raise Denied(decision, request)
        return Delegation(self, to, decision)

    def check(self, agent: str, tool: str, args: Mapping[str, Any] | None = None, resource: str | None = None,
              context: Mapping[str, Any] | None = None, *, action: str = "call",
              principal: Mapping[str, Any] | None = None) -> StepDecision:
        """Decide one step of ``agent``: never raises for a deny. An allowed step with a
        credential TTL carries ``credential`` (reused while a live one for the same agent,
        task, action, tool and resource exists). ``principal``: attributes of the agent."""
        decision, _ = (self._decide_shared if self._shared else self._decide_here)(agent, action, tool, args, resource, context, principal)
        return decision

    def request(self, agent: str, tool: str, args: Mapping[str, Any] | None = None, resource: str | None = None,
                context: Mapping[str, Any] | None = None, *, action: str = "call",
                principal: Mapping[str, Any] | None = None) -> dict:
        """The request a step of ``agent`` would be decided with now (no approval is used up)."""
        with self._lock:
            if self._shared:
                self._refresh()
            request, _, _ = self._request(agent, action, tool, args, resource, context, principal, self.runtime.clock(), False)
        return request

    def _request(self, agent, action, tool, args, resource, context, principal, now, use_approval):
        """The step's request, its provenance and the live credential it would use."""
        _require_str(agent, "agent")
        _require_str(tool, "tool")
        request: dict = {"principal": agent if principal is None else {**json_value(principal, "principal"), "id": agent},
                         "action": _string(action, "action"), "tool": tool, "now": now, "task": self.request_task}
        chain = self.reached.get(agent)
        if action == "delegate":
            request["delegation"] = {"chain": list(chain or ())}
        elif chain:
            request["delegation"] = {"chain": list(chain)}
        if resource is not None:
            request["resource"] = _string(resource, "resource")
        prov = None
        if args is not None:
            args = json_value(dict(args), "args")
            request["args"] = args
            if args and action != "delegate":
                prov = request["provenance"] = provenance(args, self.prompt, self.outputs)
        if context:
            request["context"] = json_value(dict(context), "context")
        if use_approval:
            approval = take(self.approvals, tool, args, now)
        else:
            grant = self.approvals.get(tool)
            approval = grant.granted if grant is not None and grant.applies(args, now) else None
        if approval is not None:
            request["approval"] = approval
        live = self.runtime._live((agent, self.id, action, tool, resource), now, self._read) if action != "delegate" else None
        if live is not None:
            request["credential"] = live.request()
        request["history"] = history_view(self.history)
        return request, prov, live

    def _decide_shared(self, agent: str, action: str, tool: str, args, resource, context, principal=None):
        """Decide one step of a shared session: under the task's lock in the store."""
        with self._lock:
            try:
                live = self.runtime._reuse.get((agent, self.id, action, tool, resource))
            except TypeError:  # an unhashable value: the step's checks refuse it
                live = None
            try:
                return self._exclusive(self._decide_here, agent, action, tool, args, resource, context, principal,
                                       revoked=live.id if live is not None else None)
            except StoreError as err:
                return self._store_failed(agent, action, tool, args, resource, context, principal, err)

    def _decide_here(self, agent: str, action: str, tool: str, args, resource, context, principal=None):
        """Decide one step (of a session of this process alone, or under the store's lock):
        the decision and the request."""
        with self._lock:
            rt = self.runtime
            now = rt.clock()
            request, _, live = self._request(agent, action, tool, args, resource, context, principal, now, True)
            chain = self.reached.get(agent)
            args = request.get("args")
            if self.ended:
                decision = Decision(DENY, (), None, (), (f"task `{self.id}` has ended",))
            elif chain is None:
                decision = Decision(DENY, (), None, (), (f"`{agent}` neither started task `{self.id}` nor was delegated to within it",))
            else:
                decision = rt.policies.evaluate(request)
            credential = None
            journal = self._journal
            try:
                if rt.log is not None:
                    rt._write(step_event(request, decision, live.id if live is not None else None), now, required=True)
                if decision.effect == ALLOW and decision.credential_ttl is not None:
                    credential = live or rt._credential(self, agent, chain or [], request, decision, now)
                    if credential not in self.credentials:
                        self.credentials.append(credential)
                        if journal is not None:
                            journal.append({"k": "credential", **_credential_record((agent, self.id, action, tool, resource), credential)})
            except DecisionLogError as err:
                decision, credential = failed_closed(decision, err), None
            except NhiplError as err:  # the store, or the signing key
                decision = Decision(DENY, (), None, decision.errors, (f"no credential could be issued ({err}); failing closed",))
                credential = None
            step = {"t": now, "agent": agent, "action": action, "tool": tool}
            if resource is not None:
                step["resource"] = resource
            if args is not None:
                step["args"] = args
            step["effect"] = str(decision.effect)
            self._append_step(step)
            if journal is not None:
                journal.append({"k": "step", "step": step, "took": "approval" in request})
            if action == "delegate" and decision.effect == ALLOW and tool not in self.reached:
                self.reached[tool] = self.reached[agent] + [agent]
                if journal is not None:
                    journal.append({"k": "delegate", "agent": agent, "to": tool})
            return _step(decision, credential, request), request

    def _append_step(self, step: dict) -> None:
        history = self.history
        history.append(step)
        if len(history) > 2 * HISTORY_LIMIT:
            # Cut in blocks, so that appending stays cheap: a request reads the latest
            # HISTORY_LIMIT steps. The cut makes a new list, never shortens the old one, so
            # a view handed out before it (a decided step's `request`) still reads its steps.
            self.history = history[HISTORY_LIMIT:]

    def record_output(self, tool: str, output: Any) -> None:
        """Remember what ``tool`` returned: later arguments found in it have provenance
        ``tool:<tool>``. Raises :class:`~nhipl.runtime.store.StoreError` when a shared
        store cannot keep it."""
        _require_str(tool, "tool")
        with self._lock:
            kept = self._exclusive(self._output_here, tool, output) if self._shared else self._output_here(tool, output)
        if kept:
            self.runtime._write({"kind": "tool_output", "task": self.id, "tool": tool, "output": _jsonable(output)},
                                self.runtime.clock(), required=False)

    def _output_here(self, tool: str, output: Any) -> bool:
        if self.ended:
            return False
        kept = self.outputs.add(tool, output)
        if kept and self._journal is not None:
            self._journal.append({"k": "output", "tool": tool, "text": self.outputs.items[-1][1]})
        return kept

    def approve(self, tool: str, by: str, args: Mapping[str, Any] | None = None, ttl: float | None = None,
                uses: int | None = 1, *, granted: bool = True) -> None:
        """A human's approval for ``tool`` in this task: it counts for the next ``uses``
        calls (default one; None: any number) whose arguments include ``args`` (when
        given), within ``ttl`` seconds (when given). A new approval for the same tool
        replaces the one in force. ``granted=False`` records a refusal, which the next
        such call carries (it grants nothing)."""
        _require_str(tool, "tool")
        _require_str(by, "by")
        if uses is not None and (not isinstance(uses, int) or isinstance(uses, bool) or uses < 1):
            raise ValueError("`uses` must be a positive whole number or None")
        if ttl is not None and (not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not ttl > 0 or not math.isfinite(ttl)):
            raise ValueError("`ttl` must be a positive number of seconds")
        now = self.runtime.clock()
        expires = now + ttl if ttl is not None else None
        if granted is not True and granted is not False:
            raise TypeError("`granted` must be true or false")
        with self._lock:
            if self._shared:  # the store keeps plain JSON
                args = json_value(dict(args), "args") if args is not None else None
                self._exclusive(self._approve_here, tool, by, args, uses, expires, granted, now)
            else:
                self._approve_here(tool, by, args, uses, expires, granted, now)

    def _approve_here(self, tool, by, args, uses, expires, granted, now) -> None:
        if self.ended:
            raise Denied(Decision(DENY, (), None, (), (f"task `{self.id}` has ended",)), {"tool": tool})
        event: dict = {"kind": "approval", "task": self.id, "tool": tool, "granted": granted, "by": by}
        if args is not None:
            event["args"] = dict(args)
        event["uses"] = uses if uses is not None else 0
        if expires is not None:
            event["expires"] = expires
        self.runtime._write(event, now, required=True)
        self.approvals[tool] = ScopedApproval({"granted": granted, "by": by}, dict(args) if args is not None else None, uses, expires)
        if self._journal is not None:
            self._journal.append({"k": "approval", "tool": tool, "granted": granted, "by": by, "args": args, "uses": uses,
                                  "expires": expires})

    def end(self) -> list[str]:
        """End the task: revoke every credential it holds (in every process sharing the
        store). Returns the ids revoked. Ending twice does nothing. Raises
        :class:`~nhipl.runtime.store.StoreError` when a shared store cannot record the end."""
        rt = self.runtime
        with self._lock:
            if not (self._exclusive(self._end_here) if self._shared else self._end_here()):
                return []
        revoked = []
        ids = {c.id: c.expires_at for c in self.credentials}
        try:
            for jti in rt.store.task_credentials(self.id):
                if jti not in ids:
                    record = rt.store.credential(jti)
                    if record is not None:
                        ids[jti] = record["exp"]
        except StoreError as err:
            logger.warning("task %s: credentials of other processes not found: %s", self.id, err)
        now = self.runtime.clock()
        for jti, exp in ids.items():
            if exp > now and rt._revoke(jti, exp, f"task `{self.id}` ended"):
                revoked.append(jti)
        rt._write({"kind": "task_end", "task": self.id}, self.runtime.clock(), required=False)
        with rt._lock:
            rt._tasks.pop(self.id, None)
        return revoked

    def _end_here(self) -> bool:
        if self.ended:
            return False
        self.ended = True
        self.outputs.clear()
        self.approvals.clear()
        if self._journal is not None:
            self._journal.append({"k": "end"})
        return True

    # -- a session shared through the store --------------------------------------------------
    def _share(self, nonce: str) -> None:
        self._shared = True
        self._nonce = nonce

    @classmethod
    def _load(cls, runtime: Runtime, task_id: str) -> "Task | None":
        """The task ``task_id`` as the shared store holds it, or None when it holds none."""
        got = runtime.store.session_load(task_id, -1)
        if got is None:
            return None
        try:
            meta = json.loads(got[0])
            task = cls(runtime, task_id, meta["agent"], meta["intent"], meta["prompt"], meta["owner"])
            task._share(meta["nonce"])
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(f"task `{task_id}`: the store holds an unreadable session ({err})") from None
        task._index = -1
        task._apply(-1, got)
        return task

    def _exclusive(self, operation, *args, revoked: str | None = None):
        """``operation(*args)`` on the session brought up to date, holding the task's lock in
        the store; what it changed is saved as the lock is released. ``revoked``: a
        credential whose revocation to read with the session (the one the step would reuse).
        Raises :class:`StoreError` (the operation's changes then count for nothing: the task
        is reloaded from the store at its next operation)."""
        if not self._begin(revoked):
            return operation(*args)  # the task has left the store: the operation sees it ended
        try:
            out = operation(*args)
        except BaseException:
            self._abort()
            raise
        finally:
            self._read = None
        self._commit()
        return out

    def _begin(self, revoked: str | None = None) -> bool:
        """Take the task's lock in the store and apply the changes other processes made (and
        read whether the credential ``revoked`` was revoked); False (and no lock) when the
        task is no longer in the store."""
        store = self.runtime.store
        token = uuid.uuid4().hex
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.0002
        while True:
            index = self._index
            got = store.session_load(self.id, index, token, LOCK_MS, revoked)
            if got is not False:
                break
            if time.monotonic() >= deadline:
                raise StoreError(f"task `{self.id}` stayed locked by another process for {LOCK_WAIT:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        if got is None:
            self._gone()
            return False
        self._token = token
        try:
            self._apply(index, got)
        except BaseException:
            self._abort()
            raise
        if self.ended and self._nonce is None:  # another incarnation of the id: not this task
            self._abort()
            return False
        self._journal = []
        self._read = (revoked, got[4]) if revoked is not None else None
        return True

    def _refresh(self) -> None:
        """Apply the changes other processes made, without taking the lock (for reading)."""
        index = self._index
        got = self.runtime.store.session_load(self.id, index)
        if got is None:
            self._gone()
        else:
            self._apply(index, got)

    def _commit(self) -> None:
        journal, token = self._journal, self._token
        self._journal = self._token = None
        changes = [json.dumps(change, separators=(",", ":")) for change in journal]
        index = self._index + len(changes)
        snapshot = json.dumps(self._snapshot(), separators=(",", ":")) if index - self._base >= COMPACT_AFTER else None
        try:
            self.runtime.store.session_commit(self.id, token, changes, snapshot, index, ended=self.ended)
        except StoreError:
            self._index = -1  # what this process holds may now differ from the store: reload it all
            raise
        self._index = index
        if snapshot is not None:
            self._base = index

    def _abort(self) -> None:
        token = self._token
        self._journal = self._token = None
        self._index = -1
        try:
            self.runtime.store.session_release(self.id, token)
        except StoreError:
            pass  # the lock expires by itself

    def _gone(self) -> None:
        """The task ended in another process, or is no longer in the store (ended and
        expired, or idle too long)."""
        self._end_here()
        self.runtime._tasks.pop(self.id, None)

    def _apply(self, index: int, got) -> None:
        """Bring this cache up to the store's state: ``got`` is what
        :meth:`~nhipl.runtime.store.RedisStore.session_load` answered for ``index``."""
        meta, base, snapshot, changes = got[:4]
        try:
            if json.loads(meta).get("nonce") != self._nonce:
                self._nonce = None
                self._gone()
                return
            if index < base:  # everything: the snapshot, then the changes after it
                self._reset()
                if snapshot is not None:
                    self._restore(json.loads(snapshot))
                index = base
            for raw in changes:
                self._change(json.loads(raw))
                index += 1
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
            self._index = -1
            raise StoreError(f"task `{self.id}`: the store holds an unreadable session ({err})") from None
        self._index = index
        self._base = base

    def _reset(self) -> None:
        self.reached = {self.agent: []}
        self.outputs = Outputs()
        self.approvals = {}
        self.history = []
        self.credentials = []
        self.ended = False

    def _change(self, change: dict) -> None:
        """Apply one change another process made (as :meth:`_decide_here` and the others
        made it here)."""
        kind = change["k"]
        if kind == "step":
            self._append_step(change["step"])
            if change["took"]:
                step = change["step"]
                take(self.approvals, step["tool"], step.get("args"), step["t"])
        elif kind == "credential":
            self._keep_credential(change)
        elif kind == "output":
            self.outputs.add(change["tool"], change["text"])
        elif kind == "approval":
            self.approvals[change["tool"]] = ScopedApproval({"granted": change["granted"], "by": change["by"]}, change["args"],
                                                            change["uses"], change["expires"])
        elif kind == "delegate":
            if change["to"] not in self.reached and change["agent"] in self.reached:
                self.reached[change["to"]] = self.reached[change["agent"]] + [change["agent"]]
        elif kind == "end":
            self._gone()
        else:
            raise ValueError(f"unknown change `{kind}`")

    def _keep_credential(self, c: dict) -> None:
        credential = Credential(c["token"], c["jti"], c["iat"], c["ttl"], c["scope"], c["agent"], self.id)
        self.credentials.append(credential)
        if credential.expires_at > self.runtime.clock():
            self.runtime._reuse[(c["agent"], self.id, c["action"], c["tool"], c["resource"])] = credential

    def _snapshot(self) -> dict:
        """The session as one record (what :meth:`_restore` reads): the latest
        :data:`HISTORY_LIMIT` steps and the live credentials."""
        now = self.runtime.clock()
        live = [_credential_record(key, c) for key, c in list(self.runtime._reuse.items()) if key[1] == self.id and c.expires_at > now]
        approvals = {tool: [a.granted, a.args, a.uses, a.expires] for tool, a in self.approvals.items()}
        history = self.history
        return {"reached": self.reached, "outputs": self.outputs.items, "approvals": approvals,
                "history": list(islice(history, max(0, len(history) - HISTORY_LIMIT), None)), "credentials": live,
                "ended": self.ended}

    def _restore(self, snapshot: dict) -> None:
        self.reached = {agent: list(chain) for agent, chain in snapshot["reached"].items()}
        for tool, text in snapshot["outputs"]:
            self.outputs.add(tool, text)
        self.approvals = {tool: ScopedApproval(granted, args, uses, expires)
                          for tool, (granted, args, uses, expires) in snapshot["approvals"].items()}
        self.history = list(snapshot["history"])
        for credential in snapshot["credentials"]:
            self._keep_credential(credential)
        self.ended = bool(snapshot["ended"])

    def _store_failed(self, agent, action, tool, args, resource, context, principal, err: StoreError):
        """A step decided while the shared store failed: denied (fail closed), and logged."""
        now = self.runtime.clock()
        request: dict = {"principal": agent, "action": action, "tool": tool, "now": now, "task": self.request_task}
        if resource is not None:
            request["resource"] = resource
        if isinstance(args, Mapping):
            try:
                request["args"] = json_value(dict(args), "args")
            except (TypeError, ValueError, NhiplError):
                pass
        decision = Decision(DENY, (), None, (), (f"the task's session could not be read or saved ({err}); failing closed",))
        logger.warning("task %s: %s", self.id, err)
        try:
            self.runtime._write(step_event(request, decision), now, required=False)
        except DecisionLogError:
            pass
        return _step(decision, None, request), request


class Delegation:
    """What :meth:`Task.delegate` returns: the delegatee acting in the task."""

    def __init__(self, task: Task, agent: str, decision: StepDecision):
        self.task = task
        self.agent = agent
        self.decision = decision

    def __repr__(self) -> str:
        return f"<Delegation to {self.agent} in {self.task.id}>"

    @property
    def chain(self) -> list[str]:
        return self.task.chain(self.agent) or []

    def check(self, tool: str, args=None, resource=None, context=None, **kw) -> StepDecision:
        return self.task.check(self.agent, tool, args, resource, context, **kw)

    def delegate(self, to: str) -> "Delegation":
        return self.task.delegate(self.agent, to)

    def record_output(self, tool: str, output: Any) -> None:
        self.task.record_output(tool, output)


# -- helpers --------------------------------------------------------------------------------------

def step_event(request: dict, decision: Decision, credential: str | None = None, approval: dict | None = None) -> dict:
    """The trace event (``tool_call`` or ``delegate``) of a decided step, before redaction:
    what the simulator needs to replay it, and the decision it got."""
    principal = request["principal"]
    agent = principal["id"] if isinstance(principal, dict) else principal
    action = request.get("action", "call")
    event: dict = {"kind": "delegate" if action == "delegate" else "tool_call"}
    task = request.get("task")
    if isinstance(task, dict) and task.get("id") is not None:
        event["task"] = task["id"]
    event["agent"] = agent
    if action == "delegate":
        event["to"] = request["tool"]
    else:
        event["tool"] = request["tool"]
        if action != "call":
            event["action"] = action
        for name in ("resource", "args", "provenance"):
            if request.get(name) is not None:
                event[name] = request[name]
        if credential is not None:
            event["credential"] = credential
    if request.get("context"):
        event["context"] = request["context"]
    chain = (request.get("delegation") or {}).get("chain")
    if chain:
        event["chain"] = list(chain)
    event["effect"] = str(decision.effect)
    event["rules"] = list(decision.rules)
    event["reasons"] = list(decision.reasons)
    if decision.errors:
        event["errors"] = [e.to_dict() for e in decision.errors]
    if decision.credential_ttl is not None:
        event["credential_ttl"] = decision.credential_ttl
    if decision.restricted_by is not None:
        event["restricted_by"] = decision.restricted_by
    approval = approval if approval is not None else request.get("approval")
    if approval is not None:
        event["approval"] = approval
    return event


def _policies(policies):
    if hasattr(policies, "evaluate"):
        return policies
    from ..loader import load

    return load(policies)


def _require_str(value, name: str, *, empty: bool = False) -> None:
    if not isinstance(value, str) or (not empty and not value):
        raise TypeError(f"`{name}` must be a non-empty string" if not empty else f"`{name}` must be a string")


def _actor(chain: list[str]) -> dict | None:
    """The RFC 8693 ``act`` claim: the immediate delegator outermost."""
    act = None
    for identity in chain:  # originator first: each later delegator wraps the earlier ones
        act = {"sub": identity} if act is None else {"sub": identity, "act": act}
    return act


def _kid(token: str) -> str | None:
    try:
        header = json.loads(_b64(token.split(".", 1)[0]))
    except ValueError:
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _credential_record(key: tuple, credential: Credential) -> dict:
    """A credential as a shared session keeps it, with the step it serves (``key``: agent,
    task, action, tool, resource), for other processes to reuse it."""
    agent, _, action, tool, resource = key
    return {"agent": agent, "action": action, "tool": tool, "resource": resource, "token": credential.token,
            "jti": credential.id, "iat": credential.issued_at, "ttl": credential.ttl, "scope": credential.scope}


def _stored_request(request: dict) -> dict:
    """The request as the store keeps it for re-deciding on reload (plain JSON: the history
    as it was when the credential was issued)."""
    out = {k: v for k, v in request.items() if k not in ("now", "credential")}
    if "history" in out:
        out["history"] = list(out["history"])
    return out


def _jsonable(value: Any) -> Any:
    from ..provenance import as_text

    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return as_text(value)
