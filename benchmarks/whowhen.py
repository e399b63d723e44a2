"""Attribute each Who&When run's labelled mistake to its delegation chain.

    python benchmarks/whowhen.py RUNS... [--format text|json]

RUNS are Who&When run files or folders (``hand-crafted/``, ``algorithm-generated/``). For
every run with a label (``mistake_agent``, ``mistake_step``) the script prints who speaks at
the labelled step, the delegation chain that reached them (originator first), the kind of step
(an orchestrator ``thought`` or ``handoff``, a worker ``turn``) and the step's line in the
run's imported trace; then a summary: how many labels name the speaker, how many mistakes were
made by a delegated agent rather than the originator, per system.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

from nhipl.simulator.importers import SourceError, attribute_mistake
from nhipl.simulator.importers.whowhen import read_runs


def summarise(attributions) -> dict:
    summary: dict[str, dict] = {}
    for a in attributions:
        system = a.task.split("/", 1)[0]
        row = summary.setdefault(system, collections.Counter())
        row["runs"] += 1
        row["label_names_speaker"] += a.agrees
        row["label_on_chain"] += a.on_chain
        row["by_delegated_agent"] += bool(a.chain)
        row["by_originator"] += not a.chain
        row[f"step_{a.step_kind}"] += 1
    return {system: dict(sorted(row.items())) for system, row in sorted(summary.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUNS")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    try:
        runs = read_runs(args.runs)
    except SourceError as err:
        print(f"{err.location}: {err.message}", file=sys.stderr)
        return 2
    attributions = [a for a in map(attribute_mistake, runs) if a is not None]
    summary = summarise(attributions)
    if args.format == "json":
        print(json.dumps({"runs": [a.to_dict() for a in attributions], "summary": summary}, indent=2))
        return 0
    for a in attributions:
        chain = " -> ".join([*a.chain, a.speaker])
        note = "" if a.agrees else f"  (label names `{a.labelled_agent}`)"
        line = f"line {a.line}" if a.line is not None else "no step"
        print(f"{a.task:28} step {a.step:>3} {a.step_kind:8} {line:9} {chain}{note}")
    print()
    for system, row in summary.items():
        print(f"{system}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
