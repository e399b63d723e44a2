"""`--exact` on `nhipl lint` (NHI004/NHI006/NHI012) and `nhipl simulate` (blast radius)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("z3")

from .cli import run, write_policy  # noqa: E402

# A conditional forbid covers the permit on every request it could allow: the shape-based
# check cannot see it (the forbid has a condition); the solver can.
SHADOWED = """
@id("big-reads") permit any agent to call "db.read" when args.rows > 1000;
@id("cap-rows") forbid any agent to call "db.*" when args.rows > 500;
@id("reads") permit any agent to call "db.read";
"""


def test_lint_exact_finds_what_the_shape_checks_cannot(tmp_path):
    path = write_policy(tmp_path, SHADOWED)
    code, out, _ = run("lint", path)
    assert "[NHI004" not in out
    code, out, _ = run("lint", "--exact", path)
    assert "NHI004" in out and "`big-reads` never takes effect" in out and "(exact)" in out
    assert "exact: NHI004, NHI006 and NHI012 decided over every request by the SMT solver" in out
    code, out, _ = run("lint", "--exact", path, "--format", "json")
    report = json.loads(out)
    findings = report["findings"] if isinstance(report, dict) else report
    assert {"NHI004"} == {f["code"] for f in findings if f["rule"] == "big-reads" and f["code"] == "NHI004"}


def test_lint_exact_drops_a_shape_finding_the_solver_refutes(tmp_path):
    """An unconditional forbid on `*` for one agent looks like it shadows nothing, and a
    permit for another agent only: both checks agree nothing is shadowed; an approval gate
    that no permit reaches is dead to both."""
    path = write_policy(
        tmp_path,
        '@id("p") permit agent "spiffe://x/a" to call "t";\n'
        '@id("gate") require approval for any agent to call "u";\n',
    )
    _, heuristic, _ = run("lint", path)
    _, exact, _ = run("lint", "--exact", path)
    assert "NHI012" in heuristic and "NHI012" in exact and "`gate`" in exact


def test_lint_exact_keeps_suppressions(tmp_path):
    path = write_policy(tmp_path, SHADOWED.replace('@id("big-reads")', '# nhipl: ignore[NHI004]\n@id("big-reads")'))
    _, out, _ = run("lint", "--exact", path)
    assert "[NHI004" not in out


TRACE = [
    {"kind": "task_start", "t": 0, "task": "t1", "agent": "spiffe://x/ops", "intent": "billing"},
    {"kind": "tool_call", "t": 1, "task": "t1", "agent": "spiffe://x/ops", "tool": "ledger.read"},
    {"kind": "task_end", "t": 2, "task": "t1", "agent": "spiffe://x/ops"},
]

POLICY = """
tool "payments.*" { sensitive: true }
permit agent "spiffe://x/ops" to call "ledger.read";
permit agent "spiffe://x/ops" to call "payments.refund" when args has amount and args.amount < 50;
"""


def test_simulate_exact_blast_radius_sees_conditional_permits(tmp_path):
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(json.dumps(e) for e in TRACE) + "\n")
    policy = write_policy(tmp_path, POLICY)
    code, out, err = run("simulate", trace, "-p", policy, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["analyses"]["blast_radius"] == []  # the trace's requests carry no amount
    code, out, err = run("simulate", trace, "-p", policy, "--format", "json", "--exact")
    assert code == 0, err
    analyses = json.loads(out)["analyses"]
    (entry,) = analyses["blast_radius"]
    assert entry["identity"] == "spiffe://x/ops" and entry["tools"] == ["payments.refund"]
    assert analyses["blast_radius_exact"]
    code, out, _ = run("simulate", trace, "-p", policy, "--exact")
    assert "(exact: every request considered by the SMT solver" in out
