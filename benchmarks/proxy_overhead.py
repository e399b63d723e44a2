"""The MCP proxy's added latency per ``tools/call``, for this tree and, optionally, another.

Each round runs ``proxy_figures`` of ``guard_overhead.py`` (a stdlib JSON-RPC server
answering at once; a raw client sending one call at a time over pipes, first directly, then
through ``nhipl mcp-proxy`` without and with ``--log``) once per tree, the trees
interleaved so that machine load hits both alike; the table gives the median over rounds
of each p50 and p99 and of the latency the proxy adds to the direct round trip.

    git archive main | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    .venv/bin/python benchmarks/proxy_overhead.py --before /tmp/before --rounds 5 --calls 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from guard_overhead import proxy_figures  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The folders a checkout maps into the nhipl namespace (pyproject's package-dir).
MAPPED = {"grammar": "grammar", "stdlib_policies": "stdlib_policies", "simulator": "simulator"}


def run_tree(tree: str, calls: int) -> dict:
    """``proxy_figures`` with ``nhipl`` imported from the checkout ``tree``: its package laid
    out as installed (the mapped folders inside it) in a temporary folder that comes first on
    the path and is the current folder (which ``python -c`` also puts first)."""
    old = os.environ.get("PYTHONPATH")
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as overlay, tempfile.TemporaryDirectory() as work_dir:
        shutil.copytree(os.path.join(tree, "nhipl"), os.path.join(overlay, "nhipl"))
        for name, folder in MAPPED.items():
            os.symlink(os.path.join(tree, folder), os.path.join(overlay, "nhipl", name))
        os.environ["PYTHONPATH"] = overlay if old is None else overlay + os.pathsep + old
        os.chdir(overlay)
        try:
            return proxy_figures(calls, work_dir)
        finally:
            os.chdir(here)
            if old is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="another source tree to measure alongside this one (e.g. main, unpacked)")
    parser.add_argument("--after", default=HERE, help="the tree to measure as `after` (default: this one)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree, interleaved")
    parser.add_argument("--calls", type=int, default=2000, help="tools/call round trips per variant and round")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    trees = {"after": os.path.abspath(args.after)}
    if args.before:
        trees = {"before": os.path.abspath(args.before), **trees}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            runs[name].append(run_tree(tree, args.calls))
    table = {}
    for name, rounds in runs.items():
        for variant in rounds[0]:
            row = {}
            for figure in ("p50_us", "p99_us", "added_p50_us", "added_p99_us"):
                if figure in rounds[0][variant]:
                    row[figure] = round(statistics.median(r[variant][figure] for r in rounds), 1)
            table[f"{name}: {variant}"] = row
    print(f"mcp proxy, per tools/call round trip (median of {args.rounds} rounds of {args.calls} calls)")
    for label, row in table.items():
        added = f"  added p50 {row['added_p50_us']:7.1f} µs  p99 {row['added_p99_us']:7.1f} µs" if "added_p50_us" in row else ""
        print(f"  {label:34s} p50 {row['p50_us']:8.1f} µs  p99 {row['p99_us']:8.1f} µs{added}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rounds": runs, "medians": table}, fh, indent=2)


if __name__ == "__main__":
    main()
