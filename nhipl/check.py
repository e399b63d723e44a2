"""Name, id and declaration checks over loaded modules.

Collects every problem (never stops at the first) and reports each with a span,
a stable code and, where it helps, "did you mean".
"""

from __future__ import annotations

from . import ast as A
from .errors import Diagnostic, RequestError, Span, did_you_mean
from .parse import keywords
from .request import ROOTS, SCHEMA, parse_request

ANNOTATIONS = {"id": (1, 1), "maps": (1, None), "description": (1, 1)}
_SCALAR_ROOTS = {f.name: f"a {f.kind}" for f in SCHEMA if f.kind in ("string", "number", "list")}
_AGENT_KEYS = {"groups": "list of strings", "max_credential_ttl": "duration", "owner": "string"}
_TOOL_KEYS = {"sensitive": "boolean", "tags": "list of strings"}


class Checker:
    def __init__(self, lines: dict[str, list[str]]):
        self.lines = lines
        self.diagnostics: list[Diagnostic] = []

    def error(self, code: str, message: str, span: Span | None, help: str | None = None) -> None:
        line = None
        if span is not None:
            src = self.lines.get(span.source)
            if src and 0 < span.line <= len(src):
                line = src[span.line - 1]
        self.diagnostics.append(Diagnostic(code, message, span, help, line))

    # -- expressions ---------------------------------------------------------------------
    def expr(self, expr: A.Expr | None) -> None:
        if expr is None:
            return
        names = {n.name for n in A.iter_exprs(expr) if isinstance(n, A.Quantifier)}
        self.scoped(expr, frozenset(), names)

    def scoped(self, expr: A.Expr, bound: frozenset[str], names: set[str]) -> None:
        """Check ``expr`` with the quantifier names ``bound`` around it (``names``: every
        name any quantifier of the condition binds). Recursion is bounded by the parser's
        nesting limit."""
        stack: list[tuple[A.Expr, frozenset[str]]] = [(expr, bound)]
        while stack:
            node, bound = stack.pop()
            if isinstance(node, A.Quantifier):
                self.binding(node, bound)
                stack.append((node.source, bound))
                if node.where is not None:
                    stack.append((node.where, bound | {node.name}))
            elif isinstance(node, A.Path):
                if node.root in bound:
                    continue
                if node.root in names:
                    self.error(
                        "shadowed-name",
                        f"`{node.root}` is bound only inside its quantifier's `where`",
                        node.span,
                        f"read `{node.root}` inside the `where` of the quantifier that binds it",
                    )
                    continue
                self.path(node)
            elif isinstance(node, A.Has):
                stack.append((node.path, bound))
            else:
                for child in _children(node):
                    stack.append((child, bound))

    def binding(self, node: A.Quantifier, bound: frozenset[str]) -> None:
        name = node.name
        if name in ROOTS or name in keywords() or name in A.STRING_TESTS:
            what = "a request field" if name in ROOTS else "a keyword"
            self.error(
                "shadowed-name",
                f"`{name}` is {what}; a quantifier cannot bind it",
                node.name_span or node.span,
                "pick another name, such as `h`, `p` or `x`",
            )
        elif name in bound:
            self.error(
                "shadowed-name",
                f"`{name}` is already bound by an enclosing quantifier",
                node.name_span or node.span,
                "give the inner quantifier another name",
            )

    def path(self, node: A.Path) -> None:
        if node.root not in ROOTS:
            self.error(
                "unknown-path",
                f"unknown request path `{node.root}`",
                node.span,
                did_you_mean(node.root, sorted(ROOTS))
                or "paths start with one of: " + ", ".join(f"`{r}`" for r in sorted(ROOTS)),
            )
        elif node.root in _SCALAR_ROOTS and node.attrs:
            self.error(
                "unknown-path",
                f"`{node.root}` is {_SCALAR_ROOTS[node.root]}; it has no attribute `{node.attrs[0]}`",
                node.span,
            )

    # -- rules ---------------------------------------------------------------------------
    def rule(self, rule: A.Rule) -> None:
        ids = [a for a in rule.annotations if a.name == "id"]
        if len(ids) > 1:
            self.error("duplicate-annotation", "a rule has at most one `@id`", ids[1].span)
        for ann in rule.annotations:
            self.annotation(ann)
        if rule.ttl is not None and rule.effect != A.PERMIT:
            self.error(
                "misplaced-grant",
                "`grant ttl` applies only to `permit` rules",
                rule.ttl.span or rule.span,
                "remove `grant ttl`, or make the rule a `permit`",
            )
        if rule.ttl is not None and rule.ttl.seconds <= 0:
            self.error("invalid-duration", "`grant ttl` must be longer than zero", rule.ttl.span or rule.span)
        self.expr(rule.when)
        self.expr(rule.unless)

    def annotation(self, ann: A.Annotation) -> None:
        if ann.name not in ANNOTATIONS:
            self.error(
                "unknown-annotation",
                f"unknown annotation `@{ann.name}`",
                ann.span,
                did_you_mean(ann.name, ANNOTATIONS) or "known annotations: @id, @maps, @description",
            )
            return
        low, high = ANNOTATIONS[ann.name]
        if len(ann.args) < low or (high is not None and len(ann.args) > high):
            want = f"exactly {low}" if low == high else f"at least {low}"
            self.error("bad-annotation", f"`@{ann.name}` takes {want} string argument(s)", ann.span)
        elif ann.name == "id" and not ann.args[0]:
            self.error("bad-annotation", "a rule id must not be empty", ann.span)

    # -- declarations --------------------------------------------------------------------
    def entries(self, entries: tuple[A.Entry, ...], known: dict[str, str], reserved: str) -> None:
        seen: dict[str, A.Entry] = {}
        for entry in entries:
            if entry.key in seen:
                self.error("duplicate-key", f"duplicate attribute `{entry.key}`", entry.span)
            seen[entry.key] = entry
            if entry.key == reserved:
                self.error(
                    "reserved-attribute",
                    f"`{reserved}` is set by the request, not by a declaration",
                    entry.span,
                )
                continue
            expected = known.get(entry.key)
            if expected is None:
                continue
            value = entry.value
            ok = {
                "boolean": isinstance(value, A.Literal) and isinstance(value.value, bool),
                "string": isinstance(value, A.Literal) and isinstance(value.value, str),
                "duration": isinstance(value, A.Duration)
                or (isinstance(value, A.Literal) and type(value.value) in (int, float) and value.value >= 0),
                "list of strings": isinstance(value, A.ListExpr)
                and all(isinstance(v, A.Literal) and isinstance(v.value, str) for v in value.items),
            }[expected]
            if not ok:
                self.error("invalid-declaration", f"attribute `{entry.key}` must be a {expected}", entry.span)

    def agent(self, decl: A.AgentDecl) -> None:
        if not decl.id:
            self.error("invalid-declaration", "an agent id must not be empty", decl.span)
        elif "*" in decl.id:
            self.error(
                "invalid-declaration",
                f"agent declarations name one identity, not a pattern: `{decl.id}`",
                decl.span,
                "put shared attributes in a group and use `agent in \"group\"` in rules",
            )
        self.entries(decl.entries, _AGENT_KEYS, "id")

    def tool(self, decl: A.ToolDecl) -> None:
        if not decl.pattern:
            self.error("invalid-declaration", "a tool name must not be empty", decl.span)
        self.entries(decl.entries, _TOOL_KEYS, "name")

    # -- tests ---------------------------------------------------------------------------
    def test(self, test: A.Test, rule_ids: set[str]) -> None:
        try:
            parse_request(A.value_to_python(test.request))
        except RequestError as err:
            self.error("invalid-request", f"test `{test.name}`: {err.message}", request_field_span(test, err.field))
        if test.expect.by:
            for rid, span in zip(test.expect.by, test.expect.by_spans or (test.expect.span,) * len(test.expect.by)):
                if rid not in rule_ids:
                    self.error(
                        "unknown-rule",
                        f"unknown rule id `{rid}` in `by`",
                        span,
                        did_you_mean(rid, sorted(rule_ids)),
                    )

    def invariant(self, inv: A.Invariant) -> None:
        self.expr(inv.when)
        self.expr(inv.unless)


def _children(node: A.Expr) -> tuple[A.Expr, ...]:
    """The direct sub-expressions of ``node`` (a quantifier's are handled by the caller)."""
    if isinstance(node, (A.And, A.Or)):
        return node.operands
    if isinstance(node, A.Not):
        return (node.operand,)
    if isinstance(node, (A.Compare, A.StringTest, A.Arith)):
        return (node.left, node.right)
    if isinstance(node, A.In):
        return (node.item, node.container)
    if isinstance(node, A.ListExpr):
        return node.items
    if isinstance(node, A.Call):
        return node.args
    return ()


def check(modules: list[A.Module], lines: dict[str, list[str]]) -> list[Diagnostic]:
    """Every problem in ``modules`` taken together, in no particular order."""
    checker = Checker(lines)
    first: dict[str, A.Rule] = {}
    for module in modules:
        for rule in module.rules():
            checker.rule(rule)
            if rule.id in first:
                where = first[rule.id].span
                checker.error(
                    "duplicate-id",
                    f"duplicate rule id `{rule.id}`; first defined at {where}",
                    rule.span,
                    "give each rule its own `@id`",
                )
            else:
                first[rule.id] = rule
        for item in module.items:
            if isinstance(item, A.AgentDecl):
                checker.agent(item)
            elif isinstance(item, A.ToolDecl):
                checker.tool(item)
            elif isinstance(item, A.Invariant):
                checker.invariant(item)
    rule_ids = set(first)
    for module in modules:
        for item in module.items:
            if isinstance(item, A.Test):
                checker.test(item, rule_ids)
    return checker.diagnostics


def request_field_span(test: A.Test, field: str | None) -> Span | None:
    """Where a test's request writes ``field`` (dotted: `task.intent`): the value of the deepest
    entry found on that path, else the request itself."""
    span = test.request.span or test.span
    node: A.Value = test.request
    for key in (field or "").split(".") if field else ():
        if not isinstance(node, A.ObjectValue):
            break
        found = next((value for name, value in node.entries if name == key), None)
        if found is None:
            break
        node = found
        span = getattr(found, "span", None) or span
    return span
