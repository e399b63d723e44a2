"""``nhipl analyze``: diff, prove, rules and reach, answered exactly by an SMT solver."""

from __future__ import annotations

import json
import sys

import click

from ._base import EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_OK, BadFile, BadInput, handle_errors, main

EXIT_INTERNAL = 3


@main.group()
def analyze() -> None:
    """Exact answers about every request, with an SMT solver (needs `nhipl[analyze]`).

    Exit codes: 0 nothing to report, 1 a difference, refutation or finding (or the solver
    gave up within --timeout), 2 bad input, 3 an internal error (the solver and the
    evaluator disagree on a request: please report it).
    """


def _options(func):
    func = click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)(func)
    func = click.option("--chain-bound", type=click.IntRange(0, 8), default=3, show_default=True, help="Longest delegation chain considered.")(func)
    func = click.option("--list-bound", type=click.IntRange(1, 16), default=3, show_default=True, help="Most items of a list-valued request attribute considered.")(func)
    func = click.option("--timeout", type=click.FloatRange(0.1, 86400), default=60.0, show_default=True, help="Seconds the solver may spend per question.")(func)
    return func


def _engine():
    """The analysis package; a clear message when the solver is not installed."""
    try:
        from .. import analyze as engine
    except ImportError as err:
        if "z3" not in str(err):
            raise
        raise BadInput("<analyze>:1:1", "the SMT solver is not installed; run `pip install 'nhipl[analyze]'`") from None
    return engine


def _run(func):
    """Internal errors (exit 3) and solver time-outs (exit 1) for every subcommand."""

    @handle_errors
    def wrapper(*args, **kwargs):
        engine = _engine()
        try:
            return func(engine, *args, **kwargs)
        except engine.AnalysisBug as bug:
            click.echo(f"internal error: {bug.message}", err=True)
            if bug.request is not None:
                click.echo("request: " + json.dumps(bug.request, sort_keys=True), err=True)
            click.echo("this is a bug in nhipl's analysis, not an answer; please report it", err=True)
            sys.exit(EXIT_INTERNAL)
        except engine.Undecided as why:
            click.echo(f"undecided: {why}", err=True)
            sys.exit(EXIT_FINDINGS)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _bounds(engine, chain_bound: int, list_bound: int):
    return engine.Bounds(chain=chain_bound, list_items=list_bound)


def _load(paths) -> object:
    from ..loader import load

    return load(list(paths))


def _emit_json(data: dict) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _assumption_lines(assumptions: list[str]) -> list[str]:
    return ["assuming " + "; ".join(assumptions)] if assumptions else []


def _request(request: dict) -> str:
    """One request on one line; characters a terminal cannot take (lone surrogates) escaped."""
    text = json.dumps(request, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(request)
    return text


# ---- diff ------------------------------------------------------------------------------------


@analyze.command("diff")
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--allow-widening", is_flag=True, help="Exit 0 when every change allows more (or for longer).")
@click.option("--allow-narrowing", is_flag=True, help="Exit 0 when every change allows less.")
@click.option("--max", "limit", type=click.IntRange(1), default=20, show_default=True, help="Most kinds of difference listed per direction.")
@_options
@_run
def diff_cmd(engine, old, new, allow_widening, allow_narrowing, limit, output, chain_bound, list_bound, timeout) -> None:
    """What NEW decides differently from OLD: each kind of request with an example and both decisions.

    OLD and NEW are policy files or folders. Exit 0 when equivalent, 1 when anything changes
    (unless only widening with --allow-widening, or only narrowing with --allow-narrowing).
    """
    result = engine.diff(_load([old]), _load([new]), bounds=_bounds(engine, chain_bound, list_bound), timeout=timeout, limit=limit)
    if output == "json":
        _emit_json(
            {
                "equivalent": result.equivalent,
                "widening": result.widening,
                "narrowing": result.narrowing,
                "complete": result.complete,
                "assumptions": result.assumptions,
                "differences": [
                    {"direction": d.direction, "request": d.request, "old": d.old.to_dict(), "new": d.new.to_dict()}
                    for d in result.differences
                ],
            }
        )
    else:
        if result.equivalent:
            click.echo("equivalent: no request is decided differently")
        for d in result.differences:
            click.echo(f"{d.direction}: {_effect(d.old)} -> {_effect(d.new)}")
            click.echo(f"  request: {_request(d.request)}")
        if not result.complete:
            click.echo(f"(more kinds of difference than --max {limit}; listing cut short)")
        for line in _assumption_lines(result.assumptions):
            click.echo(line)
    accepted = (not result.widening or allow_widening) and (not result.narrowing or allow_narrowing)
    sys.exit(EXIT_OK if accepted else EXIT_FINDINGS)


def _effect(decision) -> str:
    text = decision.effect
    if decision.rules:
        text += " by " + ", ".join(f"`{r}`" for r in decision.rules)
    if decision.credential_ttl is not None:
        text += f" (ttl {decision.credential_ttl}s)"
    return text


# ---- prove -----------------------------------------------------------------------------------


@analyze.command("prove")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_options
@_run
def prove_cmd(engine, paths, output, chain_bound, list_bound, timeout) -> None:
    """Prove each `invariant` of the test files in PATHS, or refute it with a request.

    Exit 0 when every invariant is proved, 1 when one is refuted.
    """
    from ..testing.runner import declaration_key, discover, load_test_file

    files = discover(paths)
    if not files:
        raise BadFile(paths[0], "no `*_test.nhipl` files found")
    bounds = _bounds(engine, chain_bound, list_bound)
    results, done = [], set()
    for path in files:
        policies = load_test_file(path)
        for module, inv in policies.invariants:
            key = declaration_key(module, inv)
            if key in done:
                continue
            done.add(key)
            results.append(engine.prove(policies, inv, source=module.source, bounds=bounds, timeout=timeout))
    if output == "json":
        _emit_json(
            {
                "invariants": [
                    {
                        "name": r.invariant.name,
                        "source": r.source,
                        "line": r.invariant.span.line if r.invariant.span else None,
                        "proved": r.holds,
                        "assumptions": r.assumptions,
                        "counterexample": r.counterexample,
                        "decision": r.decision.to_dict() if r.decision is not None else None,
                    }
                    for r in results
                ]
            }
        )
    else:
        for r in results:
            where = f"{r.source}:{r.invariant.span.line}" if r.invariant.span else r.source
            if r.holds:
                click.echo(f"proved   {where}: {r.invariant.name}")
                for line in _assumption_lines(r.assumptions):
                    click.echo("  " + line)
            else:
                click.echo(f"REFUTED  {where}: {r.invariant.name}")
                click.echo(f"  request: {_request(r.counterexample)}")
                click.echo(f"  decision: {_effect(r.decision)}")
        if not results:
            click.echo("no invariants found")
        proved = sum(r.holds for r in results)
        click.echo(f"{proved} proved, {len(results) - proved} refuted")
    sys.exit(EXIT_OK if all(r.holds for r in results) else EXIT_FINDINGS)


# ---- rules -----------------------------------------------------------------------------------


@analyze.command("rules")
@click.argument("policies", nargs=-1, required=True, type=click.Path())
@_options
@_run
def rules_cmd(engine, policies, output, chain_bound, list_bound, timeout) -> None:
    """Rules that can never match, never determine a decision, or whose removal changes nothing.

    Exit 0 when there are none, 1 otherwise.
    """
    result = engine.rules(_load(policies), bounds=_bounds(engine, chain_bound, list_bound), timeout=timeout)
    if output == "json":
        _emit_json(
            {
                "rules": result.rules,
                "assumptions": result.assumptions,
                "findings": [
                    {"rule": f.rule.id, "kind": f.kind, "message": f.message, **_location(f.rule)} for f in result.findings
                ],
            }
        )
    else:
        for f in result.findings:
            loc = _location(f.rule)
            click.echo(f"{loc['source']}:{loc['line']}:{loc['column']}: {f.kind}: rule `{f.rule.id}`: {f.message}")
        click.echo(f"{len(result.findings)} findings in {result.rules} rules")
        for line in _assumption_lines(result.assumptions):
            click.echo(line)
    sys.exit(EXIT_FINDINGS if result.findings else EXIT_OK)


def _location(rule) -> dict:
    span = rule.span
    return {"source": span.source if span else "<policies>", "line": span.line if span else 1, "column": span.column if span else 1}


# ---- reach -----------------------------------------------------------------------------------


@analyze.command("reach")
@click.argument("policies", nargs=-1, required=True, type=click.Path())
@click.option("--agent", "agent", required=True, help="The identity (SPIFFE ID) to analyse.")
@click.option("--depth", type=click.IntRange(0, 8), default=None, help="Delegations followed (default: the chain bound).")
@_options
@_run
def reach_cmd(engine, policies, agent, depth, output, chain_bound, list_bound, timeout) -> None:
    """What the identity --agent can be allowed to do: each permit that can allow it, with a request,
    and the same for every declared agent it can delegate to. Exit 0."""
    result = engine.reach(_load(policies), agent, bounds=_bounds(engine, chain_bound, list_bound), timeout=timeout, depth=depth)
    if output == "json":
        _emit_json({"assumptions": result.assumptions, "reach": _reach_json(result.root)})
    else:
        _reach_text(result.root, 0)
        for line in _assumption_lines(result.assumptions):
            click.echo(line)
    sys.exit(EXIT_OK)


def _reach_json(node) -> dict:
    return {
        "agent": node.agent,
        "chain": list(node.chain),
        "grants": [
            {
                "rule": g.rule.id,
                "action": ", ".join(g.rule.actions),
                "targets": list(g.rule.targets),
                "resources": list(g.rule.resources) if g.rule.resources is not None else None,
                "task": g.rule.task_intent,
                "conditions": _conditions(g.rule),
                "credential_ttl": g.decision.credential_ttl,
                "request": g.request,
            }
            for g in node.grants
        ],
        "delegations": [_reach_json(d) for d in node.delegations],
    }


def _conditions(rule) -> list[str]:
    from ..fmt import format_expr as expression

    out = []
    if rule.when is not None:
        out.append("when " + expression(rule.when))
    if rule.unless is not None:
        out.append("unless " + expression(rule.unless))
    return out


def _reach_text(node, level: int) -> None:
    pad = "  " * level
    via = f" (delegated by {' -> '.join(node.chain)})" if node.chain else ""
    click.echo(f"{pad}{node.agent}{via}:")
    if not node.grants:
        click.echo(f"{pad}  can be allowed nothing")
    for g in node.grants:
        rule = g.rule
        text = f"{pad}  {', '.join(rule.actions)} {', '.join(rule.targets)}"
        if rule.resources is not None:
            text += " on " + ", ".join(rule.resources)
        if rule.task_intent is not None:
            text += f" in task `{rule.task_intent}`"
        text += f"  by `{rule.id}`"
        click.echo(text)
        for cond in _conditions(rule):
            click.echo(f"{pad}      {cond}")
        click.echo(f"{pad}      e.g. {_request(g.request)}")
    for d in node.delegations:
        _reach_text(d, level + 1)


__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERNAL", "analyze"]
