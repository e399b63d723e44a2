"""The decision service as a plain ASGI application (any ASGI server runs it).

Routes: the AuthZEN Authorization API 1.0 (``POST /access/v1/evaluation``,
``POST /access/v1/evaluations``, ``GET /.well-known/authzen-configuration``), nhipl's own
``POST /v1/decide`` and ``POST /v1/reload``, the task sessions of the runtime
(:mod:`nhipl.serve.tasks`: ``/v1/tasks...``, ``POST /v1/credentials/introspect``,
``GET /v1/jwks``), and ``GET /healthz``, ``/readyz``, ``/metrics``.

Every decision request reads the current policy snapshot once, so its response (a whole
batch included) is decided by one policy version, named in ``X-Nhipl-Policy-Version``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import time
import traceback
import uuid

from .. import RequestError, jsontext
from ..runtime.errors import DecisionLogError, Denied
from ..runtime.store import StoreError
from . import authzen, tasks
from .metrics import EFFECTS, Metrics
from .policyset import PolicySet

MAX_BODY = 1 << 20  # 1 MiB
DRAIN = 8 << 20  # a too-large body up to this is read and dropped before the 413
HEALTH = frozenset({"/healthz", "/readyz"})
_JSON = (b"content-type", b"application/json")
_STDLIB_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_ASCII_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode

try:  # a compiled encoder: a batch answer costs a tenth of the standard library's time
    from orjson import dumps as _fast_dumps
except ImportError:  # pragma: no cover - the serve extra installs it
    _fast_dumps = None


def encode(body) -> bytes:
    """``body`` as compact UTF-8 JSON. The compiled encoder when it takes the value; the
    standard library's for what it refuses (integers beyond 64 bits, non-string keys), with
    the same output for everything both accept."""
    if _fast_dumps is not None:
        try:
            return _fast_dumps(body)
        except TypeError:
            pass
    text = _STDLIB_ENCODE(body)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, the answer is still valid JSON
        return _ASCII_ENCODE(body).encode("ascii")


try:  # a compiled decoder for the common body; the core's strict decoder for the rest
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - the serve extra installs it
    _fast_loads = None

# A run of 19 digits may be an integer beyond 64 bits, which the compiled decoder would read
# as an inexact float: such a body (and a decimal with as many digits) takes the strict path.
# (Every digit made `0`, everything else a space, then one substring search: a tenth of a
# regular expression's time.)
_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


def parse_body(raw: bytes):
    """The JSON value of a request body, or :class:`authzen.BadBody` (field ``body``).

    The rules are those of every JSON input of nhipl (:mod:`nhipl.jsontext`): no NaN or
    infinities, no decimal beyond the float range, integers of at most 300 digits, no lone
    surrogates, no byte order mark. The compiled decoder reads a body when it can (it
    refuses everything those rules refuse); whatever it refuses, the strict decoder reads
    again, to accept what it accepts or to say why not."""
    if _fast_loads is not None and _LONG_RUN not in raw.translate(_DIGITS):
        try:
            return _fast_loads(raw)
        except ValueError:
            pass
    try:
        return jsontext.loads(raw)
    except RecursionError:
        raise authzen.BadBody("body", "the body is not valid JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise authzen.BadBody("body", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise authzen.BadBody("body", f"the body is not valid JSON: {err.msg.lower()} at {err.lineno}:{err.colno}") from None
    except ValueError as err:
        raise authzen.BadBody("body", f"the body is not valid JSON: {err}") from None


class TooLarge(Exception):
    pass


class App:
    """The ASGI app. ``token``: the bearer token every endpoint but health needs (None: no
    auth). ``log``: a decision log (``nhipl.runtime.log.DecisionLog``) or None. ``watch``:
    seconds between checks of the policy files for changes (0: no watching)."""

    def __init__(self, policyset: PolicySet, *, token: str | None = None, log=None, watch: float = 1.0, on_reload=None, early_hup=None, runtime=None,
                 no_runtime: str = "task sessions are not served here"):
        self.policyset = policyset
        self.runtime = runtime  # nhipl.runtime.Runtime: the task sessions (None: those endpoints answer 503)
        self.no_runtime = no_runtime  # why, when there is no runtime
        # With a shared store a task call waits on Redis (and on the task's lock): it runs in
        # a thread, so that the event loop keeps answering everything else meanwhile.
        self._offload = runtime is not None and bool(getattr(runtime.store, "shares_sessions", False))
        self.runtime_version = policyset.current.version  # the policy version the runtime decides by
        self.token = ("Bearer " + token).encode() if token else None
        self.log = log
        self.watch = watch
        self.metrics = Metrics()
        self.on_reload = on_reload  # called after POST /v1/reload (workers tell their siblings)
        self.early_hup = early_hup  # an Event set by a SIGHUP that came before start()
        self._tasks: set[asyncio.Task] = set()
        self._reloading = asyncio.Lock()
        self.routes = {
            "/access/v1/evaluation": ("POST", self.evaluation),
            "/access/v1/evaluations": ("POST", self.evaluations),
            "/v1/decide": ("POST", self.decide),
            "/v1/reload": ("POST", self.reload_endpoint),
            "/.well-known/authzen-configuration": ("GET", self.configuration),
            "/healthz": ("GET", self.healthz),
            "/readyz": ("GET", self.readyz),
            "/metrics": ("GET", self.metrics_endpoint),
            "/v1/tasks": ("POST", self.start_task),
            "/v1/credentials/introspect": ("POST", self.introspect),
            "/v1/credentials/revoke": ("POST", self.revoke),
            "/v1/jwks": ("GET", self.jwks),
        }
        # /v1/tasks/{id}/<what>: (method, handler), by <what> ("" for the task itself)
        self.task_routes = {
            "": ("DELETE", self.end_task),
            "delegations": ("POST", self.delegation),
            "steps": ("POST", self.step),
            "outputs": ("POST", self.output),
            "approvals": ("POST", self.approval),
        }

    # -- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.watch > 0:
            self._spawn(self._watch())
        try:
            import signal

            loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload("SIGHUP")))
        except (AttributeError, NotImplementedError, RuntimeError, ValueError):
            pass  # no SIGHUP here (or not the main thread): reload by file watch or POST /v1/reload
        if self.early_hup is not None and self.early_hup.is_set():
            self._spawn(self.reload("SIGHUP during start"))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        if self.log is not None:
            self.log.close()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch)
            if self.policyset.changed():
                await asyncio.sleep(min(0.2, self.watch))  # let the writer finish
                await self.reload("file change")

    async def reload(self, why: str) -> tuple[bool, str]:
        async with self._reloading:
            ok, message = await asyncio.to_thread(self.policyset.reload)
            if ok:
                self._reload_runtime(why)
        if ok:
            print(f"nhipl serve: reloaded the policies ({why}): version {message}", file=sys.stderr, flush=True)
        else:
            print(f"nhipl serve: reload failed ({why}), still serving version {self.policyset.current.version}: {message}", file=sys.stderr, flush=True)
        return ok, message

    async def http(self, scope, receive, send):
        start = time.perf_counter()
        path = scope["path"]
        request_id = None
        authorization = None
        length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
            elif name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
        if request_id is None or len(request_id) > 200:
            request_id = uuid.uuid4().hex.encode()
        route = self.routes.get(path)
        endpoint = path if route is not None else "other"
        if route is None and path.startswith("/v1/tasks/"):
            task_id, _, what = path[10:].partition("/")
            route = self.task_routes.get(what)
            if route is not None:
                endpoint = "/v1/tasks/{id}" + (f"/{what}" if what else "")
                scope["nhipl.task_id"] = task_id
        if route is None:
            status, body, extra = 404, {"error": f"no such endpoint `{path}`"}, ()
        elif scope["method"] != route[0] and not (route[0] == "GET" and scope["method"] == "HEAD"):
            status, body, extra = 405, {"error": f"`{path}` takes {route[0]}"}, ((b"allow", route[0].encode()),)
        elif self.token is not None and path not in HEALTH and not (
            authorization is not None and hmac.compare_digest(authorization, self.token)
        ):
            status, body, extra = 401, {"error": "a valid `Authorization: Bearer <token>` header is needed"}, ((b"www-authenticate", b"Bearer"),)
        else:
            try:
                raw = await self._body(receive, length) if route[0] == "POST" else b""
            except TooLarge:
                status, body, extra = 413, {"error": f"the body is larger than {MAX_BODY} bytes"}, ((b"connection", b"close"),)
            else:
                scope["nhipl.request_id"] = request_id.decode("latin-1")
                try:
                    status, body, extra = await route[1](raw, scope)
                except Exception:  # a bug, never an answer: fail closed with a 500, say where
                    traceback.print_exc(file=sys.stderr)
                    status, body, extra = 500, {"error": "internal error; nothing was decided"}, ()
        timed = status < 500 and endpoint in _DECISION_ENDPOINTS
        if isinstance(body, (bytes, str)):
            payload = body.encode() if isinstance(body, str) else body
            content = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        else:
            payload = encode(body)
            content = _JSON
        headers = [content, (b"content-length", str(len(payload)).encode()), (b"x-request-id", request_id), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else payload})
        self.metrics.observe(endpoint, status, time.perf_counter() - start if timed else None)

    async def _body(self, receive, length: bytes | None) -> bytes:
        """The body, or :class:`TooLarge` over :data:`MAX_BODY`. A body up to :data:`DRAIN`
        is read to its end first (and dropped), so the client can read the 413 rather than
        finding the connection reset under its unsent bytes; a longer one is refused at once."""
        declared = None
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                pass  # the server rejects a bad Content-Length itself
        if declared is not None and declared > DRAIN:
            raise TooLarge
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > DRAIN:
                raise TooLarge
            if size <= MAX_BODY:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if size > MAX_BODY:
            raise TooLarge
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- deciding -------------------------------------------------------------------------
    def _decide(self, policies, request: dict, call_id: str | None = None):
        """:meth:`_decision`, counted in the metrics."""
        decision = self._decision(policies, request, call_id)
        self.metrics.decided(decision.effect)
        return decision

    def _decision(self, policies, request: dict, call_id: str | None = None):
        """The decision for a mapped request (RequestError propagates), logged when a log is
        kept (``call_id``: its id there); a decision that cannot be logged is enforced as a deny."""
        try:
            decision = policies.evaluate(request)
        except RecursionError:
            raise RequestError("the request is nested too deeply") from None
        if self.log is not None:
            try:
                self.log.record_decision(request, decision, source="serve", call_id=call_id)
            except Exception as err:  # fail closed: an unlogged decision is not given
                print(f"nhipl serve: {err}", file=sys.stderr, flush=True)
                return _Unlogged(str(err))
        return decision

    def _headers(self, snap) -> tuple:
        return ((b"x-nhipl-policy-version", snap.version.encode()),)

    async def evaluation(self, raw: bytes, scope):
        snap = self.policyset.current
        try:
            body = parse_body(raw)
            request = authzen.to_request(body)
            try:
                decision = self._decide(snap.policies, request, scope["nhipl.request_id"])
            except RequestError as err:
                raise authzen.BadBody(authzen.authzen_field(err.field, authzen.is_tool(body)), err.message) from None
        except authzen.BadBody as err:
            return 400, _error(err), self._headers(snap)
        return 200, authzen.response(decision), self._headers(snap)

    async def evaluations(self, raw: bytes, scope):
        snap = self.policyset.current
        try:
            body = parse_body(raw)
            items, semantic = authzen.batch(body)
            if not items:  # no `evaluations`: one evaluation, answered as such
                single = {k: v for k, v in body.items() if k != "options" and k != "evaluations"}
                request = authzen.to_request(single)
                try:
                    decision = self._decide(snap.policies, request, scope["nhipl.request_id"])
                except RequestError as err:
                    raise authzen.BadBody(authzen.authzen_field(err.field, authzen.is_tool(single)), err.message) from None
                return 200, authzen.response(decision), self._headers(snap)
        except authzen.BadBody as err:
            return 400, _error(err), self._headers(snap)
        results = []
        append = results.append
        response = authzen.response
        stop_on = None if semantic == "execute_all" else semantic == "permit_on_first_permit"
        logged = self.log is not None
        decide = self._decision
        policies = snap.policies
        counts = dict.fromkeys(EFFECTS, 0)  # for the metrics, taken once at the end
        request_id = scope["nhipl.request_id"]
        for index, (request, bad, tool_typed) in enumerate(items):
            if bad is not None:
                counts["error"] += 1
                item = authzen.error_item(bad.field, bad.message)
                allowed = False
            else:
                try:
                    decision = decide(policies, request, f"{request_id}/{index}" if logged else None)
                except RequestError as err:
                    counts["error"] += 1
                    field = authzen.authzen_field(err.field, tool_typed, f"evaluations[{index}]")
                    item = authzen.error_item(field, err.message)
                    allowed = False
                else:
                    counts[decision.effect] += 1
                    item = response(decision)
                    allowed = item["decision"]
            append(item)
            if stop_on is not None and allowed is stop_on:
                break
        metrics = self.metrics
        for effect, n in counts.items():
            if n:
                metrics.decided(effect, n)
        return 200, {"evaluations": results}, self._headers(snap)

    async def decide(self, raw: bytes, scope):
        snap = self.policyset.current
        try:
            request = parse_body(raw)
            decision = self._decide(snap.policies, request, scope["nhipl.request_id"])
        except authzen.BadBody as err:
            return 400, _error(err), self._headers(snap)
        except RequestError as err:
            return 400, {"error": err.message, "field": err.field or ""}, self._headers(snap)
        return 200, decision.to_dict(), self._headers(snap)

    # -- task sessions (the runtime) --------------------------------------------------------
    def _reload_runtime(self, why: str) -> None:
        """Bring the runtime to the set just loaded: it re-decides every live credential and
        revokes (and logs) those the new policies no longer allow."""
        runtime = self.runtime
        snap = self.policyset.current
        if runtime is None or self.runtime_version == snap.version:
            return
        try:
            runtime.reload(snap.policies)
        except Exception:  # the runtime keeps its old set; say so and carry on serving
            traceback.print_exc(file=sys.stderr)
            print(f"nhipl serve: the task sessions could not take version {snap.version} ({why})", file=sys.stderr, flush=True)
            return
        self.runtime_version = snap.version

    def _runtime_headers(self) -> tuple:
        return ((b"x-nhipl-policy-version", self.runtime_version.encode()),)

    def _session(self, scope):
        """The runtime and the task the path names: (runtime, task), or an answer to give."""
        if self.runtime is None:
            return None, (503, {"error": self.no_runtime}, ())
        task_id = scope["nhipl.task_id"]
        problem = tasks.task_id_problem(task_id)
        if problem is not None:
            return None, (404, {"error": f"no such task: {problem}", "field": "id"}, ())
        task = tasks.open_task(self.runtime, task_id)
        if task is None:
            return None, (404, {"error": f"no task `{task_id}` is running (never started, ended or expired)", "field": "id"}, ())
        return task, None

    async def _runtime_call(self, call):
        """``call()``'s answer (a 503 when the shared store fails): in a thread when the
        runtime waits on a shared store."""
        if self._offload:
            return await asyncio.to_thread(self._store_guarded, call)
        return self._store_guarded(call)

    def _store_guarded(self, call):
        try:
            return call()
        except StoreError as err:
            return self._store_failed(err)

    async def _task_call(self, raw: bytes, scope, spec: dict, act, *, decides: bool = False):
        """Parse ``raw`` against ``spec``, find the task, run ``act(task, body)``: the answer
        (counted as a decision of its ``effect`` when it ``decides``)."""
        try:
            body = tasks.fields(parse_body(raw), spec)
        except authzen.BadBody as err:
            return 400, _error(err), self._runtime_headers()
        answer = await self._runtime_call(lambda: self._task_act(scope, body, act))
        if decides and answer[0] == 200:
            self.metrics.decided(answer[1]["effect"])
        return answer

    def _task_act(self, scope, body: dict, act):
        task, refusal = self._session(scope)
        if refusal is not None:
            return refusal
        try:
            return act(task, body)
        except RequestError as err:
            return 400, {"error": err.message, "field": err.field or ""}, self._runtime_headers()
        except RecursionError:
            return 400, {"error": "the body is nested too deeply", "field": "body"}, self._runtime_headers()
        except (TypeError, ValueError) as err:  # what the runtime refuses in a value it was given
            return 400, {"error": str(err), "field": "body"}, self._runtime_headers()
        except DecisionLogError as err:  # fail closed: what cannot be logged did not happen
            print(f"nhipl serve: {err}", file=sys.stderr, flush=True)
            return 503, {"error": f"the decision log could not be written ({err.message}); nothing was recorded"}, self._runtime_headers()

    def _store_failed(self, err: StoreError):
        """The answer when the shared store cannot be read or written: nothing happened."""
        print(f"nhipl serve: {err}", file=sys.stderr, flush=True)
        return 503, {"error": f"the task store could not do it ({err}); nothing was done"}, ((b"retry-after", b"1"), *self._runtime_headers())

    async def start_task(self, raw: bytes, scope):
        if self.runtime is None:
            return 503, {"error": self.no_runtime}, ()
        try:
            body = tasks.fields(parse_body(raw), tasks.START)
            task_id = body.get("task_id")
            if task_id is not None and tasks.task_id_problem(task_id) is not None:
                raise authzen.BadBody("task_id", f"`task_id`: {tasks.task_id_problem(task_id)}")
        except authzen.BadBody as err:
            return 400, _error(err), self._runtime_headers()
        if self.runtime.running >= tasks.MAX_TASKS:
            return 503, {"error": f"{tasks.MAX_TASKS} tasks are running here; end some (DELETE /v1/tasks/{{id}}) first"}, ((b"retry-after", b"1"), *self._runtime_headers())
        return await self._runtime_call(lambda: self._start(body, task_id))

    def _start(self, body: dict, task_id: str | None):
        try:
            if task_id is not None and tasks.open_task(self.runtime, task_id) is not None:
                return 409, {"error": f"task `{task_id}` is already running", "field": "task_id"}, self._runtime_headers()
            task = self.runtime.start_task(
                body["agent"], body.get("intent", ""), prompt=body.get("prompt"), task_id=task_id, owner=body.get("owner")
            )
        except DecisionLogError as err:  # fail closed: a task that cannot be logged is not started
            print(f"nhipl serve: {err}", file=sys.stderr, flush=True)
            return 503, {"error": f"the task could not be logged ({err.message}); not started"}, self._runtime_headers()
        except (TypeError, ValueError) as err:  # a task id another request started meanwhile
            return 409, {"error": str(err), "field": "task_id"}, self._runtime_headers()
        out = {"task": task.id, "agent": body["agent"], "intent": body.get("intent")}
        return 201, out, ((b"location", f"/v1/tasks/{task.id}".encode()), *self._runtime_headers())

    async def delegation(self, raw: bytes, scope):
        def act(task, body):
            try:
                task.delegate(body["agent"], body["to"])
            except Denied as denied:
                return 200, {"delegated": False, **denied.decision.to_dict()}, self._runtime_headers()
            return 200, {"delegated": True, "effect": "allow"}, self._runtime_headers()

        return await self._task_call(raw, scope, tasks.DELEGATION, act, decides=True)

    async def step(self, raw: bytes, scope):
        def act(task, body):
            decision = task.check(
                body["agent"], body["tool"], args=body.get("args") or {}, resource=body.get("resource"),
                context=body.get("context"), action=body.get("action", "call"),
            )
            return 200, tasks.step_response(decision), self._runtime_headers()

        return await self._task_call(raw, scope, tasks.STEP, act, decides=True)

    async def output(self, raw: bytes, scope):
        def act(task, body):
            task.record_output(body["tool"], body["output"])
            return 200, {"recorded": True}, self._runtime_headers()

        return await self._task_call(raw, scope, tasks.OUTPUT, act)

    async def approval(self, raw: bytes, scope):
        def act(task, body):
            task.approve(body["tool"], body["by"], args=body.get("args"), ttl=body.get("ttl"), uses=body.get("uses", 1))
            return 200, {"approved": True, "tool": body["tool"], "uses": body.get("uses", 1), "ttl": body.get("ttl")}, self._runtime_headers()

        return await self._task_call(raw, scope, tasks.APPROVAL, act)

    async def end_task(self, raw: bytes, scope):
        return await self._runtime_call(lambda: self._end(scope))

    def _end(self, scope):
        task, refusal = self._session(scope)
        if refusal is not None:
            return refusal
        revoked = task.end()
        return 200, {"ended": True, "task": task.id, "revoked": revoked}, self._runtime_headers()

    async def _credential_call(self, raw: bytes, scope, spec: dict, act):
        """An OAuth-shaped credential request (form or JSON, checked against ``spec``):
        ``act(runtime, body)`` answers it."""
        if self.runtime is None:
            return 503, {"error": self.no_runtime}, ()
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
        try:
            body = tasks.introspection_body(raw, content_type, spec)
        except authzen.BadBody as err:
            return 400, _error(err), ()
        return await self._runtime_call(lambda: self._credential_act(body, act))

    def _credential_act(self, body: dict, act):
        try:
            return 200, act(self.runtime, body), ((b"cache-control", b"no-store"),)
        except DecisionLogError as err:  # a revocation is in the store; the log could not say so
            print(f"nhipl serve: {err}", file=sys.stderr, flush=True)
            return 503, {"error": f"the decision log could not be written ({err.message})"}, ()

    async def introspect(self, raw: bytes, scope):
        return await self._credential_call(raw, scope, tasks.INTROSPECT, tasks.introspection)

    async def revoke(self, raw: bytes, scope):
        return await self._credential_call(raw, scope, tasks.REVOKE, tasks.revocation)

    async def jwks(self, raw: bytes, scope):
        if self.runtime is None:
            return 503, {"error": self.no_runtime}, ()
        return await self._runtime_call(lambda: (200, self.runtime.jwks(), ()))

    # -- operations -----------------------------------------------------------------------
    async def reload_endpoint(self, raw: bytes, scope):
        ok, message = await self.reload("POST /v1/reload")
        if self.on_reload is not None:
            self.on_reload()
        snap = self.policyset.current
        if ok:
            return 200, {"reloaded": True, "version": snap.version}, self._headers(snap)
        return 422, {"reloaded": False, "version": snap.version, "error": message}, self._headers(snap)

    async def configuration(self, raw: bytes, scope):
        host = scope.get("server") or ("127.0.0.1", 8181)
        for name, value in scope["headers"]:
            if name == b"host":
                base = f"{scope.get('scheme', 'http')}://{value.decode('latin-1')}"
                break
        else:
            base = f"{scope.get('scheme', 'http')}://{host[0]}:{host[1]}"
        return 200, {
            "policy_decision_point": base,
            "access_evaluation_endpoint": base + "/access/v1/evaluation",
            "access_evaluations_endpoint": base + "/access/v1/evaluations",
        }, ()

    async def healthz(self, raw: bytes, scope):
        return 200, {"status": "ok"}, ()

    async def readyz(self, raw: bytes, scope):
        ps = self.policyset
        out = {"status": "ready", "policy_version": ps.current.version, "loaded_at": ps.current.loaded_at}
        if ps.last_error is not None:
            out["status"] = "ready, last reload failed"
            out["reload_error"] = ps.last_error
            out["reload_failed_at"] = ps.last_error_at
        return 200, out, self._headers(ps.current)

    async def metrics_endpoint(self, raw: bytes, scope):
        return 200, self.metrics.render(self.policyset), ()


_DECISION_ENDPOINTS = frozenset({"/access/v1/evaluation", "/access/v1/evaluations", "/v1/decide", "/v1/tasks/{id}/steps"})


def _error(err: authzen.BadBody) -> dict:
    return {"error": err.message, "field": err.field}


class _Unlogged:
    """The deny given in place of a decision that could not be written to the log."""

    credential_ttl = None
    errors = ()
    effect = "deny"
    rules = ()

    def __init__(self, why: str):
        self.reasons = (f"denied: the decision could not be logged ({why})",)

    def to_dict(self) -> dict:
        return {"effect": "deny", "rules": [], "credential_ttl": None, "errors": [], "reasons": list(self.reasons), "restricted_by": None}
