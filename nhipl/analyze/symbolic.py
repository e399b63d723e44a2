"""Symbolic JSON values for the SMT encoding.

A :class:`Sym` stands for one JSON value the solver may choose: its kind (string,
number, boolean, null, list, object), its scalar contents, and for lists a length
and a bounded number of items. Values known in advance (literals, declared
attributes) are the same class with Python constants in ``kind``, so the
encoding can simplify them away.

Literals are handed to the solver character by character (``\\u{..}`` escapes),
never as text the solver would read escapes in: a policy string ``"\\u{41}"`` is
those six characters, not ``A``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import z3

STR, NUM, BOOL, NULL, LIST, OBJ, OTHER = range(7)
SCALAR_KINDS = (STR, NUM, BOOL, NULL)
# z3 strings hold characters up to this code point.
MAX_CHAR = 0x2FFFF

TRUE, FALSE = z3.BoolVal(True), z3.BoolVal(False)


class Unencodable(Exception):
    """A value the encoding cannot represent (for example a character beyond the solver's range)."""


@lru_cache(maxsize=65536)
def string_literal(text: str) -> z3.SeqRef:
    """``text`` as a z3 string, every character escaped so nothing is read as an escape."""
    out = []
    for ch in text:
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        elif ord(ch) > MAX_CHAR:
            raise Unencodable(f"the character U+{ord(ch):X} is beyond the solver's range")
        else:
            out.append("\\u{%x}" % ord(ch))
    return z3.StringVal("".join(out))


def glob_constraint(pattern: str, text: z3.SeqRef) -> z3.BoolRef:
    """``text`` matches the glob ``pattern``: ``*`` any run of characters, the rest literal."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return text == string_literal(pattern)
    if all(p == "" for p in parts):
        return TRUE
    if len(parts) == 2:
        prefix, suffix = parts
        conds = []
        if prefix:
            conds.append(z3.PrefixOf(string_literal(prefix), text))
        if suffix:
            conds.append(z3.SuffixOf(string_literal(suffix), text))
        if prefix and suffix:
            conds.append(z3.Length(text) >= len(prefix) + len(suffix))
        return z3.And(conds) if len(conds) > 1 else conds[0]
    pieces = []
    for i, part in enumerate(parts):
        if i:
            pieces.append(z3.Star(z3.AllChar(z3.ReSort(z3.StringSort()))))
        if part:
            pieces.append(z3.Re(string_literal(part)))
    regex = pieces[0] if len(pieces) == 1 else z3.Concat(*pieces)
    return z3.InRe(text, regex)


def globs_may_overlap(a: str, b: str) -> bool:
    """False only when no string matches both globs (a cheap, conservative test)."""
    pa, pb = a.split("*"), b.split("*")
    if len(pa) == 1 and len(pb) == 1:
        return a == b
    if len(pa) == 1:
        pa, pb, a, b = pb, pa, b, a
    if len(pb) == 1:  # b exact
        from ..values import glob_match

        return glob_match(a, b)
    pre_a, pre_b = pa[0], pb[0]
    suf_a, suf_b = pa[-1], pb[-1]
    if not (pre_a.startswith(pre_b) or pre_b.startswith(pre_a)):
        return False
    if not (suf_a.endswith(suf_b) or suf_b.endswith(suf_a)):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Sym:
    """A JSON value: ``kind`` is one of STR..OTHER (an int, or a z3 Int expression)."""

    present: object  # z3 Bool or Python bool
    kind: object
    s: object = None
    n: object = None
    b: object = None
    length: object = 0
    items: tuple = ()

    def is_kind(self, kind: int):
        if isinstance(self.kind, int):
            return TRUE if self.kind == kind else FALSE
        return self.kind == kind


MISSING = Sym(FALSE, NULL)


def const(value: object) -> Sym:
    """A Python JSON value as a constant symbolic value (objects as OBJ; their contents
    are reached through the node tree, not through the value)."""
    if value is None:
        return Sym(TRUE, NULL)
    if value is True or value is False:
        return Sym(TRUE, BOOL, b=z3.BoolVal(value))
    if isinstance(value, (int, float)):
        return Sym(TRUE, NUM, n=z3.RealVal(_exact(value)))
    if isinstance(value, str):
        return Sym(TRUE, STR, s=string_literal(value))
    if isinstance(value, (list, tuple)):
        return Sym(TRUE, LIST, length=len(value), items=tuple(item_of(const(v)) for v in value))
    if isinstance(value, dict):
        return Sym(TRUE, OBJ)
    raise Unencodable(f"not a JSON value: {type(value).__name__}")


def _exact(number: int | float) -> str:
    from fractions import Fraction

    if isinstance(number, float) and number != number or number in (float("inf"), float("-inf")):
        raise Unencodable("a number that is not finite")
    f = Fraction(number)
    return f"{f.numerator}/{f.denominator}"


def item_of(value: Sym) -> Sym:
    """``value`` as a list item: lists and objects inside lists become OTHER."""
    if isinstance(value.kind, int):
        kind = value.kind if value.kind in SCALAR_KINDS else OTHER
    else:
        kind = z3.If(z3.Or(value.kind == LIST, value.kind == OBJ), OTHER, value.kind)
    return Sym(TRUE, kind, value.s, value.n, value.b)


def boolean(value: z3.BoolRef) -> Sym:
    return Sym(TRUE, BOOL, b=value)


def _pick(cond, a, b, default):
    if a is None and b is None:
        return None
    if a is None:
        a = default
    if b is None:
        b = default
    if isinstance(a, z3.ExprRef) or isinstance(b, z3.ExprRef):
        if isinstance(a, z3.ExprRef) and isinstance(b, z3.ExprRef) and a.eq(b):
            return a
        return z3.If(cond, a, b)
    return a if a == b else z3.If(cond, a, b)


_DEFAULT_S = z3.StringVal("")
_DEFAULT_N = z3.RealVal(0)


def ite(cond: z3.BoolRef, a: Sym, b: Sym) -> Sym:
    """The value ``a`` where ``cond`` holds, else ``b``."""
    if z3.is_true(cond):
        return a
    if z3.is_false(cond):
        return b
    present = _pick(cond, _bool(a.present), _bool(b.present), FALSE)
    kind = _pick(cond, _int(a.kind), _int(b.kind), None)
    items = []
    for i in range(max(len(a.items), len(b.items))):
        ia = a.items[i] if i < len(a.items) else Sym(TRUE, NULL)
        ib = b.items[i] if i < len(b.items) else Sym(TRUE, NULL)
        items.append(ite(cond, ia, ib))
    return Sym(
        present,
        kind,
        _pick(cond, a.s, b.s, _DEFAULT_S),
        _pick(cond, a.n, b.n, _DEFAULT_N),
        _pick(cond, a.b, b.b, FALSE),
        _pick(cond, _int(a.length), _int(b.length), None),
        tuple(items),
    )


def _bool(x):
    return z3.BoolVal(x) if isinstance(x, bool) else x


def _int(x):
    return z3.IntVal(x) if isinstance(x, int) else x


def equal(a: Sym, b: Sym, notes: set | None = None) -> z3.BoolRef:
    """nhipl equality: same kind and same value (lists item by item)."""
    if isinstance(a.kind, int) and not isinstance(b.kind, int):
        a, b = b, a
    if isinstance(b.kind, int):  # b is known: one case only
        k = b.kind
        if isinstance(a.kind, int) and a.kind != k:
            return FALSE
        same = a.is_kind(k)
        return z3.And(same, _same_content(k, a, b, notes))
    cases = [z3.And(a.is_kind(k), b.is_kind(k), _same_content(k, a, b, notes)) for k in (STR, NUM, BOOL, NULL, LIST)]
    if notes is not None:
        notes.add("two objects compared with `==` are treated as different")
    return z3.Or(cases)


def _same_content(kind: int, a: Sym, b: Sym, notes) -> z3.BoolRef:
    if kind == STR:
        return a.s == b.s
    if kind == NUM:
        return a.n == b.n
    if kind == BOOL:
        return a.b == b.b
    if kind == NULL:
        return TRUE
    if kind == LIST:
        conds = [_int(a.length) == _int(b.length)]
        for i in range(min(len(a.items), len(b.items))):
            conds.append(z3.Implies(_int(a.length) > i, equal(a.items[i], b.items[i], notes)))
        return z3.And(conds)
    if notes is not None:
        notes.add("two objects compared with `==` are treated as different")
    return FALSE


def contains(container: Sym, item: Sym, notes: set | None = None) -> z3.BoolRef:
    """``item`` equals one of the list ``container``'s items."""
    return z3.Or([z3.And(_int(container.length) > i, equal(item, x, notes)) for i, x in enumerate(container.items)] or [FALSE])
