"""Step two: convert the concrete syntax tree to the typed AST.

Written out rule by rule (no automatic mapping), so renaming a grammar rule
cannot silently change the AST. Recursion here is bounded: the parse stage
refuses nesting deeper than ``MAX_NESTING``, so deep input cannot overflow the
stack. Errors found while lowering (bad durations, bad escapes, misplaced words)
are collected and raised together.
"""

from __future__ import annotations

import json
import os
import re
from types import MethodType

from lark import Token, Tree
from lark.visitors import Transformer_NonRecursive, v_args

from . import ast as A
from .errors import Diagnostic, PolicyError, Span, did_you_mean
from .jsontext import MAX_INTEGER_DIGITS
from .parse import ParseResult, source_line


_PLAIN_STRING = re.compile(r'"[^"\\\x00-\x1f]*"')
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Lower(Transformer_NonRecursive):
    def __init__(self, source: str, text: str):
        super().__init__(visit_tokens=False)
        self.source = source
        self.base = os.path.basename(source) if source and not source.startswith("<") else source
        self.text = text
        self.errors: list[Diagnostic] = []
        # One handler per rule name, bound once per lowering: methods marked
        # ``@v_args(meta=True)`` take (meta, children), the others (children).
        self._with_meta = {name: MethodType(vars(_Lower)[name].base_func, self) for name in _WITH_META}

    def transform(self, tree: Tree):
        """Post-order, like Lark's transformers, but a plain recursion: the parse
        stage refuses nesting deeper than ``MAX_NESTING``, so the depth is bounded
        (and far below Python's recursion limit)."""
        children = [self.transform(c) if c.__class__ is Tree else c for c in tree.children]
        data = tree.data
        f = self._with_meta.get(data)
        if f is not None:
            return f(tree.meta, children)
        f = getattr(self, data, None)
        if f is None:
            return self.__default__(data, children, tree.meta)
        return f(children)

    # -- helpers ---------------------------------------------------------------
    def span(self, meta) -> A.Span | None:
        if getattr(meta, "empty", True) and not hasattr(meta, "line"):
            return None
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def tspan(self, tok: Token) -> Span:
        return Span(self.source, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)

    def error(self, code: str, message: str, span: Span | None, help: str | None = None) -> None:
        line = source_line(self.text, span.line) if span else None
        self.errors.append(Diagnostic(code, message, span, help, line))

    def string(self, tok: Token) -> str:
        raw = str(tok)
        if _PLAIN_STRING.fullmatch(raw):  # no escapes, no control characters: what json.loads gives
            return raw[1:-1]
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            self.error(
                "invalid-string",
                f"invalid escape in string {raw}",
                self.tspan(tok),
                'allowed escapes: \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX',
            )
            return raw[1:-1]
        if _SURROGATE.search(value):
            self.error(
                "invalid-string",
                f"string {raw} holds a lone surrogate, which is not valid Unicode",
                self.tspan(tok),
                "write the character itself, or both halves of its `\\uXXXX` surrogate pair",
            )
            return raw[1:-1]
        return value

    def duration_token(self, tok: Token) -> A.Duration:
        raw = str(tok)
        if tok.type == "DURATION" and len(raw) - 1 > MAX_INTEGER_DIGITS:
            self.error("invalid-number", f"a duration of {len(raw) - 1} digits is too large (at most {MAX_INTEGER_DIGITS} digits)",
                       self.tspan(tok))
            return A.Duration(0, "s", self.tspan(tok))
        if tok.type == "DURATION":
            return A.Duration(int(raw[:-1]), raw[-1], self.tspan(tok))
        self.error(
            "invalid-duration",
            f"invalid duration `{raw}`",
            self.tspan(tok),
            "a duration is a whole number and one unit of s, m, h or d: `90s`, `15m`, `2h`, `1d`",
        )
        return A.Duration(0, "s", self.tspan(tok))

    # -- top level ---------------------------------------------------------------
    @v_args(meta=True)
    def start(self, meta, items):
        return list(items)

    @v_args(meta=True)
    def import_stmt(self, meta, children):
        return A.Import(self.string(children[0]), self.span(meta))

    @v_args(meta=True)
    def attenuate_stmt(self, meta, children):
        (name,) = children
        if str(name) != "delegation":
            self.error(
                "syntax-error",
                f"unknown attenuation `{name}`",
                self.tspan(name),
                "the only form is `attenuate delegation;`",
            )
        return A.Attenuate(str(name), self.span(meta))

    @v_args(meta=True)
    def entry(self, meta, children):
        key, value = children
        key = self.string(key) if isinstance(key, Token) and key.type == "STRING" else str(key)
        return A.Entry(key, value, self.span(meta))

    def _entries(self, children) -> tuple[A.Entry, ...]:
        return tuple(c for c in children if isinstance(c, A.Entry))

    @v_args(meta=True)
    def agent_decl(self, meta, children):
        return A.AgentDecl(self.string(children[0]), self._entries(children[1:]), self.span(meta))

    @v_args(meta=True)
    def tool_decl(self, meta, children):
        return A.ToolDecl(self.string(children[0]), self._entries(children[1:]), self.span(meta))

    # -- rules ---------------------------------------------------------------------
    @v_args(meta=True)
    def annotation(self, meta, children):
        name, *args = children
        return A.Annotation(str(name), tuple(self.string(a) for a in args if a is not None), self.span(meta))

    def permit(self, _):
        return A.PERMIT

    def forbid(self, _):
        return A.FORBID

    def require_approval(self, _):
        return A.APPROVAL

    @v_args(meta=True)
    def any_agent(self, meta, _):
        return A.AnyAgent(self.span(meta))

    @v_args(meta=True)
    def agent_ids(self, meta, children):
        return A.AgentIds(tuple(self.string(c) for c in children), self.span(meta))

    @v_args(meta=True)
    def agent_group(self, meta, children):
        return A.AgentGroup(tuple(self.string(c) for c in children), self.span(meta))

    def action(self, children):
        return str(children[0])

    def actions(self, children):
        return tuple(children)

    def targets(self, children):
        return tuple(self.string(c) for c in children)

    def resources(self, children):
        return ("resources", tuple(self.string(c) for c in children))

    def when_clause(self, children):
        return ("when", children[0])

    def unless_clause(self, children):
        return ("unless", children[0])

    def grant(self, children):
        return ("ttl", children[0])

    def because(self, children):
        return ("because", self.string(children[0]))

    @v_args(meta=True)
    def rule(self, meta, children):
        annotations = tuple(c for c in children if isinstance(c, A.Annotation))
        rest = [c for c in children if not isinstance(c, A.Annotation)]
        effect, subject, actions, targets, *clauses = rest
        parts = dict(c for c in clauses if c is not None)
        span = self.span(meta)
        ann_id = next((a for a in annotations if a.name == "id"), None)
        if ann_id is not None and len(ann_id.args) == 1:
            rule_id, explicit = ann_id.args[0], True
        else:
            rule_id, explicit = f"{self.base}:{span.line if span else 0}", False
        return A.Rule(
            id=rule_id,
            effect=effect,
            subject=subject,
            actions=actions,
            targets=targets,
            resources=parts.get("resources"),
            when=parts.get("when"),
            unless=parts.get("unless"),
            ttl=parts.get("ttl"),
            because=parts.get("because"),
            annotations=annotations,
            explicit_id=explicit,
            span=span,
        )

    @v_args(meta=True)
    def task_block(self, meta, children):
        intent = self.string(children[0])
        rules = tuple(
            A.Rule(
                **{f: getattr(r, f) for f in A.Rule.__dataclass_fields__ if f != "task_intent"},
                task_intent=intent,
            )
            for r in children[1:]
        )
        return A.TaskBlock(intent, rules, self.span(meta))

    # -- tests and invariants ----------------------------------------------------------
    def _effect_name(self, tok: Token) -> str:
        word = str(tok)
        if word not in A.EFFECTS:
            self.error(
                "unknown-effect",
                f"unknown effect `{word}`",
                self.tspan(tok),
                did_you_mean(word, A.EFFECTS) or "expected `allow`, `deny` or `approval_required`",
            )
        return word

    @v_args(meta=True)
    def request(self, meta, children):
        return children[0]

    @v_args(meta=True)
    def expect(self, meta, children):
        effect_tok, *by = children
        by_toks = [b for b in by if b is not None]
        by_ids = tuple(self.string(b) for b in by_toks) if by_toks else None
        return A.Expect(self._effect_name(effect_tok), by_ids, self.span(meta), tuple(self.tspan(b) for b in by_toks))

    @v_args(meta=True)
    def test_block(self, meta, children):
        name, request, expect = children
        return A.Test(self.string(name), request, expect, self.span(meta))

    @v_args(meta=True)
    def never(self, meta, children):
        effect_tok, subject, action, targets, *clauses = children
        parts = dict(c for c in clauses if c is not None)
        return (self._effect_name(effect_tok), subject, action, targets, parts, self.span(meta))

    @v_args(meta=True)
    def invariant_block(self, meta, children):
        name, (effect, subject, action, targets, parts, _span) = children
        return A.Invariant(
            self.string(name),
            effect,
            subject,
            action,
            targets,
            parts.get("resources"),
            parts.get("when"),
            parts.get("unless"),
            self.span(meta),
        )

    # -- expressions ----------------------------------------------------------------------
    @v_args(meta=True)
    def or_expr(self, meta, children):
        return A.Or(tuple(children), self.span(meta))

    @v_args(meta=True)
    def and_expr(self, meta, children):
        return A.And(tuple(children), self.span(meta))

    @v_args(meta=True)
    def not_(self, meta, children):
        return A.Not(children[0], self.span(meta))

    @v_args(meta=True)
    def compare(self, meta, children):
        left, op, right = children
        return A.Compare(str(op), left, right, self.span(meta))

    @v_args(meta=True)
    def in_(self, meta, children):
        return A.In(children[0], children[1], self.span(meta))

    @v_args(meta=True)
    def strtest(self, meta, children):
        left, op, right = children
        return A.StringTest(str(op), left, right, self.span(meta))

    @v_args(meta=True)
    def has(self, meta, children):
        path, name = children
        return A.Has(path, str(name), self.span(meta))

    @v_args(meta=True)
    def arith(self, meta, children):
        left, op, right = children
        return A.Arith(str(op), left, right, self.span(meta))

    def where(self, children):
        return ("where", children[0])

    @v_args(meta=True)
    def any_call(self, meta, children):
        return self._call("any", None, meta, children)

    @v_args(meta=True)
    def call(self, meta, children):
        name, *rest = children
        return self._call(str(name), self.tspan(name), meta, rest)

    def _call(self, name: str, name_span: Span | None, meta, children) -> A.Expr:
        """A quantifier (`any`, `all`, `count`) or a function (`keys`, `values`, `len`)."""
        span = self.span(meta)
        where = next((c[1] for c in children if c.__class__ is tuple), None)
        args = tuple(c for c in children if c is not None and c.__class__ is not tuple)
        if name in A.QUANTIFIERS:
            binding = args[0] if len(args) == 1 else None
            if not (isinstance(binding, A.In) and isinstance(binding.item, A.Path) and not binding.item.attrs):
                self.error(
                    "invalid-call",
                    f"`{name}` takes one binding: `{name}(x in LIST" + (")`" if name == "count" else " where COND)`"),
                    span,
                    f"e.g. `{name}(h in history" + (")`" if name == "count" else ' where h.tool == "email.send")`'),
                )
                return A.Literal(False, span)
            if where is None and name != "count":
                self.error(
                    "invalid-call",
                    f"`{name}` needs a condition: `{name}(x in LIST where COND)`",
                    span,
                    f'e.g. `{name}(h in history where h.tool == "email.send")`',
                )
            item = binding.item
            return A.Quantifier(name, item.root, binding.container, where, span, item.span)
        if name in A.FUNCTIONS:
            if len(args) != 1 or where is not None:
                self.error("invalid-call", f"`{name}` takes exactly one argument and no `where`", span, f"e.g. `{name}(args)`")
                return A.Literal(False, span)
            return A.Call(name, args, span)
        self.error(
            "unknown-function",
            f"unknown function `{name}`",
            name_span or span,
            did_you_mean(name, A.QUANTIFIERS + A.FUNCTIONS)
            or "functions: `any`, `all`, `count`, `keys`, `values`, `len`",
        )
        return A.Literal(False, span)

    @v_args(meta=True)
    def path(self, meta, children):
        return A.Path(str(children[0]), tuple(str(c) for c in children[1:]), self.span(meta))

    @v_args(meta=True)
    def list(self, meta, children):
        return A.ListExpr(tuple(c for c in children if c is not None), self.span(meta))

    @v_args(meta=True)
    def value_list(self, meta, children):
        return A.ListExpr(tuple(c for c in children if c is not None), self.span(meta))

    @v_args(meta=True)
    def object(self, meta, children):
        entries = self._entries(children)
        seen: dict[str, A.Entry] = {}
        for e in entries:
            if e.key in seen:
                self.error("duplicate-key", f"duplicate key `{e.key}`", e.span, "each key may appear once")
            seen[e.key] = e
        return A.ObjectValue(tuple((e.key, e.value) for e in entries), self.span(meta))

    # -- literals -------------------------------------------------------------------------
    @v_args(meta=True)
    def str_lit(self, meta, children):
        return A.Literal(self.string(children[0]), self.span(meta))

    @v_args(meta=True)
    def number(self, meta, children):
        raw = str(children[0])
        whole = raw.lstrip("-").split(".")[0]
        if len(whole) > MAX_INTEGER_DIGITS:
            self.error("invalid-number", f"a number of {len(whole)} digits is too large (at most {MAX_INTEGER_DIGITS} digits)",
                       self.span(meta))
            return A.Literal(0, self.span(meta))
        value: int | float = float(raw) if "." in raw else int(raw)
        return A.Literal(value, self.span(meta))

    @v_args(meta=True)
    def true(self, meta, _):
        return A.Literal(True, self.span(meta))

    @v_args(meta=True)
    def false(self, meta, _):
        return A.Literal(False, self.span(meta))

    @v_args(meta=True)
    def null(self, meta, _):
        return A.Literal(None, self.span(meta))

    def duration(self, children):
        return self.duration_token(children[0])


_WITH_META = tuple(name for name, value in vars(_Lower).items() if hasattr(value, "visit_wrapper"))
assert all(vars(_Lower)[name].visit_wrapper.__name__ == "_vargs_meta" for name in _WITH_META), "only @v_args(meta=True)"


def lower(parsed: ParseResult, text: str, source: str = "<string>", path: str | None = None) -> A.Module:
    """Turn a parse result into a :class:`~nhipl.ast.Module`, or raise PolicyError."""
    lowerer = _Lower(source, text)
    items = lowerer.transform(parsed.tree)
    if lowerer.errors:
        raise PolicyError(lowerer.errors)
    return A.Module(source, tuple(items), parsed.comments, path)
