"""A forgiving lexer for the editor: tokens, the top-level items they form, and
the role a string plays where it stands (rule id, import, agent, tool, ...).

The parser stops at the first syntax error; an editor needs to know what the
text around the cursor is even then. This lexer never fails: any character it
does not know is an ``other`` token, and an unterminated string runs to the end
of its line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""(?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*"?)
      | (?P<duration>[0-9]+[smhd](?![A-Za-z0-9_.]))
      | (?P<number>[0-9]+(?:\.[0-9]+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>==|!=|<=|>=|[-+@(){}\[\];,.:<>])
      | (?P<space>\s+)
      | (?P<other>.)""",
    re.VERBOSE,
)

# Words that start a top-level item, or a rule inside a `task` block.
ITEM_STARTS = frozenset({"import", "attenuate", "agent", "tool", "permit", "forbid", "require", "task", "test", "invariant"})


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # comment | string | duration | number | name | punct | other
    text: str
    start: int  # offset in the text
    end: int

    @property
    def value(self) -> str:
        """A string token's value (unescaped); other tokens' text."""
        if self.kind != "string":
            return self.text
        if len(self.text) >= 2 and self.text.endswith('"'):
            try:
                return json.loads(self.text)
            except ValueError:
                return self.text[1:-1]
        return self.text[1:]


def tokenize(text: str, *, comments: bool = False) -> list[Token]:
    """The significant tokens of ``text`` (comments too when asked), in order."""
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "space" or (kind == "comment" and not comments):
            continue
        out.append(Token(kind, m.group(), m.start(), m.end()))
    return out


def item_bounds(text: str, tokens: list[Token] | None = None) -> list[tuple[int, int]]:
    """Offsets ``(start, end)`` of the top-level items of ``text``, found without
    parsing: an item ends at a `;` or a closing `}` outside every brace, and a
    line that begins, in its first column, with a word that starts an item
    begins a new one (so a missing `;` or `}` spoils one item, not the file)."""
    tokens = tokenize(text) if tokens is None else tokens
    bounds: list[tuple[int, int]] = []
    start: int | None = None
    depth = 0
    previous: Token | None = None
    for tok in tokens:
        at_column_one = tok.start == 0 or text[tok.start - 1] == "\n"
        annotated = start is not None and text[start] == "@" and previous is not None and previous.text == ")"
        if start is not None and at_column_one and (tok.text in ITEM_STARTS or tok.text == "@") and not annotated:
            bounds.append((start, tok.start))
            start, depth = None, 0
        if start is None:
            start = tok.start
        if tok.text == "{":
            depth += 1
        elif tok.text == "}":
            depth -= 1
            if depth <= 0:
                bounds.append((start, tok.end))
                start, depth = None, 0
        elif tok.text == ";" and depth == 0:
            bounds.append((start, tok.end))
            start = None
        previous = tok
    if start is not None:
        bounds.append((start, len(text)))
    return bounds


# ---- roles ------------------------------------------------------------------------------

RULE_ID_DEF = "rule-id"  # @id("...")
RULE_ID_REF = "rule-ref"  # expect ... by "...", import ... except "..."
IMPORT = "import"
AGENT_DECL = "agent-decl"
AGENT_REF = "agent"  # a rule's subject, a test request's principal
GROUP = "group"
TOOL_DECL = "tool-decl"
TOOL_REF = "tool"  # a rule's or invariant's target, a test request's tool
TEST = "test"
INVARIANT = "invariant"
TASK = "task"


def string_role(tokens: list[Token], i: int) -> str | None:
    """What the string token ``tokens[i]`` names, from the tokens before it."""
    j = i - 1
    # walk back over a list: "a", "b", "c"
    while j >= 1 and tokens[j].text == "," and tokens[j - 1].kind == "string":
        j -= 2
    prev = tokens[j] if j >= 0 else None
    before = tokens[j - 1] if j >= 1 else None
    if prev is None:
        return None
    word = prev.text
    if word == "(" and before is not None and before.text == "id" and j >= 2 and tokens[j - 2].text == "@":
        return RULE_ID_DEF
    if word in ("by", "except"):
        return RULE_ID_REF
    if word == "import":
        return IMPORT
    if word == "in" and before is not None and before.text == "agent":
        return GROUP
    if word == "agent":
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        at_item_start = before is None or before.text in (";", "}", "{")
        if at_item_start and nxt is not None and nxt.text == "{":
            return AGENT_DECL
        return AGENT_REF
    if word == "tool":
        return TOOL_DECL
    if word in ("test", "invariant", "task"):
        return {"test": TEST, "invariant": INVARIANT, "task": TASK}[word]
    if word == ":" and before is not None and before.kind == "name":
        if before.text == "principal":
            return AGENT_REF
        if before.text == "tool":
            return TOOL_REF
        return None
    # a target: ACTION "glob", after `to`/`for` ACTION (or a list of actions) or `never EFFECT ...`
    if prev.kind == "name":
        k = j - 1
        while k >= 1 and tokens[k].text == "," and tokens[k - 1].kind == "name":
            k -= 2
        if k >= 0 and tokens[k].text in ("to", "for"):
            return TOOL_REF
        if k >= 1 and tokens[k - 1].text == "never":
            return TOOL_REF
    return None


def token_at(tokens: list[Token], offset: int) -> int | None:
    """The index of the token under ``offset`` (or ending right at it)."""
    lo, hi = 0, len(tokens)
    while lo < hi:
        mid = (lo + hi) // 2
        if tokens[mid].end < offset:
            lo = mid + 1
        else:
            hi = mid
    for k in (lo, lo - 1):
        if 0 <= k < len(tokens) and tokens[k].start <= offset <= tokens[k].end:
            if tokens[k].start == offset and k > 0 and tokens[k - 1].end == offset and tokens[k].kind == "punct":
                return k - 1
            return k
    return None


def dotted_path(tokens: list[Token], i: int) -> tuple[int, int] | None:
    """The token range ``[a, b]`` of the path ``root.attr.attr`` through token ``i``."""
    if tokens[i].kind != "name" and tokens[i].text != ".":
        return None
    a = b = i
    while a >= 2 and tokens[a - 1].text == "." and tokens[a - 2].kind == "name" and tokens[a - 1].start == tokens[a - 2].end:
        a -= 2
    if tokens[a].text == ".":
        a -= 1
    while b + 2 < len(tokens) and tokens[b + 1].text == "." and tokens[b + 2].kind == "name":
        b += 2
    return (a, b) if tokens[a].kind == "name" else None
