"""JSON text from users (requests, traces, imported runs, decision logs), with every
failure, too-deep nesting included, as one error that knows its place.

The decoder is stricter than :func:`json.loads`, and the same for every input:

* ``NaN``, ``Infinity`` and ``-Infinity`` are refused (every ordering with NaN is false, so
  ``when args.amount >= 10000`` would never fire), and so is a decimal beyond the float
  range (``1e400``), which Python would read as infinity;
* an integer has at most :data:`MAX_INTEGER_DIGITS` digits, so every number converts to a
  float without overflow;
* a string holds no lone surrogate (``"\\ud800"``): such a string cannot be written back
  as UTF-8;
* JSON lines are split at ``\n`` only, never inside a string at U+2028, U+2029 or U+0085.

:func:`strict_decoder` builds a decoder with these number rules for a reader with stricter
needs of its own (the MCP proxy's JSON-RPC framing: integers a peer reads exactly, no
duplicate keys).
"""

from __future__ import annotations

import json
import math
import re

MAX_INTEGER_DIGITS = 300
"""The most digits an integer in JSON input may have (so its magnitude is below 1e300)."""


class Refused(ValueError):
    """A value the strict decoder refuses; carries the reason."""


_Refused = Refused


def _refuse_constant(name: str) -> float:
    raise Refused(f"`{name}` is not a JSON number nhipl accepts: numbers must be finite")


def _strict_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused(f"the number `{text[:40]}` is too large: numbers must be finite")
    return value


def _strict_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise Refused(f"an integer of {len(text.lstrip('-'))} digits is too large (at most {MAX_INTEGER_DIGITS} digits)")
    return int(text)


def _bounded_int(limit: int):
    digits = len(str(limit))

    def parse(text: str) -> int:
        if len(text.lstrip("-")) <= digits:
            value = int(text)
            if -limit <= value <= limit:
                return value
        raise Refused(f"an integer is too large (the limit is ±{limit})")

    return parse


def strict_decoder(*, integer_limit: int | None = None, object_pairs_hook=None) -> json.JSONDecoder:
    """A decoder with the module's number rules: no NaN or infinities, no decimal beyond the
    float range, and integers of at most :data:`MAX_INTEGER_DIGITS` digits, or with
    ``integer_limit`` of at most that magnitude. Its ``decode`` raises :class:`Refused` for
    a refused value (``object_pairs_hook`` may raise it too). Lone surrogates are the
    caller's check (:func:`has_lone_surrogate`)."""
    return json.JSONDecoder(
        parse_float=_strict_float,
        parse_int=_strict_int if integer_limit is None else _bounded_int(integer_limit),
        parse_constant=_refuse_constant,
        object_pairs_hook=object_pairs_hook,
    )


_decode = strict_decoder().decode
_decode_any_float = json.JSONDecoder(parse_int=_strict_int).decode
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(value: object) -> bool:
    """Whether a string anywhere in the decoded ``value`` (keys included) holds a lone UTF-16
    surrogate, which cannot be written back as UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item.__class__ is str:
            if _SURROGATE.search(item):  # type: ignore[arg-type]
                return True
        elif item.__class__ is dict:
            stack.extend(item)  # type: ignore[arg-type]
            stack.extend(item.values())  # type: ignore[union-attr]
        elif item.__class__ is list:
            stack.extend(item)  # type: ignore[arg-type]
    return False


def loads(text: str | bytes, finite: bool = True) -> object:
    """The strict decoder (see the module's rules); raises :class:`json.JSONDecodeError`,
    :class:`ValueError` with the reason, or :class:`RecursionError`. With ``finite=False``,
    NaN and the infinities are decoded as floats, for a reader whose own checks name the
    field that holds one (a trace's event fields; a request refuses them anywhere)."""
    if text.__class__ is not str:
        text = text.decode("utf-8")  # type: ignore[union-attr]
        if text.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    value = (_decode if finite else _decode_any_float)(text)  # type: ignore[arg-type]
    if (_SURROGATE_ESCAPE.search(text) or _SURROGATE.search(text)) and has_lone_surrogate(value):  # type: ignore[arg-type]
        raise Refused("a string holds a lone surrogate (`\\ud800` to `\\udfff` without its pair): not valid Unicode")
    return value


class JSONTextError(ValueError):
    """Text that is not JSON: where (1-based ``line`` and ``column`` of the text
    given) and why (``reason``, e.g. ``expecting value``); ``message`` is
    ``invalid JSON: <reason>``."""

    def __init__(self, line: int, column: int, reason: str):
        super().__init__(f"invalid JSON: {reason}")
        self.line, self.column, self.reason = line, column, reason

    @property
    def message(self) -> str:
        return str(self)


def parse_json(text: str | bytes) -> object:
    """``json.loads``, raising :class:`JSONTextError` for any text it refuses
    (nesting too deep for the decoder is reported at 1:1)."""
    try:
        return loads(text)
    except RecursionError:
        raise JSONTextError(1, 1, "nested too deeply") from None
    except json.JSONDecodeError as err:
        raise JSONTextError(err.lineno, err.colno, err.msg.lower()) from None
    except UnicodeDecodeError as err:
        raise JSONTextError(1, err.start + 1, "not UTF-8 text") from None
    except ValueError as err:  # a refused number or string
        raise JSONTextError(1, 1, str(err)) from None


def parse_json_documents(text: str) -> list[tuple[int, object]]:
    """One JSON value, or JSON lines (one value a line, blank lines skipped), as
    (line, value) pairs; positions in errors are those of the whole text."""
    try:
        return [(1, loads(text))]
    except RecursionError:
        raise JSONTextError(1, 1, "nested too deeply") from None
    except json.JSONDecodeError as err:
        if err.msg != "Extra data":  # more than one value: read it as JSON lines
            raise JSONTextError(err.lineno, err.colno, err.msg.lower()) from None
    except ValueError:
        pass  # a refused value: read line by line to say which line holds it
    out = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, parse_json(line)))
        except JSONTextError as err:
            raise JSONTextError(lineno, err.column, err.reason) from None
    return out
