"""The AuthZEN Authorization API 1.0 mapping: an evaluation body to an nhipl request, a
decision to an evaluation response, and the batch (``evaluations``) rules.

Pure functions over parsed JSON; no HTTP here. Every malformed body raises
:class:`BadBody` naming the offending field in AuthZEN terms (``subject.id``,
``evaluations[2].resource.type``).
"""

from __future__ import annotations

import difflib

from ..values import a_type

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")

# context keys that are nhipl request fields of their own
LIFTED = ("task", "delegation", "approval", "credential", "provenance", "history", "now")

_EVALUATION_KEYS = ("subject", "action", "resource", "context")
_BATCH_KEYS = _EVALUATION_KEYS + ("evaluations", "options")
_SUBJECT_KEYS = ("type", "id", "properties")
_ACTION_KEYS = ("name", "properties")
_RESOURCE_KEYS = ("type", "id", "properties")
_TOOL_PROPERTY_KEYS = ("args", "resource")


class BadBody(ValueError):
    """A body that is not a valid AuthZEN (or nhipl) request: ``field`` (dotted, may be
    empty for the body itself) and a ``message`` that names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _expect(value: object, want: type, what: str, field: str) -> None:
    if value.__class__ is not want:
        raise BadBody(field, f"`{field}` must be {what}, not {a_type(value)}")


def _no_unknown(obj: dict, known: tuple[str, ...], prefix: str) -> None:
    for key in obj:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.7)
            field = _join(prefix, str(key))
            raise BadBody(field, f"unknown field `{field}`" + (f"; did you mean `{close[0]}`?" if close else ""))


def _object(parent: dict, key: str, prefix: str, *, required: bool) -> dict | None:
    value = parent.get(key)
    field = _join(prefix, key)
    if value is None:
        if required:
            raise BadBody(field, f"missing required field `{field}`")
        return None
    _expect(value, dict, "an object", field)
    return value


def _string(parent: dict, key: str, prefix: str) -> str:
    value = parent.get(key)
    field = _join(prefix, key)
    if value is None:
        raise BadBody(field, f"missing required field `{field}`")
    _expect(value, str, "a string", field)
    if not value:
        raise BadBody(field, f"`{field}` must not be empty")
    return value


_EVALUATION_SET = frozenset(_EVALUATION_KEYS)
_LIFTED_SET = frozenset(LIFTED)


def _plain(body: object) -> dict | None:
    """The request for a body in the common, well-formed shape, checked without building any
    field name; None for anything else (the careful path then decides, naming the field)."""
    if body.__class__ is not dict or not body.keys() <= _EVALUATION_SET:
        return None
    try:  # indexing, not .get: a missing field is rare and the careful path's to name
        subject = body["subject"]
        action = body["action"]
        resource = body["resource"]
        if subject.__class__ is not dict or action.__class__ is not dict or resource.__class__ is not dict:
            return None
        sid = subject["id"]
        stype = subject["type"]
        name = action["name"]
        rtype = resource["type"]
        rid = resource["id"]
    except KeyError:
        return None
    if not (sid.__class__ is str and sid and stype.__class__ is str and stype and name.__class__ is str and name):
        return None
    if not (rtype.__class__ is str and rtype and rid.__class__ is str and rid) or rtype == "tool":
        return None
    if len(subject) != 2 + ("properties" in subject) or len(action) != 1 or len(resource) != 2 + ("properties" in resource):
        return None
    props = resource.get("properties")
    attrs = subject.get("properties")
    if (props is not None and props.__class__ is not dict) or (attrs is not None and attrs.__class__ is not dict):
        return None
    request = {"principal": {**attrs, "id": sid} if attrs else sid, "action": name, "tool": f"{rtype}:{rid}"}
    if props:
        request["args"] = props
    context = body.get("context")
    if context is not None:
        if context.__class__ is not dict or not context.keys().isdisjoint(_LIFTED_SET):
            return None
        if context:
            request["context"] = context
    return request


def to_request(body: object, prefix: str = "") -> dict:
    """The nhipl request for one AuthZEN evaluation ``body``.

    ``subject.id`` → principal (``subject.properties`` are its attributes); ``action.name`` →
    action; a resource of type ``tool`` → tool = its id, args = ``properties.args``, resource =
    ``properties.resource``; any other type → tool ``"<type>:<id>"``, args = its properties;
    the request fields among ``context`` (task, delegation, approval, credential, provenance,
    history, now) become those fields, the rest stays ``context``. ``prefix`` goes before the
    field named in a :class:`BadBody` (``evaluations[3]``)."""
    plain = _plain(body)
    return plain if plain is not None else careful_request(body, prefix)


def careful_request(body: object, prefix: str = "") -> dict:
    """:func:`to_request` checking every field in turn, so that an error names the first bad one."""
    if body.__class__ is not dict:
        raise BadBody(prefix, f"`{prefix}` must be an object, not {a_type(body)}" if prefix else f"the body must be a JSON object, not {a_type(body)}")
    _no_unknown(body, _EVALUATION_KEYS, prefix)

    subject_field = _join(prefix, "subject")
    subject = _object(body, "subject", prefix, required=True)
    _no_unknown(subject, _SUBJECT_KEYS, subject_field)
    _string(subject, "type", subject_field)
    principal_id = _string(subject, "id", subject_field)
    attrs = _object(subject, "properties", subject_field, required=False)
    principal: str | dict = {**attrs, "id": principal_id} if attrs else principal_id

    action_field = _join(prefix, "action")
    action = _object(body, "action", prefix, required=True)
    _no_unknown(action, _ACTION_KEYS, action_field)
    action_name = _string(action, "name", action_field)
    _object(action, "properties", action_field, required=False)

    resource_field = _join(prefix, "resource")
    resource = _object(body, "resource", prefix, required=True)
    _no_unknown(resource, _RESOURCE_KEYS, resource_field)
    rtype = _string(resource, "type", resource_field)
    rid = _string(resource, "id", resource_field)
    props = _object(resource, "properties", resource_field, required=False)
    request: dict = {"principal": principal, "action": action_name}
    if rtype == "tool":
        request["tool"] = rid
        if props:
            props_field = _join(resource_field, "properties")
            _no_unknown(props, _TOOL_PROPERTY_KEYS, props_field)
            args = _object(props, "args", props_field, required=False)
            if args is not None:
                request["args"] = args
            target = props.get("resource")
            if target is not None:
                _expect(target, str, "a string", _join(props_field, "resource"))
                request["resource"] = target
    else:
        request["tool"] = f"{rtype}:{rid}"
        if props:
            request["args"] = props

    context = _object(body, "context", prefix, required=False)
    if context:
        rest = {}
        for key, value in context.items():
            if key in LIFTED:
                request[key] = value
            else:
                rest[key] = value
        if rest:
            request["context"] = rest
    return request


def is_tool(body: dict) -> bool:
    """Whether an evaluation body (already accepted by :func:`to_request`) names a tool."""
    return body["resource"]["type"] == "tool"


def authzen_field(request_field: str | None, tool_typed: bool, prefix: str = "") -> str:
    """The AuthZEN field behind an nhipl request field named in a :class:`RequestError`."""
    if not request_field:
        return prefix
    head, _, rest = request_field.partition(".")
    if head == "principal":
        field = f"subject.properties.{rest}" if rest and rest != "id" else "subject.id"
    elif head == "action":
        field = "action.name"
    elif head == "tool":
        field = "resource.id"
    elif head == "args":
        base = "resource.properties.args" if tool_typed else "resource.properties"
        field = f"{base}.{rest}" if rest else base
    elif head == "resource":
        field = "resource.properties.resource"
    else:
        field = f"context.{request_field}"
    return _join(prefix, field)


def response(decision) -> dict:
    """The AuthZEN evaluation response for an nhipl decision."""
    effect = decision.effect
    errors = decision.errors
    context = {
        "effect": effect,
        "rules": decision.rules,  # tuples encode as JSON lists
        "reasons": decision.reasons,
        "errors": [{"rule": e.rule, "message": e.message} for e in errors] if errors else [],
        "credential_ttl": decision.credential_ttl,
    }
    if effect == "approval_required":
        context["access_request"] = {"reason": "; ".join(context["reasons"]), "rules": decision.rules}
    return {"decision": effect == "allow", "context": context}


def error_item(field: str, message: str) -> dict:
    """A batch item that could not be decided: ``decision: false`` with the error."""
    return {"decision": False, "context": {"error": {"status": 400, "field": field, "message": message}}}


def batch(body: object) -> tuple[list[tuple[dict | None, BadBody | None, bool]], str]:
    """Split an ``evaluations`` body into items and the semantic.

    Returns ``(items, semantic)``: each item is ``(request, None, is_tool)`` when it maps to an
    nhipl request, or ``(None, BadBody, False)`` for an item whose own fields are wrong (that item is
    answered with its error; the others are still decided). A body whose shape is wrong as a
    whole (not an object, ``evaluations`` not a list, an item not an object, bad ``options``)
    raises :class:`BadBody`. Without ``evaluations`` (or with an empty list) the body is one
    evaluation: ``items`` is empty and the caller answers it as a single evaluation."""
    if body.__class__ is not dict:
        raise BadBody("", f"the body must be a JSON object, not {a_type(body)}")
    _no_unknown(body, _BATCH_KEYS, "")
    for key in _EVALUATION_KEYS:
        _object(body, key, "", required=False)
    semantic = "execute_all"
    options = _object(body, "options", "", required=False)
    if options:
        value = options.get("evaluations_semantic")
        if value is not None:
            _expect(value, str, "a string", "options.evaluations_semantic")
            if value not in SEMANTICS:
                raise BadBody(
                    "options.evaluations_semantic",
                    f"`options.evaluations_semantic` must be one of {', '.join(SEMANTICS)}, not `{value}`",
                )
            semantic = value
    evaluations = body.get("evaluations")
    if evaluations is None:
        return [], semantic
    _expect(evaluations, list, "a list", "evaluations")
    items: list[tuple[dict | None, BadBody | None, bool]] = []
    defaults = {key: body[key] for key in _EVALUATION_KEYS if body.get(key) is not None}
    for index, item in enumerate(evaluations):
        if item.__class__ is not dict:
            prefix = f"evaluations[{index}]"
            raise BadBody(prefix, f"`{prefix}` must be an object, not {a_type(item)}")
        # An item's own fields over the batch's defaults (a null field takes the default).
        if None in item.values():
            merged = {**defaults, **{key: value for key, value in item.items() if value is not None}}
        else:
            merged = {**defaults, **item} if defaults else item
        if item.keys() <= _EVALUATION_SET:
            request = _plain(merged)  # the common shape; a tool, or any error, is the careful path's
            if request is not None:
                items.append((request, None, False))
                continue
        prefix = f"evaluations[{index}]"
        try:
            _no_unknown(item, _EVALUATION_KEYS, prefix)
            items.append((careful_request(merged, prefix), None, is_tool(merged)))
        except BadBody as err:
            items.append((None, err, False))
    return items, semantic


def stops(semantic: str, allowed: bool) -> bool:
    """Whether a batch with ``semantic`` stops after an item decided ``allowed``."""
    if semantic == "deny_on_first_deny":
        return not allowed
    if semantic == "permit_on_first_permit":
        return allowed
    return False


__all__ = ["BadBody", "LIFTED", "SEMANTICS", "authzen_field", "batch", "error_item", "is_tool", "response", "stops", "to_request"]
