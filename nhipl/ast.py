"""The typed AST: frozen dataclasses, children in tuples, spans left out of equality.

Only :mod:`nhipl.lower` builds these from source; every later stage (check,
interpret, compile, lint, fmt, testing) reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .effects import Effect, RuleEffect
from .errors import Span
from .values import type_name

_NO_SPAN = None


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)  # type: ignore[return-value]


# ---- expressions ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, number, boolean or null (``None``)."""

    value: str | int | float | bool | None
    span: Span | None = _span()

    # Equality follows nhipl's, not Python's: `true` is not `1` (but `1` is `1.0`).
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Literal:
            return NotImplemented
        return type_name(self.value) == type_name(other.value) and self.value == other.value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type_name(self.value), self.value))


@dataclass(frozen=True, slots=True)
class Duration:
    """``amount`` times ``unit`` (s, m, h, d); ``seconds`` is the value."""

    amount: int
    unit: str
    span: Span | None = _span()

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple["Expr", ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ObjectValue:
    """``{key: value, ...}``: only in declarations and test requests."""

    entries: tuple[tuple[str, "Value"], ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Path:
    """``root.attr.attr``: a request path."""

    root: str
    attrs: tuple[str, ...] = ()
    span: Span | None = _span()

    def dotted(self) -> str:
        return ".".join((self.root,) + self.attrs)


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple["Expr", ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple["Expr", ...]
    span: Span | None = _span()


COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
STRING_TESTS = ("matches", "startswith", "endswith", "contains")


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class In:
    item: "Expr"
    container: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class StringTest:
    op: str
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Has:
    path: Path
    name: str
    span: Span | None = _span()


QUANTIFIERS = ("any", "all", "count")
FUNCTIONS = ("keys", "values", "len")


@dataclass(frozen=True, slots=True)
class Quantifier:
    """``any(x in LIST where COND)``, ``all(...)``, ``count(x in LIST [where COND])``:
    ``name`` is bound to each element of ``source`` inside ``where`` only."""

    kind: str
    name: str
    source: "Expr"
    where: "Expr | None" = None
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Call:
    """``keys(o)``, ``values(o)``, ``len(v)``."""

    name: str
    args: tuple["Expr", ...]
    span: Span | None = _span()


ARITH_OPS = ("+", "-")


@dataclass(frozen=True, slots=True)
class Arith:
    """``a + b``, ``a - b`` on numbers."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


Expr = Union[Literal, Duration, ListExpr, Path, Not, And, Or, Compare, In, StringTest, Has, Quantifier, Call, Arith]
Value = Union[Literal, Duration, ListExpr, ObjectValue]


# ---- rules --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnyAgent:
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AgentIds:
    """``agent "id", "id"``: each id is a glob."""

    ids: tuple[str, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AgentGroup:
    """``agent in "g", "h"``: a principal in any of the groups."""

    groups: tuple[str, ...]
    span: Span | None = _span()

    @property
    def group(self) -> str:
        """The first group (the only one in a version-1 policy)."""
        return self.groups[0]


Subject = Union[AnyAgent, AgentIds, AgentGroup]

PERMIT, FORBID, APPROVAL = RuleEffect.PERMIT, RuleEffect.FORBID, RuleEffect.APPROVAL


@dataclass(frozen=True, slots=True)
class Annotation:
    name: str
    args: tuple[str, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    effect: RuleEffect
    subject: Subject
    actions: tuple[str, ...]
    targets: tuple[str, ...]
    resources: tuple[str, ...] | None = None
    when: Expr | None = None
    unless: Expr | None = None
    ttl: Duration | None = None
    because: str | None = None
    annotations: tuple[Annotation, ...] = ()
    task_intent: str | None = None
    explicit_id: bool = False
    span: Span | None = _span()

    @property
    def action(self) -> str:
        """The first action (the only one in a version-1 policy); see ``actions``."""
        return self.actions[0]

    def annotation(self, name: str) -> Annotation | None:
        for a in self.annotations:
            if a.name == name:
                return a
        return None

    @property
    def maps(self) -> tuple[str, ...]:
        """Framework ids this rule implements (``@maps("owasp-asi:2026:ASI03", ...)``)."""
        return tuple(x for a in self.annotations if a.name == "maps" for x in a.args)


# ---- declarations and statements -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Import:
    target: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Attenuate:
    what: str
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: Value
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class AgentDecl:
    id: str
    entries: tuple[Entry, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class ToolDecl:
    pattern: str
    entries: tuple[Entry, ...]
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class TaskBlock:
    intent: str
    rules: tuple[Rule, ...]
    span: Span | None = _span()


EFFECTS = tuple(Effect)  # what a test may expect


@dataclass(frozen=True, slots=True)
class Expect:
    effect: str
    by: tuple[str, ...] | None = None
    span: Span | None = _span()
    by_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Test:
    name: str
    request: ObjectValue
    expect: Expect
    span: Span | None = _span()


@dataclass(frozen=True, slots=True)
class Invariant:
    """``invariant "name" { never EFFECT [SUBJECT to] ACTION TARGETS [on R] [when E] [unless E] }``"""

    name: str
    effect: str
    subject: Subject | None
    action: str
    targets: tuple[str, ...]
    resources: tuple[str, ...] | None = None
    when: Expr | None = None
    unless: Expr | None = None
    span: Span | None = _span()


Item = Union[Import, Attenuate, AgentDecl, ToolDecl, Rule, TaskBlock, Test, Invariant]


@dataclass(frozen=True, slots=True)
class Comment:
    text: str  # including the leading '#'
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Module:
    source: str
    items: tuple[Item, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    path: str | None = field(default=None, compare=False)
    text: str | None = field(default=None, compare=False, repr=False)  # the source text, read once

    def rules(self) -> list[Rule]:
        out: list[Rule] = []
        for item in self.items:
            if isinstance(item, Rule):
                out.append(item)
            elif isinstance(item, TaskBlock):
                out.extend(item.rules)
        return out


def value_to_python(value: Value) -> object:
    """A declaration or request value as plain JSON-like Python data (durations in seconds)."""
    if isinstance(value, Literal):
        return value.value
    if isinstance(value, Duration):
        return value.seconds
    if isinstance(value, ListExpr):
        return [value_to_python(v) for v in value.items]  # type: ignore[arg-type]
    if isinstance(value, ObjectValue):
        return {k: value_to_python(v) for k, v in value.entries}
    raise TypeError(f"not a value: {value!r}")


def iter_exprs(expr: Expr):
    """Every node of an expression, pre-order, without recursion."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (And, Or)):
            stack.extend(reversed(node.operands))
        elif isinstance(node, Not):
            stack.append(node.operand)
        elif isinstance(node, (Compare, StringTest)):
            stack.extend((node.right, node.left))
        elif isinstance(node, In):
            stack.extend((node.container, node.item))
        elif isinstance(node, ListExpr):
            stack.extend(reversed(node.items))
        elif isinstance(node, Has):
            stack.append(node.path)
        elif isinstance(node, Quantifier):
            if node.where is not None:
                stack.append(node.where)
            stack.append(node.source)
        elif isinstance(node, Call):
            stack.extend(reversed(node.args))
        elif isinstance(node, Arith):
            stack.extend((node.right, node.left))
