"""Value semantics shared by both evaluators: type names, equality, globs.

Values are JSON values: strings, numbers (int or float, never bool), booleans,
null (None), lists and objects (dicts). ``==`` compares any two values;
values of different types are simply unequal (``1 == true`` is false).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import islice


class ListView:
    """A read-only list of the first ``stop`` items of a list that only grows, from
    ``start``: what a request's ``history`` can be without copying a task's steps for
    every step. Conditions read it as a list (``type_name`` says "list")."""

    __slots__ = ("items", "start", "stop")

    def __init__(self, items: list, stop: int | None = None, start: int = 0):
        self.items = items
        self.stop = len(items) if stop is None else stop
        self.start = start

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        if self.start == 0:
            return islice(self.items, self.stop)
        return map(self.items.__getitem__, range(self.start, self.stop))

    def __getitem__(self, i):
        if i.__class__ is slice:
            return [self.items[j] for j in range(self.start, self.stop)[i]]
        return self.items[range(self.start, self.stop)[i]]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is ListView or other.__class__ is list:
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))  # type: ignore[arg-type]
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ListView({list(self)!r})"


def is_list(value: object) -> bool:
    cls = value.__class__
    return cls is list or cls is ListView


def type_name(value: object) -> str:
    if value is None:
        return "null"
    cls = value.__class__
    if cls is bool:
        return "boolean"
    if cls is int or cls is float:
        return "number"
    if cls is str:
        return "string"
    if cls is list or cls is tuple or cls is ListView:
        return "list"
    if cls is dict:
        return "object"
    return "value"


def is_number(value: object) -> bool:
    cls = value.__class__
    return cls is int or cls is float


def equal(a: object, b: object) -> bool:
    """nhipl equality: same type and same value, recursively."""
    ta, tb = type_name(a), type_name(b)
    if ta != tb:
        return False
    if ta == "list":
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    if ta == "object":
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)  # type: ignore[union-attr,index]
    return a == b


class Glob:
    """``*`` matches any run of characters (including none); everything else is
    literal; case-sensitive, whole-string. No regular expressions involved."""

    __slots__ = ("pattern", "parts", "prefix", "suffix", "exact")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.parts = pattern.split("*")
        self.exact = len(self.parts) == 1
        self.prefix = self.parts[0]
        self.suffix = self.parts[-1]

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def match(self, text: str) -> bool:
        parts = self.parts
        if self.exact:
            return text == self.pattern
        prefix, suffix = self.prefix, self.suffix
        if len(text) < len(prefix) + len(suffix):
            return False
        if not text.startswith(prefix) or not text.endswith(suffix):
            return False
        pos = len(prefix)
        end = len(text) - len(suffix)
        for middle in parts[1:-1]:
            if not middle:
                continue
            found = text.find(middle, pos, end)
            if found < 0:
                return False
            pos = found + len(middle)
        return True


@lru_cache(maxsize=4096)
def glob(pattern: str) -> Glob:
    return Glob(pattern)


def glob_match(pattern: str, text: str) -> bool:
    return glob(pattern).match(text)


def a_type(value: object) -> str:
    """The type with its article, for messages: `a string`, `an object`, `null`."""
    name = type_name(value)
    if name == "null":
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name
