"""The guard: checks every tool call an agent makes, as it happens.

A guard runs on a :class:`~nhipl.runtime.Runtime`. Inside ``guard.task(...)`` every call is a
step of that task's session: its request carries the task's intent, the delegation chain
that reached the acting identity, the provenance of each argument (from the task's
instruction and the outputs of earlier guarded tools, which the guard records), the
task's history and the approval in force. ``deny`` raises
:class:`~nhipl.runtime.errors.Denied`; ``approval_required`` asks the approver and decides
again with its answer; ``allow`` runs the tool, which can read the decision (its credential
TTL and, with one, its ``credential``) with :func:`current_decision`. A call outside any
task is decided on its own (no task, every argument's provenance ``unknown``).

Context variables follow asyncio tasks automatically. A thread starts with an empty
context: run thread work with ``contextvars.copy_context().run(fn)`` to carry the task
and delegation chain across.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import time
from contextvars import ContextVar
from typing import Any, Awaitable, Callable, Mapping, Union

from ..decision import ALLOW, APPROVAL_REQUIRED, DENY, Decision
from .errors import DecisionLogError, Denied
from .log import DecisionLog
from .plain import DEPTH_LIMIT, _string, json_request, json_value  # noqa: F401 - re-exported
from .resource import ResourceError, ResourceTemplate
from .session import Runtime, Task

logger = logging.getLogger("nhipl.runtime")

_acting: ContextVar[str | None] = ContextVar("nhipl_acting_principal", default=None)
_chain: ContextVar[tuple[str, ...]] = ContextVar("nhipl_delegation_chain", default=())
_task: ContextVar[dict | None] = ContextVar("nhipl_task", default=None)
_session: ContextVar[Task | None] = ContextVar("nhipl_task_session", default=None)
_decision: ContextVar[Decision | None] = ContextVar("nhipl_decision", default=None)

Approval = Union[bool, Mapping[str, Any]]
Approver = Callable[[dict, Decision], Union[Approval, Awaitable[Approval]]]


def current_task() -> dict | None:
    """The task of the current context: ``{id, intent, owner?}``, or None."""
    return _task.get()


def current_session() -> Task | None:
    """The task session of the current context (:class:`~nhipl.runtime.Task`), or None."""
    return _session.get()


def delegation_chain() -> tuple[str, ...]:
    """Who delegated to the acting identity in this context, originator first."""
    return _chain.get()


def current_decision() -> Decision | None:
    """Inside a guarded tool: the decision that let it run (``credential_ttl`` is the TTL
    granted, in seconds, or None; in a task, ``credential`` is the credential issued for
    the call, or None). Outside one: None."""
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
    requests is trusted); ``context`` is sent as the request's ``context``. ``runtime``:
    a :class:`~nhipl.runtime.Runtime` to share with other guards (its policies and log
    are then used; ``policies`` may be None).
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
        runtime: Runtime | None = None,
    ):
        if not isinstance(identity, str) or not identity:
            raise ValueError("identity must be a non-empty string (a SPIFFE ID)")
        if runtime is None:
            runtime = Runtime(policies, log=decision_log, source="guard")
        elif decision_log is not None:
            raise ValueError("give the decision log to the shared runtime, not to the guard")
        self.runtime = runtime
        self.identity = _string(identity, "identity")
        self.approver = approver
        self.principal_attrs = json_value(dict(principal_attrs), "principal") if principal_attrs else None
        self.context = json_value(dict(context), "context") if context else None

    def __repr__(self) -> str:
        return f"<Guard {self.identity}>"

    @property
    def policies(self):
        return self.runtime.policies

    @property
    def decision_log(self) -> DecisionLog | None:
        return self.runtime.log

    @decision_log.setter
    def decision_log(self, log: DecisionLog | None) -> None:
        self.runtime.log = log

    # -- requests -----------------------------------------------------------------------
    def acting(self) -> str:
        """The identity calls are made as here: the innermost delegatee, else the guard's."""
        return _acting.get() or self.identity

    def _principal(self, acting: str) -> Mapping[str, Any] | None:
        return self.principal_attrs if self.principal_attrs and acting == self.identity else None

    def _context(self, context: Mapping[str, Any] | None) -> dict | None:
        if context:
            context = json_value(context, "context")
        return {**self.context, **context} if self.context and context else (context or self.context)  # type: ignore[arg-type]

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
        plain JSON (:func:`json_value`). In a task, it is the session's request (provenance,
        history and the approval in force included; no approval is used up)."""
        acting = _acting.get() or self.identity
        session = _session.get()
        if session is not None:
            return session.request(acting, _string(tool, "tool"), args, resource, self._context(context),
                                   action=_string(action, "action"), principal=self._principal(acting))
        principal: Any = acting
        attrs = self._principal(acting)
        if attrs:
            principal = {**attrs, "id": acting}
        request: dict = {"principal": principal, "action": _string(action, "action"), "tool": _string(tool, "tool"), "now": time.time()}
        if resource is not None:
            request["resource"] = _string(resource, "resource")
        if args is not None:
            request["args"] = json_value(args, "args")
            if request["args"] and action != "delegate":
                request["provenance"] = {name: "unknown" for name in request["args"]}
        task = _task.get()
        if task is not None:
            request["task"] = task
        chain = _chain.get()
        if chain:
            request["delegation"] = {"chain": list(chain)}
        ctx = self._context(context)
        if ctx:
            request["context"] = ctx
        return request

    # -- decisions ----------------------------------------------------------------------
    def check(self, request: dict) -> Decision:
        """Evaluate ``request`` (as given) and log the decision. Never raises for deny;
        returns a ``deny`` when the log cannot be written and the log fails closed. Every
        value of ``request`` is made plain JSON first (:func:`json_value`)."""
        return self._check(json_request(request))

    def _check(self, request: dict) -> Decision:
        return self.runtime.record(request, self.policies.evaluate(request))

    def decide(self, request: dict) -> Decision:
        """Like :meth:`check`, but a call needing approval asks the approver (which must
        not be async here when an event loop is running) and is evaluated again with
        the answer. One log record per call, with the approval if one was asked."""
        return self._decide(json_request(request))

    def _decide(self, request: dict) -> Decision:
        decision = self.policies.evaluate(request)
        if decision.effect != APPROVAL_REQUIRED or self.approver is None:
            return self.runtime.record(request, decision)
        answer = self._ask(request, decision)
        if inspect.isawaitable(answer):
            answer = _run_sync(answer)
        return self._approved(request, answer)

    async def adecide(self, request: dict) -> Decision:
        """:meth:`decide` for async code: an async approver is awaited."""
        return await self._adecide(json_request(request))

    async def _adecide(self, request: dict) -> Decision:
        decision = self.policies.evaluate(request)
        if decision.effect != APPROVAL_REQUIRED or self.approver is None:
            return self.runtime.record(request, decision)
        answer = await self._aask(request, decision)
        return self._approved(request, answer)

    def _ask(self, request: dict, decision: Decision, on_failure: Callable[[], None] | None = None):
        try:
            return self.approver(dict(request), decision)  # type: ignore[misc]
        except BaseException:
            # The approver failed: nothing runs. Record that it was asked, then re-raise.
            (on_failure or (lambda: self.runtime.record(request, decision, {"granted": False, "by": None})))()
            raise

    async def _aask(self, request: dict, decision: Decision, on_failure: Callable[[], None] | None = None):
        answer = self._ask(request, decision, on_failure)
        if inspect.isawaitable(answer):
            try:
                answer = await answer
            except BaseException:
                (on_failure or (lambda: self.runtime.record(request, decision, {"granted": False, "by": None})))()
                raise
        return answer

    def _approved(self, request: dict, answer) -> Decision:
        approval = _approval(answer)
        second = {**request, "approval": {k: v for k, v in approval.items() if v is not None}}
        return self.runtime.record(second, self.policies.evaluate(second), approval)

    def enforce(self, request: dict) -> Decision:
        """:meth:`decide`, raising :class:`Denied` unless the result is ``allow``."""
        return _enforced(self._decide(json_request(request)), request)

    async def aenforce(self, request: dict) -> Decision:
        """:meth:`adecide`, raising :class:`Denied` unless the result is ``allow``."""
        return _enforced(await self._adecide(json_request(request)), request)

    # -- steps in a task session -------------------------------------------------------------
    def _step(self, session: Task, tool: str, args: dict | None, resource: str | None):
        """Decide a guarded call in ``session``: the decision, or an approval question."""
        acting = self.acting()
        return session.check(acting, tool, args, resource, self.context, principal=self._principal(acting))

    def _gate(self, session: Task, tool: str, args: dict | None, resource: str | None):
        """When the call would need approval and an approver is set: the request and the
        decision to ask about (nothing is logged or used up yet); else None."""
        if self.approver is None:
            return None
        acting = self.acting()
        request = session.request(acting, tool, args, resource, self.context, principal=self._principal(acting))
        decision = self.policies.evaluate(request)
        return (request, decision) if decision.effect == APPROVAL_REQUIRED else None

    def _answered(self, session: Task, tool: str, args: dict | None, answer) -> None:
        approval = _approval(answer)
        session.approve(tool, approval["by"] or "approver", args=args, granted=approval["granted"])

    def _refused(self, session: Task, tool: str, args: dict | None, resource: str | None) -> Callable[[], None]:
        """The approver failed: record a refusal and the step it refused, then re-raise."""
        def record() -> None:
            try:
                session.approve(tool, "approver", args=args, granted=False)
            except DecisionLogError as err:
                logger.warning("approval not logged: %s", err)
            self._step(session, tool, args, resource)
        return record

    def _session_decide(self, session: Task, tool: str, args: dict | None, resource: str | None) -> Decision:
        gate = self._gate(session, tool, args, resource)
        if gate is not None:
            answer = self._ask(*gate, self._refused(session, tool, args, resource))
            if inspect.isawaitable(answer):
                answer = _run_sync(answer)
            self._answered(session, tool, args, answer)
        return self._step(session, tool, args, resource)

    async def _session_adecide(self, session: Task, tool: str, args: dict | None, resource: str | None) -> Decision:
        gate = self._gate(session, tool, args, resource)
        if gate is not None:
            answer = await self._aask(*gate, self._refused(session, tool, args, resource))
            self._answered(session, tool, args, answer)
        return self._step(session, tool, args, resource)

    # -- tools --------------------------------------------------------------------------
    def tool(self, name: str | Callable | None = None, *, resource: str | Callable[[dict], str] | None = None):
        """Decorator guarding a sync or async tool function.

        ``name`` is the tool name policies see (default: the function's name).
        ``resource`` is a format string over the arguments (``"repo:{repo}"``) or a
        function of the arguments dict. Usable bare (``@guard.tool``) or called.
        In a task, the tool's return value is recorded as the task's output (for the
        provenance of later arguments)."""
        if callable(name):
            return self.wrap(name)
        return lambda fn: self.wrap(fn, name=name, resource=resource)

    def wrap(self, fn: Callable, *, name: str | None = None, resource: str | Callable[[dict], str] | None = None):
        """Return ``fn`` guarded; see :meth:`tool`."""
        tool_name = name or getattr(fn, "__name__", None) or repr(fn)
        bind = _binder(inspect.signature(fn))

        template = ResourceTemplate(resource, dotted=False) if isinstance(resource, str) else None

        def build(args: tuple, kwargs: dict) -> tuple[dict, str | None]:
            call_args = json_value(bind(args, kwargs), "args")
            try:
                rendered = template.render(call_args) if template is not None else _resource(resource, call_args)
            except ResourceError as err:
                # Fail closed: a call whose resource cannot be rendered is denied, and logged.
                request = self.request(tool_name, call_args)
                refused = Decision(DENY, (), None, (), (f"the resource cannot be rendered: {err.message}",))
                session = _session.get()
                if session is not None:
                    raise Denied(refused, request) from None
                raise Denied(self.runtime.record(request, refused), request) from None
            return call_args, rendered

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args, **kwargs):
                call_args, rendered = build(args, kwargs)
                session = _session.get()
                if session is None:
                    request = self.request(tool_name, call_args, resource=rendered)
                    decision = _enforced(await self._adecide(request), request)
                else:
                    decision = await self._session_adecide(session, tool_name, call_args, rendered)
                    _enforced(decision, decision.request)
                token = _decision.set(decision)
                try:
                    result = await fn(*args, **kwargs)
                finally:
                    _decision.reset(token)
                if session is not None:
                    session.record_output(tool_name, result)
                return result

            guarded_async.nhipl_tool = tool_name  # type: ignore[attr-defined]
            return guarded_async

        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            call_args, rendered = build(args, kwargs)
            session = _session.get()
            if session is None:
                request = self.request(tool_name, call_args, resource=rendered)
                decision = _enforced(self._decide(request), request)
            else:
                decision = self._session_decide(session, tool_name, call_args, rendered)
                _enforced(decision, decision.request)
            token = _decision.set(decision)
            try:
                result = fn(*args, **kwargs)
            finally:
                _decision.reset(token)
            if session is not None:
                session.record_output(tool_name, result)
            return result

        guarded.nhipl_tool = tool_name  # type: ignore[attr-defined]
        return guarded

    # -- context ------------------------------------------------------------------------
    def task(self, intent: str, *, id: str | None = None, owner: str | None = None, prompt: str | None = None) -> "TaskScope":
        """Open a task (``with`` or ``async with``): a task session of the runtime, started
        by the acting identity. ``prompt`` is the user's instruction (arguments found in it
        have provenance ``user``). The id defaults to a fresh UUID. Leaving the block ends
        the task, which revokes its credentials."""
        return TaskScope(self, intent, id, owner, prompt)

    def delegate(self, to: str) -> "DelegationScope":
        """Hand work to ``to`` (``with`` or ``async with``). The delegation itself is
        checked as ``{principal: acting, action: "delegate", tool: to}`` and raises
        :class:`Denied` unless allowed; inside, calls are made as ``to`` with the acting
        identity appended to the delegation chain."""
        return DelegationScope(self, to)


def _enforced(decision: Decision, request: dict | None) -> Decision:
    if decision.effect != ALLOW:
        if request is not None and request.get("history") is not None:
            request = {**request, "history": list(request["history"])}  # plain JSON, as it was
        raise Denied(decision, request)
    return decision


class TaskScope:
    def __init__(self, guard: Guard, intent: str, task_id: str | None, owner: str | None, prompt: str | None):
        if not isinstance(intent, str):
            raise TypeError("intent must be a string")
        self.guard = guard
        self.intent = intent
        self.task_id = task_id
        self.owner = owner
        self.prompt = prompt
        self.session: Task | None = None
        self._tokens: tuple | None = None

    @property
    def task(self) -> dict | None:
        return self.session.request_task if self.session is not None else None

    def __enter__(self) -> dict:
        session = self.guard.runtime.start_task(self.guard.acting(), self.intent, self.prompt, self.task_id, self.owner)
        self.session = session
        # A task starts afresh: its originator is the acting identity, with no chain in it.
        self._tokens = (_task.set(session.request_task), _session.set(session), _chain.set(()))
        return session.request_task

    def __exit__(self, *exc) -> None:
        task_token, session_token, chain_token = self._tokens  # type: ignore[misc]
        _chain.reset(chain_token)
        _session.reset(session_token)
        _task.reset(task_token)
        # Once the task is over there is nothing left to protect, and raising from
        # __exit__ would hide the body's own exception.
        try:
            self.session.end()  # type: ignore[union-attr]
        except DecisionLogError as err:
            logger.warning("task_end not logged: %s", err)

    async def __aenter__(self) -> dict:
        return self.__enter__()

    async def __aexit__(self, *exc) -> None:
        self.__exit__(*exc)


class DelegationScope:
    def __init__(self, guard: Guard, to: str):
        if not isinstance(to, str) or not to:
            raise TypeError("delegate needs the delegatee's identity as a string")
        self.guard = guard
        self.to = to
        self.decision: Decision | None = None
        self._tokens: tuple | None = None

    def __enter__(self) -> Decision:
        session = _session.get()
        if session is None:
            request = self.guard.request(self.to, action="delegate")
            self.decision = _enforced(self.guard._decide(request), request)
        else:
            self.decision = session.delegate(self.guard.acting(), self.to).decision
        self._enter(session)
        return self.decision

    async def __aenter__(self) -> Decision:
        session = _session.get()
        if session is None:
            request = self.guard.request(self.to, action="delegate")
            self.decision = _enforced(await self.guard._adecide(request), request)
        else:
            self.decision = session.delegate(self.guard.acting(), self.to).decision
        self._enter(session)
        return self.decision

    def _enter(self, session: Task | None) -> None:
        acting = self.guard.acting()
        to = _string(self.to, "delegation")
        chain = tuple(session.chain(to) or ()) if session is not None else _chain.get() + (acting,)
        self._tokens = (_acting.set(to), _chain.set(chain))

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
