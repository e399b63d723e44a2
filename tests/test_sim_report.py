"""Reports (text, JSON, HTML), the graph and its drawing, and the generate command."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import networkx as nx
import pytest

import nhipl
from nhipl.simulator import generate, simulate
from nhipl.simulator.html import bar_chart, render_html
from nhipl.simulator.replay import FINDING_KINDS

from .cli import invoke

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def swarm():
    return generate(agents=6, tasks=8, seed=21, drift=0.2, sharing=0.2, missed_revocation=0.3, late_use=0.5,
                    unapproved=0.5, orphan=0.1)


@pytest.fixture(scope="module")
def report(swarm):
    return simulate(swarm.events, nhipl.loads(swarm.policy_text, source="swarm.nhipl"))


@pytest.fixture
def files(tmp_path, swarm):
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(swarm.lines()) + "\n")
    policy = tmp_path / "swarm.nhipl"
    policy.write_text(swarm.policy_text)
    return str(trace), str(policy)


def test_json_report_shape(report):
    d = json.loads(json.dumps(report.to_dict()))
    s = d["summary"]
    for key in ("events", "steps", *FINDING_KINDS, "latency"):
        assert key in s
    assert s["latency"]["policy_us"]["p50"] <= s["latency"]["policy_us"]["p99"]
    assert sum(s[k] for k in FINDING_KINDS) == len(d["findings"]) > 0
    for f in d["findings"]:
        assert f["kind"] in FINDING_KINDS
        assert f["subkind"] in FINDING_KINDS[f["kind"]] or (f["subkind"] is None and f["kind"] == "unused_permit")
        assert isinstance(f["line"], int) or f["kind"] == "unused_permit"
    lines = [f["line"] for f in d["findings"] if f["line"] is not None]
    assert lines == sorted(lines)
    assert {"longest_delegation_chain", "delegation_cycles", "blast_radius"} <= set(d["analyses"])


def test_graph_aggregates_calls_into_weighted_edges(report, swarm):
    g = report.graph
    assert isinstance(g, nx.MultiDiGraph)
    calls = [e for e in swarm.events if e["kind"] == "tool_call"]
    weights = sum(w for _, _, k, w in g.edges(keys=True, data="weight") if k == "call")
    assert weights == len(calls)
    # One edge per (agent, tool) pair, however many calls.
    assert len([1 for _, _, k in g.edges(keys=True) if k == "call"]) == len({(e["agent"], e["tool"]) for e in calls})
    kinds = {d["kind"] for _, d in g.nodes(data=True)}
    assert kinds == {"agent", "tool", "task", "credential"}
    denied = sum(d.get("deny", 0) for _, _, d in g.edges(data=True))
    assert denied == report.summary["subkinds"]["overreach"]["denied"]


def test_blast_radius_follows_allowed_delegations():
    root, mid, leaf = (f"spiffe://acme.org/{n}" for n in ("root", "mid", "leaf"))
    policies = nhipl.loads(f"""
        tool "payments.transfer" {{ sensitive: true }}
        tool "db.drop" {{ sensitive: true }}
        @id("d1") permit agent "{root}" to delegate "{mid}";
        @id("d2") permit agent "{mid}" to delegate "{leaf}";
        @id("pay") permit agent "{leaf}" to call "payments.transfer" when task.intent == "billing";
        @id("read") permit any agent to call "docs.read";
    """)
    trace = [
        {"kind": "task_start", "t": 0, "task": "t", "agent": root, "intent": "billing"},
        {"kind": "delegate", "t": 1, "task": "t", "agent": root, "to": mid},
        {"kind": "delegate", "t": 2, "task": "t", "agent": mid, "to": leaf},
        {"kind": "tool_call", "t": 3, "task": "t", "agent": leaf, "tool": "docs.read"},
    ]
    report = simulate(trace, policies)
    blast = {b["identity"]: b for b in report.analyses["blast_radius"]}
    assert set(blast) == {root, mid, leaf}
    assert blast[root]["tools"] == ["payments.transfer"] and blast[root]["via"]["payments.transfer"] == [leaf]
    chain = report.analyses["longest_delegation_chain"]
    assert chain["length"] == 2 and chain["chain"] == [root, mid, leaf] and chain["line"] == 3


def test_dot_is_deterministic_and_marks_findings(report, swarm):
    dot = report.to_dot()
    again = simulate(swarm.events, nhipl.loads(swarm.policy_text, source="swarm.nhipl")).to_dot()
    assert dot == again
    assert dot.startswith("digraph trace {") and dot.rstrip().endswith("}")
    assert 'color="#c62828"' in dot


def test_text_report(report):
    text = report.to_text()
    for kind in FINDING_KINDS:
        assert kind in text
    assert "policy cost per step" in text and "longest delegation chain" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_html_is_well_formed_and_contains_the_findings(report):
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    root = ET.fromstring(page.split("\n", 1)[1])
    body = root.find("{http://www.w3.org/1999/xhtml}body")
    assert body is not None
    rows = [tr for tr in root.iter("{http://www.w3.org/1999/xhtml}tr") if tr.get("class") == "finding"]
    assert len(rows) == len(report.findings)
    assert {(tr.get("data-kind"), tr.get("data-subkind") or None) for tr in rows} == \
        {(f.kind, f.subkind) for f in report.findings}
    svgs = list(root.iter(f"{SVG}svg"))
    assert len(svgs) == 4  # the timeline, the graph and two latency plots
    assert svgs[0].get("id") == "timeline"
    graph = svgs[1]
    assert any((g.get("class") == "node") for g in graph.iter(f"{SVG}g"))
    # Findings are highlighted in the drawn graph.
    red = [p for p in graph.iter() if p.get("stroke") == "#c62828"]
    assert red
    for f in report.findings:
        if f.detail:
            assert f.detail.split("`")[0] in page


def test_html_without_dot_keeps_the_dot_text(report, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    page = render_html(report)
    ET.fromstring(page.split("\n", 1)[1])
    assert "graphviz <code>dot</code> is not installed" in page and "digraph trace" in page


def test_bar_chart_is_svg():
    svg = ET.fromstring(bar_chart("t", [("a", 1.0), ("b<&>", 3.0)], unit="s"))
    assert svg.tag == f"{SVG}svg"
    assert len(list(svg.iter(f"{SVG}rect"))) == 2
    assert ET.fromstring(bar_chart("empty", [], unit="s")).find(f"{SVG}text").text == "empty"


def test_simulate_out_dir(files, tmp_path):
    trace, policy = files
    out = tmp_path / "out"
    for fmt, name in (("json", "report.json"), ("html", "report.html"), ("text", "report.txt")):
        # graph.dot is there after the first run: replacing it takes --force
        force = ["--force"] if (out / "graph.dot").exists() else []
        result = invoke(["simulate", trace, "-p", policy, "--format", fmt, "--out", str(out), *force])
        assert result.exit_code == 0, result.output
        assert (out / name).exists() and (out / "graph.dot").exists()
    assert json.loads((out / "report.json").read_text())["summary"]["events"] > 0


def test_simulate_text_has_no_progress_bar_off_a_terminal(files):
    trace, policy = files
    result = invoke(["simulate", trace, "-p", policy])
    assert result.exit_code == 0
    assert "replaying" not in result.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
@pytest.mark.parametrize("ext", ["svg", "png", "dot"])
def test_graph_command(files, tmp_path, ext):
    trace, policy = files
    out = tmp_path / f"g.{ext}"
    result = invoke(["graph", trace, "-p", policy, "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    if ext == "svg":
        assert ET.fromstring(data).tag == f"{SVG}svg"
    elif ext == "png":
        assert data.startswith(b"\x89PNG")
    else:
        assert data.startswith(b"digraph trace {")


def test_graph_without_dot_writes_the_dot_file(files, tmp_path, monkeypatch):
    trace, _ = files
    monkeypatch.setenv("PATH", "/nonexistent")
    out = tmp_path / "g.svg"
    result = invoke(["graph", trace, "-o", str(out)])
    assert result.exit_code == 0
    assert not out.exists()
    assert (tmp_path / "g.dot").read_text().startswith("digraph trace {")
    assert "graphviz `dot` is not installed" in result.stderr and "help:" in result.stderr
    again = invoke(["graph", trace, "-o", str(out)])  # never overwrites the user's g.dot
    assert again.exit_code == 2 and "exists" in again.stderr


def test_graph_bad_extension(files, tmp_path):
    trace, _ = files
    result = invoke(["graph", trace, "-o", str(tmp_path / "g.pdf")])
    assert result.exit_code == 2 and "unknown output format `.pdf`" in result.stderr and ":1:1:" not in result.stderr


def test_generate_command(tmp_path):
    args = ["generate", "--agents", "5", "--tasks", "6", "--seed", "3", "--drift", "0.3", "--missed-revocation", "0.3"]
    policy, labels = tmp_path / "p.nhipl", tmp_path / "labels.jsonl"
    first = invoke(args + ["--policy-out", str(policy), "--labels-out", str(labels)])
    second = invoke(args)
    assert first.exit_code == 0 and first.stdout == second.stdout
    planted = [json.loads(line) for line in labels.read_text().splitlines()]
    assert planted and all(p["label"] in ("drift", "missed_revocation") for p in planted)
    events = first.stdout.splitlines()
    for p in planted:
        assert json.loads(events[p["line"] - 1])["injected"] == p["label"]
    nhipl.load(str(policy))
    bad = invoke(["generate", "--drift", "2"])
    assert bad.exit_code == 2


def test_blast_radius_counts_calls_that_hang_on_arguments_or_resources_as_may_be_allowed():
    """A permit whose condition reads the call's arguments, or that is limited to resources, is
    not "never": the deployer seen at the vault reaches it, and the report says what it assumed."""
    policies = nhipl.loads(
        'tool "vault.*" { sensitive: true }\n'
        '@id("coder-delegates") permit agent "coder" to delegate "deployer";\n'
        '@id("deployer-reads") permit agent "deployer" to call "vault.read_secret" when args.path startswith "deploy/";\n'
        '@id("deployer-lists") permit agent "deployer" to call "vault.list" on "secret:deploy/*";\n'
        '@id("no-prod") forbid any agent to call "vault.read_secret" when args.path startswith "prod/";\n'
    )
    trace = [
        {"kind": "task_start", "t": 0, "task": "t1", "agent": "coder", "intent": "release"},
        {"kind": "delegate", "t": 1, "task": "t1", "agent": "coder", "to": "deployer"},
        {"kind": "tool_call", "t": 2, "task": "t1", "agent": "deployer", "tool": "vault.read_secret", "args": {"path": "deploy/key"}},
        {"kind": "tool_call", "t": 3, "task": "t1", "agent": "deployer", "tool": "vault.list", "resource": "secret:deploy/a"},
        {"kind": "task_end", "t": 4, "task": "t1"},
    ]
    report = simulate(trace, policies)
    blast = {b["identity"]: b for b in report.analyses["blast_radius"]}
    assert set(blast) == {"coder", "deployer"}
    assert blast["coder"]["tools"] == ["vault.list", "vault.read_secret"]
    assert blast["coder"]["via"]["vault.read_secret"] == ["deployer"]
    assert blast["deployer"]["assumed"] == {
        "vault.read_secret": ["`deployer-reads`: its condition holds", "`no-prod`: its condition does not hold"]}
    assert "vault.list" not in blast["deployer"].get("assumed", {})  # found with a matching resource: certain
    text = report.to_text()
    assert "2 identities can reach sensitive tools" in text
    assert ("vault.read_secret may be allowed, assuming `deployer-reads`: its condition holds; "
            "`no-prod`: its condition does not hold") in text


def test_html_timeline_draws_a_lane_per_agent_and_marks_findings():
    swarm = generate(agents=4, tasks=3, seed=2, drift=0.3, sharing=0.2)
    policies = nhipl.loads(swarm.policy_text)
    report = simulate(swarm.events, policies)
    root = ET.fromstring(render_html(report))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    svg = next(e for e in root.iter("{http://www.w3.org/2000/svg}svg") if e.get("id") == "timeline")
    lanes = svg.findall("svg:g[@class='lane']", ns)
    steps = [e for e in svg if (e.get("class") or "").startswith("step")]
    agents = {e["agent"] for e in swarm.events if e["kind"] in ("tool_call", "delegate")}
    assert {lane.get("data-agent") for lane in lanes} == agents
    assert len(steps) == report.summary["steps"]
    step_lines = {int(e.get("data-line")) for e in steps}
    finding_lines = {f.line for f in report.findings if f.line in step_lines}
    assert finding_lines, "the swarm plants findings on steps"
    assert {int(e.get("data-line")) for e in steps if "finding" in e.get("class")} == finding_lines
    denied = {f.line for f in report.findings if (f.kind, f.subkind) == ("overreach", "denied")}
    assert all(e.get("fill") == "#c62828" for e in steps if int(e.get("data-line")) in denied)
