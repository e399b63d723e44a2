"""The unparser: AST nodes to canonical text, one line at a time.

Each function here turns one kind of node (a literal, an expression, a
declaration value, a subject, a rule header, an annotation) into the text that
lowers back to the same node, with single spaces around operators, only the
parentheses the grammar needs and strings with JSON escapes. It knows nothing
of line width or comments: :mod:`nhipl.fmt.layout` decides where lines break
and :mod:`nhipl.fmt.comments` where comments go. ``_header_words`` gives a rule
header as unbreakable pieces so the layout can wrap it.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import assert_never

from .. import ast as A

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_OR, _AND, _NOT, _TEST, _SUM, _ATOM = 1, 2, 3, 4, 5, 6


def _level(expr: A.Expr) -> int:
    match expr:
        case A.Or():
            return _OR
        case A.And():
            return _AND
        case A.Not():
            return _NOT
        case A.Compare() | A.In() | A.StringTest() | A.Has():
            return _TEST
        case A.Arith():
            return _SUM
        case A.Literal() | A.Duration() | A.ListExpr() | A.Path() | A.Quantifier() | A.Call():
            return _ATOM
        case unknown:
            assert_never(unknown)


def format_string(value: str) -> str:
    """A string literal that lowers back to ``value``."""
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        return json.dumps(value)  # lone surrogates only survive as escapes
    return json.dumps(value, ensure_ascii=False)


def format_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)), "f")  # positional: the grammar has no exponents
    return text if "." in text else text + ".0"


def format_literal(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return format_string(value)
    if isinstance(value, (int, float)):
        return format_number(value)
    raise TypeError(f"not a literal value: {value!r}")


def format_expr(expr: A.Expr, need: int = _OR) -> str:
    """``expr`` as canonical text; parenthesised when its binding is looser than ``need``."""
    text = _expr_text(expr)
    return f"({text})" if _level(expr) < need else text


def _expr_text(expr: A.Expr) -> str:
    match expr:
        case A.Literal(value=value):
            return format_literal(value)
        case A.Duration():
            return str(expr)
        case A.ListExpr(items=items):
            return "[" + ", ".join(format_expr(item) for item in items) + "]"
        case A.Path():
            return expr.dotted()
        case A.Or(operands=operands):
            return " or ".join(format_expr(op, _AND) for op in operands)
        case A.And(operands=operands):
            return " and ".join(format_expr(op, _NOT) for op in operands)
        case A.Not(operand=operand):
            # `not (a == b)` reads better than `not a == b`; both parse the same.
            return "not " + format_expr(operand, _TEST + 1 if _level(operand) == _TEST else _NOT)
        case A.Compare(op=op, left=left, right=right) | A.StringTest(op=op, left=left, right=right):
            return f"{format_expr(left, _SUM)} {op} {format_expr(right, _SUM)}"
        case A.In(item=item, container=container):
            return f"{format_expr(item, _SUM)} in {format_expr(container, _SUM)}"
        case A.Has(path=path, name=name):
            return f"{path.dotted()} has {name}"
        case A.Arith(op=op, left=left, right=right):
            return f"{format_expr(left, _SUM)} {op} {format_expr(right, _ATOM)}"
        case A.Quantifier(kind=kind, name=name, source=source, where=where):
            text = f"{kind}({name} in {format_expr(source, _SUM)}"
            return text + (f" where {format_expr(where)})" if where is not None else ")")
        case A.Call(name=name, args=args):
            return f"{name}(" + ", ".join(format_expr(a) for a in args) + ")"
        case unknown:
            assert_never(unknown)


def format_value(value: A.Value) -> str:
    """A declaration or request value on one line."""
    if isinstance(value, A.ObjectValue):
        if not value.entries:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)}: {format_value(v)}" for k, v in value.entries) + " }"
    if isinstance(value, A.ListExpr):
        return "[" + ", ".join(format_value(v) for v in value.items) + "]"  # type: ignore[arg-type]
    if isinstance(value, A.TypeName):
        return str(value)
    return format_expr(value)  # type: ignore[arg-type]


def _key(key: str) -> str:
    # Keywords are fine as bare keys: where a key is expected the lexer reads a NAME.
    return key if _NAME_RE.match(key) else format_string(key)


def format_subject(subject: A.Subject) -> str:
    if isinstance(subject, A.AnyAgent):
        return "any agent"
    if isinstance(subject, A.AgentIds):
        return "agent " + ", ".join(format_string(i) for i in subject.ids)
    return "agent in " + ", ".join(format_string(g) for g in subject.groups)


_EFFECT_TEXT = {A.PERMIT: "permit", A.FORBID: "forbid", A.APPROVAL: "require approval for"}


def _header_words(rule: A.Rule | A.Invariant | A.CredentialInvariant) -> list[str]:
    """The header as unbreakable pieces: the head through the action and first
    target, then each further target, then ``for`` with its actions and first
    target, ..., then ``on`` with its first resource, ..."""
    if isinstance(rule, A.CredentialInvariant):
        groups = [[f"never grant ttl > {rule.bound}"]]
        if rule.action is not None and rule.targets:
            targets = [format_string(t) for t in rule.targets]
            groups.append([f"to {rule.action} {targets[0]}"] + targets[1:])
        return [groups[0][0]] + [w + ("," if j < len(g) - 1 else "") for g in groups[1:] for j, w in enumerate(g)]
    if isinstance(rule, A.Invariant):
        head = [f"never {rule.effect}"]
        if rule.subject is not None:
            head = [f"never {rule.effect} {format_subject(rule.subject)}", "to"]
    else:
        head = [f"{_EFFECT_TEXT[rule.effect]} {format_subject(rule.subject)}", "to"]
    targets = [format_string(t) for t in rule.targets]
    # A long subject breaks before `to`: `permit agent "a", "b"` / `    to call "x"`.
    actions = ", ".join(rule.actions) if isinstance(rule, A.Rule) else rule.action
    first = " ".join(head[1:] + [actions, targets[0]])
    groups = [[first] + targets[1:]]
    handover = getattr(rule, "handover", None)
    if handover is not None:
        handed = [format_string(t) for t in handover.targets]
        groups.append([f"for {', '.join(handover.actions)} {handed[0]}"] + handed[1:])
    if rule.resources is not None:
        resources = [format_string(r) for r in rule.resources]
        groups.append([f"on {resources[0]}"] + resources[1:])
    # commas between the words of a group (targets, resources), not before `for`, `on` or `to`
    words = [w + ("," if j < len(g) - 1 else "") for g in groups for j, w in enumerate(g)]
    return [head[0]] + words if len(head) > 1 else [f"{head[0]} {words[0]}"] + words[1:]


def format_rule_header(rule: A.Rule | A.Invariant) -> str:
    """``EFFECT SUBJECT to ACTION TARGETS [on RESOURCES]`` (or the invariant's ``never`` head)."""
    return " ".join(_header_words(rule))


def format_annotation(ann: A.Annotation) -> str:
    return f"@{ann.name}(" + ", ".join(format_string(a) for a in ann.args) + ")"
