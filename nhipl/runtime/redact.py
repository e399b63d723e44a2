"""Secret redaction for decision logs.

Two defences, both configurable:

- **keys**: a value under a key whose name looks sensitive (``password``, ``api_key``,
  ``Authorization``, ``client_secret``, ...) is replaced whole by ``[redacted]``, whatever
  it is. A key is normalised (lowercase, only letters and digits) and matched against
  *fragments* (``"secret"`` matches ``clientSecret`` and ``db_secret_name``) and
  *exact names* (``"pin"`` matches ``PIN`` but not ``spinner``).
- **patterns**: every string anywhere in the record is scanned for things that look like
  tokens or keys (private keys, JWTs, bearer and basic credentials, AWS, GitHub, Slack,
  Google and ``sk-``-style API keys, passwords in URLs and ``password=...`` text, and long
  mixed-case random-looking runs); each match is replaced by ``[redacted:<kind>]``.

Redaction errs on the side of hiding: ``max_tokens`` is hidden because it contains
``token``. Pass your own ``keys`` to change that. Hex-only strings (commit hashes,
checksums) are not treated as secrets; add a pattern if yours are.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Iterable

REDACTED = "[redacted]"

DEFAULT_KEY_FRAGMENTS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "cookie",
    "credential",
    "sessionid",
    "signature",
    "bearer",
    "jwt",
)
DEFAULT_EXACT_KEYS: tuple[str, ...] = ("pwd", "pass", "auth", "pin", "otp", "key", "cvv", "cvc", "ssn")


_WORDS = re.compile(r"[a-z]{4,}|[A-Z]{4,}")


def _random_looking(match: re.Match) -> bool:
    """A long run that mixes upper case, lower case and digits and is not mostly words.

    Random base64 has few runs of four or more letters of one case (about 14% of its
    characters on average); paths and identifiers are mostly such runs."""
    s = match.group(0)
    if not (any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)):
        return False
    wordy = sum(len(w) for w in _WORDS.findall(s))
    return wordy < 0.6 * len(s)


# (kind, pattern, group to keep before the secret or None, extra test or None)
_DEFAULT_PATTERN_SPECS: tuple[tuple[str, str, int, Callable[[re.Match], bool] | None], ...] = (
    ("private-key", r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)", 0, None),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", 0, None),
    ("credential", r"(\b(?i:bearer|basic|token|apikey)\s+)[A-Za-z0-9._~+/=-]{8,}", 1, None),
    ("url-credentials", r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@:]+:[^\s/@]+(?=@)", 1, None),
    (
        "secret",
        r"(\b(?i:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|private[_-]?key)"
        r"\"?\s*[=:]\s*)(?:\"[^\"]*\"|'[^']*'|[^\s&,;\"')\]}>]+)",
        1,
        None,
    ),
    ("aws-access-key", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}\b", 0, None),
    ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})", 0, None),
    ("slack-token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}", 0, None),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{30,}", 0, None),
    ("api-key", r"\b(?:sk|pk|rk)[-_][A-Za-z0-9_-]{16,}", 0, None),
    ("random", r"[A-Za-z0-9+/=_-]{32,}", 0, _random_looking),
)


class Pattern:
    """One secret pattern: matches are replaced by ``[redacted:<kind>]``; with ``keep`` > 0
    that group (a label such as ``Bearer `` or ``password=``) stays; ``test`` can veto a match."""

    __slots__ = ("kind", "regex", "keep", "test")

    def __init__(self, kind: str, regex: str | re.Pattern, keep: int = 0, test: Callable[[re.Match], bool] | None = None):
        self.kind = kind
        self.regex = re.compile(regex) if isinstance(regex, str) else regex
        self.keep = keep
        self.test = test

    def sub(self, text: str) -> str:
        marker = f"[redacted:{self.kind}]"
        keep, test = self.keep, self.test

        def replace(m: re.Match) -> str:
            if test is not None and not test(m):
                return m.group(0)
            return (m.group(keep) if keep else "") + marker

        return self.regex.sub(replace, text)


DEFAULT_PATTERNS: tuple[Pattern, ...] = tuple(Pattern(*spec) for spec in _DEFAULT_PATTERN_SPECS)


def _normalise_key(key: str) -> str:
    return "".join(c for c in key.lower() if c.isalnum())


class Redactor:
    """Makes a JSON-safe copy of a value with secrets removed (see the module docs).

    ``keys`` are key-name fragments, ``exact_keys`` whole key names (both compared after
    normalising); ``patterns`` are :class:`Pattern` objects or plain regular expressions
    (kind ``custom``). ``extra_*`` add to the defaults instead of replacing them. Strings
    longer than ``max_string`` characters are cut *after* redaction.
    """

    def __init__(
        self,
        keys: Iterable[str] = DEFAULT_KEY_FRAGMENTS,
        patterns: Iterable[Pattern | str | re.Pattern] = DEFAULT_PATTERNS,
        *,
        exact_keys: Iterable[str] = DEFAULT_EXACT_KEYS,
        extra_keys: Iterable[str] = (),
        extra_patterns: Iterable[Pattern | str | re.Pattern] = (),
        max_string: int = 4096,
        max_depth: int = 32,
    ):
        self.key_fragments = tuple(_normalise_key(k) for k in (*keys, *extra_keys))
        self.exact_keys = frozenset(_normalise_key(k) for k in exact_keys)
        self.patterns = tuple(
            p if isinstance(p, Pattern) else Pattern("custom", p) for p in (*patterns, *extra_patterns)
        )
        # One combined scan decides whether a string needs the (slower) per-pattern pass.
        self._any = self._combine(self.patterns)
        self.max_string = max_string
        self.max_depth = max_depth
        self._key_cache: dict[str, bool] = {}

    @staticmethod
    def _combine(patterns: tuple[Pattern, ...]) -> re.Pattern | None:
        plain = re.compile("").flags
        if not patterns or any(p.regex.flags != plain for p in patterns):
            return None
        try:
            return re.compile("|".join(f"(?:{p.regex.pattern})" for p in patterns))
        except re.error:  # e.g. a custom pattern with global inline flags: scan one by one
            return None

    def is_secret_key(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            norm = _normalise_key(key)
            hit = norm in self.exact_keys or any(f and f in norm for f in self.key_fragments)
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = hit
        return hit

    def text(self, s: str) -> str:
        """``s`` with every pattern match replaced, then cut to ``max_string``."""
        if self._any is None or self._any.search(s):
            for pattern in self.patterns:
                s = pattern.sub(s)
        if len(s) > self.max_string:
            s = s[: self.max_string] + f"...[cut {len(s) - self.max_string} chars]"
        return s

    def value(self, obj, depth: int = 0):
        """A JSON-safe, redacted copy of ``obj``."""
        cls = obj.__class__
        if cls is str:
            return self.text(obj)
        if obj is None or cls is bool or cls is int:
            return obj
        if cls is float:
            return obj if math.isfinite(obj) else str(obj)
        if depth >= self.max_depth:
            return "[cut: nested too deep]"
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                key = k if k.__class__ is str else str(k)
                if self.is_secret_key(key):
                    out[self.text(key)] = REDACTED
                else:
                    out[self.text(key)] = self.value(v, depth + 1)
            return out
        if isinstance(obj, (list, tuple, set, frozenset)):
            return [self.value(v, depth + 1) for v in obj]
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return f"[{len(obj)} bytes]"
        if isinstance(obj, str):  # subclasses, such as string enums
            return self.text(str.__str__(obj))
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return self.value(float(obj), depth)
        return self.text(repr(obj))


DEFAULT_REDACTOR = Redactor()
