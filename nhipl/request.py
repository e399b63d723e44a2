"""Request validation: a JSON object in, a normalised :class:`Request` out.

Every problem raises :class:`~nhipl.errors.RequestError` naming the field.
A field that is ``null`` counts as absent; an unknown top-level field is an
error (with "did you mean"), so a typo never silently drops a field.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

from .errors import RequestError, did_you_mean
from .values import ListView, is_number, type_name


class Field(NamedTuple):
    """One top-level request field: its name, the kind of value it holds and, for an
    object, the attributes the parser knows and the kind of each (``derived``: computed
    from other fields, never given). ``open`` objects take any keys the caller chooses."""

    name: str
    kind: str
    attrs: dict[str, str] = {}
    open: bool = False


# The request schema, the one table every module reads: the parser below,
# the checker's path roots, the linter's known attributes and the policy-test generators.
# Kinds: identity (a string, NFKC-normalised), name (a string, NFKC-normalised), string,
# strings (a list of strings), identities (a list of identities), number, boolean, object,
# any.
SCHEMA: tuple[Field, ...] = (
    Field("principal", "identity", {"id": "identity", "groups": "strings", "owner": "any", "max_credential_ttl": "number"}),
    Field("action", "string"),
    Field("tool", "name"),
    Field("resource", "string"),
    Field("args", "object", open=True),
    Field("task", "object", {"id": "string", "intent": "string", "owner": "string"}),
    Field("delegation", "object", {"chain": "identities", "depth": "derived"}),
    Field("credential", "object", {"id": "string", "issued_at": "number", "ttl": "number", "scope": "any", "age": "derived"}),
    Field("approval", "object", {"granted": "boolean", "by": "string"}),
    Field("context", "object", open=True),
    Field("provenance", "object", open=True),
    Field("now", "number"),
    Field("history", "list"),
)
SCHEMA_BY_NAME = {f.name: f for f in SCHEMA}


def attribute_paths(*kinds: str) -> frozenset[tuple[str, str]]:
    """The ``(field, attribute)`` pairs of the schema whose kind is one of ``kinds``."""
    return frozenset((f.name, attr) for f in SCHEMA for attr, kind in f.attrs.items() if kind in kinds)


FIELDS = tuple(f.name for f in SCHEMA)
_FIELD_SET = frozenset(FIELDS)

# Paths a condition may start with: every request field plus nothing else.
ROOTS = frozenset(FIELDS)

MAX_CHAIN_LENGTH = 256
"""The longest delegation chain a request may carry: real chains are a handful of hops, and
attenuation evaluates the request once per identity in the chain, so the bound caps that cost."""

MAX_HISTORY = 10_000
"""How many steps of a request's ``history`` are kept: the latest ones (a longer history is cut
from the front, so conditions see the most recent 10,000 steps of a task)."""

MAX_NUMBER = 1e300
"""The largest magnitude of a request's time fields (``now``, ``credential.issued_at`` and
``ttl``, ``principal.max_credential_ttl``), so that ``age`` never overflows."""

_NO_APPROVAL = {"granted": False}


class Request:
    """A validated request. Attributes mirror the request's fields; ``principal_attrs`` holds
    the attributes given in the request's principal object (without ``id``)."""

    __slots__ = (
        "principal_id",
        "principal_attrs",
        "action",
        "tool",
        "resource",
        "args",
        "task",
        "chain",
        "credential",
        "approval",
        "context",
        "provenance",
        "now",
        "history",
    )

    def env(self, principal: dict, tool_attrs: dict, chain: list | tuple | None = None) -> dict:
        """The values conditions see, for ``principal`` (its merged attributes,
        with ``id``) and the tool's declared attributes."""
        chain = self.chain if chain is None else chain
        env = {
            "principal": principal,
            "action": self.action,
            "tool": {**tool_attrs, "name": self.tool},
            "delegation": {"chain": list(chain), "depth": len(chain)},
            "approval": self.approval if self.approval is not None else _NO_APPROVAL,
        }
        if self.resource is not None:
            env["resource"] = self.resource
        if self.args is not None:
            env["args"] = self.args
        if self.task is not None:
            env["task"] = self.task
        if self.credential is not None:
            env["credential"] = self.credential
        if self.context is not None:
            env["context"] = self.context
        if self.provenance is not None:
            env["provenance"] = self.provenance
        if self.now is not None:
            env["now"] = self.now
        env["history"] = self.history
        return env

    @property
    def intent(self) -> str | None:
        task = self.task
        return task.get("intent") if task is not None else None


def _fail(field: str, expected: str, value: object) -> RequestError:
    return RequestError(f"field `{field}` must be {expected}, not {type_name(value)}", field)


_TASK_STRINGS = tuple(attr for attr, kind in SCHEMA_BY_NAME["task"].attrs.items() if kind == "string")
_CREDENTIAL_NUMBERS = tuple(attr for attr, kind in SCHEMA_BY_NAME["credential"].attrs.items() if kind == "number")


def normalise_name(name: str) -> str:
    """A tool name or identity as requests are compared: NFKC-normalised, so fullwidth
    letters and other compatibility forms match their plain spelling; case is kept."""
    return name if name.isascii() else unicodedata.normalize("NFKC", name)


def _seconds(field: str, value: object) -> RequestError | None:
    """The error for a time value that is not a finite number of bounded magnitude."""
    if not is_number(value):
        return _fail(field, "a number of seconds", value)
    if not -MAX_NUMBER < value < MAX_NUMBER:  # type: ignore[operator]
        return RequestError(f"field `{field}` must be a finite number of at most 1e300 seconds", field)
    return None


def _non_finite(value: object) -> bool:
    """Whether a NaN or an infinity hides anywhere in ``value`` (a JSON value). ``x - x`` is
    0 for every finite float and NaN for NaN and the infinities."""
    cls = value.__class__
    if cls is dict:
        items = value.values()  # type: ignore[union-attr]
    elif cls is list or cls is tuple:
        items = value  # type: ignore[assignment]
    else:
        return cls is float and value - value != 0  # type: ignore[operator]
    for item in items:
        cls = item.__class__
        if cls is float:
            if item - item != 0:
                return True
        elif (cls is dict or cls is list or cls is tuple) and _non_finite(item):
            return True
    return False


def _all_strings(items) -> bool:
    for item in items:
        if item.__class__ is not str:
            return False
    return True


def _strip_nulls(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if v is not None}


def parse_request(raw: object, index: int | None = None) -> Request:
    """Validate ``raw`` and return a :class:`Request`."""
    if index is None:
        return _parse(raw)
    try:
        return _parse(raw)
    except RequestError as err:
        if index is None:
            raise
        raise RequestError(err.message, err.field, index) from None


def _unknown_field(raw: dict) -> RequestError | None:
    """The error for the first field of ``raw`` that is not a request field, if any."""
    for key in raw:
        if key not in _FIELD_SET:
            hint = did_you_mean(str(key), FIELDS)
            return RequestError(f"unknown request field `{key}`" + (f"; {hint}" if hint else ""), str(key))
    return None


def _parse(raw: object) -> Request:
    """Fields are checked in the order of :data:`FIELDS`, except that ``task`` and
    ``delegation`` come right after ``tool``; an unknown field is reported before a
    missing one (it is most likely the missing one misspelt). Most requests carry
    only principal, action, tool, task and delegation: when those account for
    every key, the other fields are known to be absent without looking them up."""
    if raw.__class__ is not dict:
        raise RequestError(f"a request must be a JSON object, not {type_name(raw)}")
    get = raw.get  # type: ignore[union-attr]
    req = Request()

    principal = get("principal")
    if principal is None:
        raise _unknown_field(raw) or RequestError("missing required field `principal`", "principal")  # type: ignore[arg-type]
    if principal.__class__ is str:
        req.principal_id = principal if principal.isascii() else normalise_name(principal)
        req.principal_attrs = None
    elif principal.__class__ is dict:
        pid = principal.get("id")
        if pid is None:
            raise RequestError("missing required field `principal.id`", "principal.id")
        if pid.__class__ is not str:
            raise _fail("principal.id", "a string", pid)
        attrs = _strip_nulls(principal)
        del attrs["id"]
        groups = attrs.get("groups")
        if groups is not None and (groups.__class__ is not list or not _all_strings(groups)):
            raise RequestError("field `principal.groups` must be a list of strings", "principal.groups")
        ttl = attrs.get("max_credential_ttl")
        if ttl is not None and (problem := _seconds("principal.max_credential_ttl", ttl)) is not None:
            raise problem
        if _non_finite(attrs):
            raise RequestError("field `principal` holds a number that is not finite (NaN or an infinity)", "principal")
        req.principal_id = pid if pid.isascii() else normalise_name(pid)
        req.principal_attrs = attrs
    else:
        raise _fail("principal", "a string or an object with `id`", principal)

    action = get("action")
    if action is None:
        action, given = "call", 2  # principal and tool
    elif action.__class__ is not str:
        raise _fail("action", "a string", action)
    else:
        given = 3
    req.action = action

    tool = get("tool")
    if tool is None:
        raise _unknown_field(raw) or RequestError("missing required field `tool`", "tool")  # type: ignore[arg-type]
    if tool.__class__ is not str:
        raise _fail("tool", "a string", tool)
    req.tool = tool if tool.isascii() else normalise_name(tool)  # inline: the hot path

    task = get("task")
    if task is not None:
        if task.__class__ is not dict:
            raise _fail("task", "an object", task)
        if not _all_strings(task.values()):  # rare: a null to drop, or a value to check
            if None in task.values():
                task = _strip_nulls(task)
            for key in _TASK_STRINGS:
                value = task.get(key)
                if value is not None and value.__class__ is not str:
                    raise _fail(f"task.{key}", "a string", value)
            if _non_finite(task):
                raise RequestError("field `task` holds a number that is not finite (NaN or an infinity)", "task")
    req.task = task

    delegation = get("delegation")
    chain: list = []
    if delegation is not None:
        if delegation.__class__ is not dict:
            raise _fail("delegation", "an object", delegation)
        chain = delegation.get("chain")
        if chain is None:
            chain = []
        elif chain.__class__ is not list or (chain and not _all_strings(chain)):
            raise RequestError("field `delegation.chain` must be a list of identity strings", "delegation.chain")
        elif len(chain) > MAX_CHAIN_LENGTH:
            raise RequestError(
                f"field `delegation.chain` has {len(chain)} identities; at most {MAX_CHAIN_LENGTH} are allowed",
                "delegation.chain",
            )
        elif chain and not "".join(chain).isascii():
            chain = [normalise_name(identity) for identity in chain]
        depth = delegation.get("depth")
        if depth is not None and (not is_number(depth) or depth != len(chain)):
            raise RequestError(
                f"field `delegation.depth` is derived from the chain ({len(chain)}); leave it out",
                "delegation.depth",
            )
    req.chain = chain

    if len(raw) == given + (task is not None) + (delegation is not None):  # type: ignore[arg-type]
        req.resource = req.args = req.context = req.provenance = req.now = req.credential = req.approval = None
        req.history = NO_HISTORY
        return req
    if not _FIELD_SET.issuperset(raw):  # type: ignore[arg-type]
        raise _unknown_field(raw)  # type: ignore[arg-type, misc]

    resource = get("resource")
    if resource is not None and resource.__class__ is not str:
        raise _fail("resource", "a string", resource)
    req.resource = resource

    args, context, provenance = get("args"), get("context"), get("provenance")
    if args is not None and args.__class__ is not dict:
        raise _fail("args", "an object", args)
    if context is not None and context.__class__ is not dict:
        raise _fail("context", "an object", context)
    if provenance is not None and provenance.__class__ is not dict:
        raise _fail("provenance", "an object", provenance)
    for name, value in (("args", args), ("context", context)):
        if value is not None and _non_finite(value):
            raise RequestError(f"field `{name}` holds a number that is not finite (NaN or an infinity)", name)
    req.args = args
    req.context = context
    if provenance is not None:
        for arg, origin in provenance.items():
            if origin.__class__ is not str:
                raise _fail(f"provenance.{arg}", 'a string ("user", "tool:<name>" or "unknown")', origin)
    req.provenance = provenance

    now = get("now")
    if now is not None and (problem := _seconds("now", now)) is not None:
        raise problem
    req.now = now

    credential = get("credential")
    if credential is not None:
        if credential.__class__ is not dict:
            raise _fail("credential", "an object", credential)
        credential = _strip_nulls(credential)
        cid = credential.get("id")
        if cid is not None and cid.__class__ is not str:
            raise _fail("credential.id", "a string", cid)
        for key in _CREDENTIAL_NUMBERS:
            value = credential.get(key)
            if value is not None and (problem := _seconds(f"credential.{key}", value)) is not None:
                raise problem
        if _non_finite(credential):
            raise RequestError("field `credential` holds a number that is not finite (NaN or an infinity)", "credential")
        if "age" in credential:
            raise RequestError("field `credential.age` is derived from `now - credential.issued_at`; leave it out", "credential.age")
        issued = credential.get("issued_at")
        if issued is not None and now is not None:
            credential["age"] = now - issued
    req.credential = credential

    approval = get("approval")
    if approval is not None:
        if approval.__class__ is not dict:
            raise _fail("approval", "an object", approval)
        if None in approval.values():
            approval = _strip_nulls(approval)
        granted = approval.get("granted")
        if granted is not None and granted.__class__ is not bool:
            raise _fail("approval.granted", "a boolean", granted)
        by = approval.get("by")
        if by is not None and by.__class__ is not str:
            raise _fail("approval.by", "a string", by)
        if _non_finite(approval):
            raise RequestError("field `approval` holds a number that is not finite (NaN or an infinity)", "approval")
    req.approval = approval
    req.history = _history(get("history"))
    return req


NO_HISTORY = ListView([])


def _history(history: object) -> list | ListView:
    """A request's ``history``: a list of objects, the latest :data:`MAX_HISTORY` of them.
    A :class:`~nhipl.values.ListView` comes from an enforcement point that validated each
    step as it recorded it, so it is taken as it is (no copy, no walk)."""
    if history is None:
        return NO_HISTORY
    cls = history.__class__
    if cls is ListView:
        if len(history) > MAX_HISTORY:  # type: ignore[arg-type]
            return ListView(history.items, history.stop, history.stop - MAX_HISTORY)  # type: ignore[attr-defined]
        return history  # type: ignore[return-value]
    if cls is not list:
        raise _fail("history", "a list of objects (the earlier steps of the task)", history)
    if len(history) > MAX_HISTORY:  # type: ignore[arg-type]
        history = history[-MAX_HISTORY:]  # type: ignore[index]
    for i, step in enumerate(history):  # type: ignore[arg-type]
        if step.__class__ is not dict:
            raise RequestError(f"field `history` must be a list of objects; step {i} is {type_name(step)}", "history")
    if _non_finite(history):
        raise RequestError("field `history` holds a number that is not finite (NaN or an infinity)", "history")
    return history  # type: ignore[return-value]
