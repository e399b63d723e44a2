"""The policy linter: stable rule codes (``NHI001``...), each mapped to the
OWASP Agentic (2026), OWASP NHI (2025) and NIST AI RMF 1.0 items it guards.

>>> from nhipl.lint import lint_text
>>> [f.code for f in lint_text('permit agent "spiffe://acme.org/a" to call "search.web";')]
['NHI002']
"""

from .config import ConfigFinder, LintConfig, find_config, load_config, parse_config
from .linter import Finding, fails, lint_paths, lint_policies, lint_text
from .report import format_json, format_sarif, format_text, sarif_log
from .rules import RULES, LintRule

__all__ = [
    "RULES",
    "ConfigFinder",
    "Finding",
    "LintConfig",
    "LintRule",
    "fails",
    "find_config",
    "format_json",
    "format_sarif",
    "format_text",
    "lint_paths",
    "lint_policies",
    "lint_text",
    "load_config",
    "parse_config",
    "sarif_log",
]
