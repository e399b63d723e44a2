"""The report of a replay: summary, findings, analyses, and the terminal rendering."""

from __future__ import annotations

import heapq
from functools import cached_property

from .latency import Histogram
from .model import blast_radius, build_graph, delegation_cycles, to_dot
from .replay import FINDING_KINDS, Finding, Replay

TOP_TASKS = 20


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class Report:
    """What :func:`nhipl.simulator.simulate` returns.

    ``summary`` and ``findings`` are the JSON report's (``nhipl schema report``); ``analyses`` holds the longest
    delegation chain, delegation cycles and blast radius; ``graph`` is the run as a
    ``networkx.MultiDiGraph`` (built on first use).
    """

    def __init__(self, state: Replay, *, source: str, bad_lines: list[tuple[int, str]], policies=None, exact: bool = False):
        self.source = source
        self._state = state
        self.policies = policies
        self.findings: list[Finding] = state.findings
        self.bad_lines = list(bad_lines)
        self.step_cost: Histogram = state.step_cost
        self.timeline = state.timeline  # the first steps of the run, for the HTML report's timeline
        delays = {tid: task.delay for tid, task in state.tasks.items()}
        self.task_delay = Histogram()
        for delay in delays.values():
            self.task_delay.add(delay)
        self.slowest_tasks: list[tuple[str, float]] = heapq.nlargest(TOP_TASKS, sorted(delays.items()), key=lambda kv: kv[1])
        chain, task, line = state.longest_chain
        self.analyses = {
            "longest_delegation_chain": {"length": len(chain) - 1 if chain else 0, "chain": list(chain), "task": task, "line": line},
            "delegation_cycles": delegation_cycles(state),
            "blast_radius": blast_radius(state, policies),
        }
        if exact and policies is not None:
            from .model import exact_blast_radius

            self.analyses["blast_radius"], self.analyses["blast_radius_exact"] = exact_blast_radius(state, policies)
        self.summary = self._summary()

    def _summary(self) -> dict:
        state = self._state
        counts = {kind: 0 for kind in FINDING_KINDS}
        subkinds = {kind: {sub: 0 for sub in subs} for kind, subs in FINDING_KINDS.items() if subs}
        for f in self.findings:
            counts[f.kind] += 1
            if f.subkind is not None:
                subkinds[f.kind][f.subkind] += 1
        cost = self.step_cost
        kinds = {}
        for kind in state.nodes.values():
            kinds[kind] = kinds.get(kind, 0) + 1
        return {
            "events": state.events,
            "steps": state.steps,
            "bad_lines": len(self.bad_lines),
            **counts,
            "subkinds": subkinds,
            "latency": {
                "policy_us": {
                    "p50": _round(cost.percentile(50) / 1000 if cost.n else None),
                    "p99": _round(cost.percentile(99) / 1000 if cost.n else None),
                    "mean": _round(cost.total / cost.n / 1000 if cost.n else None),
                    "measured_steps": cost.n,
                    "first_step": _round(state.first_step_ns / 1000 if state.first_step_ns is not None else None),
                },
                "task_delay_s": {
                    "p50": _round(self.task_delay.percentile(50)),
                    "p99": _round(self.task_delay.percentile(99)),
                    "max": _round(self.task_delay.max if self.task_delay.n else None),
                    "tasks": self.task_delay.n,
                },
                "model": state.latency.to_dict(),
            },
            "entities": {k: kinds.get(k, 0) for k in ("agent", "task", "tool", "resource", "credential")},
            "unknown_credentials": len(state.unknown_credentials),
        }

    @cached_property
    def graph(self):
        return build_graph(self._state)

    def to_dot(self) -> str:
        return to_dot(self.graph, title=self.source)

    def to_dict(self) -> dict:
        """The JSON report (``nhipl schema report``)."""
        return {
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.findings],
            "analyses": self.analyses,
            "slowest_tasks": [{"task": t, "delay_s": round(d, 3)} for t, d in self.slowest_tasks],
            "bad_lines": [{"line": line, "message": message} for line, message in self.bad_lines],
        }

    def to_text(self, *, max_findings: int = 40, wide: bool = False) -> str:
        return render_text(self, max_findings=max_findings, wide=wide)


# ---- terminal text ------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[object]]) -> list[str]:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return out


def _clip(text: str | None, width: int) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(report: Report, *, max_findings: int = 40, wide: bool = False) -> str:
    """The terminal report; ``wide`` prints every finding's text whole instead of clipping it
    to a terminal's width."""
    clip = (lambda text, width: text or "") if wide else _clip
    s = report.summary
    out = [f"nhipl simulate: {report.source}", ""]
    out += table(["events", "steps", "bad lines", "agents", "tasks", "tools", "credentials"],
                 [[s["events"], s["steps"], s["bad_lines"], s["entities"]["agent"], s["entities"]["task"],
                   s["entities"]["tool"], s["entities"]["credential"]]])
    out += ["", "Findings"]
    rows = []
    for kind, subs in FINDING_KINDS.items():
        if subs:
            rows += [[kind, sub, s["subkinds"][kind][sub]] for sub in subs]
        else:
            rows.append([kind, "", s[kind]])
    out += table(["kind", "subkind", "count"], rows)
    lat = s["latency"]
    out += ["", "Latency"]
    undecided = report.policies is None
    policy_row = (["policy cost per step (µs)", "-", "-", "no policy: steps not decided"] if undecided else
                  ["policy cost per step (µs)", lat["policy_us"]["p50"], lat["policy_us"]["p99"],
                   f"mean {lat['policy_us']['mean']}; cold first step {lat['policy_us']['first_step']}, apart"])
    out += table(["measure", "p50", "p99", "other"], [
        policy_row,
        ["modelled delay per task (s)", lat["task_delay_s"]["p50"], lat["task_delay_s"]["p99"], f"max {lat['task_delay_s']['max']}"],
    ])
    out.append(f"  model: approval wait {lat['model']['approval_wait']}, credential issue {lat['model']['credential_issue']}")
    a = report.analyses
    out += ["", "Analyses"]
    longest = a["longest_delegation_chain"]
    if longest["chain"]:
        out.append(f"  longest delegation chain: {longest['length']} hop(s) in task `{longest['task']}` (line {longest['line']}): "
                   + " -> ".join(longest["chain"]))
    else:
        out.append("  longest delegation chain: no delegations")
    cycles = a["delegation_cycles"]
    out.append(f"  delegation cycles: {len(cycles)}")
    for cycle in cycles[:5]:
        out.append("    " + " -> ".join(cycle + cycle[:1]))
    blast = a["blast_radius"]
    if undecided:
        out.append("  blast radius: not analysed (no policy)")
    elif not blast:
        out.append("  blast radius: none (no identity can reach a sensitive tool)")
    else:
        out.append(f"  blast radius: {len(blast)} identit{'y' if len(blast) == 1 else 'ies'} can reach sensitive tools")
    if "blast_radius_exact" in a:
        out.append("    (exact: every request considered by the SMT solver, assuming " + "; ".join(a["blast_radius_exact"]) + ")")
    for entry in blast[:10]:
        out.append(f"    {entry['identity']}: {', '.join(entry['tools'])}")
        for tool, assumptions in entry.get("assumed", {}).items():
            out.append(f"      {tool} may be allowed, assuming " + "; ".join(assumptions))
    findings = report.findings
    out += ["", f"Findings ({len(findings)})" + (f", first {max_findings}" if len(findings) > max_findings else "")]
    if findings:
        out += table(["line", "kind", "subkind", "agent", "tool", "credential", "detail"], [
            [f.line if f.line is not None else "-", f.kind, f.subkind or "", clip(f.agent, 40), clip(f.tool or f.rule, 30),
             f.credential or "", clip(f.detail, 70)]
            for f in findings[:max_findings]
        ])
        if len(findings) > max_findings:
            out.append(f"... and {len(findings) - max_findings} more (use --format json for all)")
    if report.bad_lines:
        out += ["", f"Skipped bad lines ({len(report.bad_lines)})"]
        out += [f"  {report.source}:{line}: {message}" for line, message in report.bad_lines[:20]]
    return "\n".join(out) + "\n"
