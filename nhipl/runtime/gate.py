"""The MCP proxy's gate: what to do with each message, without any I/O.

:class:`Gate` is a state machine. The relay (:mod:`nhipl.runtime.proxy`) hands it each
line from the client (:meth:`Gate.from_client`) and from the server
(:meth:`Gate.from_server`), tells it when a timer it asked for runs out
(:meth:`Gate.expire`) and when the server is gone (:meth:`Gate.server_ended`); each call
returns the actions to carry out, in order: :class:`Send` a message to one side, start a
:class:`Timer`, or write a :class:`Note` on stderr. Decisions are written to the decision
log (when there is one) before the call they allow is sent.

Every ``tools/call`` is a step of one runtime task session (:class:`nhipl.runtime.Runtime`):
the proxy's identity starts the task with its intent and the user's instruction; each call
is checked in the task, so its request carries the task's intent, ``provenance`` of every
argument (from the instruction and the outputs recorded so far), ``history``, the approval
in force and ``now``; the result of each call is recorded as the task's output; an allowed
call with a credential TTL gets a credential, passed to the server in the call's
``params._meta["nhipl/credential"]`` (the compact JWT; the server verifies it with the
runtime's public keys); the task ends (revoking its credentials) when the session does.

What it enforces:

- every ``tools/call`` from the client is decided by the policy; only an ``allow`` is sent
  on, and what is sent is the message the gate parsed, re-serialised (see
  :mod:`nhipl.runtime.jsonrpc` for what a line must be to be read at all);
- a ``tools/call`` without an id (a notification) is refused and logged;
- a method must be exactly one of MCP's, a tool name must hold no control or format
  characters and be unchanged by NFKC normalisation;
- the proxy's own requests (its ``tools/list`` to the server, its approval questions to
  the client) carry unguessable ids, an answer to one is taken only from the side it was
  asked of, and a peer's request may not reuse an id that is still in flight;
- every other answer goes back only to the side that asked, and an answer to nothing is
  dropped.
"""

from __future__ import annotations

import json
import secrets
import time
import unicodedata
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..decision import ALLOW, APPROVAL_REQUIRED, DENY, RESTRICTIVENESS, Decision
from ..errors import RequestError
from . import jsonrpc
from .errors import DecisionLogError
from .jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, FrameError
from .log import DecisionLog, failed_closed
from .redact import DEFAULT_REDACTOR
from .resource import ResourceError, ResourceTemplate

CLIENT, SERVER = "client", "server"
LIST_TIMEOUT = 10.0
CREDENTIAL_META = "nhipl/credential"  # where an allowed call's credential goes in params._meta
HOLD_LIMIT = 1000  # client messages held while the proxy lists the server's tools
NAME_LIMIT = 256
IN_FLIGHT_LIMIT = 10_000  # requests waiting for an answer, per side


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` (a dict) to ``to`` (``"client"`` or ``"server"``)."""

    to: str
    message: dict


@dataclass(frozen=True, slots=True)
class Timer:
    """Call :meth:`Gate.expire` with ``key`` after ``seconds``, unless it is done by then."""

    key: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Note:
    """A line for the operator (stderr)."""

    text: str


@dataclass(slots=True)
class _Parked:
    """A tools/call waiting for the human's answer to the proxy's question."""

    message: dict
    request: dict
    gate: Decision


def _own_id(kind: str) -> str:
    return f"nhipl-{kind}-{secrets.token_hex(16)}"


_NAMES_OK: set[str] = set()  # names already checked (tool names repeat)


def name_problem(name: str) -> str | None:
    """Why ``name`` may not be a tool name, or None."""
    if name in _NAMES_OK:
        return None
    problem = _name_problem(name)
    if problem is None and len(_NAMES_OK) < 4096:
        _NAMES_OK.add(name)
    return problem


def _name_problem(name: str) -> str | None:
    if not name or len(name) > NAME_LIMIT:
        return f"a tool name has 1 to {NAME_LIMIT} characters"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in name):
        return "a tool name may not hold control or format characters"
    if unicodedata.normalize("NFKC", name) != name:
        return "a tool name must be in NFKC normal form (no fullwidth or compatibility letters)"
    return None


class Gate:
    """The proxy's decisions for one session (see the module docs).

    ``resource``: a :class:`~nhipl.runtime.resource.ResourceTemplate` (or its text) over
    the call's arguments; ``decision_log``: a :class:`DecisionLog` or None."""

    def __init__(
        self,
        policies,
        identity: str,
        *,
        intent: str | None = None,
        prefix: str | None = None,
        resource: ResourceTemplate | str | None = None,
        decision_log: DecisionLog | None = None,
        approval_timeout: float = 300.0,
        task_id: str | None = None,
        prompt: str | None = None,
        runtime=None,
    ):
        self.policies = policies
        self.prompt = prompt
        self.runtime = runtime  # made on first use when not given: a memory store and the log
        self._session = None  # the task session, started on first use
        self.identity = identity
        self.prefix = prefix
        self.resource = ResourceTemplate(resource) if isinstance(resource, str) else resource
        self.task: dict = {"id": task_id or uuid.uuid4().hex}
        if intent is not None:
            self.task["intent"] = intent
        self.log = decision_log
        self.approval_timeout = approval_timeout
        self.annotations: dict[str, dict] = {}
        self.elicitation = False
        self.client_name = "client"
        self.tools_known = False  # a full tools/list has been seen since the last change
        self._pending: dict[str, str] = {}  # client request id -> method, sent to the server
        self._calls: dict[str, str] = {}  # client tools/call id -> the tool, sent to the server
        self._tool_lists: set[str] = set()  # which of those are the client's tools/list
        self._server_asks: set[str] = set()  # the server's requests, sent to the client
        self._listing: str | None = None  # the id of the proxy's own tools/list, in flight
        self._listed: dict = {}  # tools seen by the proxy's own listing so far
        self._asks: dict[str, str] = {}  # the proxy's approval question id -> client call key
        self._parked: dict[str, _Parked] = {}  # client call key -> the call waiting for approval
        self._held: deque = deque()  # client messages held while the proxy lists tools
        self.decisions: list[tuple[dict, Decision]] = []  # every decision, in order (bounded)
        self._notes: list[str] = []

    def _with_notes(self, out: list) -> list:
        if self._notes:
            out = [Note(n) for n in self._notes] + out
            self._notes.clear()
        return out

    # -- the client's lines -------------------------------------------------------------------
    def from_client(self, line: bytes) -> list:
        """The actions for one line from the client."""
        return self._with_notes(self._from_client(line))

    def _from_client(self, line: bytes) -> list:
        if not line.strip():
            return []
        try:
            message = jsonrpc.parse_line(line)
        except FrameError as err:
            return [Send(CLIENT, jsonrpc.rpc_error(err.request_id, err.code, err.reason))]
        if self._listing is not None and not (isinstance(message, dict) and "method" not in message):
            # Requests and notifications wait for the tool list, in order; answers to the
            # server's questions need no tool list and go on (the server may wait for them).
            if len(self._held) >= HOLD_LIMIT:
                return self._refuse_held(message)
            self._held.append(message)
            return []
        return self._client_message(message)

    def _refuse_held(self, message) -> list:
        if isinstance(message, dict) and jsonrpc.valid_id(message.get("id")) and "method" in message:
            why = "too many messages while the proxy lists the server's tools"
            return [Send(CLIENT, jsonrpc.rpc_error(message["id"], INTERNAL_ERROR, why))]
        return [Note("a client message was dropped: too many held while listing tools")]

    def _client_message(self, message: Any) -> list:
        if isinstance(message, list):
            return [Send(CLIENT, jsonrpc.rpc_error(None, INVALID_REQUEST, "invalid request: JSON-RPC batches are not supported"))]
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            request_id = message.get("id") if isinstance(message, dict) else None
            request_id = request_id if jsonrpc.valid_id(request_id) else None
            why = 'invalid request: not a JSON-RPC 2.0 message (`"jsonrpc": "2.0"` missing)'
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, INVALID_REQUEST, why))]
        has_id = "id" in message
        request_id = message.get("id")
        if has_id and not jsonrpc.valid_id(request_id):
            return [Send(CLIENT, jsonrpc.rpc_error(None, INVALID_REQUEST, "invalid request: an id must be a string or an integer"))]
        method = message.get("method")
        if "method" not in message:
            if has_id and (("result" in message) != ("error" in message)):
                return self._client_answer(message)
            why = "invalid request: neither a request, a notification nor a response"
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, INVALID_REQUEST, why))]
        if "result" in message or "error" in message:
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, INVALID_REQUEST, "invalid request: a request cannot carry a result"))]
        if method.__class__ is not str or method not in jsonrpc.CLIENT_METHODS:
            shown = json.dumps(method, ensure_ascii=True)[:80]
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, METHOD_NOT_FOUND, f"method not found: {shown} is not an MCP method"))]
        params = message.get("params")
        if "params" in message and params.__class__ is not dict:
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, INVALID_PARAMS, "invalid params: `params` must be an object"))]
        if not has_id:
            return self._client_notification(method, params)
        key = jsonrpc.id_key(request_id)
        if len(self._pending) + len(self._parked) >= IN_FLIGHT_LIMIT:
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, INTERNAL_ERROR, "too many requests in flight; try again later"))]
        if key in self._pending or key in self._parked or key == self._listing:
            return [Send(CLIENT, jsonrpc.rpc_error(None, INVALID_REQUEST, f"invalid request: the id {json.dumps(request_id)[:80]} is already in use"))]
        clean = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            clean["params"] = params
        if method == "tools/call":
            return self._call(clean)
        if method == "initialize":
            self._note_client(params)
        elif method == "tools/list":
            self._tool_lists.add(key)
        self._pending[key] = method
        return [Send(SERVER, clean)]

    def _client_notification(self, method: str, params) -> list:
        if method == "tools/call":
            return self._refuse_notification(params)
        if not method.startswith("notifications/"):
            why = f"invalid request: `{method}` is a request and needs an id"
            return [Send(CLIENT, jsonrpc.rpc_error(None, INVALID_REQUEST, why))]
        if method == "notifications/cancelled" and isinstance(params, dict):
            target = params.get("requestId")
            if jsonrpc.valid_id(target):
                key = jsonrpc.id_key(target)
                if self._parked.pop(key, None) is not None:
                    # It was never sent on: nothing to cancel upstream; forget the question.
                    for ask, call in list(self._asks.items()):
                        if call == key:
                            del self._asks[ask]
                    return []
        clean = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            clean["params"] = params
        return [Send(SERVER, clean)]

    def _refuse_notification(self, params) -> list:
        name = params.get("name") if isinstance(params, dict) else None
        arguments = params.get("arguments") if isinstance(params, dict) else None
        tool = self._tool(name) if isinstance(name, str) else "?"
        request = self._request(tool, arguments if isinstance(arguments, dict) else {})
        why = "a `tools/call` without an id (a notification) cannot carry a result; refused, never forwarded"
        self._record(request, Decision(DENY, (), None, (), (why,)))
        return [Note(f"refused a `tools/call` notification for `{tool}`"), Send(CLIENT, jsonrpc.rpc_error(None, INVALID_REQUEST, f"invalid request: {why}"))]

    def _client_answer(self, message: dict) -> list:
        key = jsonrpc.id_key(message["id"])
        call_key = self._asks.pop(key, None)
        if call_key is not None:
            return self._answered(call_key, message)
        if key in self._server_asks:
            self._server_asks.discard(key)
            return [Send(SERVER, _answer(message))]
        return [Note(f"dropped the client's answer to no request in flight (id {key[2:82]})")]

    def _note_client(self, params) -> None:
        if not isinstance(params, dict):
            return
        capabilities = params.get("capabilities")
        elicitation = capabilities.get("elicitation") if isinstance(capabilities, dict) else None
        # `{}` means form mode (2025-06-18); later revisions list the modes.
        self.elicitation = isinstance(elicitation, dict) and (not elicitation or "form" in elicitation)
        info = params.get("clientInfo")
        name = info.get("name") if isinstance(info, dict) else None
        if isinstance(name, str) and name and name_problem(name) is None:
            self.client_name = name

    # -- tools/call ---------------------------------------------------------------------------
    def _tool(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def _request(self, tool: str, arguments: dict, name: str | None = None) -> dict:
        return {
            "principal": self.identity,
            "action": "call",
            "tool": tool,
            "args": arguments,
            "task": self.task,
            "context": {"tool_annotations": self.annotations.get(name, {}) if name is not None else {}},
        }

    def _call(self, message: dict) -> list:
        request_id = message["id"]
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        arguments = params.get("arguments") if isinstance(params, dict) else None
        if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
            why = "invalid params: `tools/call` needs a string `name` and object `arguments`"
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, INVALID_PARAMS, why))]
        problem = name_problem(name)
        if problem is not None:
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, INVALID_PARAMS, f"invalid params: {problem}"))]
        if not self.tools_known:
            return self._start_listing(message)
        request = self._request(self._tool(name), arguments or {}, name)
        if self.resource is not None:
            try:
                request["resource"] = self.resource.render(arguments or {})
            except ResourceError as err:
                refused = Decision(DENY, (), None, (), (f"the resource cannot be rendered: {err.message}",))
                return self._finish(message, request, self._record(request, refused))
        try:
            decision = self._check(request)
        except RequestError as err:
            return [Send(CLIENT, jsonrpc.rpc_error(request_id, INVALID_PARAMS, f"invalid params: {err.message}"))]
        except Exception as err:  # noqa: BLE001 - a decision that cannot be made fails closed
            why = f"the proxy could not decide this call ({type(err).__name__}); the call was not made"
            return [Note(why), Send(CLIENT, jsonrpc.rpc_error(request_id, INTERNAL_ERROR, why))]
        if decision.effect == APPROVAL_REQUIRED and self.elicitation:
            return self._ask(message, request, decision)
        return self._finish(message, request, decision)

    # -- the task session ---------------------------------------------------------------------
    def session(self):
        """The task session every call of this proxy session is a step of (started on first use)."""
        if self._session is None:
            if self.runtime is None:
                from .session import Runtime

                self.runtime = Runtime(_Distrusting(self), store="memory", log=self.log, source="mcp-proxy")
            self._session = self.runtime.start_task(self.identity, self.task.get("intent", ""), prompt=self.prompt, task_id=self.task["id"])
        return self._session

    def _check(self, request: dict) -> Decision:
        """``request``'s step, checked in the task session and logged there before anything
        is sent; a step that cannot be logged is denied (the log fails closed)."""
        try:
            decision = self.session().check(
                self.identity, request["tool"], args=request["args"], resource=request.get("resource"), context=request["context"]
            )
        except DecisionLogError as err:
            decision = failed_closed(Decision(DENY), err)
        if len(self.decisions) < 10_000:
            self.decisions.append((getattr(decision, "request", None) or request, decision))
        return decision

    def evaluate(self, request: dict) -> Decision:
        """The decision for ``request``; annotations can only make it more restrictive."""
        context = request.get("context")
        claimed = context.get("tool_annotations") if context.__class__ is dict else None
        decision = self.policies.evaluate(request)
        if not claimed:
            return decision
        bare = self.policies.evaluate({**request, "context": {**context, "tool_annotations": {}}})
        if RESTRICTIVENESS[bare.effect] <= RESTRICTIVENESS[decision.effect]:
            if decision.effect == ALLOW and bare.credential_ttl is not None and (
                decision.credential_ttl is None or bare.credential_ttl < decision.credential_ttl
            ):
                return Decision(decision.effect, decision.rules, bare.credential_ttl, decision.errors, decision.reasons, decision.restricted_by, decision.shares)
            return decision
        note = f"tool annotations from the server are never trusted to allow: without them the decision is `{bare.effect}`"
        return Decision(bare.effect, bare.rules, None, bare.errors, bare.reasons + (note,), bare.restricted_by, bare.shares)

    def _finish(self, message: dict, request: dict, decision: Decision, asked: bool = False) -> list:
        request_id = message["id"]
        tool = request["tool"]
        if decision.effect == ALLOW:
            key = jsonrpc.id_key(request_id)
            self._pending[key] = "tools/call"
            self._calls[key] = tool
            return [Send(SERVER, _with_credential(message, getattr(decision, "credential", None)))]
        reasons = "\n".join(f"- {r}" for r in decision.reasons)
        if decision.effect == APPROVAL_REQUIRED:
            if asked:
                head = f"approval for `{tool}` was not given; the call was not made"
            else:
                head = (
                    f"`{tool}` needs human approval, and this MCP client cannot be asked "
                    "(it did not declare the elicitation capability); the call was not made"
                )
        else:
            head = f"`{tool}` was denied by policy; the call was not made"
        return [Send(CLIENT, jsonrpc.tool_error(request_id, f"{head}\n{reasons}" if reasons else head))]

    def _record(self, request: dict, decision: Decision) -> Decision:
        """Log a refusal the proxy made without the policy (a call it cannot make), as a step
        of the task; the decision to enforce."""
        if len(self.decisions) < 10_000:
            self.decisions.append((request, decision))
        if self.log is None:
            return decision
        try:
            self.session()
        except DecisionLogError:
            pass  # recorded below or failed closed: the call is refused either way
        return self.runtime.record({**request, "now": time.time()}, decision) if self.runtime is not None else decision

    # -- approval -----------------------------------------------------------------------------
    def _ask(self, message: dict, request: dict, gate: Decision) -> list:
        ask_id = _own_id("approval")
        key = jsonrpc.id_key(message["id"])
        self._asks[jsonrpc.id_key(ask_id)] = key
        self._parked[key] = _Parked(message, request, gate)
        shown = json.dumps(DEFAULT_REDACTOR.value(request["args"]), ensure_ascii=False)
        if len(shown) > 1000:
            shown = shown[:1000] + "..."
        why = "; ".join(gate.reasons)
        question = {
            "jsonrpc": "2.0",
            "id": ask_id,
            "method": "elicitation/create",
            "params": {
                "message": (
                    f"Policy asks for your approval.\nAgent: {self.identity}\nTool: {request['tool']}\n"
                    f"Arguments: {shown}\nWhy: {why}\nApprove this call?"
                ),
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "approve": {"type": "boolean", "title": "Approve", "description": f"Let the agent call {request['tool']}"}
                    },
                    "required": ["approve"],
                },
            },
        }
        return [Send(CLIENT, question), Timer(jsonrpc.id_key(ask_id), self.approval_timeout)]

    def _answered(self, call_key: str, answer: dict | None) -> list:
        parked = self._parked.pop(call_key, None)
        if parked is None:
            return []
        granted, extra = _approval_answer(answer, self.approval_timeout)
        request = parked.request
        try:
            # The answer covers this one call (these arguments, one use); the call is then
            # checked again in the task with the answer in force (a refusal grants nothing).
            self.session().approve(request["tool"], f"mcp-client:{self.client_name}", args=request["args"], granted=granted)
            decision = self._check(request)
        except Exception as err:  # noqa: BLE001 - fails closed
            decision = Decision(DENY, (), None, (), (f"the proxy could not decide this call ({type(err).__name__})",))
        if extra and decision.effect != ALLOW:
            decision = Decision(decision.effect, decision.rules, None, decision.errors, decision.reasons + (extra,), decision.restricted_by, decision.shares)
        return self._finish(parked.message, request, decision, asked=True)

    # -- the proxy's own tools/list -------------------------------------------------------------
    def _start_listing(self, message: dict, cursor: str | None = None) -> list:
        if message is not None:
            self._held.appendleft(message)
        own = _own_id("tools")
        self._listing = jsonrpc.id_key(own)
        request: dict = {"jsonrpc": "2.0", "id": own, "method": "tools/list"}
        if cursor is not None:
            request["params"] = {"cursor": cursor}
        else:
            self._listed = {}
        return [Send(SERVER, request), Timer(self._listing, LIST_TIMEOUT)]

    def _listing_done(self, note: str | None) -> list:
        self._listing = None
        out: list = [Note(note)] if note else []
        while self._held and self._listing is None:
            message = self._held.popleft()
            if isinstance(message, dict) and message.get("method") == "tools/call" and not self.tools_known and note:
                # The listing failed: decide this call without annotations rather than loop.
                out += self._call_without_listing(message)
                continue
            out += self._client_message(message)
        return out

    def _call_without_listing(self, message: dict) -> list:
        self.tools_known = True
        try:
            return self._client_message(message)
        finally:
            self.tools_known = False

    def _own_answer(self, message: dict) -> list:
        result = message.get("result")
        if not isinstance(result, dict):
            return self._listing_done("the MCP server refused to list its tools; deciding without annotations")
        self._remember_tools(result)
        cursor = result.get("nextCursor")
        if isinstance(cursor, str) and len(self._listed) < 100_000:
            return self._start_listing(None, cursor)  # type: ignore[arg-type]
        self.tools_known = True
        return self._listing_done(None)

    def _remember_tools(self, result) -> None:
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                annotations = tool.get("annotations")
                self.annotations[tool["name"]] = dict(annotations) if isinstance(annotations, dict) else {}
                self._listed[tool["name"]] = True

    # -- the server's lines ---------------------------------------------------------------------
    def from_server(self, line: bytes) -> list:
        """The actions for one line from the server."""
        return self._with_notes(self._from_server(line))

    def _from_server(self, line: bytes) -> list:
        if not line.strip():
            return []
        try:
            message = jsonrpc.parse_line(line)
        except FrameError as err:
            if err.request_id is not None:
                key = jsonrpc.id_key(err.request_id)
                if key == self._listing:
                    return self._listing_done(f"the MCP server's tool list was refused ({err.reason}); deciding without annotations")
                method = self._pending.pop(key, None)
                if method is not None:
                    self._tool_lists.discard(key)
                    why = f"the MCP server's answer to `{method}` was refused by the proxy ({err.reason})"
                    return [Note(why), Send(CLIENT, jsonrpc.rpc_error(err.request_id, INTERNAL_ERROR, why))]
                return [Note(f"dropped a server line the proxy refuses, for no request in flight ({err.reason})")]
            return self.server_broke(f"the MCP server sent a line that is not JSON the proxy accepts ({err.reason})")
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return self.server_broke("the MCP server sent a line that is not a JSON-RPC 2.0 message")
        has_id = "id" in message
        request_id = message.get("id")
        if has_id and not jsonrpc.valid_id(request_id):
            return [Note("dropped a server message whose id is not a string or an integer")]
        if "method" not in message:
            if not has_id or ("result" in message) == ("error" in message):
                return self.server_broke("the MCP server sent a message that is neither a request, a notification nor a response")
            return self._server_answer(message)
        method = message.get("method")
        if method.__class__ is not str or method not in jsonrpc.SERVER_METHODS:
            shown = json.dumps(method, ensure_ascii=True)[:80]
            if has_id:
                return [Send(SERVER, jsonrpc.rpc_error(request_id, METHOD_NOT_FOUND, f"method not found: {shown}"))]
            return [Note(f"dropped a server notification with an unknown method {shown}")]
        params = message.get("params")
        if "params" in message and params.__class__ is not dict:
            if has_id:
                return [Send(SERVER, jsonrpc.rpc_error(request_id, INVALID_PARAMS, "invalid params: `params` must be an object"))]
            return [Note("dropped a server notification whose params are not an object")]
        clean = {"jsonrpc": "2.0", "method": method}
        if has_id:
            key = jsonrpc.id_key(request_id)
            if len(self._server_asks) >= IN_FLIGHT_LIMIT:
                return [Send(SERVER, jsonrpc.rpc_error(request_id, INTERNAL_ERROR, "too many requests in flight"))]
            if key in self._asks or key in self._server_asks:
                return [Send(SERVER, jsonrpc.rpc_error(request_id, INVALID_REQUEST, "invalid request: the id is already in use"))]
            self._server_asks.add(key)
            clean["id"] = request_id
        elif method == "notifications/tools/list_changed":
            self.tools_known = False
        if params is not None:
            clean["params"] = params
        return [Send(CLIENT, clean)]

    def _server_answer(self, message: dict) -> list:
        key = jsonrpc.id_key(message["id"])
        if key == self._listing:
            return self._own_answer(message)
        method = self._pending.pop(key, None)
        if method is None:
            return [Note(f"dropped the server's answer to no request in flight (id {key[2:82]})")]
        tool = self._calls.pop(key, None)
        if tool is not None and "result" in message:
            self._record_output(tool, message["result"])
        if key in self._tool_lists:
            self._tool_lists.discard(key)
            result = message.get("result")
            self._remember_tools(result)
            if isinstance(result, dict) and not isinstance(result.get("nextCursor"), str):
                self.tools_known = True
        return [Send(CLIENT, _answer(message))]

    # -- endings --------------------------------------------------------------------------------
    def expire(self, key: str) -> list:
        """A timer asked for by :class:`Timer` ran out."""
        return self._with_notes(self._expire(key))

    def _expire(self, key: str) -> list:
        if key == self._listing:
            return self._listing_done(f"the MCP server did not list its tools within {LIST_TIMEOUT:g}s; deciding without annotations")
        call_key = self._asks.pop(key, None)
        if call_key is not None:
            return self._answered(call_key, None)
        return []

    def server_broke(self, why: str) -> list:
        """Every request waiting for the server fails with ``why``."""
        out: list = [Note(why)]
        for key, method in list(self._pending.items()):
            out.append(Send(CLIENT, jsonrpc.rpc_error(jsonrpc.key_id(key), INTERNAL_ERROR, f"{why}; `{method}` cannot be answered")))
        self._pending.clear()
        self._calls.clear()
        self._tool_lists.clear()
        if self._listing is not None:
            out += self._listing_done("the MCP server's tool list is lost; deciding without annotations")
        return out

    def server_ended(self, why: str) -> list:
        """The server is gone: every request it had not answered gets an error."""
        out: list = []
        for key, method in list(self._pending.items()):
            out.append(Send(CLIENT, jsonrpc.rpc_error(jsonrpc.key_id(key), INTERNAL_ERROR, f"{why} before answering `{method}`")))
        self._pending.clear()
        self._calls.clear()
        return out

    def _record_output(self, tool: str, result) -> None:
        """What the tool returned becomes the task's output (later calls' provenance reads it)."""
        try:
            self.session().record_output(tool, _output_text(result))
        except Exception as err:  # noqa: BLE001 - the answer still goes back; say why it was not kept
            self._notes.append(f"the output of `{tool}` was not recorded ({type(err).__name__}: {err})")

    def close(self) -> None:
        """The session is over: parked calls are dropped, never sent; the task ends, which
        revokes every credential it holds."""
        self._parked.clear()
        self._asks.clear()
        self._held.clear()
        self._calls.clear()
        if self._session is not None:
            session, self._session = self._session, None
            session.end()


class _Distrusting:
    """The policies as the proxy's runtime sees them: :meth:`Gate.evaluate`, where the tool
    annotations a server claims can only make a decision more restrictive. Read through the
    gate, so the runtime always decides by the gate's current policies."""

    def __init__(self, gate: "Gate"):
        self._gate = gate

    def evaluate(self, request: dict) -> Decision:
        return self._gate.evaluate(request)

    def evaluate_many(self, requests) -> list:
        return [self._gate.evaluate(r) for r in requests]

    def __getattr__(self, name: str):
        return getattr(self._gate.policies, name)


def _with_credential(message: dict, credential) -> dict:
    """``message`` as sent on: the client's own ``_meta`` credential key dropped (only the
    proxy puts one there), the step's credential added when it has one."""
    params = message.get("params")
    meta = params.get("_meta") if params.__class__ is dict else None
    if credential is None and not (meta.__class__ is dict and CREDENTIAL_META in meta):
        return message
    meta = {k: v for k, v in meta.items() if k != CREDENTIAL_META} if meta.__class__ is dict else {}
    if credential is not None:
        meta[CREDENTIAL_META] = credential.token
    params = {**params, "_meta": meta} if meta else {k: v for k, v in params.items() if k != "_meta"}
    return {**message, "params": params}


def _output_text(result) -> str:
    """A tools/call result as the text provenance searches: its text content, then its
    structured content as JSON."""
    if result.__class__ is not dict:
        return json.dumps(result, ensure_ascii=False)
    parts = []
    content = result.get("content")
    if content.__class__ is list:
        for item in content:
            if item.__class__ is dict and item.get("type") == "text" and item.get("text").__class__ is str:
                parts.append(item["text"])
    structured = result.get("structuredContent")
    if structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    return "\n".join(parts)


def _answer(message: dict) -> dict:
    out = {"jsonrpc": "2.0", "id": message["id"]}
    if "error" in message:
        out["error"] = message["error"]
    else:
        out["result"] = message["result"]
    return out


def _approval_answer(answer: dict | None, timeout: float) -> tuple[bool, str | None]:
    if answer is None:
        return False, f"nobody answered the approval request within {timeout:g}s"
    if "error" in answer:
        error = answer["error"]
        message = error.get("message") if isinstance(error, dict) else None
        shown = message[:200] if isinstance(message, str) else "error"
        return False, f"the client could not ask for approval: {shown}"
    result = answer.get("result")
    if not isinstance(result, dict):
        return False, "the client's answer to the approval request was not understood"
    content = result.get("content")
    action = result.get("action")
    granted = action == "accept" and isinstance(content, dict) and content.get("approve") is True
    if granted:
        return True, None
    return False, f"approval answer: {action if action in ('decline', 'cancel') else 'not approved'}"
