"""`nhipl analyze` at scale: `diff` of two 1,000-rule policy sets that differ in one rule,
and `prove` of one invariant over 1,000 rules.

The policies are the seeded workload of ``benchmarks/workload.py`` (agents in groups,
100 tools in 10 services, permits by group, agent or any agent with task-intent and
delegation-depth conditions, a forbid on every tool for a quarantine group, an approval
gate). Two changes are diffed: a permit whose delegation-depth bound is loosened by one
(other permits already allow those requests with a shorter ttl, so the sets are in
fact equivalent: only an exact answer can say so), and the approval gate moved from
one tool to another (both a widening and a narrowing); a tool declaration added
(no rule reads it: equivalent, but a declaration change leaves every rule in the
question); the invariant is the workload's own forbid on deep
delegation into one service (it holds), and, to time a refutation too, the claim that
no agent is ever allowed a tool of that service (it does not).

Each figure is the wall time of the library call (encoding, solving and checking every
reported request with the evaluator), best of ``--passes``.

    .venv/bin/python benchmarks/analyze.py
    .venv/bin/python benchmarks/analyze.py --rules 200 --passes 1

Target (issue 20): each ≤ 10 s at 1,000 rules.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nhipl  # noqa: E402
from nhipl.analyze import diff, prove  # noqa: E402
from workload import generate, to_nhipl  # noqa: E402

TARGET_SECONDS = 10.0


def _changed(text: str) -> tuple[str, str]:
    """The text with one rule's `delegation.depth <= N` bound loosened to N + 1."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("permit") and "delegation.depth <= " in line:
            head, _, tail = line.partition("delegation.depth <= ")
            digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
            lines[i] = head + "delegation.depth <= " + str(int(digits) + 1) + tail[len(digits) :]
            return "\n".join(lines), lines[i]
    raise SystemExit("the workload has no depth-bounded permit to change")


def _best(passes: int, run) -> tuple[tuple[float, float], object]:
    """Best wall and CPU seconds over ``passes`` runs (CPU time shows what a loaded,
    shared machine hides), and the last result."""
    best, cpu, result = float("inf"), float("inf"), None
    for _ in range(passes):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = run()
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return (best, cpu), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()

    text = to_nhipl(generate(args.rules, 10))
    new_text, changed = _changed(text)
    old, new = nhipl.loads(text, source="old.nhipl"), nhipl.loads(new_text, source="new.nhipl")
    service = "svc000"
    proved_inv = f'invariant "no deep delegation into {service}" {{ never allow call "{service}.*" when delegation.depth >= 3 }}'
    refuted_inv = f'invariant "nothing reaches {service}" {{ never allow call "{service}.*" }}'
    policies = nhipl.loads(text + "\n" + proved_inv + "\n" + refuted_inv, source="bench_test.nhipl")
    (_, holds), (_, fails) = policies.invariants

    gate = 'forbid any agent to call "svc000.op001" unless approval.granted;'
    moved = nhipl.loads(text.replace(gate, gate.replace("op001", "op002")), source="moved.nhipl")
    if text.count(gate) != 1:
        raise SystemExit("the workload's approval gate is not where this benchmark expects it")

    # a declaration change: every rule may decide differently, so nothing is sliced away
    declared = nhipl.loads(text + '\ntool "svc003.op001" { sensitive: true }\n', source="declared.nhipl")

    rows = []
    for name, other in (
        ("diff, depth bound loosened", new),
        ("diff, approval gate moved", moved),
        ("diff, tool declaration added (all rules)", declared),
    ):
        seconds, result = _best(args.passes, lambda: diff(old, other, limit=5))
        answer = "equivalent" if result.equivalent else f"{len(result.differences)} kinds listed, widening={result.widening}, narrowing={result.narrowing}"
        rows.append((name, seconds, answer))
    seconds, result = _best(args.passes, lambda: diff(old, old))
    rows.append(("diff, identical sets", seconds, "equivalent" if result.equivalent else "DIFFERENT"))
    seconds, result = _best(args.passes, lambda: prove(policies, holds))
    rows.append(("prove, invariant that holds", seconds, "proved" if result.holds else "REFUTED"))
    seconds, result = _best(args.passes, lambda: prove(policies, fails))
    rows.append(("prove, invariant that fails", seconds, "refuted" if not result.holds else "PROVED"))

    print(f"{args.rules} rules, {len(old.agents)} agents; changed rule: {changed.strip()}")
    print()
    print("| question | best wall s | best CPU s | answer |")
    print("|---|---:|---:|---|")
    for name, (secs, cpu), answer in rows:
        print(f"| {name} | {secs:.2f} | {cpu:.2f} | {answer} |")
    print()
    slowest = max(s for _, (s, _), _ in rows)
    verdict = "met" if slowest <= TARGET_SECONDS else "MISSED"
    print(f"- {verdict}: slowest {slowest:.2f} s, target ≤ {TARGET_SECONDS:.0f} s each")


if __name__ == "__main__":
    main()
