"""JSON-RPC 2.0 framing for the MCP proxy: one line of bytes in, one checked message out.

The proxy decides on what it parsed and forwards what it parsed, re-serialised, so a peer
with another JSON parser can never run a message other than the one decided. For that the
parse is strict (the profile of RFC 7493, I-JSON, plus limits), and anything it cannot
read one way only is refused:

- the line must be UTF-8 and at most :data:`LINE_LIMIT` bytes;
- no ``NaN``, ``Infinity`` or ``-Infinity``, and no number that overflows to one (``1e400``);
- integers within ±(2**53 - 1), the range every JSON parser reads exactly;
- no duplicate keys in any object, compared without case (``"name"`` and ``"Name"``);
- no lone UTF-16 surrogates (``"\\ud800"``), escaped or not;
- nesting at most :data:`DEPTH_LIMIT` deep.

:func:`parse_line` returns the message or raises :class:`FrameError`, which carries the
``id`` of the message when one can still be read, so that the peer gets an error for
exactly the request it sent.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..jsontext import Refused, has_lone_surrogate, strict_decoder

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603

# Server output lines can be large (the tools/list of a big server, file contents).
LINE_LIMIT = 64 * 1024 * 1024
DEPTH_LIMIT = 64
SAFE_INTEGER = 2**53 - 1

# The methods of MCP (revisions 2024-11-05 to 2025-11-25, and the 2026 draft's additions).
# A message whose method is not exactly one of these is refused: a server that strips a
# trailing NUL or ignores case would otherwise run a method the proxy never saw.
CLIENT_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
        "server/discover",
        "subscriptions/listen",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
        "notifications/tasks/status",
    }
)
SERVER_METHODS = frozenset(
    {
        "ping",
        "sampling/createMessage",
        "elicitation/create",
        "roots/list",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/message",
        "notifications/resources/updated",
        "notifications/resources/list_changed",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/elicitation/complete",
        "notifications/tasks/status",
        "notifications/subscriptions/acknowledged",
    }
)


class FrameError(ValueError):
    """A line that is not a message the proxy accepts: ``code`` (a JSON-RPC error code),
    ``reason``, and ``request_id`` (the id of the refused message when it could be read
    unambiguously, else None)."""

    def __init__(self, code: int, reason: str, request_id: Any = None):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.request_id = request_id


def _pairs(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs) or (len(out) > 1 and len(set(map(str.casefold, out))) != len(out)):
        seen: set[str] = set()
        for key, _ in pairs:
            folded = key.casefold()
            if folded in seen:
                raise Refused(f"duplicate key `{_shown(key)}` (keys are compared without case)")
            seen.add(folded)
    return out


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# The core's strict number rules, with integers a peer reads exactly and no duplicate keys.
_DECODER = strict_decoder(integer_limit=SAFE_INTEGER, object_pairs_hook=_pairs)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _shown(text: str) -> str:
    text = text[:40]
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > DEPTH_LIMIT:
            return False
        if item.__class__ is dict:
            stack.extend((v, depth + 1) for v in item.values() if v.__class__ in (dict, list))
        elif item.__class__ is list:
            stack.extend((v, depth + 1) for v in item if v.__class__ in (dict, list))
    return True


def parse_line(line: bytes) -> Any:
    """The JSON value on ``line``, checked as the module docs say; :class:`FrameError` if not."""
    if len(line) > LINE_LIMIT:
        raise FrameError(INVALID_REQUEST, f"the line is longer than {LINE_LIMIT // (1024 * 1024)} MiB")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(PARSE_ERROR, "parse error: the line is not UTF-8") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise FrameError(PARSE_ERROR, f"parse error: nested more than {DEPTH_LIMIT} deep") from None
    except Refused as err:
        raise FrameError(PARSE_ERROR, f"parse error: {err}", _lenient_id(text)) from None
    except (json.JSONDecodeError, ValueError) as err:
        why = err.msg.lower() if isinstance(err, json.JSONDecodeError) else str(err).lower()
        raise FrameError(PARSE_ERROR, f"parse error: invalid JSON ({why})") from None
    if text.count("{") + text.count("[") > DEPTH_LIMIT and not _depth_ok(value):
        raise FrameError(PARSE_ERROR, f"parse error: nested more than {DEPTH_LIMIT} deep", _lenient_id(text))
    # A lone surrogate can only come from a `\uD800`-style escape (strict UTF-8 has none).
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and has_lone_surrogate(value):
        raise FrameError(PARSE_ERROR, "parse error: a string holds a lone UTF-16 surrogate", _lenient_id(text))
    return value


def _lenient_id(text: str) -> Any:
    """The id of a message the strict parse refused, when a plain parse finds exactly one
    plain id (a short string or a safe integer); else None."""
    pairs_seen: list[list] = []

    def hook(pairs):
        pairs_seen.append(pairs)
        return dict(pairs)

    try:
        value = json.loads(
            text,
            object_pairs_hook=hook,
            parse_int=lambda s: int(s) if len(s) <= 17 else None,
            parse_float=lambda s: None,
            parse_constant=lambda s: None,
        )
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or not pairs_seen:
        return None
    ids = [v for k, v in pairs_seen[-1] if k.casefold() == "id"]
    if len(ids) != 1:
        return None
    found = ids[0]
    if found.__class__ is int and -SAFE_INTEGER <= found <= SAFE_INTEGER:
        return found
    if found.__class__ is str and len(found) <= 200:
        try:
            found.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return found
    return None


def encode(message: Any) -> bytes:
    """``message`` as one line of UTF-8 JSON (raises UnicodeEncodeError on lone surrogates)."""
    return (_ENCODER.encode(message) + "\n").encode("utf-8")


def id_key(request_id: Any) -> str:
    """A dictionary key for a JSON-RPC id (a string or an integer): ``1`` and ``"1"`` are
    different requests, so the key says which it is (``i:1``, ``s:1``)."""
    if request_id.__class__ is str:
        return "s:" + request_id
    return f"i:{request_id}"


def key_id(key: str) -> Any:
    """The id :func:`id_key` made ``key`` from."""
    return key[2:] if key[0] == "s" else int(key[2:])


def valid_id(request_id: Any) -> bool:
    """JSON-RPC ids are strings or integers here (null and fractions are refused)."""
    return request_id.__class__ is str or request_id.__class__ is int


def rpc_error(request_id: Any, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def tool_error(request_id: Any, text: str) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": {"content": [{"type": "text", "text": text}], "isError": True}}
