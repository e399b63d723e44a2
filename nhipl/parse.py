"""Step one: convert source text to a concrete syntax tree (Lark, LALR).

With :mod:`nhipl.lower` this is the front end: the only code that sees Lark
objects. Every Lark exception is turned into a :class:`~nhipl.errors.PolicyError`
with a position, the offending line, a caret and a stable code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Tree

try:
    from lark import TextSlice
except ImportError:  # lark < 1.3: large files are parsed whole
    TextSlice = None
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from .ast import Comment
from .errors import Diagnostic, PolicyError, Span
from .source import lines as text_lines

# Nesting deeper than this (parentheses, `not`, lists, objects) is refused: later
# stages walk expressions recursively and must never hit Python's recursion limit.
MAX_NESTING = 100

_NAMED = {
    "STRING": "a string",
    "NAME": "a name",
    "NUMBER": "a number",
    "DURATION": "a duration",
    "BAD_DURATION": "a duration",
    "COMPARE": "a comparison",
    "STRTEST": "`matches`, `startswith`, `endswith` or `contains`",
    "$END": "the end of the file",
}


@dataclass(frozen=True, slots=True)
class ParseResult:
    tree: Tree
    comments: tuple[Comment, ...]


class _Positions:
    """Lark's ``propagate_positions``, reduced to what nhipl reads: the line and
    column of a node's start and end (plus the *container* ones that Lark keeps for
    inlined rules, so that an enclosing node spans their filtered tokens too).

    Same rule as Lark's: a node starts where its first positioned child's
    container starts and ends where its last one's ends; a node that already has
    a position (a ``?rule`` passing its one child up) keeps it and only widens
    its container. Lark's version also keeps character offsets, which nhipl never
    reads, through ``getattr`` with defaults on every node: about a third of the
    parse time of a large file. ``tests/test_parse_positions.py`` holds the two
    to identical positions."""

    __slots__ = ("node_builder",)

    def __init__(self, node_builder) -> None:
        self.node_builder = node_builder

    def __call__(self, children):
        res = self.node_builder(children)
        if res.__class__ is Tree:
            if len(children) == 1 and children[0] is res:
                return res  # a `?rule` passing its one child up: nothing to widen
            first = _positioned(children)
            if first is None:
                return res
            if first.__class__ is Token:
                line, column = first.line, first.column
            else:
                line, column = first.container_line, first.container_column
            meta = res.meta
            if meta.empty:
                meta.line, meta.column, meta.empty = line, column, False
            meta.container_line, meta.container_column = line, column
            last = _positioned(reversed(children))
            if last.__class__ is Token:
                line, column = last.end_line, last.end_column
            else:
                line, column = last.container_end_line, last.container_end_column
            if not hasattr(meta, "end_line"):
                meta.end_line, meta.end_column = line, column
            meta.container_end_line, meta.container_end_column = line, column
        return res


def _positioned(children):
    """The first child with a position: a token, or a subtree's meta."""
    for c in children:
        cls = c.__class__
        if cls is Token:
            return c
        if cls is Tree:
            m = c._meta
            if m is not None and not m.empty:
                return m
    return None


def _build_parser(positions: str = "nhipl") -> Lark:
    """The LALR parser. ``positions`` is ``"nhipl"`` (:class:`_Positions` around
    every rule callback) or ``"lark"`` (Lark's own ``propagate_positions``, used
    when the callbacks cannot be found and by the test that compares the two)."""
    options = dict(parser="lalr", maybe_placeholders=True, lexer_callbacks={"COMMENT": _Comments.collect})
    if positions == "nhipl":
        parser = Lark.open_from_package("nhipl.grammar", "nhipl.lark", propagate_positions=False, **options)
        # The LALR parser's rule -> callback table (a private attribute of Lark's,
        # stable from 1.2 to 1.3); without it, fall back to Lark's own positions.
        callbacks = getattr(getattr(getattr(parser.parser, "parser", None), "parser", None), "callbacks", None)
        if isinstance(callbacks, dict) and callbacks:
            for rule, callback in callbacks.items():
                callbacks[rule] = _Positions(callback)
            return parser
    return Lark.open_from_package("nhipl.grammar", "nhipl.lark", propagate_positions=True, **options)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return _build_parser()


class _Comments:
    """Lexer callback target. Lark calls callbacks with the token only, so the
    comments of the parse in progress are kept here (parsing is single-threaded
    per call; a lock guards the shared list)."""

    import threading

    lock = threading.Lock()
    current: list = []

    @classmethod
    def collect(cls, token: Token) -> Token:
        cls.current.append(Comment(str(token), token.line, token.column))
        return token


def _display(name: str, parser: Lark) -> str:
    if name in _NAMED:
        return _NAMED[name]
    for term in parser.terminals:
        if term.name == name:
            if isinstance(term.pattern, PatternStr):
                return f"`{term.pattern.value}`"
            if name.startswith("_"):
                return f"`{name[1:].lower()}`"
    return f"`{name.lstrip('_').lower()}`"


def _line(text: str, lineno: int) -> str:
    lines = text_lines(text)  # numbered as the parser numbers them: at \n only
    return lines[lineno - 1] if 0 < lineno <= len(lines) else ""


_COMMENT_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|#.*')


def _previous_token_end(text: str, pos: int) -> tuple[int, int] | None:
    """Line and column just after the last code character before ``pos``."""
    lines = text[:pos].split("\n")
    for i in range(len(lines) - 1, -1, -1):
        code = _COMMENT_RE.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", lines[i])
        stripped = code.rstrip()
        if stripped:
            return i + 1, len(stripped) + 1
    return None


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"`{token}`"


def _error_from_lark(err: UnexpectedInput, text: str, source: str, parser: Lark) -> Diagnostic:
    line = getattr(err, "line", None) or 1
    column = getattr(err, "column", None) or 1
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        message = f"unexpected character `{ch}`"
        hint = None
        if ch == "'":
            hint = 'strings use double quotes: "..."'
        elif ch == '"':
            message = "unterminated string"
            hint = "close the string on the same line with `\"`"
        span = Span(source, line, column, line, column + 1)
        return Diagnostic("syntax-error", message, span, hint, _line(text, line))
    if isinstance(err, UnexpectedToken):
        token = err.token
        accepted = set(err.expected)
        if err.interactive_parser is not None:
            # LALR states are shared, so `err.expected` can list tokens that would
            # fail a step later; ask the parser which tokens it truly accepts here.
            try:
                accepted = set(err.interactive_parser.accepts()) or accepted
            except UnexpectedInput:
                pass
        err.expected = accepted
        expected = sorted({_display(n, parser) for n in accepted if n != "COMMENT"})
        if token.type == "$END":
            end = _previous_token_end(text, len(text)) or (1, 1)
            line, column = end
        if "SEMICOLON" in err.expected:
            prev = _previous_token_end(text, len(text) if token.type == "$END" else token.start_pos)
            if prev is not None and (token.type == "$END" or prev[0] < token.line):
                line, column = prev
                span = Span(source, line, column, line, column + 1)
                return Diagnostic(
                    "syntax-error",
                    "expected `;` at the end of the statement",
                    span,
                    "end every rule and statement with `;`",
                    _line(text, line),
                )
        shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
        message = f"unexpected {_describe_token(token)}, expected {shown}"
        if len(expected) == 1:
            message = f"unexpected {_describe_token(token)}, expected {expected[0]}"
        hint = _hint_for(token, err.expected) or _hint_for_actions(token, err.expected, text)
        end_col = column + max(1, len(str(token))) if token.type != "$END" else column + 1
        return Diagnostic("syntax-error", message, Span(source, line, column, line, end_col), hint, _line(text, line))
    if isinstance(err, UnexpectedEOF):
        end = _previous_token_end(text, len(text)) or (1, 1)
        return Diagnostic(
            "syntax-error", "unexpected end of file", Span(source, *end, end[0], end[1] + 1), None, _line(text, end[0])
        )
    return Diagnostic("syntax-error", str(err).splitlines()[0].lower(), Span(source, line, column), None, _line(text, line))


_EFFECT_WORDS = {"allow": "permit", "deny": "forbid", "approve": "require approval for"}


def _hint_for(token: Token, expected: set[str]) -> str | None:
    word = str(token)
    if token.type == "NAME" and word in _EFFECT_WORDS and "_PERMIT" in expected:
        return f"rules start with `permit`, `forbid` or `require approval for`; did you mean `{_EFFECT_WORDS[word]}`?"
    if "_TO" in expected and word == ",":
        return 'a rule has one subject: `any agent`, `agent "id", "id"` or `agent in "g", "h"`'
    if token.type == "_AGENT" and expected == {"STRING"}:
        return 'a rule has one subject: `agent "id", "id"` or `agent in "g", "h"`'
    if "_TO" in expected and token.type == "NAME":
        return "a rule reads `EFFECT SUBJECT to ACTION \"target\"`, e.g. `permit any agent to call \"x.read\";`"
    if token.type == "STRING" and "NAME" in expected and "_TO" not in expected:
        return "attribute names are bare words: `args.to`, not `args.\"to\"`"
    return None


_ACTION_WORDS = frozenset({"call", "delegate", "issue_credential"})
_AFTER_ACTION = re.compile(r"\bto\s+[A-Za-z_][A-Za-z0-9_]*\s*(\"(?:[^\"\\]|\\.)*\"\s*,\s*)*$")


def _hint_for_actions(token: Token, expected: set[str], text: str) -> str | None:
    """`to call "*", delegate "*"`: several actions come before the targets they share."""
    word = str(token)
    if expected != {"STRING"} or word not in _ACTION_WORDS:
        return None
    start = token.start_pos or 0
    statement = text[text.rfind(";", 0, start) + 1 : start]
    if not _AFTER_ACTION.search(statement):
        return None
    return "list the actions before the targets they share, e.g. `to call, delegate \"*\"`; " \
           "for other targets per action, write one rule per action"


def _check_nesting(tree: Tree, text: str, source: str) -> None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            meta = node.meta
            line = getattr(meta, "line", 1)
            col = getattr(meta, "column", 1)
            raise PolicyError(
                [
                    Diagnostic(
                        "nesting-too-deep",
                        f"expression nested more than {MAX_NESTING} levels deep",
                        Span(source, line, col, line, col + 1),
                        "split the condition into simpler parts",
                        _line(text, line),
                    )
                ]
            )
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1))


def parse(text: str, source: str = "<string>") -> ParseResult:
    """Parse ``text`` into a Lark tree plus its comments, or raise PolicyError."""
    if "\x00" in text:
        pos = text.index("\x00")
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        raise PolicyError(
            [
                Diagnostic(
                    "not-text",
                    "file contains a NUL byte; is it a binary file?",
                    Span(source, line, col),
                    None,
                    _line(text, line).replace("\x00", "\u2400"),
                )
            ]
        )
    parser = _parser()
    with _Comments.lock:
        _Comments.current = []
        try:
            tree = parser.parse(text)
        except UnexpectedInput as err:
            raise PolicyError([_error_from_lark(err, text, source, parser)]) from None
        finally:
            comments = tuple(_Comments.current)
            _Comments.current = []
    _check_nesting(tree, text, source)
    return ParseResult(tree, comments)


# Large files are parsed a group of top-level items at a time, so that only one
# group's parse tree is alive at once (the tree is several times the size of the
# AST it lowers to). A group ends after a `;` or a `}` outside every brace,
# string and comment: in a file that parses, that is always the end of an item;
# any file that does not parse is parsed whole again, for the same error.
CHUNK_CHARS = 64 * 1024
_ITEM_SCAN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[{};]')


def _chunk_bounds(text: str, size: int) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    start = depth = 0
    for m in _ITEM_SCAN.finditer(text):
        c = text[m.start()]
        if c == "{":
            depth += 1
            continue
        if c == "}":
            depth -= 1
            if depth < 0:
                return [(0, len(text))]
        elif c != ";":
            continue
        end = m.end()
        if depth == 0 and end - start >= size:
            bounds.append((start, end))
            start = end
    if start < len(text):
        bounds.append((start, len(text)))
    return bounds


def parse_chunks(text: str, source: str = "<string>", size: int = CHUNK_CHARS):
    """Like :func:`parse`, as a sequence of parse results for consecutive groups
    of top-level items (one result for a small file). Positions are those of the
    whole text; a file that does not parse raises what :func:`parse` raises."""
    bounds = _chunk_bounds(text, size) if len(text) > size and TextSlice is not None else []
    if len(bounds) <= 1:
        yield parse(text, source)
        return
    if "\x00" in text:
        parse(text, source)  # raises the NUL-byte error
    parser = _parser()
    for start, end in bounds:
        with _Comments.lock:
            _Comments.current = []
            try:
                tree = parser.parse(TextSlice(text, start, end))
            except UnexpectedInput:
                tree = None
            finally:
                comments = tuple(_Comments.current)
                _Comments.current = []
        if tree is not None:
            try:
                _check_nesting(tree, text, source)
            except PolicyError:
                tree = None
        if tree is None:
            parse(text, source)  # raises the error that the whole text gives
            raise AssertionError("unreachable: a group of items that does not parse alone makes a file that does not parse")
        yield ParseResult(tree, comments)


def source_line(text: str, lineno: int) -> str:
    return _line(text, lineno)


@lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """The language's keywords (whole words the lexer reads as keywords), from the grammar."""
    words = set()
    for term in _parser().terminals:
        pattern = getattr(term.pattern, "value", "")
        m = re.fullmatch(r"([a-z_]+)\(\?!\[A-Za-z0-9_\]\)", pattern)
        if term.name.startswith("_") and m:
            words.add(m.group(1))
    return frozenset(words)
