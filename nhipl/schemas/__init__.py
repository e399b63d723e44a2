"""JSON Schemas (draft 2020-12) of nhipl's formats, shipped with the package.

``nhipl schema NAME`` prints one; :func:`schema` returns it as a dict. Each schema is
checked by the tests against what the code accepts or writes, so the two cannot drift.
"""

from __future__ import annotations

import json
from importlib import resources

NAMES = ("request", "decision", "trace-event", "report", "decision-log")


def schema(name: str) -> dict:
    """The schema called ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise KeyError(name)
    return json.loads(schema_text(name))


def schema_text(name: str) -> str:
    """The schema's JSON text as shipped."""
    if name not in NAMES:
        raise KeyError(name)
    return resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
