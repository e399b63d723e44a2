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


def _word_start(match: re.Match) -> bool:
    start = match.start()
    return start == 0 or not match.string[start - 1].isalnum()


# (kind, pattern, group to keep before the secret, extra test, needles[, shortest match]):
# a string is scanned with a pattern only when it contains one of the needles (compared in
# lower case) and is long enough, which keeps the common case -- no secret -- cheap.
_DEFAULT_PATTERN_SPECS: tuple = (
    (
        "private-key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        0,
        None,
        ("private key",),
    ),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", 0, None, ("eyj",)),
    # One part of a JWT on its own (a header or payload split into its own field): base64url
    # of a JSON object starts with `eyJ`.
    ("jwt-part", r"\beyJ[A-Za-z0-9_-]{8,}={0,2}", 0, None, ("eyj",)),
    (
        "url-parameter",
        r"([?&#;](?i:access_token|refresh_token|id_token|token|key|api_key|apikey|auth|code|client_secret"
        r"|secret|password|passwd|sig|signature|x-amz-signature|x-amz-credential|x-goog-signature)=)[^&#\s\"']+",
        1,
        None,
        ("=",),
    ),
    (
        "env-secret",
        r"(\b[A-Za-z0-9_]*(?i:password|passwd|passphrase|secret|token|api_?key|access_?key|private_?key|credentials?"
        r"|auth|pwd)[A-Za-z0-9_]*\s*=\s*)(?:\"[^\"]*\"|'[^']*'|[^\s&,;\"'\[)\]}>][^\s&,;\"')\]}>]*)",
        1,
        None,
        ("pass", "pwd", "secret", "token", "key", "cred", "auth"),
    ),
    (
        "credential",
        r"(\b(?i:bearer|basic|token|apikey)\s+)[A-Za-z0-9._~+/=-]{8,}",
        1,
        None,
        ("bearer", "basic", "token", "apikey"),
    ),
    # `scheme://user:password@`, `scheme://:password@` (passwords may hold `/`), and a
    # token standing alone as the user name (`https://<token>@host`, 8 characters or more).
    (
        "url-credentials",
        r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^\s/@:?#]*:[^\s@]+|[^\s/@:?#]{8,})(?=@)",
        1,
        None,
        ("://",),
    ),
    (
        "secret",
        r"(\b(?i:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|private[_-]?key)"
        r"\"?\s*[=:]\s*)(?:\"[^\"]*\"|'[^']*'|[^\s&,;\"'\[)\]}>][^\s&,;\"')\]}>]*)",
        1,
        None,
        ("pass", "pwd", "secret", "token", "key"),
    ),
    (
        "aws-access-key",
        # A literal first letter lets the regex engine skip ahead fast; `_word_start`
        # stands in for the leading \b.
        r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|PKA|ROA|SCA)[A-Z0-9]{16}\b",
        0,
        _word_start,
        None,
        20,
    ),
    ("github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})", 0, None, ("gh",)),
    ("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}", 0, None, ("hf_",)),
    ("gitlab-token", r"\bgl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_-]{20,}", 0, None, ("gl",)),
    ("digitalocean-token", r"\bdo[por]_v1_[a-f0-9]{64}", 0, None, ("_v1_",)),
    ("shopify-token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", 0, None, ("shp",)),
    ("slack-token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}", 0, None, ("xox",)),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{30,}", 0, None, ("aiza",)),
    ("api-key", r"\b(?:sk|pk|rk)[-_][A-Za-z0-9_-]{16,}", 0, None, ("k-", "k_")),
    ("random", r"[A-Za-z0-9+/=_-]{32,}", 0, _random_looking, None, 32),
)


class Pattern:
    """One secret pattern: matches are replaced by ``[redacted:<kind>]``; with ``keep`` > 0
    that group (a label such as ``Bearer `` or ``password=``) stays; ``test`` can veto a
    match; ``needles`` (lower case), when given, skip strings that contain none of them, and
    strings shorter than ``min_length`` are skipped too."""

    __slots__ = ("kind", "regex", "keep", "test", "needles", "min_length")

    def __init__(
        self,
        kind: str,
        regex: str | re.Pattern,
        keep: int = 0,
        test: Callable[[re.Match], bool] | None = None,
        needles: Iterable[str] | None = None,
        min_length: int = 0,
    ):
        self.kind = kind
        self.regex = re.compile(regex) if isinstance(regex, str) else regex
        self.keep = keep
        self.test = test
        self.needles = frozenset(needles) if needles else None
        self.min_length = min_length

    def sub(self, text: str) -> str:
        if self.regex.search(text) is None:  # the common case: cheaper than sub
            return text
        return self.regex.sub(self._replace, text)

    def _replace(self, match: re.Match) -> str:
        if self.test is not None and not self.test(match):
            return match.group(0)
        return (match.group(self.keep) if self.keep else "") + f"[redacted:{self.kind}]"


# Name-value records: {"name": "Authorization", "value": "Bearer ..."} and the like.
_PAIR_NAMES = ("name", "key", "header", "Name", "Key", "Header")
_PAIR_VALUES = frozenset({"value", "values", "val"})

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
        self.max_string = max_string
        self.max_depth = max_depth
        self._key_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}
        self._needles = tuple(sorted({n for p in self.patterns for n in (p.needles or ())}))
        self._shortest = min((p.min_length for p in self.patterns), default=0)

    def is_secret_key(self, key: str) -> bool:
        hit = self._key_cache.get(key)
        if hit is None:
            norm = _normalise_key(key)
            hit = norm in self.exact_keys or any(f and f in norm for f in self.key_fragments)
            if len(self._key_cache) < 10_000:
                self._key_cache[key] = hit
        return hit

    def _named_secret(self, obj: dict) -> bool:
        """A name-value record whose name is a secret key (headers, env lists, form fields)."""
        if len(obj) > 4:
            return False
        for field in _PAIR_NAMES:
            name = obj.get(field)
            if name.__class__ is str and self.is_secret_key(name):
                return any(str(k).lower() in _PAIR_VALUES for k in obj)
        return False

    def text(self, s: str) -> str:
        """``s`` with every pattern match replaced, then cut to ``max_string``."""
        cache = self._text_cache
        hit = cache.get(s)
        if hit is not None:
            return hit
        out = s
        if len(s) >= self._shortest:
            lower = s.lower()
            present = {n for n in self._needles if n in lower}
            for pattern in self.patterns:
                if len(out) < pattern.min_length:
                    continue
                if pattern.needles is not None and present.isdisjoint(pattern.needles):
                    continue
                out = pattern.sub(out)
        if len(out) > self.max_string:
            out = out[: self.max_string] + f"...[cut {len(out) - self.max_string} chars]"
        if len(s) <= 256:  # names, ids and reasons repeat: remember them
            if len(cache) >= 8192:
                cache.clear()
            cache[s] = out
        return out

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
            if self._named_secret(obj):  # {"name": "Authorization", "value": "..."}
                return {self.text(str(k)): (REDACTED if str(k).lower() in _PAIR_VALUES else self.value(v, depth + 1)) for k, v in obj.items()}
            out = {}
            for k, v in obj.items():
                key = k if k.__class__ is str else str(k)
                if self.is_secret_key(key):
                    out[self.text(key)] = REDACTED
                else:
                    out[self.text(key)] = self.value(v, depth + 1)
            return out
        if isinstance(obj, (list, tuple)) and len(obj) == 2 and isinstance(obj[0], str) and self.is_secret_key(obj[0]):
            return [self.text(obj[0]), REDACTED]  # a header as a pair: ["Authorization", "..."]
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
