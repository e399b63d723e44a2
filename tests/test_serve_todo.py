"""The AuthZEN Todo interop: `nhipl serve` with examples/authzen-todo, replaying the decisions
every PDP in the interop must give (40 evaluations, 3 batches) over HTTP."""

from __future__ import annotations

import json

import pytest

from .realdata import ROOT, SHARED
from .test_serve_process import Server

DECISIONS = SHARED / "authzen" / "todo-decisions-1_0-02.json"
EXAMPLE = ROOT / "examples" / "authzen-todo"


@pytest.fixture(scope="module")
def cases():
    if not DECISIONS.is_file():
        pytest.skip(f"the AuthZEN Todo interop decisions are not beside the checkout ({DECISIONS})")
    return json.loads(DECISIONS.read_text())


def test_the_todo_interop_decisions_replay_over_http(cases):
    assert len(cases["evaluation"]) == 40 and len(cases["evaluations"]) == 3
    wrong = []
    with Server([EXAMPLE]) as server:
        conn = server.connection()
        for i, case in enumerate(cases["evaluation"]):
            status, _, out = server.post("/access/v1/evaluation", case["request"], conn=conn)
            assert status == 200, out
            if out["decision"] is not case["expected"]:
                wrong.append((f"evaluation {i}", case["request"], out))
        for i, case in enumerate(cases["evaluations"]):
            status, _, out = server.post("/access/v1/evaluations", case["request"], conn=conn)
            assert status == 200, out
            got = [{"decision": item["decision"]} for item in out["evaluations"]]
            if got != case["expected"]:
                wrong.append((f"evaluations {i}", case["request"], out))
        conn.close()
    assert not wrong, json.dumps(wrong, indent=1)
