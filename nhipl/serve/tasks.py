"""The task-session endpoints of ``nhipl serve``: a runtime task's life over HTTP.

``POST /v1/tasks`` starts a task; ``POST /v1/tasks/{id}/delegations`` decides a hand-off;
``POST /v1/tasks/{id}/steps`` decides a step and, for an allowed step with a credential TTL,
returns a signed credential; ``POST /v1/tasks/{id}/outputs`` records what a tool returned
(later steps' provenance reads it); ``POST /v1/tasks/{id}/approvals`` grants a scoped
approval; ``DELETE /v1/tasks/{id}`` ends the task and revokes its credentials.
``POST /v1/credentials/introspect`` answers in the shape of RFC 7662 (``active`` and the
claims) and ``GET /v1/jwks`` serves the public keys that verify the credentials.

Every body is checked field by field before the runtime sees it: a bad one is a 400 naming
the field. The runtime (:class:`nhipl.runtime.Runtime`) keeps the sessions: in this process
with the ``memory`` store, in Redis for every worker and replica with ``redis://``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from urllib.parse import parse_qs

from ..values import a_type
from .authzen import BadBody, _no_unknown

TASK_ID = re.compile(r"[A-Za-z0-9._:~@+-]{1,200}")
MAX_USES = 1_000_000
MAX_TASKS = 100_000  # tasks running at once in one process: a client that never ends its tasks cannot exhaust memory
MAX_APPROVAL_TTL = 7 * 24 * 3600.0

# name: (what it must be, required)
_STRING, _OBJECT, _ANY, _SECONDS, _COUNT = "a string", "an object", "any JSON value", "a number of seconds", "a whole number"
START = {"agent": (_STRING, True), "intent": (_STRING, False), "prompt": (_STRING, False), "task_id": (_STRING, False), "owner": (_STRING, False)}
DELEGATION = {"agent": (_STRING, True), "to": (_STRING, True)}
STEP = {"agent": (_STRING, True), "action": (_STRING, False), "tool": (_STRING, True), "args": (_OBJECT, False), "resource": (_STRING, False), "context": (_OBJECT, False)}
OUTPUT = {"tool": (_STRING, True), "output": (_ANY, True)}
APPROVAL = {"tool": (_STRING, True), "by": (_STRING, True), "args": (_OBJECT, False), "ttl": (_SECONDS, False), "uses": (_COUNT, False)}
INTROSPECT = {"token": (_STRING, True), "token_type_hint": (_STRING, False), "tool": (_STRING, False), "resource": (_STRING, False)}
REVOKE = {"token": (_STRING, True), "token_type_hint": (_STRING, False), "reason": (_STRING, False)}


def fields(body: object, spec: dict) -> dict:
    """``body`` checked against ``spec``: the fields given, each of the right kind; or
    :class:`BadBody` naming the first bad one."""
    if body.__class__ is not dict:
        raise BadBody("", f"the body must be a JSON object, not {a_type(body)}")
    _no_unknown(body, tuple(spec), "")
    out = {}
    for name, (what, required) in spec.items():
        if name not in body or (body[name] is None and what is not _ANY):
            if required:
                raise BadBody(name, f"missing required field `{name}`")
            continue
        value = body[name]
        if what is _STRING:
            if value.__class__ is not str:
                raise BadBody(name, f"`{name}` must be a string, not {a_type(value)}")
            if not value:
                raise BadBody(name, f"`{name}` must not be empty")
        elif what is _OBJECT:
            if value.__class__ is not dict:
                raise BadBody(name, f"`{name}` must be an object, not {a_type(value)}")
        elif what is _SECONDS:
            if value.__class__ not in (int, float) or not math.isfinite(value) or not 0 < value <= MAX_APPROVAL_TTL:
                raise BadBody(name, f"`{name}` must be a number of seconds above 0 and at most {MAX_APPROVAL_TTL:g}")
        elif what is _COUNT:
            if value.__class__ is not int or not 1 <= value <= MAX_USES:
                raise BadBody(name, f"`{name}` must be a whole number from 1 to {MAX_USES}")
        out[name] = value
    return out


def task_id_problem(task_id: str) -> str | None:
    """Why ``task_id`` cannot name a task, or None."""
    if TASK_ID.fullmatch(task_id) is None:
        return "a task id has 1 to 200 characters among letters, digits and `._:~@+-`"
    return None


def introspection_body(raw: bytes, content_type: bytes | None, spec: dict = INTROSPECT) -> dict:
    """An introspection (or revocation) request: the OAuth form (``token=...``) or the same
    fields as JSON, checked against ``spec``."""
    from .app import parse_body

    if content_type is not None and content_type.split(b";")[0].strip().lower() == b"application/x-www-form-urlencoded":
        try:
            text = raw.decode("ascii")
            form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=16)
        except (UnicodeDecodeError, ValueError) as err:
            raise BadBody("body", f"the body is not a valid form: {err}") from None
        body: dict = {}
        for key, values in form.items():
            if len(values) != 1:
                raise BadBody(key, f"`{key}` is given more than once")
            body[key] = values[0]
    else:
        body = parse_body(raw)
    return fields(body, spec)


def claimed_target(token: str) -> tuple[str, str | None] | None:
    """The tool (``aud``) and resource (from ``scope``) a compact JWT names, read without
    checking anything: only to choose what to verify it for; verification then checks the
    signature, the audience and the scope."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16384:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    aud, scope = payload.get("aud"), payload.get("scope")
    if not (isinstance(aud, str) and aud and isinstance(scope, str)):
        return None
    _, _, resource = scope.partition(" ")
    return aud, resource or None


def open_task(runtime, task_id: str):
    """The running task ``task_id`` of ``runtime``, or None. With the ``memory`` store a task
    lives in the process that started it; with Redis, any process on the same store finds it
    (raises ``StoreError`` when the store cannot be read)."""
    return runtime.task(task_id)


def introspection(runtime, body: dict) -> dict:
    """RFC 7662's answer for ``body["token"]``: ``{"active": false}`` unless the credential
    verifies (signature, expiry, audience, scope, revocation), then ``active`` and its claims."""
    from ..runtime import Expired, Invalid, Revoked

    token = body["token"]
    claimed = claimed_target(token)
    if claimed is None:
        return {"active": False}
    tool = body.get("tool", claimed[0])
    resource = body.get("resource") if "tool" in body or "resource" in body else claimed[1]
    try:
        claims = runtime.verify(token, tool, resource=resource)
    except (Expired, Invalid, Revoked):
        return {"active": False}
    return {"active": True, **claims}


def revocation(runtime, body: dict) -> dict:
    """Revoke the credential ``body["token"]`` (RFC 7009's request): ``revoked`` says whether
    this call revoked it; a token that does not verify, has expired or was revoked already
    is left as it is (and is no use to anyone)."""
    from ..runtime import Expired, Invalid, Revoked

    claimed = claimed_target(body["token"])
    if claimed is None:
        return {"revoked": False}
    try:
        claims = runtime.verify(body["token"], claimed[0], resource=claimed[1])
    except (Expired, Invalid, Revoked):
        return {"revoked": False}
    reason = body.get("reason") or "revoked through the service"
    return {"revoked": runtime.revoke(claims["jti"], reason[:500]), "jti": claims["jti"]}


def step_response(decision) -> dict:
    """A step's decision as ``/v1/decide`` prints it, with its ``credential`` (or null)."""
    out = decision.to_dict()
    credential = getattr(decision, "credential", None)
    out["credential"] = (
        None if credential is None else {"token": credential.token, "id": credential.id, "expires_at": credential.expires_at}
    )
    return out


__all__ = [
    "APPROVAL",
    "BadBody",
    "DELEGATION",
    "INTROSPECT",
    "OUTPUT",
    "START",
    "STEP",
    "introspection",
    "revocation",
    "open_task",
    "fields",
    "introspection_body",
    "step_response",
    "task_id_problem",
    "claimed_target",
]
