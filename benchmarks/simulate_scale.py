"""Scale benchmark for the simulator (run by hand, not a test).

    .venv/bin/python benchmarks/simulate_scale.py [--events 1000000] [--out benchmarks/simulate_scale.md]

For 100k and 1M events it generates a swarm trace with a fixed population (agents,
tasks, credentials: the trace only gets longer), then measures, each in a fresh
process:

* parse only: ``json.loads`` of every line, the floor for any replay;
* replay: ``nhipl.simulator.simulate`` with the swarm's own policy, reporting
  throughput, the ratio to parsing, and resident memory (RSS) sampled during the
  run at 100k events and at the end.

Results go to a markdown file beside this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

PARSE = r"""
import json, sys, time
path = sys.argv[1]
start = time.perf_counter()
n = 0
with open(path, "rb") as fh:
    for line in fh:
        json.loads(line)
        n += 1
print(json.dumps({"events": n, "seconds": time.perf_counter() - start}))
"""

REPLAY = r"""
import json, os, sys, time, resource
import nhipl
from nhipl.simulator import simulate

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

samples = {}
def progress(reader, events):
    if events >= 100_000 and "at_100k" not in samples:
        samples["at_100k"] = rss_mb()

path, policy = sys.argv[1], sys.argv[2]
policies = nhipl.load(policy)
samples["before"] = rss_mb()
start = time.perf_counter()
report = simulate(path, policies, progress=progress)
seconds = time.perf_counter() - start
samples["end"] = rss_mb()
samples["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
s = report.summary
print(json.dumps({"events": s["events"], "steps": s["steps"], "seconds": seconds, "rss_mb": samples,
                  "findings": len(report.findings), "entities": s["entities"],
                  "policy_us": s["latency"]["policy_us"]}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def generate(path: str, policy: str, steps: int, tasks: int) -> None:
    from nhipl.simulator.swarm import SwarmStream, swarm_config

    stream = SwarmStream(swarm_config(agents=10, tasks=tasks, steps=steps, seed=7, drift=0.001, sharing=0.001,
                                      late_use=0.01, missed_revocation=0.01))
    with open(path, "w", encoding="utf-8") as fh:
        batch = []
        for event in stream:
            batch.append(json.dumps(event, separators=(",", ":")))
            if len(batch) >= 4096:
                fh.write("\n".join(batch) + "\n")
                batch = []
        if batch:
            fh.write("\n".join(batch) + "\n")
    with open(policy, "w", encoding="utf-8") as fh:
        fh.write(stream.policy_text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the large trace (about)")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--out", default=os.path.join(HERE, "simulate_scale.md"))
    args = parser.parse_args()
    # About 3.9 events per step slot per task with 10 agents (measured on seed 7).
    sizes = [("100k", 100_000), ("1M", args.events)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, events in sizes:
            steps = max(1, round(events / args.tasks / 3.93))
            path, policy = os.path.join(tmp, f"{name}.jsonl"), os.path.join(tmp, f"{name}.nhipl")
            t0 = time.perf_counter()
            generate(path, policy, steps, args.tasks)
            gen = time.perf_counter() - t0
            size = os.path.getsize(path)
            parse = min((run(PARSE, path) for _ in range(2)), key=lambda r: r["seconds"])
            replay = min((run(REPLAY, path, policy) for _ in range(2)), key=lambda r: r["seconds"])
            rows.append({"name": name, "bytes": size, "generate_s": gen, "parse": parse, "replay": replay})
            print(name, json.dumps(rows[-1]), flush=True)
    lines = [
        "# Simulator scale benchmark",
        "",
        f"Run by `benchmarks/simulate_scale.py` on {platform.machine()} ({os.cpu_count()} cores), "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        f"Generated swarms: 10 agents, {args.tasks} tasks, hierarchy, seed 7, low fault rates; the population is the same",
        "at both sizes (only the number of steps per task grows), so flat memory means RSS does not grow with events.",
        "Times are the best of two runs, each in a fresh process. RSS is resident memory of the replaying process.",
        f"Load average when done: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (the machine is shared; compare the",
        "ratio, which is measured under the same conditions, rather than absolute rates).",
        "",
        "| trace | events | steps | MB | parse only (events/s) | replay (events/s) | replay / parse time | RSS at 100k events | RSS at end | peak RSS | findings |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, s = r["parse"], r["replay"]
        lines.append(
            f"| {r['name']} | {s['events']:,} | {s['steps']:,} | {r['bytes'] / 2**20:.0f} | {p['events'] / p['seconds']:,.0f} | "
            f"{s['events'] / s['seconds']:,.0f} | {s['seconds'] / p['seconds']:.1f}× | "
            f"{s['rss_mb'].get('at_100k', float('nan')):.0f} MB | {s['rss_mb']['end']:.0f} MB | {s['rss_mb']['peak']:.0f} MB | {s['findings']} |"
        )
    lines += ["", "Entities (same at both sizes): " + json.dumps(rows[-1]["replay"]["entities"]),
              "", "Policy cost per step at 1M: " + json.dumps(rows[-1]["replay"]["policy_us"]) + " (µs)", ""]
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
