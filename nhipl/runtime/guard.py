"""The guard: checks every tool call an agent makes, as it happens.

The request for a guarded call is built from the guard's identity, the current task and
delegation chain (context variables, so nested and concurrent tasks never mix) and the
call's arguments. ``deny`` raises :class:`~nhipl.runtime.errors.Denied`;
``approval_required`` asks the approver and re-evaluates with its answer; ``allow`` runs
the tool, which can read the decision (and its credential TTL) with
:func:`current_decision`.

Context variables follow asyncio tasks automatically. A thread starts with an empty
context: run thread work with ``contextvars.copy_context().run(fn)`` to carry the task
and delegation chain across.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import os
import time
import uuid
from contextvars import ContextVar
from typing import Any, Awaitable, Callable, Mapping, Union

from ..decision import ALLOW, APPROVAL_REQUIRED, DENY, Decision
from ..errors import RequestError
from ..values import ListView
from .errors import DecisionLogError, Denied
from .log import DecisionLog, failed_closed, open_log
from .resource import ResourceError, ResourceTemplate

logger = logging.getLogger("nhipl.runtime")

_acting: ContextVar[str | None] = ContextVar("nhipl_acting_principal", default=None)
_chain: ContextVar[tuple[str, ...]] = ContextVar("nhipl_delegation_chain", default=())
_task: ContextVar[dict | None] = ContextVar("nhipl_task", default=None)
_decision: ContextVar[Decision | None] = ContextVar("nhipl_decision", default=None)

Approval = Union[bool, Mapping[str, Any]]
Approver = Callable[[dict, Decision], Union[Approval, Awaitable[Approval]]]


def current_task() -> dict | None:
    """The task of the current context: ``{id, intent, owner?}``, or None."""
    return _task.get()


def delegation_chain() -> tuple[str, ...]:
    """Who delegated to the acting identity in this context, originator first."""
    return _chain.get()


def current_decision() -> Decision | None:
    """Inside a guarded tool: the decision that let it run (``credential_ttl`` is the TTL
    granted, in seconds, or None). Outside one: None."""
    return _decision.get()


class Guard:
    """An enforcement point for one agent identity.

    ``policies``: a :class:`~nhipl.Policies` (or a path or list of paths to load).
    ``identity``: the agent's SPIFFE ID. ``decision_log``: a path or a
    :class:`DecisionLog` (None: no log). ``approver``: called as
    ``approver(request, decision)`` when a call needs approval; it returns (or, when
    async, resolves to) ``True``/``False`` or ``{"granted": bool, "by": "who"}``. Without an
    approver, a call needing approval raises :class:`Denied`. ``principal_attrs`` are
    sent as attributes of the guard's own identity (the enforcement point that builds
    requests is trusted); ``context`` is sent as the request's ``context``.
    """

    def __init__(
        self,
        policies,
        identity: str,
        *,
        decision_log: DecisionLog | str | os.PathLike | None = None,
        approver: Approver | None = None,
        principal_attrs: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ):
        if not hasattr(policies, "evaluate"):
            from ..loader import load

            policies = load(policies)
        if not isinstance(identity, str) or not identity:
            raise ValueError("identity must be a non-empty string (a SPIFFE ID)")
        self.policies = policies
        self.identity = _string(identity, "identity")
        self.decision_log = open_log(decision_log, source="guard")
        self.approver = approver
        self.principal_attrs = json_value(dict(principal_attrs), "principal") if principal_attrs else None
        self.context = json_value(dict(context), "context") if context else None

    def __repr__(self) -> str:
        return f"<Guard {self.identity}>"

    # -- requests -----------------------------------------------------------------------
    def acting(self) -> str:
        """The identity calls are made as here: the innermost delegatee, else the guard's."""
        return _acting.get() or self.identity

    def request(
        self,
        tool: str,
        args: Mapping[str, Any] | None = None,
        *,
        action: str = "call",
        resource: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> dict:
        """The request for ``tool`` in the current task and delegation chain, every value
        plain JSON (:func:`json_value`)."""
        acting = _acting.get() or self.identity
        principal: Any = acting
        if self.principal_attrs and acting == self.identity:
            principal = {**self.principal_attrs, "id": acting}
        request: dict = {"principal": principal, "action": _string(action, "action"), "tool": _string(tool, "tool"), "now": time.time()}
        if resource is not None:
            request["resource"] = _string(resource, "resource")
        if args is not None:
            request["args"] = json_value(args, "args")
        task = _task.get()
        if task is not None:
            request["task"] = task
        chain = _chain.get()
        if chain:
            request["delegation"] = {"chain": list(chain)}
        if context:
            context = json_value(context, "context")
        ctx = {**self.context, **context} if self.context and context else (context or self.context)
        if ctx:
            request["context"] = ctx
        return request

    # -- decisions ----------------------------------------------------------------------
    def check(self, request: dict) -> Decision:
        """Evaluate ``request`` and log the decision. Never raises for deny; returns a
        ``deny`` when the log cannot be written and the log fails closed. Every value of
        ``request`` is made plain JSON first (:func:`json_value`)."""
        return self._check(json_request(request))

    def _check(self, request: dict) -> Decision:
        decision = self.policies.evaluate(request)
        return self._log(request, decision)

    def decide(self, request: dict) -> Decision:
        """Like :meth:`check`, but a call needing approval asks the approver (which must
        not be async here when an event loop is running) and is evaluated again with
        the answer. One log record per call, with the approval if one was asked."""
        return self._decide(json_request(request))

    def _decide(self, request: dict) -> Decision:
        decision = self.policies.evaluate(request)
        if decision.effect != APPROVAL_REQUIRED or self.approver is None:
            return self._log(request, decision)
        answer = self._ask(request, decision)
        if inspect.isawaitable(answer):
            answer = _run_sync(answer)
        return self._approved(request, decision, answer)

    async def adecide(self, request: dict) -> Decision:
        """:meth:`decide` for async code: an async approver is awaited."""
        return await self._adecide(json_request(request))

    async def _adecide(self, request: dict) -> Decision:
        decision = self.policies.evaluate(request)
        if decision.effect != APPROVAL_REQUIRED or self.approver is None:
            return self._log(request, decision)
        answer = self._ask(request, decision)
        if inspect.isawaitable(answer):
            try:
                answer = await answer
            except BaseException:
                self._log(request, decision, {"granted": False, "by": None}, decision.rules)
                raise
        return self._approved(request, decision, answer)

    def _ask(self, request: dict, decision: Decision):
        try:
            return self.approver(dict(request), decision)  # type: ignore[misc]
        except BaseException:
            # The approver failed: nothing runs. Record that it was asked, then re-raise.
            self._log(request, decision, {"granted": False, "by": None}, decision.rules)
            raise

    def _approved(self, request: dict, gate: Decision, answer) -> Decision:
        approval = _approval(answer)
        second = {**request, "approval": {k: v for k, v in approval.items() if v is not None}}
        decision = self.policies.evaluate(second)
        return self._log(second, decision, approval, gate.rules)

    def _log(self, request: dict, decision: Decision, approval: dict | None = None, gates=()) -> Decision:
        log = self.decision_log
        if log is None:
            return decision
        try:
            log.record_decision(request, decision, approval=approval, approval_rules=gates)
        except DecisionLogError as err:
            if not log.fail_closed:
                logger.warning("decision not logged: %s", err)
                return decision
            return failed_closed(decision, err)
        return decision

    def enforce(self, request: dict) -> Decision:
        """:meth:`decide`, raising :class:`Denied` unless the result is ``allow``."""
        return self._enforce(json_request(request))

    def _enforce(self, request: dict) -> Decision:
        decision = self._decide(request)
        if decision.effect != ALLOW:
            raise Denied(decision, request)
        return decision

    async def aenforce(self, request: dict) -> Decision:
        """:meth:`adecide`, raising :class:`Denied` unless the result is ``allow``."""
        return await self._aenforce(json_request(request))

    async def _aenforce(self, request: dict) -> Decision:
        decision = await self._adecide(request)
        if decision.effect != ALLOW:
            raise Denied(decision, request)
        return decision

    # -- tools --------------------------------------------------------------------------
    def tool(self, name: str | Callable | None = None, *, resource: str | Callable[[dict], str] | None = None):
        """Decorator guarding a sync or async tool function.

        ``name`` is the tool name policies see (default: the function's name).
        ``resource`` is a format string over the arguments (``"repo:{repo}"``) or a
        function of the arguments dict. Usable bare (``@guard.tool``) or called."""
        if callable(name):
            return self.wrap(name)
        return lambda fn: self.wrap(fn, name=name, resource=resource)

    def wrap(self, fn: Callable, *, name: str | None = None, resource: str | Callable[[dict], str] | None = None):
        """Return ``fn`` guarded; see :meth:`tool`."""
        tool_name = name or getattr(fn, "__name__", None) or repr(fn)
        bind = _binder(inspect.signature(fn))

        template = ResourceTemplate(resource, dotted=False) if isinstance(resource, str) else None

        def build(args: tuple, kwargs: dict) -> dict:
            call_args = bind(args, kwargs)
            try:
                rendered = template.render(call_args) if template is not None else _resource(resource, call_args)
            except ResourceError as err:
                # Fail closed: a call whose resource cannot be rendered is denied, and logged.
                request = self.request(tool_name, call_args)
                refused = Decision(DENY, (), None, (), (f"the resource cannot be rendered: {err.message}",))
                raise Denied(self._log(request, refused), request) from None
            return self.request(tool_name, call_args, resource=rendered)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args, **kwargs):
                request = build(args, kwargs)
                decision = await self._aenforce(request)
                token = _decision.set(decision)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    _decision.reset(token)

            guarded_async.nhipl_tool = tool_name  # type: ignore[attr-defined]
            return guarded_async

        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            request = build(args, kwargs)
            decision = self._enforce(request)
            token = _decision.set(decision)
            try:
                return fn(*args, **kwargs)
            finally:
                _decision.reset(token)

        guarded.nhipl_tool = tool_name  # type: ignore[attr-defined]
        return guarded

    # -- context ------------------------------------------------------------------------
    def task(self, intent: str, *, id: str | None = None, owner: str | None = None) -> "TaskScope":
        """Open a task (``with`` or ``async with``): calls inside carry
        ``task: {id, intent, owner}``. The id defaults to a fresh UUID."""
        return TaskScope(self, intent, id, owner)

    def delegate(self, to: str) -> "DelegationScope":
        """Hand work to ``to`` (``with`` or ``async with``). The delegation itself is
        checked as ``{principal: acting, action: "delegate", tool: to}`` and raises
        :class:`Denied` unless allowed; inside, calls are made as ``to`` with the acting
        identity appended to the delegation chain."""
        return DelegationScope(self, to)


class TaskScope:
    def __init__(self, guard: Guard, intent: str, task_id: str | None, owner: str | None):
        if not isinstance(intent, str):
            raise TypeError("intent must be a string")
        self.guard = guard
        self.task: dict = {"id": task_id or uuid.uuid4().hex, "intent": intent}
        if owner is not None:
            self.task["owner"] = owner
        self.task = json_value(self.task, "task")
        self._token = None

    def __enter__(self) -> dict:
        self._record("task_start")
        self._token = _task.set(self.task)
        return self.task

    def __exit__(self, *exc) -> None:
        _task.reset(self._token)
        self._record("task_end")

    async def __aenter__(self) -> dict:
        return self.__enter__()

    async def __aexit__(self, *exc) -> None:
        self.__exit__(*exc)

    def _record(self, event: str) -> None:
        log = self.guard.decision_log
        if log is None:
            return
        try:
            log.record_task(event, self.task, self.guard.acting())
        except DecisionLogError as err:
            # A task may not start unrecorded; once it is over there is nothing left to
            # protect, and raising from __exit__ would hide the body's own exception.
            if log.fail_closed and event == "task_start":
                raise
            logger.warning("%s not logged: %s", event, err)


class DelegationScope:
    def __init__(self, guard: Guard, to: str):
        if not isinstance(to, str) or not to:
            raise TypeError("delegate needs the delegatee's identity as a string")
        self.guard = guard
        self.to = to
        self.decision: Decision | None = None
        self._tokens: tuple | None = None

    def __enter__(self) -> Decision:
        self.decision = self.guard._enforce(self.guard.request(self.to, action="delegate"))
        self._enter()
        return self.decision

    async def __aenter__(self) -> Decision:
        self.decision = await self.guard._aenforce(self.guard.request(self.to, action="delegate"))
        self._enter()
        return self.decision

    def _enter(self) -> None:
        acting = self.guard.acting()
        self._tokens = (_acting.set(_string(self.to, "delegation")), _chain.set(_chain.get() + (acting,)))

    def __exit__(self, *exc) -> None:
        acting_token, chain_token = self._tokens  # type: ignore[misc]
        _chain.reset(chain_token)
        _acting.reset(acting_token)

    async def __aexit__(self, *exc) -> None:
        self.__exit__(*exc)


# -- helpers --------------------------------------------------------------------------------

_SKIPPED_PARAMS = ("self", "cls")


def _binder(signature: inspect.Signature) -> Callable[[tuple, dict], dict]:
    """A function from a call's ``(args, kwargs)`` to its arguments by parameter name,
    defaults included. Plain signatures take a fast path; anything unusual (and every
    call that does not fit) goes through ``Signature.bind``, which raises TypeError."""
    params = list(signature.parameters.values())
    plain_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if not all(p.kind in plain_kinds for p in params):
        return lambda args, kwargs: _arguments(signature, args, kwargs)
    positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    names = [p.name for p in params]
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    known = frozenset(names)

    def bind(args: tuple, kwargs: dict) -> dict:
        if len(args) > len(positional) or not known.issuperset(kwargs):
            return _arguments(signature, args, kwargs)
        given = dict(zip(positional, args))
        if kwargs:
            if not given.keys().isdisjoint(kwargs):
                return _arguments(signature, args, kwargs)
            given.update(kwargs)
        out = {}
        for name in names:
            if name in given:
                value = given[name]
            elif name in defaults:
                value = defaults[name]
            else:
                return _arguments(signature, args, kwargs)  # a required argument is missing
            if name not in _SKIPPED_PARAMS:
                out[name] = value
        return out

    return bind


def _arguments(signature: inspect.Signature, args: tuple, kwargs: dict) -> dict:
    """The call's arguments by parameter name, defaults included."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    out: dict = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out[name] = list(value)
        elif name not in _SKIPPED_PARAMS:
            out[name] = value
    return out


def _resource(resource, args: dict) -> str | None:
    if resource is None:
        return None
    rendered = resource(args)
    if not isinstance(rendered, str):
        raise ResourceError(f"the resource function returned {type(rendered).__name__}, not a string")
    return rendered


# -- plain JSON at the boundary ---------------------------------------------------------------

DEPTH_LIMIT = 64


def json_request(request: Mapping[str, Any]) -> dict:
    """``request`` with every value made plain JSON (see :func:`json_value`)."""
    return json_value(request, "request")


class _NotJSON(Exception):
    def __init__(self, reason: str):
        self.reason = reason
        self.path: list[str] = []


_PLAIN = frozenset({str, int, bool, type(None)})


def json_value(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON types, the only ones both evaluators read alike.

    A ``str`` subclass (a string enum) becomes its string, an ``int`` subclass (an int
    enum) its int, a ``float`` subclass its float; any mapping (``OrderedDict``, a
    ``MappingProxyType``) a dict with string keys; a list or tuple a list; a path
    (``os.PathLike``) its string. Anything else (sets, bytes, objects), a non-string key,
    a NaN or infinite float, or nesting deeper than 64 raises
    :class:`~nhipl.errors.RequestError` naming where. Plain values come back as they are
    (the same objects), so the common case costs one walk and no copies."""
    try:
        return _plain(value, 0)
    except _NotJSON as err:
        path = where + "".join(reversed(err.path))
        raise RequestError(f"`{path}` {err.reason}", path) from None


def _string(value: Any, where: str) -> str:
    if value.__class__ is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    raise RequestError(f"`{where}` must be a string, not {type(value).__name__}", where)


def _plain(value: Any, depth: int) -> Any:
    cls = value.__class__
    if cls in _PLAIN:
        return value
    if cls is float:
        if math.isfinite(value):
            return value
        raise _NotJSON(f"is {value!r}; only finite numbers are allowed")
    if depth >= DEPTH_LIMIT:
        raise _NotJSON(f"is nested more than {DEPTH_LIMIT} deep")
    if cls is dict:
        out = None
        for key, item in value.items():
            if key.__class__ is str and item.__class__ in _PLAIN:
                continue
            try:
                if key.__class__ is not str:
                    raise _NotJSON(f"has a key that is not a string: {type(key).__name__}")
                plain = _plain(item, depth + 1)
            except _NotJSON as err:
                err.path.append(f".{key}")
                raise
            if plain is not item:
                if out is None:
                    out = dict(value)
                out[key] = plain
        return value if out is None else out
    if cls is list:
        changed = None
        for index, item in enumerate(value):
            if item.__class__ in _PLAIN:
                continue
            try:
                plain = _plain(item, depth + 1)
            except _NotJSON as err:
                err.path.append(f"[{index}]")
                raise
            if plain is not item:
                if changed is None:
                    changed = list(value)
                changed[index] = plain
        return value if changed is None else changed
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise _NotJSON(f"has a key that is not a string: {type(key).__name__}")
        return _plain({str.__str__(k): v for k, v in value.items()}, depth)
    if isinstance(value, (tuple, ListView)):  # a ListView: a task's history, read as a list
        return _plain(list(value), depth)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return _plain(float.__float__(value), depth)
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise _NotJSON(
        f"is a {type(value).__name__}, which is not a JSON value (strings, numbers, booleans, null, lists and objects only)"
    )


def _approval(answer) -> dict:
    if answer is True or answer is False:
        return {"granted": answer, "by": None}
    if isinstance(answer, Mapping):
        granted = answer.get("granted")
        by = answer.get("by")
        if granted is not True and granted is not False:
            raise TypeError("an approver's answer needs `granted`: true or false")
        if by is not None and not isinstance(by, str):
            raise TypeError("an approver's `by` must be a string")
        return {"granted": granted, "by": by}
    raise TypeError(f"an approver must answer true, false or {{granted, by}}, not {type(answer).__name__}")


def _run_sync(awaitable):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(awaitable))
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    raise RuntimeError(
        "the approver is async but the guarded call is sync inside a running event loop; "
        "guard an async tool or use `await guard.adecide(...)`"
    )


async def _await(awaitable):
    return await awaitable
