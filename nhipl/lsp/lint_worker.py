"""The linter in a process of its own, for large documents.

Linting a large policy set takes seconds of CPU. In the server's own process it
would slow every keystroke's analysis (one interpreter lock) and could not be
stopped when the text changes; here it runs on another core and is killed when
its text is stale. Reads ``{"path", "text"}`` as JSON on stdin, writes the
linter's problems as a JSON list on stdout.
"""

from __future__ import annotations

import json
import sys

from nhipl.errors import Span

from .analysis import Problem, lint_problems
from .incremental import DocumentAnalyser


def _span(data: dict) -> Span:
    return Span(data["source"], data["line"], data["column"], data["end_line"], data["end_column"])


def _span_dict(span: Span) -> dict:
    return {"source": span.source, "line": span.line, "column": span.column, "end_line": span.end_line, "end_column": span.end_column}


def problem_to_dict(p: Problem) -> dict:
    return {
        "code": p.code,
        "severity": p.severity,
        "message": p.message,
        "span": _span_dict(p.span),
        "help": p.help,
        "related": [[_span_dict(s), label] for s, label in p.related],
        "rule_id": p.rule_id,
    }


def problem_from_dict(data: dict) -> Problem:
    related = tuple((_span(s), label) for s, label in data["related"])
    return Problem(data["code"], data["severity"], data["message"], _span(data["span"]), data["help"], related, data["rule_id"], True)


def main() -> None:
    request = json.loads(sys.stdin.read())
    analysis = DocumentAnalyser(request["path"]).analyse(request["text"])
    json.dump([problem_to_dict(p) for p in lint_problems(analysis)], sys.stdout)


if __name__ == "__main__":
    main()
