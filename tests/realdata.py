"""Where the tests find recorded agent runs.

``../shared/data`` (beside the checkout) holds the full public sets: 753 AgentDojo runs and 184
Who&When runs. ``tests/data/agentdojo`` holds 52 of the AgentDojo runs (banking user tasks 0–3,
slack user tasks 0–1; MIT, see its LICENSE), so the AgentDojo tests always have real runs to
read; where the full set is beside the checkout they run on it as well.
"""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"

AGENTDOJO_SUBSET = ROOT / "tests" / "data" / "agentdojo" / "gpt-4o-mini-2024-07-18"
AGENTDOJO_FULL = SHARED / "agentdojo" / "gpt-4o-mini-2024-07-18"
WHOWHEN = SHARED / "whowhen"


def agentdojo_sets() -> list:
    """The AgentDojo run folders present, as pytest params: the subset always, the full set when
    it is beside the checkout."""
    sets = [pytest.param(AGENTDOJO_SUBSET, id="subset")]
    if AGENTDOJO_FULL.is_dir():
        sets.append(pytest.param(AGENTDOJO_FULL, id="full"))
    return sets
