"""Evaluator benchmark: load time, memory and decision latency by policy-set size.

For each size (rules), it generates the workload of ``benchmarks/workload.py``,
loads it with ``nhipl.loads`` (timed; at the end once more under ``tracemalloc``
for the peak and retained Python memory), and measures

* ``evaluate``: every request timed on its own (``perf_counter_ns``, garbage
  collector off), median and p99 in µs over all passes;
* ``evaluate_many``: the whole request list in one call, decisions per second
  (best pass);
* the reference interpreter (``nhipl.interpret``) on a sample, for scale;
* the first pass: right after loading, every request timed once more on its
  own. It fills the evaluator's caches (per (action, tool) and per (action,
  tool, principal)), so it is reported apart and left out of the medians,
  which measure the steady state.

The sizes are loaded first and then timed in turn within every pass (interleaved),
so a slow spell on a shared machine falls on all sizes alike and the ratio of the
largest to the smallest size is not skewed by when each size happened to run.

Every compiled decision is checked against the reference interpreter on a sample
of the requests (effect, rules, ttl, erroring rules) before anything is timed.

    .venv/bin/python benchmarks/evaluate.py                     # 10 .. 10,000 rules
    .venv/bin/python benchmarks/evaluate.py --sizes 10,1000 --requests 2000
    .venv/bin/python benchmarks/evaluate.py --json results.json

    .venv/bin/python benchmarks/evaluate.py --history           # quantifiers over a task's history

Targets (issues 2 and 7): median ≤ 5 µs at every size, 10,000-rule median within
1.5× of the 10-rule one, ``evaluate_many`` ≥ 200,000 decisions/s, 10,000 rules
loaded in ≤ 2 s and ≤ 50 MB.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nhipl  # noqa: E402
from nhipl.interpret import evaluate as reference  # noqa: E402
from workload import generate, to_nhipl  # noqa: E402


def _key(decision) -> tuple:
    return (
        decision.effect,
        frozenset(decision.rules),
        decision.credential_ttl,
        frozenset(e.rule for e in decision.errors),
    )


def cross_check(policies, requests: list[dict], sample: int) -> int:
    step = max(1, len(requests) // sample)
    checked = 0
    for request in requests[::step]:
        fast, slow = policies.evaluate(request), reference(policies, request)
        if _key(fast) != _key(slow):
            raise SystemExit(f"compiled and reference evaluators disagree on {request}:\n  {fast}\n  {slow}")
        checked += 1
    return checked


def time_each(evaluate, requests: list[dict], passes: int) -> list[float]:
    """Latency of every call, in µs. Raw nanoseconds go into a preallocated
    array, so the timing loop allocates nothing of its own."""
    clock = time.perf_counter_ns
    ns = array("q", bytes(8 * len(requests) * passes))
    i = 0
    for _ in range(passes):
        gc.disable()
        try:
            for request in requests:
                start = clock()
                evaluate(request)
                ns[i] = clock() - start
                i += 1
        finally:
            gc.enable()
    return [t / 1000 for t in ns]


def prepare(n_rules: int, n_requests: int, seed: int) -> dict:
    """Generate and load one size (load timed), cross-check it against the reference."""
    wl = generate(n_rules, n_requests, seed)
    text = to_nhipl(wl)
    requests = wl.requests
    gc.collect()
    start = time.perf_counter()
    policies = nhipl.loads(text, source="bench.nhipl")
    policies.compiled  # noqa: B018 - build the indexes too
    load_s = time.perf_counter() - start
    # The first pass fills the evaluator's caches; timed, but not in the medians.
    first = statistics.median(time_each(policies.evaluate, requests, 1))
    checked = cross_check(policies, requests, sample=500)
    allowed = sum(policies.evaluate(r).effect == "allow" for r in requests) / len(requests)
    return {"n": n_rules, "text": text, "requests": requests, "policies": policies, "load_s": load_s, "first_us": first,
            "checked": checked, "allowed": allowed, "samples": [], "pass_medians": [], "many": []}  # fmt: skip


def time_interleaved(sizes: list[dict], passes: int) -> None:
    """Every pass times each size in turn, so that a slow spell on this shared
    machine lands on all sizes alike instead of on whichever ran then."""
    for _ in range(passes):
        for size in sizes:
            samples = time_each(size["policies"].evaluate, size["requests"], 1)
            size["samples"] += samples
            size["pass_medians"].append(statistics.median(samples))
        for size in sizes:
            requests = size["requests"]
            gc.disable()
            try:
                start = time.perf_counter()
                size["policies"].evaluate_many(requests)
                elapsed = time.perf_counter() - start
            finally:
                gc.enable()
            size["many"].append(len(requests) / elapsed)


def summarise(size: dict) -> dict:
    policies, requests, n_rules = size["policies"], size["requests"], size["n"]
    samples = sorted(size["samples"])
    sample = requests[: max(50, min(500, 50_000 // max(n_rules, 1)))]
    ref = time_each(lambda r: reference(policies, r), sample, 1)
    rules = len(policies.rules)
    # memory: a second load under tracemalloc (it slows allocation, so not timed)
    del policies, size["policies"]
    gc.collect()
    tracemalloc.start()
    again = nhipl.loads(size["text"], source="bench.nhipl")
    again.compiled  # noqa: B018
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del again
    return {
        "rules": rules,
        "requests": len(requests),
        "allowed": size["allowed"],
        "load_s": size["load_s"],
        "peak_mb": peak / 1e6,
        "retained_mb": retained / 1e6,
        "median_us": statistics.median(samples),
        "first_pass_median_us": size["first_us"],
        "pass_medians_us": size["pass_medians"],
        "p99_us": samples[int(len(samples) * 0.99)],
        "many_per_s": max(size["many"]),
        "reference_median_us": statistics.median(ref),
        "checked": size["checked"],
    }


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def report(rows: list[dict]) -> str:
    out = [
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"nhipl {getattr(nhipl, '__version__', '?')}",
        "",
        "| rules | load s | peak MB | retained MB | evaluate median µs | pass medians µs | p99 µs"
        " | first-pass median µs | evaluate_many decisions/s | reference median µs | allowed | checked vs reference |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['rules']:,} | {r['load_s']:.3f} | {r['peak_mb']:.1f} | {r['retained_mb']:.1f} "
            f"| **{r['median_us']:.2f}** | {min(r['pass_medians_us']):.2f}–{max(r['pass_medians_us']):.2f} "
            f"| {r['p99_us']:.2f} | {r['first_pass_median_us']:.2f} | {r['many_per_s']:,.0f} "
            f"| {_fmt(r['reference_median_us'])} | {r['allowed']:.0%} | {r['checked']} |"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        out += [
            "",
            f"median at {last['rules']:,} rules / at {first['rules']:,} rules: "
            f"{last['median_us'] / first['median_us']:.2f}×",
        ]
    targets = [
        ("median ≤ 5 µs at every size", all(r["median_us"] <= 5 for r in rows)),
        ("largest/smallest median ≤ 1.5×", rows[-1]["median_us"] <= 1.5 * rows[0]["median_us"]),
        ("evaluate_many ≥ 200,000/s at every size", all(r["many_per_s"] >= 200_000 for r in rows)),
        ("load ≤ 2 s and peak ≤ 50 MB at every size", all(r["load_s"] <= 2 and r["peak_mb"] <= 50 for r in rows)),
    ]
    out.append("")
    out += [f"- {'met' if ok else 'MISSED'}: {name}" for name, ok in targets]
    return "\n".join(out)


# ---- the history workload: quantifiers over a task's earlier steps ----------------------------

HISTORY_POLICY = """
@id("work") permit any agent to call "email.send", "web.get", "files.read" grant ttl 5m;
@id("nothing-leaves") forbid any agent to call "email.send"
    when any(h in history where h.tool matches "vault.*" and h.effect == "allow");
@id("mail-rate") require approval for any agent to call "web.get"
    when count(h in history where h.tool == "email.send" and h.t >= now - 1h) >= 5;
"""

# (label, tool of the step decided, steps of history, target median µs)
HISTORY_CASES = (("`any` over 100 steps", "email.send", 100, 10.0), ("`count` over 1,000 steps", "web.get", 1000, 100.0))


def history_steps(n: int, seed: int) -> list[dict]:
    """``n`` earlier steps of one task, none of which reads a secret or sends mail, so that
    `any` and `count` read every one of them (their worst case)."""
    rng = random.Random(seed)
    tools = ("web.get", "files.read", "search.query", "calendar.read")
    return [
        {"t": 1000 + i, "agent": DOMAIN_AGENT, "action": "call", "tool": rng.choice(tools), "args": {"q": f"x{i}"}, "effect": "allow"}
        for i in range(n)
    ]


DOMAIN_AGENT = "spiffe://bench.example/agents/worker"


def history_benchmark(passes: int, seed: int) -> list[dict]:
    """Median µs per decision for each history case: the request is validated once (as the
    simulator hands the evaluator a view of the task's steps), then decided repeatedly."""
    from nhipl.request import parse_request

    policies = nhipl.loads(HISTORY_POLICY, source="history.nhipl")
    rows = []
    for label, tool, n, target in HISTORY_CASES:
        request = {"principal": DOMAIN_AGENT, "tool": tool, "now": 1000 + n, "history": nhipl.ListView(history_steps(n, seed))}
        fast, slow = policies.evaluate(request), reference(policies, request)
        if _key(fast) != _key(slow):
            raise SystemExit(f"compiled and reference evaluators disagree on the history case {label}")
        parsed = parse_request(request)
        repeats = max(200, 200_000 // n)
        medians = [statistics.median(time_each(policies.evaluate, [parsed] * repeats, 1)) for _ in range(passes)]
        rows.append({"case": label, "steps": n, "effect": fast.effect, "median_us": min(medians), "pass_medians_us": medians,
                     "target_us": target})
    return rows


def history_report(rows: list[dict]) -> str:
    out = ["| history case | effect | median µs (best pass) | pass medians µs | target |", "|---|---|---:|---:|---|"]
    for r in rows:
        met = "met" if r["median_us"] <= r["target_us"] else "MISSED"
        out.append(f"| {r['case']} | {r['effect']} | **{r['median_us']:.2f}** "
                   f"| {min(r['pass_medians_us']):.2f}–{max(r['pass_medians_us']):.2f} | ≤ {r['target_us']:g} µs: {met} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="nhipl evaluator benchmark")
    parser.add_argument("--sizes", default="10,100,1000,10000", help="comma-separated rule counts")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--history", action="store_true", help="the history workload only (quantifiers over earlier steps)")
    args = parser.parse_args()
    if args.history:
        print(history_report(history_benchmark(max(args.passes, 5), args.seed)))
        return
    sizes = []
    for n in (int(s) for s in args.sizes.split(",")):
        sizes.append(prepare(n, args.requests, args.seed))
        print(f"{n:>6} rules: load {sizes[-1]['load_s']:.3f}s", file=sys.stderr)
    time_interleaved(sizes, args.passes)
    rows = []
    for size in sizes:
        row = summarise(size)
        print(
            f"{row['rules']:>6} rules: peak {row['peak_mb']:.1f}MB, median {row['median_us']:.2f}µs "
            f"(passes {', '.join(f'{m:.2f}' for m in row['pass_medians_us'])}), many {row['many_per_s']:,.0f}/s",
            file=sys.stderr,
        )
        rows.append(row)
    sizes.clear()
    print(report(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
