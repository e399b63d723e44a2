"""Layout: line breaking, indentation and width.

:class:`_Printer` walks a module's items and emits output lines of at most
:data:`LINE_LENGTH` columns with four-space indentation: a rule on one line
when it fits and holds no comment, otherwise ``when``, ``unless``, ``grant
ttl`` and ``because`` each on their own line, a long condition broken at its
top-level ``and``/``or`` with the operators right-aligned under the keyword;
declarations and test requests on one line when they fit, otherwise one entry
a line. Each line keeps the source line it came from, so comments can be put
back (:mod:`nhipl.fmt.comments`) and one blank line kept where the source had
some between two items. The text of each piece comes from :mod:`nhipl.fmt.unparse`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import ast as A
from ..errors import Span
from .comments import comment_inside, place_comments
from .unparse import (
    _AND,
    _NOT,
    _SUM,
    _header_words,
    _key,
    _level,
    format_annotation,
    format_expr,
    format_rule_header,
    format_string,
    format_value,
)

LINE_LENGTH = 100
INDENT = "    "


def _child_need(op: str, operand: A.Expr) -> int:
    # An `and` inside a broken `or` gets parentheses: same meaning, easier to read.
    if op == "or":
        return _NOT if isinstance(operand, A.And) else _AND
    return _NOT


def _break(expr: A.Expr, need: int, room: int, src: int) -> list[tuple[str, int]]:
    """``expr`` as lines of at most ``room`` columns where it can be broken at
    ``and``/``or``: (text relative to the first line's column, source line)."""
    text = format_expr(expr, need)
    if len(text) > room and _breakable_quantifier(expr):
        return _break_quantifier(expr, room, src)  # type: ignore[arg-type]
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


def _breakable_quantifier(expr: A.Expr) -> bool:
    return isinstance(expr, A.Quantifier) and isinstance(expr.where, (A.And, A.Or))


def _break_quantifier(expr: A.Quantifier, room: int, src: int) -> list[tuple[str, int]]:
    """``any(x in L where A`` / ``                 and B)``: the condition broken at its
    top-level ``and``/``or``, operands aligned after ``where``."""
    head = f"{expr.kind}({expr.name} in {format_expr(expr.source, _SUM)} where "
    where: A.And | A.Or = expr.where  # type: ignore[assignment]
    op = "or" if isinstance(where, A.Or) else "and"
    width = len(head)
    lines: list[tuple[str, int]] = []
    for i, operand in enumerate(where.operands):
        lead = head if i == 0 else op.rjust(width - 1) + " "
        broken = _break(operand, _child_need(op, operand), room - width, max(src, _span_line(operand, src)))
        lines.append((lead + broken[0][0], broken[0][1]))
        lines.extend((" " * width + text, line) for text, line in broken[1:])
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
        return comment_inside(self.comments, span, start_line)

    def fits(self, depth: int, text: str) -> bool:
        return len(INDENT) * depth + len(text) <= LINE_LENGTH

    # -- items ----------------------------------------------------------------------------
    def item(self, item: A.Item, depth: int) -> None:
        start = item.span.line if item.span else (self.out[-1].src if self.out else 1)
        end = item.span.end_line if item.span else start
        first = len(self.out)
        if isinstance(item, A.Import):
            excepts = " except " + ", ".join(format_string(x) for x in item.excepts) if item.excepts else ""
            self.emit(f"import {format_string(item.target)}{excepts};", depth, start)
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
        elif isinstance(item, A.CredentialInvariant):
            self.emit(f"invariant {format_string(item.name)} {{", depth, start)
            self.clauses(format_rule_header(item), item, depth + 1, item.span, _span_line(item.bound, start), ";", end)
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
        unless = getattr(rule, "unless", None)  # a credential invariant has none
        if unless is not None:
            parts.append(("unless", unless, _span_line(unless, header_src)))
        ttl = getattr(rule, "ttl", None)
        if ttl is not None:
            parts.append((f"grant ttl {ttl}", None, _span_line(ttl, header_src)))
        because = getattr(rule, "because", None)
        if because is not None:
            parts.append((f"because {format_string(because)}", None, end))
        if isinstance(rule, (A.Invariant, A.CredentialInvariant)):
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
            elif expr is not None and _breakable_quantifier(expr) and not self.fits(depth + 1, text + end_mark):
                width = len(kw) + 1
                broken = _break_quantifier(expr, LINE_LENGTH - len(INDENT) * (depth + 1) - width, max(last, _span_line(expr, last)))  # type: ignore[arg-type]
                for k, (line, line_src) in enumerate(broken):
                    last = max(last, line_src)
                    self.emit(("" if k else f"{kw} ") + (" " * width if k else "") + line
                              + (end_mark if k == len(broken) - 1 else ""), depth + 1, last)
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

    def render(self) -> str:
        tail = place_comments(self.out, self.comments, self.text_lines)
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
