"""Lint output: text for people, JSON for scripts, SARIF 2.1.0 for code scanning."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import quote

from .. import __version__
from .linter import Finding
from .rules import RULES

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
DOCS = "docs/lint.md"
# GitHub code scanning ranks security findings by this score (0.1-10).
_SECURITY_SEVERITY = {"error": "8.0", "warning": "5.0", "note": "2.0"}
_SARIF_LEVEL = {"error": "error", "warning": "warning", "note": "note"}


def summary(findings: list[Finding]) -> dict:
    counts = {"error": 0, "warning": 0, "note": 0}
    for f in findings:
        counts[f.severity] += 1
    return {"findings": len(findings), **counts}


def format_text(findings: list[Finding]) -> str:
    if not findings:
        return "no findings"
    parts = [f.render() for f in findings]
    s = summary(findings)
    parts.append(f"{_count(s['findings'], 'finding')}: {_count(s['error'], 'error')}, "
                 f"{_count(s['warning'], 'warning')}, {_count(s['note'], 'note')}")
    return "\n".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def format_json(findings: list[Finding]) -> str:
    return json.dumps({"findings": [f.to_dict() for f in findings], "summary": summary(findings)}, indent=2)


def _uri(source: str) -> str:
    """A relative URI (forward slashes) for files under the current folder, else absolute."""
    path = Path(source)
    try:
        rel = Path(os.path.relpath(path.resolve(), Path.cwd().resolve()))
        if not str(rel).startswith(".."):
            return quote(rel.as_posix())
    except ValueError:  # another drive on Windows
        pass
    return path.resolve().as_uri()


def _rule_descriptor(code: str) -> dict:
    rule = RULES[code]
    anchor = code.lower()
    maps = ", ".join(f"`{m}`" for m in rule.maps)
    return {
        "id": code,
        "name": "".join(part.capitalize() for part in rule.name.split("-")),
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.description},
        "help": {
            "text": f"{rule.description}\nMaps to: {', '.join(rule.maps)}.\nSee {DOCS}#{anchor} for a bad and a good example.",
            "markdown": f"**{code} {rule.name}**: {rule.description}\n\nMaps to: {maps}.\n\nSee `{DOCS}` (section {code}) for a bad and a good example.",
        },
        "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        "properties": {
            "tags": ["security", "nhipl", *rule.maps],
            "precision": "high",
            "problem.severity": rule.severity if rule.severity != "note" else "recommendation",
            "security-severity": _SECURITY_SEVERITY[rule.severity],
        },
    }


def sarif_log(findings: list[Finding]) -> dict:
    codes = sorted(RULES)
    index = {code: i for i, code in enumerate(codes)}
    results = []
    for f in findings:
        result = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message + (f"\nhelp: {f.help}" if f.help else "")},
            "partialFingerprints": {
                "nhiplFinding/v1": hashlib.sha256(f"{f.code}|{f.rule_id}|{f.message}".encode()).hexdigest()[:32]
            },
        }
        if f.span is not None:
            region = {"startLine": f.span.line, "startColumn": f.span.column}
            if f.span.end_line >= f.span.line and f.span.end_line:
                region["endLine"] = f.span.end_line
                if f.span.end_column and (f.span.end_line > f.span.line or f.span.end_column > f.span.column):
                    region["endColumn"] = f.span.end_column
            result["locations"] = [
                {"physicalLocation": {"artifactLocation": {"uri": _uri(f.span.source)}, "region": region}}
            ]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "nhipl",
                        "semanticVersion": __version__,
                        "version": __version__,
                        "rules": [_rule_descriptor(code) for code in codes],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "invocations": [{"executionSuccessful": True}],
                "results": results,
            }
        ],
    }


def format_sarif(findings: list[Finding]) -> str:
    return json.dumps(sarif_log(findings), indent=2)
