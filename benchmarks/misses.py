"""Instructions and cache misses per decision, counted by cachegrind (deterministic).

Wall-clock medians on a shared machine move by 10–30% between runs, most of all at
10,000 rules, where a decision's time is mostly cache misses and the other tenants'
use of the shared L3 decides how many of them reach memory. Valgrind's cachegrind
simulates the caches instead: this script runs the workload of ``workload.py`` once
with one pass of evaluations and once with ``1 + PASSES``, and prints the difference
per decision, which leaves the load out.

    .venv/bin/python benchmarks/misses.py                  # 10 and 10,000 rules, ~6 min
    .venv/bin/python benchmarks/misses.py --sizes 100 --passes 2
    .venv/bin/python benchmarks/misses.py --sizes 10000 --keep /tmp/cg   # then, per function:
    cg_diff /tmp/cg/cachegrind.10000.1.out /tmp/cg/cachegrind.10000.5.out > /tmp/cg/diff
    cg_annotate --sort=DLmr /tmp/cg/diff

The simulated last-level cache is 1 MiB (``--ll``), this machine's L2 per core: an
"LL miss" here is a read that leaves the core's own caches. Needs ``valgrind``
(``apt-get install valgrind``). The child runs with ``PYTHONHASHSEED=0`` so that both
runs lay out their dicts alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EVENTS = ("Ir", "Dr", "D1mr", "DLmr")
NAMES = {"Ir": "instructions", "Dr": "data reads", "D1mr": "L1 read misses", "DLmr": "LL read misses"}


def child(n_rules: int, passes: int, requests: int) -> None:
    sys.path.insert(0, HERE)
    import nhipl
    from workload import generate, to_nhipl

    wl = generate(n_rules, requests, 7)
    policies = nhipl.loads(to_nhipl(wl), source="bench.nhipl")
    evaluate = policies.evaluate
    for _ in range(passes):
        for request in wl.requests:
            evaluate(request)


def summary(path: str) -> dict[str, int]:
    events: list[str] = []
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                return dict(zip(events, map(int, line.split()[1:])))
    raise SystemExit(f"{path}: no summary line; did valgrind fail?")


def measure(n_rules: int, passes: int, requests: int, ll: str, keep: str | None = None) -> dict[str, float]:
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in (1, 1 + passes):
            out = os.path.join(keep or tmp, f"cachegrind.{n_rules}.{p}.out")
            cmd = [
                "valgrind", "--tool=cachegrind", "--cache-sim=yes", f"--LL={ll}", f"--cachegrind-out-file={out}",
                sys.executable, os.path.abspath(__file__), "--child", str(n_rules), str(p), str(requests),
            ]  # fmt: skip
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise SystemExit(f"valgrind failed:\n{done.stderr[-2000:]}")
            counts.append(summary(out))
    decisions = passes * requests
    return {e: (counts[1][e] - counts[0][e]) / decisions for e in EVENTS}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description="cachegrind counts per decision")
    parser.add_argument("--sizes", default="10,10000")
    parser.add_argument("--passes", type=int, default=4, help="extra passes in the second run")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--ll", default="1048576,16,64", help="simulated last-level cache: size,ways,line")
    parser.add_argument("--keep", metavar="DIR", help="keep cachegrind's outputs here (for cg_diff and cg_annotate)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    print(f"per decision, {args.passes} x {args.requests:,} decisions, simulated LL {args.ll}\n")
    print("| rules | " + " | ".join(NAMES[e] for e in EVENTS) + " |")
    print("|---:|" + "---:|" * len(EVENTS))
    for n in (int(s) for s in args.sizes.split(",")):
        row = measure(n, args.passes, args.requests, args.ll, args.keep)
        print(f"| {n:,} | " + " | ".join(f"{row[e]:,.1f}" for e in EVENTS) + " |", flush=True)


if __name__ == "__main__":
    main()
