"""Task sessions: the runtime that decides each step of a task, issues the credential an
allowed step needs, and revokes it when the task ends or the policies change.

A :class:`Runtime` holds the policies, a signing key, a store (credentials, revocations and
public keys; :mod:`nhipl.runtime.store`) and optionally a decision log. A :class:`Task`
holds what a step's request is built from: the task's intent, owner and instruction, the
delegations made in it, the tool outputs seen (for provenance), the approvals in force and
the history of its steps.

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
        now = self.clock()
        event = {"kind": "task_start", "task": task_id, "agent": agent, "intent": intent}
        if owner is not None:
            event["owner"] = owner
        if prompt is not None:
            event["prompt"] = prompt
        self._write(event, now, required=True)
        with self._lock:
            self._tasks[task_id] = task
        return task

    def task(self, task_id: str) -> "Task | None":
        """The running task ``task_id`` started in this runtime, or None (never started here,
        or ended). A task's session lives in the process that started it; the store shares its
        credentials, revocations and keys."""
        task = self._tasks.get(task_id)
        return None if task is None or task.ended else task

    @property
    def running(self) -> int:
        """How many tasks this runtime holds open."""
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

    def _live(self, key: tuple, now: float) -> Credential | None:
        """The live credential for ``(agent, task, action, tool, resource)``, if any."""
        live = self._reuse.get(key)
        if live is None:
            return None
        try:
            if now < live.expires_at and self.store.revoked(live.id) is None:
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
    """One task's session; made by :meth:`Runtime.start_task`."""

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

    def __repr__(self) -> str:
        return f"<Task {self.id} {self.intent!r}{' ended' if self.ended else ''}>"

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc) -> None:
        self.end()

    def chain(self, agent: str) -> list[str] | None:
        """The delegation chain that reached ``agent`` in this task (originator first), or
        None when it is not part of the task."""
        return self.reached.get(agent)

    # -- steps --------------------------------------------------------------------------------
    def delegate(self, agent: str, to: str) -> "Delegation":
        """Decide ``agent`` handing work to ``to``; raises :class:`Denied` unless allowed.
        After it, ``to`` acts in the task with ``agent`` appended to its chain."""
        _require_str(to, "to")
        decision, request = self._decide(agent, "delegate", to, None, None, None)
        if decision.effect != ALLOW:
            raise Denied(decision, request)
        with self._lock:
            if to not in self.reached:
                self.reached[to] = self.reached[agent] + [agent]
        return Delegation(self, to, decision)

    def check(self, agent: str, tool: str, args: Mapping[str, Any] | None = None, resource: str | None = None,
              context: Mapping[str, Any] | None = None, *, action: str = "call",
              principal: Mapping[str, Any] | None = None) -> StepDecision:
        """Decide one step of ``agent``: never raises for a deny. An allowed step with a
        credential TTL carries ``credential`` (reused while a live one for the same agent,
        task, action, tool and resource exists). ``principal``: attributes of the agent."""
        decision, _ = self._decide(agent, action, tool, args, resource, context, principal)
        return decision

    def request(self, agent: str, tool: str, args: Mapping[str, Any] | None = None, resource: str | None = None,
                context: Mapping[str, Any] | None = None, *, action: str = "call",
                principal: Mapping[str, Any] | None = None) -> dict:
        """The request a step of ``agent`` would be decided with now (no approval is used up)."""
        with self._lock:
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
        live = self.runtime._live((agent, self.id, action, tool, resource), now) if action != "delegate" else None
        if live is not None:
            request["credential"] = live.request()
        request["history"] = history_view(self.history)
        return request, prov, live

    def _decide(self, agent: str, action: str, tool: str, args, resource, context, principal=None):
        rt = self.runtime
        with self._lock:
            now = self.runtime.clock()
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
            try:
                if rt.log is not None:
                    rt._write(step_event(request, decision, live.id if live is not None else None), now, required=True)
                if decision.effect == ALLOW and decision.credential_ttl is not None:
                    credential = live or rt._credential(self, agent, chain or [], request, decision, now)
                    if credential not in self.credentials:
                        self.credentials.append(credential)
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
            history = self.history
            history.append(step)
            if len(history) > 2 * HISTORY_LIMIT:
                # Cut in blocks, so that appending stays cheap: a request reads the latest
                # HISTORY_LIMIT steps (views handed out before a cut see the list after it).
                del history[:HISTORY_LIMIT]
        return _step(decision, credential, request), request

    def record_output(self, tool: str, output: Any) -> None:
        """Remember what ``tool`` returned: later arguments found in it have provenance
        ``tool:<tool>``."""
        _require_str(tool, "tool")
        with self._lock:
            if self.ended:
                return
            kept = self.outputs.add(tool, output)
        if kept:
            self.runtime._write({"kind": "tool_output", "task": self.id, "tool": tool, "output": _jsonable(output)},
                                self.runtime.clock(), required=False)

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
        answer = {"granted": granted, "by": by}
        with self._lock:
            if self.ended:
                raise Denied(Decision(DENY, (), None, (), (f"task `{self.id}` has ended",)), {"tool": tool})
            event: dict = {"kind": "approval", "task": self.id, "tool": tool, "granted": granted, "by": by}
            if args is not None:
                event["args"] = dict(args)
            event["uses"] = uses if uses is not None else 0
            if expires is not None:
                event["expires"] = expires
            self.runtime._write(event, now, required=True)
            self.approvals[tool] = ScopedApproval(answer, dict(args) if args is not None else None, uses, expires)

    def end(self) -> list[str]:
        """End the task: revoke every credential it holds (in every process sharing the
        store). Returns the ids revoked. Ending twice does nothing."""
        rt = self.runtime
        with self._lock:
            if self.ended:
                return []
            self.ended = True
            self.outputs.clear()
            self.approvals.clear()
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
        return list(self.task.reached.get(self.agent, ()))

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
