"""How long `nhipl lint` takes on the shared benchmark workload.

For each size: the whole command in a fresh process (`nhipl lint FILE`, start-up and
loading included; `nhipl fmt --check FILE` beside it), and in one process the load, each lint check and the total of the
checks. Medians over the passes.

    python benchmarks/lint.py --sizes 1000,10000 --passes 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from workload import generate, to_nhipl  # noqa: E402

import nhipl  # noqa: E402
from nhipl.lint import LintConfig  # noqa: E402
from nhipl.lint.rules import CHECKS, Facts  # noqa: E402


def measure(rules: int, passes: int, folder: Path) -> dict:
    text = to_nhipl(generate(rules, 10))
    path = folder / f"policies-{rules}.nhipl"
    path.write_text(text)
    command, fmt, load, facts_s, total = [], [], [], [], []
    checks: dict[str, list[float]] = {c.__name__: [] for c in CHECKS}
    findings = 0
    for _ in range(passes):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nhipl", "lint", str(path)], capture_output=True, text=True)
        command.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise SystemExit(done.stderr)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nhipl", "fmt", "--check", str(path)], capture_output=True, text=True)
        fmt.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise SystemExit(done.stderr)
        start = time.perf_counter()
        policies = nhipl.loads(text, source=str(path))
        load.append(time.perf_counter() - start)
        start = time.perf_counter()
        facts = Facts(policies, LintConfig(), {str(path)}, {str(path): text.split("\n")})
        facts_s.append(time.perf_counter() - start)
        findings = 0
        for check in CHECKS:
            start = time.perf_counter()
            findings += sum(1 for _ in check(facts))
            checks[check.__name__].append(time.perf_counter() - start)
        total.append(facts_s[-1] + sum(v[-1] for v in checks.values()))
    return {
        "rules": rules,
        "command": statistics.median(command),
        "fmt": statistics.median(fmt),
        "load": statistics.median(load),
        "lint": statistics.median(total),
        "duplicates": statistics.median(checks["check_duplicates"]),
        "slowest": max(checks, key=lambda k: statistics.median(checks[k])),
        "findings": findings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    print("| rules | `nhipl lint` s | `nhipl fmt --check` s | load s | checks s | NHI005/NHI006 s | slowest check | findings |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|")
    with tempfile.TemporaryDirectory(prefix="nhipl-lint-bench-") as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            r = measure(size, args.passes, Path(folder))
            print(f"| {r['rules']:,} | {r['command']:.2f} | {r['fmt']:.2f} | {r['load']:.2f} | {r['lint']:.3f} | {r['duplicates']:.3f} "
                  f"| `{r['slowest']}` | {r['findings']:,} |")


if __name__ == "__main__":
    main()
