"""The self-contained HTML report: summary, findings, analyses, the run's graph (graphviz
SVG inline, findings in red) and latency plots (SVG drawn here, no dependencies).

The page is well-formed XML (polyglot XHTML), so it can be checked with any XML parser.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html import escape

from .replay import FINDING_KINDS

MAX_ROWS = 500

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.sub { color: #666; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.hot td { background: #fff0f0; } .kind-overreach { color: #b71c1c; } .kind-revocation_gap { color: #8e24aa; }
.kind-attribution { color: #e65100; } .kind-unused_permit { color: #455a64; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; } .card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card b { display: block; font-size: 22px; } .card.bad b { color: #c62828; }
.graph { border: 1px solid #ddd; overflow: auto; max-height: 1400px; } .graph svg { max-width: 100%; height: auto; }
.plots { display: flex; gap: 24px; flex-wrap: wrap; } code { background: #f4f4f4; padding: 0 3px; }
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _svg_text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {extra}>{_e(text)}</text>'


def bar_chart(title: str, bars: list[tuple[str, float]], *, unit: str, width: int = 520, height: int = 260,
              color: str = "#5c7cfa") -> str:
    """A vertical bar chart as an inline SVG element."""
    left, right, top, bottom = 56, 12, 28, 64
    plot_w, plot_h = width - left - right, height - top - bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'role="img" aria-label="{_e(title)}">',
           _svg_text(width / 2, 16, title, anchor="middle", size=13, extra='font-weight="bold"')]
    if not bars:
        out.append(_svg_text(width / 2, height / 2, "no data", anchor="middle"))
        out.append("</svg>")
        return "".join(out)
    peak = max(v for _, v in bars) or 1.0
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>')
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        out.append(_svg_text(left - 4, y + 4, f"{peak * frac:.3g}", anchor="end", size=10))
    out.append(_svg_text(12, top + plot_h / 2, unit, anchor="middle", size=10,
                         extra=f'transform="rotate(-90 12 {top + plot_h / 2:.1f})"'))
    step = plot_w / len(bars)
    label_every = max(1, len(bars) // 10)
    for i, (label, value) in enumerate(bars):
        h = plot_h * value / peak
        x = left + i * step
        out.append(f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                   f'fill="{color}"><title>{_e(label)}: {value:.4g}</title></rect>')
        if i % label_every == 0:
            cx = x + step / 2
            out.append(_svg_text(cx, top + plot_h + 12, label, anchor="end", size=9,
                                 extra=f'transform="rotate(-40 {cx:.1f} {top + plot_h + 12:.1f})"'))
    out.append("</svg>")
    return "".join(out)


_EFFECT_COLOUR = {"allow": "#2e7d32", "deny": "#c62828", "approval_required": "#ef6c00", None: "#78909c"}
MAX_LANES = 40


def timeline_svg(steps, finding_lines: set[int], *, width: int = 1100) -> str:
    """Swim lanes per agent: each step a dot at its time, coloured by its decision, ringed in red
    when a finding is on its line; delegations drawn as squares. An inline SVG element."""
    lanes: list[str] = []
    for step in steps:
        if step.agent not in lanes:
            lanes.append(step.agent)
    shown = set(lanes[:MAX_LANES])
    drawn = [s for s in steps if s.agent in shown and s.t is not None]
    left, right, top, lane_h = 230, 16, 28, 22
    height = top + lane_h * max(len(shown), 1) + 34
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of the run\'s steps per agent">']
    if not drawn:
        out.append(_svg_text(width / 2, height / 2, "no steps", anchor="middle"))
        out.append("</svg>")
        return "".join(out)
    t0 = min(s.t for s in drawn)
    t1 = max(s.t for s in drawn)
    span = (t1 - t0) or 1.0
    plot_w = width - left - right

    def x(t: float) -> float:
        return left + plot_w * (t - t0) / span

    for i, agent in enumerate(lanes[:MAX_LANES]):
        y = top + lane_h * i + lane_h / 2
        out.append(f'<g class="lane" data-agent="{_e(agent)}">')
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        label = agent if len(agent) <= 34 else "…" + agent[-33:]
        out.append(_svg_text(left - 8, y + 4, label, anchor="end", size=10))
        out.append("</g>")
    row = {agent: top + lane_h * i + lane_h / 2 for i, agent in enumerate(lanes[:MAX_LANES])}
    for step in drawn:
        cx, cy = x(step.t), row[step.agent]
        colour = _EFFECT_COLOUR.get(step.effect, "#78909c")
        found = step.line in finding_lines
        ring = ' stroke="#b71c1c" stroke-width="2.5"' if found else ""
        title = f"line {step.line}: {step.action} {step.target} → {step.effect or 'not decided'}" + (" (finding)" if found else "")
        cls = "step finding" if found else "step"
        if step.action == "delegate":
            out.append(f'<rect class="{cls}" data-line="{step.line}" x="{cx - 4:.1f}" y="{cy - 4:.1f}" width="8" height="8" '
                       f'fill="{colour}"{ring}><title>{_e(title)}</title></rect>')
        else:
            out.append(f'<circle class="{cls}" data-line="{step.line}" cx="{cx:.1f}" cy="{cy:.1f}" r="4" '
                       f'fill="{colour}"{ring}><title>{_e(title)}</title></circle>')
    axis_y = top + lane_h * len(row) + 6
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#888"/>')
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(_svg_text(left + plot_w * frac, axis_y + 14, f"{t0 + span * frac:.1f}", anchor="middle", size=10))
    out.append(_svg_text(left + plot_w / 2, axis_y + 27, "t (seconds, from the trace)", anchor="middle", size=10))
    out.append("</svg>")
    return "".join(out)


def graph_svg(dot_text: str) -> str | None:
    """Graphviz's SVG for ``dot_text`` without the XML prolog, or None without `dot`."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    result = subprocess.run([dot, "-Tsvg"], input=dot_text.encode("utf-8"), capture_output=True, check=False, timeout=300)
    if result.returncode != 0:
        return None
    svg = result.stdout.decode("utf-8")
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return svg.strip()


def _table(headers: list[str], rows: list[list[object]], *, numeric: set[int] = frozenset(), hot=None) -> str:
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = ' class="hot"' if hot and hot(i) else ""
        out.append(f"<tr{cls}>" + "".join(f'<td class="n">{_e(c)}</td>' if j in numeric else f"<td>{_e(c)}</td>"
                                           for j, c in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(report) -> str:
    s = report.summary
    lat = s["latency"]
    parts = [
        '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/>',
        f"<title>nhipl simulate: {_e(report.source)}</title><style>{_CSS}</style></head><body>",
        f"<h1>nhipl simulate</h1><div class=\"sub\">trace <code>{_e(report.source)}</code> · "
        f"{s['events']} events · {s['steps']} steps · {s['bad_lines']} bad lines skipped</div>",
        '<h2>Summary</h2><div class="cards">',
    ]
    for kind in FINDING_KINDS:
        bad = " bad" if s[kind] else ""
        parts.append(f'<div class="card{bad}" id="count-{kind}"><b>{s[kind]}</b>{_e(kind)}</div>')
    parts.append(f'<div class="card"><b>{_e(lat["policy_us"]["p50"])}</b>policy µs p50</div>')
    parts.append(f'<div class="card"><b>{_e(lat["policy_us"]["p99"])}</b>policy µs p99</div>')
    parts.append(f'<div class="card"><b>{_e(lat["task_delay_s"]["p50"])}</b>task delay s p50</div>')
    parts.append("</div>")
    rows = []
    for kind, subs in FINDING_KINDS.items():
        rows += [[kind, sub, s["subkinds"][kind][sub]] for sub in subs] if subs else [[kind, "", s[kind]]]
    parts.append(_table(["kind", "subkind", "count"], rows, numeric={2}, hot=lambda i: rows[i][2]))

    # Timeline
    steps = report.timeline
    lanes = len({step.agent for step in steps})
    parts.append("<h2>Timeline</h2><p class=\"sub\">Each agent's steps over time, one lane per agent: dots are calls, "
                 "squares delegations; green allowed, red denied, orange stopped at an approval gate, grey not decided; "
                 "a red ring marks a step with a finding. Hover for the trace line."
                 + (f" The first {len(steps)} steps of the run." if steps and len(steps) < report.summary["steps"] else "")
                 + (f" The first {MAX_LANES} of {lanes} agents." if lanes > MAX_LANES else "") + "</p>")
    finding_lines = {f.line for f in report.findings if f.line is not None}
    parts.append(f'<div class="graph">{timeline_svg(steps, finding_lines)}</div>')

    # Graph
    parts.append("<h2>Graph</h2><p class=\"sub\">Agents (ellipses), tools (boxes), tasks, resources and credentials; "
                 "edges are delegations, calls, issues and uses, weighted by count. Red: steps or identities with findings.</p>")
    dot_text = report.to_dot()
    svg = graph_svg(dot_text)
    if svg is None:
        parts.append("<p>graphviz <code>dot</code> is not installed, so the graph is not drawn; its DOT text:</p>"
                     f"<pre>{_e(dot_text)}</pre>")
    else:
        parts.append(f'<div class="graph">{svg}</div>')

    # Latency
    parts.append("<h2>Latency</h2>")
    parts.append(_table(["measure", "p50", "p99", "other"], [
        ["policy cost per step (µs)", lat["policy_us"]["p50"], lat["policy_us"]["p99"],
         f"mean {lat['policy_us']['mean']}, {lat['policy_us']['measured_steps']} steps; "
         f"the cold first step ({lat['policy_us']['first_step']} µs) is left out"],
        ["modelled delay per task (s)", lat["task_delay_s"]["p50"], lat["task_delay_s"]["p99"],
         f"max {lat['task_delay_s']['max']}, {lat['task_delay_s']['tasks']} tasks"],
    ], numeric={1, 2}))
    parts.append(f"<p class=\"sub\">Modelled: approval wait <code>{_e(lat['model']['approval_wait'])}</code>, credential "
                 f"issuance <code>{_e(lat['model']['credential_issue'])}</code> seconds (seeded).</p>")
    cost_bars = [(f"{low / 1000:.3g}", count) for low, _, count in report.step_cost.buckets(24)]
    task_bars = [(task, delay) for task, delay in report.slowest_tasks]
    parts.append('<div class="plots">')
    parts.append(bar_chart("policy cost per step (steps per µs bin)", cost_bars, unit="steps"))
    parts.append(bar_chart("modelled delay of the slowest tasks", task_bars, unit="seconds", color="#f08c00"))
    parts.append("</div>")

    # Analyses
    a = report.analyses
    parts.append("<h2>Analyses</h2>")
    longest = a["longest_delegation_chain"]
    if longest["chain"]:
        parts.append(f"<p>Longest delegation chain: <b>{longest['length']}</b> hop(s) in task <code>{_e(longest['task'])}</code> "
                     f"(line {_e(longest['line'])}): " + " → ".join(f"<code>{_e(x)}</code>" for x in longest["chain"]) + "</p>")
    else:
        parts.append("<p>No delegations.</p>")
    cycles = a["delegation_cycles"]
    parts.append(f"<p>Delegation cycles: <b>{len(cycles)}</b></p>")
    if cycles:
        parts.append("<ul>" + "".join("<li>" + " → ".join(f"<code>{_e(x)}</code>" for x in c + c[:1]) + "</li>" for c in cycles) + "</ul>")
    blast = a["blast_radius"]
    parts.append("<p>Blast radius: the sensitive tools each identity can reach itself or through delegations the policy allowed.</p>")
    parts.append(_table(["identity", "sensitive tools", "agents reached"],
                        [[b["identity"], ", ".join(b["tools"]), len(b["reach"])] for b in blast], numeric={2}))

    # Findings
    findings = report.findings
    parts.append(f"<h2>Findings ({len(findings)})</h2>")
    if len(findings) > MAX_ROWS:
        parts.append(f"<p class=\"sub\">The first {MAX_ROWS}; the JSON report has all of them.</p>")
    parts.append('<table id="findings"><thead><tr><th>line</th><th>kind</th><th>subkind</th><th>agent</th><th>task</th>'
                 "<th>tool / rule</th><th>credential</th><th>detail</th></tr></thead><tbody>")
    for f in findings[:MAX_ROWS]:
        parts.append(f'<tr class="finding" data-kind="{_e(f.kind)}" data-subkind="{_e(f.subkind or "")}">'
                     f'<td class="n">{_e(f.line if f.line is not None else "")}</td>'
                     f'<td class="kind-{_e(f.kind)}">{_e(f.kind)}</td><td>{_e(f.subkind or "")}</td><td>{_e(f.agent)}</td>'
                     f"<td>{_e(f.task)}</td><td>{_e(f.tool or f.rule)}</td><td>{_e(f.credential)}</td>"
                     f"<td>{_e(f.detail)}</td></tr>")
    parts.append("</tbody></table>")
    if report.bad_lines:
        parts.append(f"<h2>Skipped bad lines ({len(report.bad_lines)})</h2><ul>")
        parts += [f"<li><code>{_e(report.source)}:{line}: {_e(message)}</code></li>" for line, message in report.bad_lines[:200]]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)
