"""The rules both evaluators share about expressions: when a condition fails
closed, the message that says why, and the task-intent guard.

:mod:`nhipl.interpret` and :mod:`nhipl.compile` raise :class:`EvalFailure` with
these messages, so the two report the same error for the same request. (The
rules about decisions, from the smallest ttl to attenuation, are in
:mod:`nhipl.decision`.)
"""

from __future__ import annotations

from . import ast as A
from .values import ListView, a_type


class EvalFailure(Exception):
    """A condition that cannot be evaluated; the rule fails closed."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


# What a boolean check is about, in the words of its messages.
WHEN = "the `when` condition"
UNLESS = "the `unless` condition"
NOT_OPERAND = "the operand of `not`"
AND_OPERAND = "an operand of `and`"
OR_OPERAND = "an operand of `or`"


def not_boolean(what: str, value: object) -> EvalFailure:
    return EvalFailure(f"{what} is {a_type(value)}, not a boolean")


def no_root(root: str) -> EvalFailure:
    return EvalFailure(f"the request has no `{root}`")


def missing(walked: str, value: object, attr: str) -> EvalFailure:
    """Reading ``attr`` of ``value``, reached at the dotted path ``walked``, failed."""
    if value.__class__ is not dict:
        return EvalFailure(f"`{walked}` is {a_type(value)}, it has no attribute `{attr}`")
    return EvalFailure(f"`{walked}` has no attribute `{attr}`")


def cannot_order(op: str, left: object, right: object) -> EvalFailure:
    return EvalFailure(f"cannot order {a_type(left)} and {a_type(right)} with `{op}`")


def not_a_list(container: object) -> EvalFailure:
    return EvalFailure(f"`in` needs a list on the right, not {a_type(container)}")


def not_strings(op: str, left: object, right: object) -> EvalFailure:
    return EvalFailure(f"`{op}` needs two strings, not {a_type(left)} and {a_type(right)}")


def lookup(root: str, attrs: tuple[str, ...], env: dict) -> object:
    """The value at ``root.attrs`` in ``env`` (the request as nhipl sees it), or
    :class:`EvalFailure` saying which step of the path is missing."""
    if root not in env:
        raise no_root(root)
    value, walked = env[root], root
    for attr in attrs:
        if value.__class__ is not dict or attr not in value:
            raise missing(walked, value, attr)
        value, walked = value[attr], f"{walked}.{attr}"
    return value


def intent_guard(when: A.Expr | None) -> tuple[str | None, A.Expr | None]:
    """``(x, rest)`` when ``when`` is ``task.intent == "x"`` or starts with that
    conjunct (``rest`` is what remains, None when nothing), else ``(None, when)``.

    A request whose intent is a string other than ``x`` makes such a condition
    false without reading anything else (``and`` stops at its first false
    operand): the compiled evaluator skips the rule as cheaply as one under a task
    scope, and a default deny names the guard as the reason the permit missed."""
    first, rest = when, None
    if isinstance(when, A.And):
        first = when.operands[0]
        rest = A.And(when.operands[1:])  # still an `and`: same checks, same messages
    if isinstance(first, A.Compare) and first.op == "==":
        left, right = first.left, first.right
        if isinstance(left, A.Literal):
            left, right = right, left
        if (
            isinstance(left, A.Path)
            and left.root == "task"
            and left.attrs == ("intent",)
            and isinstance(right, A.Literal)
            and right.value.__class__ is str
        ):
            return right.value, rest
    return None, when


# ---- version 2: quantifiers, functions, arithmetic -----------------------------------


def where(kind: str) -> str:
    """What the boolean check of a quantifier's condition is about."""
    return f"the `where` condition of `{kind}`"


def not_a_list_for(kind: str, value: object) -> EvalFailure:
    return EvalFailure(f"`{kind}` needs a list after `in`, not {a_type(value)}")


def bad_argument(function: str, value: object) -> EvalFailure:
    wants = "a list, a string or an object" if function == "len" else "an object"
    return EvalFailure(f"`{function}` needs {wants}, not {a_type(value)}")


def not_numbers(op: str, left: object, right: object) -> EvalFailure:
    return EvalFailure(f"`{op}` needs two numbers, not {a_type(left)} and {a_type(right)}")


def overflow(op: str) -> EvalFailure:
    return EvalFailure(f"`{op}` overflows: the result is not a finite number")


def arith(op: str, a: object, b: object) -> int | float:
    """``a op b`` on two numbers (booleans are not numbers), never NaN or an infinity."""
    ca, cb = a.__class__, b.__class__
    if not ((ca is int or ca is float) and (cb is int or cb is float)):
        raise not_numbers(op, a, b)
    try:
        value = a + b if op == "+" else a - b  # type: ignore[operator]
    except OverflowError:
        raise overflow(op) from None
    if value.__class__ is float and value - value != 0:
        raise overflow(op)
    return value


def call(function: str, value: object) -> object:
    """``keys(o)``, ``values(o)`` or ``len(v)``."""
    cls = value.__class__
    if function == "len":
        if cls is list or cls is str or cls is dict or cls is ListView:
            return len(value)  # type: ignore[arg-type]
        raise bad_argument(function, value)
    if cls is not dict:
        raise bad_argument(function, value)
    keys = sorted(value)  # type: ignore[call-overload]
    if function == "keys":
        return keys
    return [value[k] for k in keys]  # type: ignore[index]
