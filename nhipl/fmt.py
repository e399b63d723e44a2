"""The canonical formatter: AST plus comments in, one canonical layout out.

``format_text(text)`` parses and lowers the text, prints every item from the AST
and puts each comment back next to the code it was written beside. Before it
returns, it re-parses its own output and checks that the policies and the
comments are the same as before (``FormatError`` otherwise), so a caller that
writes the result never changes what a policy means. ``write_atomically``
writes through a temporary file and :func:`os.replace`, so a file is never left
half-written.

The layout:

* items in source order; one blank line kept where the source had one or more
  between two items (or rules of a task block), none elsewhere;
* four-space indentation; annotations one a line above their rule;
* a rule on one line when it fits in :data:`LINE_LENGTH` columns and has no
  comment inside it, otherwise ``when``, ``unless``, ``grant ttl`` and
  ``because`` each on their own line, indented, the ``;`` after the last one;
* declarations and test requests on one line when they fit, otherwise one
  entry a line;
* expressions with single spaces around operators and only the parentheses the
  grammar needs; strings with JSON escapes; ``;`` after every statement.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from typing import assert_never

from . import ast as A
from .errors import NhiplError, PolicyError, Span
from .lower import lower
from .parse import parse

LINE_LENGTH = 100
INDENT = "    "

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class FormatError(NhiplError):
    """The formatter's output would not mean the same as its input (a formatter bug)."""

    def __init__(self, source: str, message: str):
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")


# ---- expressions -------------------------------------------------------------------

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


def _header_words(rule: A.Rule | A.Invariant) -> list[str]:
    """The header as unbreakable pieces: the head through the action and first
    target, then each further target, then ``on`` with its first resource, ..."""
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
    words = [head[0], first] + targets[1:] if len(head) > 1 else [f"{head[0]} {first}"] + targets[1:]
    if rule.resources is not None:
        resources = [format_string(r) for r in rule.resources]
        words += [f"on {resources[0]}"] + resources[1:]
    offset = len(head) - 1  # words before the one holding the first target
    last_target = offset + len(rule.targets) - 1
    out = []
    for i, word in enumerate(words):
        # commas between targets and between resources, not before `on` or `to`
        more_targets = offset <= i < last_target
        more_resources = rule.resources is not None and last_target < i < len(words) - 1
        out.append(word + ("," if more_targets or more_resources else ""))
    return out


def format_rule_header(rule: A.Rule | A.Invariant) -> str:
    """``EFFECT SUBJECT to ACTION TARGETS [on RESOURCES]`` (or the invariant's ``never`` head)."""
    return " ".join(_header_words(rule))


def format_annotation(ann: A.Annotation) -> str:
    return f"@{ann.name}(" + ", ".join(format_string(a) for a in ann.args) + ")"


def _child_need(op: str, operand: A.Expr) -> int:
    # An `and` inside a broken `or` gets parentheses: same meaning, easier to read.
    if op == "or":
        return _NOT if isinstance(operand, A.And) else _AND
    return _NOT


def _break(expr: A.Expr, need: int, room: int, src: int) -> list[tuple[str, int]]:
    """``expr`` as lines of at most ``room`` columns where it can be broken at
    ``and``/``or``: (text relative to the first line's column, source line)."""
    text = format_expr(expr, need)
    if len(text) <= room or not isinstance(expr, (A.Or, A.And)):
        return [(text, src)]
    op = "or" if isinstance(expr, A.Or) else "and"
    paren = 1 if _level(expr) < need else 0
    lines: list[tuple[str, int]] = []
    for i, operand in enumerate(expr.operands):
        prefix = "" if i == 0 else op + " "
        operand_src = max(src, _span_line(operand, src))
        sub = _break(operand, _child_need(op, operand), room - paren - len(prefix), operand_src)
        head = ("(" if paren and i == 0 else " " * paren) + prefix
        lines.append((head + sub[0][0], sub[0][1]))
        lines.extend((" " * (paren + len(prefix)) + t, line) for t, line in sub[1:])
    if paren:
        lines[-1] = (lines[-1][0] + ")", lines[-1][1])
    return lines


# ---- layout --------------------------------------------------------------------------


@dataclass
class _Line:
    """One output line. ``src`` is the source line its code came from; comments
    are placed by it. ``boundary`` marks the first line of an item, where a
    blank line of the source is kept."""

    text: str
    depth: int
    src: int
    end: int = 0  # last source line this output line closes (for blank-line detection)
    boundary: bool = False
    comment_depth: int | None = None  # depth of comments placed before this line
    before: list[str] = field(default_factory=list)  # own-line comments (texts) before the line
    before_src: list[int] = field(default_factory=list)
    trailing: str | None = None


def _span_line(node, default: int) -> int:
    span = getattr(node, "span", None)
    return span.line if span is not None else default


class _Printer:
    def __init__(self, module: A.Module, comments: list[A.Comment], text_lines: list[str]):
        self.module = module
        self.comments = comments
        self.text_lines = text_lines
        self.out: list[_Line] = []

    def emit(self, text: str, depth: int, src: int, *, boundary: bool = False, end: int = 0, comment_depth=None) -> _Line:
        line = _Line(text, depth, src, max(end, src), boundary, comment_depth)
        self.out.append(line)
        return line

    def inside(self, span: Span | None, start_line: int | None = None) -> bool:
        """Whether a comment sits within ``span`` (from ``start_line``), not after its end."""
        if span is None:
            return False
        first = span.line if start_line is None else start_line
        for c in self.comments:
            if first <= c.line <= span.end_line and not (c.line == span.end_line and c.column >= span.end_column):
                return True
        return False

    def fits(self, depth: int, text: str) -> bool:
        return len(INDENT) * depth + len(text) <= LINE_LENGTH

    # -- items ----------------------------------------------------------------------------
    def item(self, item: A.Item, depth: int) -> None:
        start = item.span.line if item.span else (self.out[-1].src if self.out else 1)
        end = item.span.end_line if item.span else start
        first = len(self.out)
        if isinstance(item, A.Import):
            self.emit(f"import {format_string(item.target)};", depth, start)
        elif isinstance(item, A.Attenuate):
            self.emit(f"attenuate {item.what};", depth, start)
        elif isinstance(item, (A.AgentDecl, A.ToolDecl)):
            word, name = ("agent", item.id) if isinstance(item, A.AgentDecl) else ("tool", item.pattern)
            self.entries(f"{word} {format_string(name)}", item.entries, item.span, depth, start, end)
        elif isinstance(item, A.Rule):
            self.rule(item, depth, start, end)
        elif isinstance(item, A.TaskBlock):
            self.emit(f"task {format_string(item.intent)} {{", depth, start)
            for rule in item.rules:
                self.item(rule, depth + 1)
            self.emit("}", depth, end, comment_depth=depth + 1)
        elif isinstance(item, A.Test):
            self.test(item, depth, start, end)
        elif isinstance(item, A.Invariant):
            self.emit(f"invariant {format_string(item.name)} {{", depth, start)
            self.clauses(format_rule_header(item), item, depth + 1, item.span, None, ";", end)
            self.emit("}", depth, end, comment_depth=depth + 1)
        else:  # pragma: no cover - every item kind is handled above
            raise TypeError(f"unknown item {item!r}")
        self.out[first].boundary = True
        self.out[-1].end = max(self.out[-1].end, end)

    def entries(self, head: str, entries: tuple[A.Entry, ...], span, depth: int, start: int, end: int) -> None:
        one = f"{head} " + format_value(A.ObjectValue(tuple((e.key, e.value) for e in entries))) if entries else f"{head} {{}}"
        if not entries or (self.fits(depth, one) and not self.inside(span, start + 1)):
            self.emit(one, depth, start)
            return
        self.emit(f"{head} {{", depth, start)
        for i, entry in enumerate(entries):
            comma = "," if i < len(entries) - 1 else ""
            self.entry(entry, depth + 1, comma)
        self.emit("}", depth, end, comment_depth=depth + 1)

    def entry(self, entry: A.Entry, depth: int, comma: str) -> None:
        src = _span_line(entry, self.out[-1].src if self.out else 1)
        value = entry.value
        one = f"{_key(entry.key)}: {format_value(value)}{comma}"
        if isinstance(value, A.ObjectValue) and value.entries and (
            not self.fits(depth, one) or self.inside(value.span, src + 1)
        ):
            self.emit(f"{_key(entry.key)}: {{", depth, src)
            for i, sub in enumerate(value.entries):
                key, val = sub
                self.entry(A.Entry(key, val, getattr(val, "span", None)), depth + 1, "," if i < len(value.entries) - 1 else "")
            end = value.span.end_line if value.span else src
            self.emit("}" + comma, depth, end, comment_depth=depth + 1)
        else:
            self.emit(one, depth, src)

    def rule(self, rule: A.Rule, depth: int, start: int, end: int) -> None:
        for ann in rule.annotations:
            self.emit(format_annotation(ann), depth, _span_line(ann, start))
        header_src = _span_line(rule.subject, start)
        self.clauses(format_rule_header(rule), rule, depth, rule.span, header_src, ";", end)

    def clauses(self, header: str, rule, depth: int, span, header_src, terminator: str, end: int) -> None:
        header_src = header_src if header_src is not None else _span_line(rule.subject, span.line if span else 1)
        parts: list[tuple[str, A.Expr | None, int]] = []  # (keyword, condition, source line) or (text, None, line)
        if rule.when is not None:
            parts.append(("when", rule.when, _span_line(rule.when, header_src)))
        if rule.unless is not None:
            parts.append(("unless", rule.unless, _span_line(rule.unless, header_src)))
        ttl = getattr(rule, "ttl", None)
        if ttl is not None:
            parts.append((f"grant ttl {ttl}", None, _span_line(ttl, header_src)))
        because = getattr(rule, "because", None)
        if because is not None:
            parts.append((f"because {format_string(because)}", None, end))
        if isinstance(rule, A.Invariant):
            terminator = ""
        texts = [f"{kw} {format_expr(expr)}" if expr is not None else kw for kw, expr, _ in parts]
        one = " ".join([header] + texts) + terminator
        if self.fits(depth, one) and not (parts and self.inside(span, header_src)):
            self.emit(one, depth, header_src)
            return
        lines = [(words := _header_words(rule))[0]]
        for i, word in enumerate(words[1:], start=1):
            closing = terminator if not parts and i == len(words) - 1 else ""
            if self.fits(depth if len(lines) == 1 else depth + 1, f"{lines[-1]} {word}{closing}"):
                lines[-1] += f" {word}"
            else:
                lines.append(word)
        for k, text in enumerate(lines):
            end_mark = terminator if not parts and k == len(lines) - 1 else ""
            self.emit(text + end_mark, depth if k == 0 else depth + 1, header_src)
        last = header_src
        for i, ((kw, expr, src), text) in enumerate(zip(parts, texts)):
            last = max(last, src)
            end_mark = terminator if i == len(parts) - 1 else ""
            if expr is not None and isinstance(expr, (A.Or, A.And)) and (
                not self.fits(depth + 1, text + end_mark) or self.inside(expr.span)
            ):
                self.split_condition(kw, expr, depth + 1, last, end_mark)
            else:
                self.emit(text + end_mark, depth + 1, last)

    def split_condition(self, keyword: str, expr: A.Or | A.And, depth: int, src: int, end_mark: str) -> None:
        """``when A`` / `` and B`` / `` and C``: one top-level operand a line,
        operators right-aligned under the keyword; an operand still too long
        is broken the same way inside its parentheses."""
        op = "or" if isinstance(expr, A.Or) else "and"
        width = len(keyword) + 1
        room = LINE_LENGTH - len(INDENT) * depth - width
        lines: list[tuple[str, int]] = []
        for i, operand in enumerate(expr.operands):
            lead = f"{keyword} " if i == 0 else op.rjust(width - 1) + " "
            broken = _break(operand, _child_need(op, operand), room, max(src, _span_line(operand, src)))
            lines.append((lead + broken[0][0], broken[0][1]))
            lines.extend((" " * width + text, line) for text, line in broken[1:])
        for k, (text, line_src) in enumerate(lines):
            src = max(src, line_src)
            self.emit(text + (end_mark if k == len(lines) - 1 else ""), depth, src)

    def test(self, test: A.Test, depth: int, start: int, end: int) -> None:
        self.emit(f"test {format_string(test.name)} {{", depth, start)
        req = test.request
        req_src = _span_line(req, start)
        self.entries("request", req.entries and tuple(A.Entry(k, v, getattr(v, "span", None)) for k, v in req.entries), req.span, depth + 1, req_src, req.span.end_line if req.span else req_src)
        exp = test.expect
        text = f"expect {exp.effect}"
        if exp.by is not None:
            text += " by " + ", ".join(format_string(b) for b in exp.by)
        self.emit(text, depth + 1, _span_line(exp, req_src))
        self.emit("}", depth, end, comment_depth=depth + 1)

    # -- comments -------------------------------------------------------------------------
    def place_comments(self) -> list[tuple[str, int]]:
        """Attach comments to output lines, in source order: an own-line comment
        before the first line whose code comes after it, a trailing comment
        after the line holding its code (or on a line of its own just below it,
        when that line already has one). Returns the comments after all code."""
        tail: list[tuple[str, int]] = []
        out = self.out
        srcs = [line.src for line in out]
        last = (-1, 0)  # (output line, 0 before it / 1 trailing it) of the previous comment
        for c in self.comments:
            text = c.text.rstrip()
            own_line = c.line > len(self.text_lines) or not self.text_lines[c.line - 1][: c.column - 1].strip()
            i = bisect.bisect_right(srcs, c.line) - 1
            if own_line or i < 0:
                place = (bisect.bisect_left(srcs, c.line), 0)
            elif out[i].trailing is None:
                place = (i, 1)
            else:
                place = (i + 1, 0)
            if place < last:  # never before a comment that came earlier in the source
                place = last if last[1] == 0 else (last[0] + 1, 0)
            if place[1] == 1 and out[place[0]].trailing is not None:
                place = (place[0] + 1, 0)
            index, slot = place
            if slot == 1:
                out[index].trailing = text
            elif index < len(out):
                out[index].before.append(text)
                out[index].before_src.append(c.line)
            else:
                tail.append((text, c.line))
            last = place
        return tail

    def render(self) -> str:
        tail = self.place_comments()
        result: list[str] = []
        last_src = 0

        def blank_between(a: int, b: int) -> bool:
            return any(not self.text_lines[k - 1].strip() for k in range(a + 1, b) if 0 < k <= len(self.text_lines))

        for line in self.out:
            cdepth = line.comment_depth if line.comment_depth is not None else line.depth
            for text, src in zip(line.before, line.before_src):
                if result and line.boundary and blank_between(last_src, src):
                    result.append("")
                result.append(INDENT * cdepth + text)
                last_src = max(last_src, src)
            if result and line.boundary and blank_between(last_src, line.src):
                result.append("")
            text = INDENT * line.depth + line.text
            if line.trailing is not None:
                text += "  " + line.trailing
            result.append(text)
            last_src = max(last_src, line.end, line.src)
        for text, src in tail:
            if result and blank_between(last_src, src):
                result.append("")
            result.append(text)
            last_src = src
        while result and not result[-1]:
            result.pop()
        return "\n".join(result) + "\n" if result else ""


# ---- public API ---------------------------------------------------------------------------


def parse_module(text: str, source: str = "<string>") -> A.Module:
    """Parse and lower one file (no imports, no checks); PolicyError on bad text."""
    return lower(parse(text, source), text, source)


def format_module(module: A.Module, text: str) -> str:
    """``module`` (parsed from ``text``) in canonical layout, comments kept."""
    lines = text.split("\n")
    comments = sorted(module.comments, key=lambda c: (c.line, c.column))
    printer = _Printer(module, comments, lines)
    for item in module.items:
        printer.item(item, 0)
    return printer.render()


def _without_line_ids(items: tuple[A.Item, ...]) -> tuple[A.Item, ...]:
    """Items with the ids of rules without ``@id`` blanked: those ids are
    ``file:line`` and move whenever a line does."""

    def rule(r: A.Rule) -> A.Rule:
        return r if r.explicit_id else dataclasses.replace(r, id="")

    out: list[A.Item] = []
    for item in items:
        if isinstance(item, A.Rule):
            item = rule(item)
        elif isinstance(item, A.TaskBlock):
            item = dataclasses.replace(item, rules=tuple(rule(r) for r in item.rules))
        out.append(item)
    return tuple(out)


def same_policies(a: A.Module, b: A.Module) -> bool:
    """AST equality (spans and line-number rule ids excluded), also telling
    ``1``, ``1.0`` and ``true`` apart."""
    x, y = _without_line_ids(a.items), _without_line_ids(b.items)
    return x == y and repr(x) == repr(y)


def _comment_texts(module: A.Module) -> list[str]:
    return [c.text.rstrip() for c in sorted(module.comments, key=lambda c: (c.line, c.column))]


def format_text(text: str, source: str = "<string>") -> str:
    """The canonical form of ``text``: a fixed point, so ``format_text`` of the
    result is the result. PolicyError on bad input; FormatError if a pass would
    not re-parse to the same policies and comments, or the layout does not
    settle (neither is expected; the caller then leaves the file alone)."""
    module = parse_module(text, source)
    current, current_module = text, module
    for _ in range(_MAX_PASSES):
        formatted = format_module(current_module, current)
        try:
            again = parse_module(formatted, source)
        except PolicyError as err:
            raise FormatError(source, f"formatted text does not parse ({err.message}); file left unchanged") from None
        if not same_policies(module, again):
            raise FormatError(source, "formatting would change the policies; file left unchanged")
        if _comment_texts(module) != _comment_texts(again):
            raise FormatError(source, "formatting would lose or reorder comments; file left unchanged")
        if formatted == current:
            return formatted
        current, current_module = formatted, again
    raise FormatError(source, "the layout does not settle; file left unchanged")


# A comment can move out of the construct it sat in (say, to the end of a rule),
# which changes the layout once more; two passes settle every case seen so far.
_MAX_PASSES = 4


def write_atomically(path: str, text: str) -> None:
    """Replace ``path``'s content with ``text`` via a temporary file in the same
    folder and :func:`os.replace`: readers see the old file or the new one."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=".nhipl-fmt-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


__all__ = [
    "FormatError",
    "LINE_LENGTH",
    "format_annotation",
    "format_expr",
    "format_literal",
    "format_module",
    "format_rule_header",
    "format_string",
    "format_subject",
    "format_text",
    "format_value",
    "parse_module",
    "same_policies",
    "write_atomically",
]
