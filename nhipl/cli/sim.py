"""``nhipl simulate``, ``nhipl generate`` and ``nhipl graph``: wiring to :mod:`nhipl.simulator`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import click

from ..loader import load
from ..simulator import APPROVAL_SCOPES, DEFAULT_GRACE, Distribution, LatencyModel, simulate
from ..simulator.html import render_html
from ..simulator.swarm import LABELS, TOPOLOGIES, SwarmStream, swarm_config
from ..source import check_inside, refuse_existing, write_atomically
from ._base import EXIT_FINDINGS, EXIT_OK, BadFile, NumberRange, handle_errors, main


def _distribution(option: str, text: str | None, default: Distribution) -> Distribution:
    if text is None:
        return default
    try:
        return Distribution.parse(text)
    except ValueError as err:
        raise click.BadParameter(f"{err}\n  help: write a distribution like `lognormal:120,0.8`, `exp:60`, "
                                 "`uniform:10,300` or `const:30`", param_hint=f"'{option}'") from None


class _Progress:
    """A progress bar on stderr, by bytes of the trace read (only on a terminal, for long traces)."""

    LONG = 4 << 20  # bytes

    def __init__(self):
        self.bar = None

    def __call__(self, reader, events: int) -> None:
        if reader.total_bytes is None or reader.total_bytes < self.LONG:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=reader.total_bytes, label="replaying", file=sys.stderr,
                                         show_pos=False, show_percent=True, show_eta=True)
            self.bar.__enter__()
        self.bar.update(reader.bytes_read - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


_FORCE = click.option("--force", is_flag=True, help="Replace output files that already exist.")


class FindingKinds(click.ParamType):
    """`KIND[/SUBKIND],...` of the simulator's finding kinds: `overreach`, `revocation_gap/foreign_holder`."""

    name = "KIND[/SUBKIND],..."

    def convert(self, value, param, ctx):
        if isinstance(value, frozenset):
            return value
        from ..simulator import FINDING_KINDS

        known = [*FINDING_KINDS, *(f"{k}/{s}" for k, subs in FINDING_KINDS.items() for s in subs)]
        wanted = set()
        for item in (part.strip() for part in value.split(",")):
            if item not in known:
                from ..errors import did_you_mean

                hint = did_you_mean(item, known)
                self.fail(f"unknown finding kind `{item}`" + (f"; {hint}" if hint else f"; expected one of {', '.join(known)}"),
                          param, ctx)
            wanted.add(item)
        return frozenset(wanted)


def _fails(report, wanted: frozenset) -> bool:
    return any(f.kind in wanted or f"{f.kind}/{f.subkind}" in wanted for f in report.findings)


@main.command("simulate")
@click.argument("trace", type=click.Path())
@click.option("-p", "--policies", "policy_paths", multiple=True, type=click.Path(),
              help="Policy file or folder (repeatable). Without it, the trace is replayed undecided: "
                   "revocation, attribution and latency findings only.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write report.txt|json|html (and graph.dot) into this folder instead of stdout.")
@click.option("--skip-bad-lines", is_flag=True, help="Count and report bad trace lines instead of stopping at the first.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the modelled latency.")
@click.option("--approval-wait", default=None, metavar="DIST",
              help="Human approval wait in seconds (default lognormal:120,0.8).")
@click.option("--issue-delay", default=None, metavar="DIST",
              help="Credential issuance delay in seconds (default lognormal:0.25,0.5).")
@click.option("--grace", type=NumberRange(min=0.0), default=DEFAULT_GRACE, show_default=True,
              help="Seconds a credential may stay valid after its task ends before it is a finding.")
@click.option("--approvals", type=click.Choice(APPROVAL_SCOPES), default="call", show_default=True,
              help="What an `approval` event covers: the next call of its tool (`call`, as enforcement does) "
                   "or every later call of it in the task (`task`).")
@click.option("--requests-out", type=click.Path(dir_okay=False), default=None,
              help="Write the request built for each step to FILE, JSON lines in trace order (for `nhipl eval -r FILE`).")
@click.option("--emit-tests", type=click.Path(dir_okay=False), default=None,
              help="Write a `test` block per step finding to FILE (a `*_test.nhipl` file pinning today's decisions).")
@click.option("--wide", is_flag=True, help="Text format: print identities and details whole, not clipped to a terminal's width.")
@click.option("--fail-on", "fail_on", type=FindingKinds(), default=None,
              help="Exit 1 when the report has findings of these kinds, e.g. `overreach,revocation_gap/foreign_holder`.")
@click.option("--exact", is_flag=True, help="Compute the blast radius over every request with the SMT solver (needs `nhipl[analyze]`).")
@_FORCE
@handle_errors
def simulate_cmd(trace, policy_paths, fmt, out_dir, skip_bad_lines, seed, approval_wait, issue_delay, grace, approvals,
                 requests_out, emit_tests, wide, fail_on, force, exact):
    """Replay TRACE (JSON lines) against POLICIES and report overreach,
    revocation gaps, attribution gaps and latency.

    Exit 0; with --fail-on, 1 when findings of those kinds exist; 2 on bad input."""
    defaults = LatencyModel()
    latency = LatencyModel(_distribution("--approval-wait", approval_wait, defaults.approval_wait),
                           _distribution("--issue-delay", issue_delay, defaults.credential_issue))
    policies = load(list(policy_paths)) if policy_paths else None
    if os.path.isdir(trace):
        raise BadFile(trace, "is a folder, not a trace file")
    outputs: list[str] = []
    if out_dir is not None:
        outputs = [os.path.join(out_dir, f"report.{'txt' if fmt == 'text' else fmt}"), os.path.join(out_dir, "graph.dot")]
        if os.path.isdir(out_dir):
            for path in outputs:
                check_inside(out_dir, path)
    refuse_existing(*outputs, requests_out, emit_tests, force=force)
    progress = _Progress() if sys.stderr.isatty() and trace != "-" else None
    source = sys.stdin.buffer if trace == "-" else trace
    try:
        from ..simulator import read_trace

        reader = read_trace(source, skip_bad_lines=skip_bad_lines, name="<stdin>" if trace == "-" else None)
        steps: list[tuple[int, dict]] = []
        keep = steps.append if (requests_out or emit_tests) else None
        report = simulate(reader, policies, seed=seed, latency=latency, revocation_grace=grace, progress=progress,
                          approvals=approvals, exact=exact, on_request=(lambda line, request: keep((line, _written(request)))) if keep else None)
    finally:
        if progress is not None:
            progress.close()
    if requests_out:
        write_atomically(requests_out, "".join(json.dumps(request, ensure_ascii=False) + "\n" for _, request in steps),
                         force=force)
    if emit_tests:
        from ..simulator.emit import emit_tests as render_tests

        write_atomically(emit_tests, render_tests(report, dict(steps), policies, source=reader.name,
                                                  imports=_imports_from(emit_tests, policy_paths)), force=force)
    if fmt == "json":
        text = json.dumps(report.to_dict(), indent=2) + "\n"
    elif fmt == "html":
        text = render_html(report)
    else:
        text = report.to_text(wide=wide)
    if out_dir is None:
        click.echo(text, nl=False)
    else:
        try:
            os.makedirs(out_dir, exist_ok=True)
        except OSError as err:
            raise BadFile(out_dir, f"cannot create folder: {(err.strerror or str(err)).lower()}") from None
        path, dot_path = outputs
        for target, content in ((path, text), (dot_path, report.to_dot())):
            check_inside(out_dir, target)
            write_atomically(target, content, force=force)
        click.echo(f"wrote {path}", err=True)
    sys.exit(EXIT_FINDINGS if fail_on and _fails(report, fail_on) else EXIT_OK)


def _written(request: dict) -> dict:
    """``request`` as it is written out: its history (a view of the task's steps) as a list."""
    history = request.get("history")
    return request if history is None or history.__class__ is list else {**request, "history": list(history)}


def _imports_from(test_file: str, policy_paths) -> tuple[str, ...]:
    """`import` paths, relative to ``test_file``'s folder, of the policy files given with -p."""
    folder = os.path.dirname(os.path.abspath(test_file))
    files = []
    for path in policy_paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".nhipl") and not n.endswith("_test.nhipl"))
        else:
            files.append(path)
    out = []
    for path in files:
        rel = os.path.relpath(os.path.abspath(path), folder)
        out.append(rel if rel.startswith("..") else "./" + rel)
    return tuple(out)


def _rate_option(name: str):
    flag = "--" + name.replace("_", "-")
    return click.option(flag, name, type=NumberRange(0.0, 1.0), default=0.0, show_default=True,
                        help=f"Rate of planted `{name}` faults.")


def _rate_options(func):
    for name in reversed(list(LABELS)):
        func = _rate_option(name)(func)
    return func


@main.command("generate")
@click.option("--agents", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--tasks", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=3, show_default=True, help="Tool calls per agent per task (about).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--topology", type=click.Choice(TOPOLOGIES), default="hierarchy", show_default=True)
@click.option("--max-depth", type=click.IntRange(min=0), default=3, show_default=True)
@_rate_options
@click.option("--policy-out", type=click.Path(dir_okay=False), default=None,
              help="Write the policy granting exactly the intended behaviour to this file.")
@click.option("--labels-out", type=click.Path(dir_okay=False), default=None,
              help="Write the planted faults (JSON lines: line, label, expect) to this file.")
@click.option("--from-policy", "from_policy", multiple=True, type=click.Path(),
              help="Cast the swarm from this policy (repeatable): its identities, tools and intents, each identity "
                   "calling what the policy lets it do. --agents and --topology are then unused.")
@_FORCE
@handle_errors
def generate_cmd(agents, tasks, steps, seed, topology, max_depth, policy_out, labels_out, from_policy, force, **rates):
    """A seeded synthetic swarm trace as JSON lines on stdout. Exit 0."""
    if policy_out and labels_out and os.path.abspath(policy_out) == os.path.abspath(labels_out):
        raise BadFile(labels_out, "`--labels-out` names the same file as `--policy-out`")
    for path in (policy_out, labels_out):  # fail before the trace is written, not after
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise BadFile(path, "cannot write file: no such folder")
    refuse_existing(policy_out, labels_out, force=force)
    cast = None
    if from_policy:
        from ..simulator.cast import cast_from_policy

        try:
            cast = cast_from_policy(load(list(from_policy)))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--from-policy") from None
    config = swarm_config(agents, tasks, topology, max_depth, seed, steps, cast=cast, **rates)
    stream = SwarmStream(config)
    out = sys.stdout
    dumps = json.dumps
    batch = []
    for event in stream:
        batch.append(dumps(event, separators=(",", ":")))
        if len(batch) >= 4096:
            out.write("\n".join(batch) + "\n")
            batch = []
    if batch:
        out.write("\n".join(batch) + "\n")
    out.flush()
    if policy_out:
        write_atomically(policy_out, stream.policy_text, force=force)
    if labels_out:
        write_atomically(labels_out, "".join(json.dumps(p.to_dict()) + "\n" for p in stream.planted), force=force)
    sys.exit(EXIT_OK)


@main.command("graph")
@click.argument("trace", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="FILE.svg, FILE.png or FILE.dot")
@click.option("-p", "--policies", "policy_paths", multiple=True, type=click.Path(),
              help="Policies to decide each step with (findings are drawn in red).")
@click.option("--skip-bad-lines", is_flag=True)
@_FORCE
@handle_errors
def graph_cmd(trace, output, policy_paths, skip_bad_lines, force):
    """Draw TRACE (or - for stdin) as a graph. DOT text always; SVG or PNG through graphviz `dot`. Exit 0."""
    base, ext = os.path.splitext(output)
    ext = ext.lower()
    if ext not in (".svg", ".png", ".dot"):
        raise click.BadParameter(f"unknown output format `{ext or output}`: name a .svg, .png or .dot file",
                                 param_hint="'-o' / '--output'")
    refuse_existing(output, force=force)
    policies = load(list(policy_paths)) if policy_paths else None
    if trace == "-":
        from ..simulator import read_trace

        trace = read_trace(sys.stdin.buffer, skip_bad_lines=skip_bad_lines, name="<stdin>")
    report = simulate(trace, policies, skip_bad_lines=skip_bad_lines)
    dot_text = report.to_dot()
    if ext == ".dot":
        write_atomically(output, dot_text, force=force)
        click.echo(f"wrote {output}", err=True)
        sys.exit(EXIT_OK)
    dot = shutil.which("dot")
    if dot is None:
        dot_path = base + ".dot"
        if os.path.exists(dot_path):
            raise BadFile(output, f"graphviz `dot` is not installed, and {dot_path} exists, so nothing was written\n"
                                            f"  help: install graphviz, or write the DOT text with `-o {dot_path}`")
        write_atomically(dot_path, dot_text)
        click.echo(f"graphviz `dot` is not installed, so {output} was not drawn; wrote {dot_path}\n"
                   f"  help: install graphviz (`apt-get install graphviz`) and run `dot -T{ext[1:]} {dot_path} -o {output}`",
                   err=True)
        sys.exit(EXIT_OK)
    result = subprocess.run([dot, f"-T{ext[1:]}"], input=dot_text.encode("utf-8"), capture_output=True, check=False)
    if result.returncode != 0:
        dot_path = base + ".dot"
        if not os.path.lexists(dot_path):
            write_atomically(dot_path, dot_text)
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise BadFile(dot_path, "graphviz `dot` failed: " + (message[0] if message else f"exit {result.returncode}"))
    write_atomically(output, result.stdout, force=force)
    click.echo(f"wrote {output}", err=True)
    sys.exit(EXIT_OK)
