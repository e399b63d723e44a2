"""Lint configuration: ``[tool.nhipl.lint]`` in ``pyproject.toml``, or ``[lint]`` in ``nhipl.toml``.

::

    [tool.nhipl.lint]                       # in nhipl.toml: [lint]
    select = ["NHI001", "NHI002"]          # default: every rule
    ignore = ["NHI006"]
    severity = { NHI002 = "error", NHI010 = "off" }
    max-ttl = "1h"                          # standing-privilege ceiling (or seconds)
    sensitive-tags = ["financial", "external-transfer", "privilege-change", "code-execution", "secrets"]
    fail-on = "warning"                     # lowest severity that makes `nhipl lint` exit 1

Every mistake is reported as ``pyproject.toml:line:col: message``.

Each policy file gets the configuration nearest to it, found as ruff finds its own: in the
file's folder, then each folder above, the first ``nhipl.toml`` (with or without a
``[lint]`` table), or else the first ``pyproject.toml`` that has a ``[tool.nhipl.lint]``
table; in one folder ``nhipl.toml`` wins. Settings are not merged across files: the nearest
file is the whole configuration. No file found: the defaults.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Union

from ..errors import Diagnostic, LocatedError, PolicyError, Span, did_you_mean
from ..tomltext import TomlLocator, parse_toml
from .rules import RULES, SEVERITIES

DEFAULT_MAX_TTL = 3600
DEFAULT_SENSITIVE_TAGS = ("financial", "external-transfer", "privilege-change", "code-execution", "secrets")
_KEYS = ("select", "ignore", "severity", "max-ttl", "sensitive-tags", "fail-on")
_DURATION = re.compile(r"([0-9]+)([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class LintConfig:
    enabled: frozenset[str] = frozenset(RULES)
    severity: dict[str, str] = field(default_factory=dict)  # overrides, code -> severity
    max_ttl: int = DEFAULT_MAX_TTL
    sensitive_tags: frozenset[str] = frozenset(DEFAULT_SENSITIVE_TAGS)
    fail_on: str = "warning"
    source: str | None = None  # the nhipl.toml or pyproject.toml it came from

    def severity_of(self, code: str) -> str:
        return self.severity.get(code, RULES[code].severity)

    def active(self, code: str) -> bool:
        return code in self.enabled and self.severity_of(code) != "off"


_PYPROJECT_SECTION = ("tool", "nhipl", "lint")
_NHIPL_TOML_SECTION = ("lint",)


def _section_path(path: str) -> tuple[str, ...]:
    """Where the settings sit in the file at ``path``: ``[lint]`` in an ``nhipl.toml``,
    ``[tool.nhipl.lint]`` in any other file (a ``pyproject.toml``)."""
    return _NHIPL_TOML_SECTION if os.path.basename(path) == "nhipl.toml" else _PYPROJECT_SECTION


def _has_lint_table(path: str) -> bool:
    """Whether the ``pyproject.toml`` at ``path`` has a ``tool.nhipl.lint`` entry (a broken
    file is an error, not a file without one)."""
    from ..loader import read_text  # the same file errors as policy files

    path = _shown(path)
    text = read_text(path)
    if "nhipl" not in text:
        return False
    try:
        data = parse_toml(text, path, code="lint-config")
    except LocatedError as err:
        raise PolicyError([err.diagnostic()]) from None
    tool = data.get("tool")
    nhipl = tool.get("nhipl") if isinstance(tool, dict) else None
    return nhipl is not None and (not isinstance(nhipl, dict) or "lint" in nhipl)


def _config_in(folder: str) -> str | None:
    """The configuration file in ``folder`` itself: its ``nhipl.toml``, or else its
    ``pyproject.toml`` when that has ``[tool.nhipl.lint]``."""
    candidate = os.path.join(folder, "nhipl.toml")
    if os.path.isfile(candidate):
        return candidate
    candidate = os.path.join(folder, "pyproject.toml")
    if os.path.isfile(candidate) and _has_lint_table(candidate):
        return candidate
    return None


def find_config(start: str) -> str | None:
    """The configuration file nearest to the folder ``start``: in it or a folder above, the
    first ``nhipl.toml``, or else the first ``pyproject.toml`` with ``[tool.nhipl.lint]``."""
    folder = os.path.abspath(start)
    while True:
        found = _config_in(folder)
        parent = os.path.dirname(folder)
        if found is not None or parent == folder:
            return found
        folder = parent


class _Errors:
    def __init__(self, path: str, text: str, section: tuple[str, ...] = _PYPROJECT_SECTION):
        self.path = path
        self.section = section
        self.locator = TomlLocator(text)
        self.diagnostics: list[Diagnostic] = []

    def where(self, key: str) -> Span:
        """The place that sets ``key`` (a setting, or a code in ``severity``), else the section header."""
        for path in (self.section + (key,), self.section + ("severity", key), (key,)):
            found = self.locator.entries.get(path)
            if found is not None:
                line, column, width = found
                return Span(self.path, line, column, line, column + width)
        header = self.locator.entries.get(self.section)
        return Span(self.path, header[0] if header else 1, 1)

    def add(self, key: str, message: str, help: str | None = None) -> None:
        span = self.where(key)
        self.diagnostics.append(Diagnostic("lint-config", message, span, help, self.locator.line_text(span.line)))


def _seconds(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m and int(m.group(1)) > 0:
            return int(m.group(1)) * _UNITS[m.group(2)]
    return None


def _codes(errors: _Errors, key: str, value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.add(key, f"`{key}` must be a list of rule codes")
        return []
    out = []
    for code in value:
        if code.upper() in RULES:
            out.append(code.upper())
        else:
            errors.add(key, f"unknown lint rule `{code}` in `{key}`", did_you_mean(code.upper(), RULES) or "codes: " + ", ".join(RULES))
    return out


def parse_config(text: str, path: str) -> LintConfig:
    """The ``[tool.nhipl.lint]`` section of a pyproject.toml's text, or the ``[lint]`` table of
    an ``nhipl.toml`` (``path`` names the file; defaults when the section is absent)."""
    try:
        data = parse_toml(text, path, code="lint-config")
    except LocatedError as err:
        raise PolicyError([err.diagnostic()]) from None
    if _section_path(path) == _NHIPL_TOML_SECTION:
        errors = _Errors(path, text, _NHIPL_TOML_SECTION)
        for key in data:
            if key != "lint":
                errors.add(key, f"unknown table `{key}` in `nhipl.toml`", did_you_mean(key, ("lint",)) or "settings go in `[lint]`")
        if errors.diagnostics:
            raise PolicyError(errors.diagnostics)
        section = data.get("lint")
        table_name = "lint"
    else:
        tool = data.get("tool", {})
        nhipl = tool.get("nhipl", {}) if isinstance(tool, dict) else {}
        section = nhipl.get("lint") if isinstance(nhipl, dict) else nhipl
        table_name = f"tool.nhipl{'.lint' * isinstance(nhipl, dict)}"
        errors = _Errors(path, text)
    if section is None:
        return LintConfig(source=path)
    if not isinstance(section, dict):
        errors.add("lint", f"`{table_name}` must be a table")
        raise PolicyError(errors.diagnostics)
    for key in section:
        if key not in _KEYS:
            errors.add(key, f"unknown lint setting `{key}`", did_you_mean(key, _KEYS) or "settings: " + ", ".join(_KEYS))
    enabled = set(RULES)
    if "select" in section:
        enabled = set(_codes(errors, "select", section["select"]))
    if "ignore" in section:
        enabled -= set(_codes(errors, "ignore", section["ignore"]))
    severity: dict[str, str] = {}
    raw = section.get("severity", {})
    if not isinstance(raw, dict):
        errors.add("severity", "`severity` must be a table of `CODE = \"error\"|\"warning\"|\"note\"|\"off\"`")
        raw = {}
    for code, level in raw.items():
        if code.upper() not in RULES:
            errors.add(code, f"unknown lint rule `{code}` in `severity`", did_you_mean(code.upper(), RULES))
        elif level not in SEVERITIES + ("off",):
            errors.add(code, f"severity of `{code}` must be `error`, `warning`, `note` or `off`, not `{level}`")
        else:
            severity[code.upper()] = level
    max_ttl = DEFAULT_MAX_TTL
    if "max-ttl" in section:
        seconds = _seconds(section["max-ttl"])
        if seconds is None:
            errors.add("max-ttl", "`max-ttl` must be a duration such as \"1h\" or a positive number of seconds")
        else:
            max_ttl = seconds
    tags = frozenset(DEFAULT_SENSITIVE_TAGS)
    if "sensitive-tags" in section:
        value = section["sensitive-tags"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.add("sensitive-tags", "`sensitive-tags` must be a list of strings")
        else:
            tags = frozenset(value)
    fail_on = section.get("fail-on", "warning")
    if fail_on not in SEVERITIES:
        errors.add("fail-on", "`fail-on` must be `error`, `warning` or `note`")
        fail_on = "warning"
    if errors.diagnostics:
        raise PolicyError(errors.diagnostics)
    return LintConfig(frozenset(enabled), severity, max_ttl, tags, fail_on, path)


def load_config(path: str | None = None, start: str = ".") -> LintConfig:
    """The configuration in ``path``, or in the file nearest to the folder ``start``
    (:func:`find_config`; defaults when there is none)."""
    if path is None:
        path = find_config(start)
        if path is None:
            return LintConfig()
        path = _shown(path)
    from ..loader import read_text  # the same file errors as policy files

    return parse_config(read_text(path), path)


class ConfigFinder:
    """Each policy file's configuration, from the file nearest to it (:func:`find_config`):
    called with a policy file's path, it gives that file's :class:`LintConfig`. Each folder,
    the folders above included, is looked at once, and each configuration file read once."""

    def __init__(self) -> None:
        self._by_folder: dict[str, LintConfig] = {}

    def __call__(self, source: str) -> LintConfig:
        return self._for_folder(os.path.dirname(os.path.abspath(source)))

    def _for_folder(self, folder: str) -> LintConfig:
        config = self._by_folder.get(folder)
        if config is None:
            found = _config_in(folder)
            parent = os.path.dirname(folder)
            if found is not None:
                config = load_config(_shown(found))
            else:
                config = LintConfig() if parent == folder else self._for_folder(parent)
            self._by_folder[folder] = config
        return config


def _shown(path: str) -> str:
    """``path`` as errors name it: relative to the current folder when it is inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


Configs = Union[LintConfig, Callable[[str], LintConfig]]
"""One configuration for every file, or a function from a policy file's path to its own."""
