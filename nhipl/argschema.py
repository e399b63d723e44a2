"""Argument schemas on tool declarations (``tool "x" { args: { to: string, cc: list? } }``):
the one place that says which ``args`` a request may carry for a tool.

Both evaluators call :func:`schema_denial` before anything else: a request whose
``args`` break the schema of its tool is denied with no rules and one error naming
the argument and the declaration, and nothing else about it is evaluated. A
schema is closed (an argument it does not name is unknown); an argument whose
value is ``null`` counts as absent.
"""

from __future__ import annotations

from typing import NamedTuple

from . import ast as A
from .decision import DENY, Decision, EvalError, Reasons
from .values import a_type

_new_tuple = tuple.__new__


class ArgSchema(NamedTuple):
    """The arguments a tool declaration declares: name -> (type, optional), and where."""

    pattern: str
    arguments: dict[str, tuple[str, bool]]
    where: str  # `file:line` of the declaration


def schema_of(decl: A.ToolDecl) -> ArgSchema | None:
    """The schema a tool declaration states, or None when it has no ``args``."""
    for entry in decl.entries:
        if entry.key == "args" and isinstance(entry.value, A.ObjectValue):
            arguments = {name: (t.name, t.optional) for name, t in entry.value.entries if isinstance(t, A.TypeName)}
            span = decl.span
            where = f"{span.source.rsplit('/', 1)[-1]}:{span.line}" if span is not None else decl.pattern
            return ArgSchema(decl.pattern, arguments, where)
    return None


def _fits(kind: str, value: object) -> bool:
    cls = value.__class__
    if kind == "string":
        return cls is str
    if kind == "number":
        return cls is int or cls is float
    if kind == "bool":
        return cls is bool
    if kind == "list":
        return cls is list
    if kind == "object":
        return cls is dict
    return True  # any


def violation(schema: ArgSchema, tool: str, args: dict | None) -> str | None:
    """What is wrong with ``args`` for ``tool`` under ``schema``, or None."""
    given = {k: v for k, v in (args or {}).items() if v is not None}
    for name in given:
        if name not in schema.arguments:
            return f"argument `{name}` of `{tool}` is not declared (schema at {schema.where})"
    for name, (kind, optional) in schema.arguments.items():
        if name not in given:
            if not optional:
                return f"argument `{name}` of `{tool}` is required (schema at {schema.where})"
        elif not _fits(kind, given[name]):
            return f"argument `{name}` of `{tool}` must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, not {a_type(given[name])} (schema at {schema.where})"
    return None


def _lines(message: str) -> tuple[str, ...]:
    return (f"denied before any rule: {message}",)


def schema_denial(schema: ArgSchema | None, req) -> Decision | None:
    """The decision for a request whose ``args`` break its tool's schema, else None."""
    if schema is None:
        return None
    message = violation(schema, req.tool, req.args)
    if message is None:
        return None
    return _new_tuple(Decision, (DENY, (), None, (EvalError(schema.where, message),), Reasons(_lines, message), None, ()))
