"""The questions: ``diff``, ``prove``, ``rules`` and ``reach``.

Each builds the formulas of :mod:`nhipl.analyze.encode` over one request space,
asks the solver, and checks every request it reports with the evaluator.
Answers carry ``assumptions``: the bounds and constructs under which they hold
(for example "delegation chains of at most 3 identities").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import z3

from .. import ast as A
from ..decision import ALLOW, RESTRICTIVENESS, Decision
from .encode import EFFECT_CODE, EFFECT_NAME, Identity, PolicyEncoding, SymDecision
from .solve import (
    DEFAULT_TIMEOUT,
    AnalysisBug,
    Session,
    changed_rules,
    confirming,
    evaluate_checked,
    region,
    slice_rules,
)
from .space import Bounds, RequestSpace
from .symbolic import string_literal


def assumptions(space: RequestSpace, policies_list) -> list[str]:
    """What an answer over ``space`` assumes about requests, in words."""
    out = []
    if any(p.attenuate or _reads_delegation(p) for p in policies_list):
        out.append(f"delegation chains of at most {space.bounds.chain} identities")
    if any(_reads_lists(p) for p in policies_list):
        out.append(f"list-valued request attributes of at most {space.bounds.list_items} items")
    out.extend(sorted(space.notes))
    return out


def _conditions(policies):
    for rule in policies.rules:
        yield rule.when
        yield rule.unless
    for _, invariant in policies.invariants:
        yield invariant.when
        yield invariant.unless


def _reads_delegation(policies) -> bool:
    return any(
        isinstance(node, A.Path) and node.root == "delegation"
        for cond in _conditions(policies)
        if cond is not None
        for node in A.iter_exprs(cond)
    )


def _reads_lists(policies) -> bool:
    if any(isinstance(rule.subject, A.AgentGroup) for rule in policies.rules):
        return True
    return any(
        isinstance(node, (A.In, A.Compare)) for cond in _conditions(policies) if cond is not None for node in A.iter_exprs(cond)
    )


# ---- diff ------------------------------------------------------------------------------------

WIDENING, NARROWING = "widening", "narrowing"


def direction(old: Decision, new: Decision) -> str | None:
    """How ``new`` differs from ``old`` for one request: widening (more is allowed, or
    for longer), narrowing, or None when effect and credential ttl are the same."""
    if old.effect != new.effect:
        return WIDENING if RESTRICTIVENESS[new.effect] < RESTRICTIVENESS[old.effect] else NARROWING
    if old.effect == ALLOW and old.credential_ttl != new.credential_ttl:
        if new.credential_ttl is None:
            return WIDENING
        if old.credential_ttl is None:
            return NARROWING
        return WIDENING if new.credential_ttl > old.credential_ttl else NARROWING
    return None


@dataclass
class Difference:
    request: dict
    old: Decision
    new: Decision
    direction: str


@dataclass
class DiffResult:
    differences: list[Difference]
    assumptions: list[str]
    complete: bool = True  # False when --max cut the listing short
    widening: bool = False
    narrowing: bool = False

    @property
    def equivalent(self) -> bool:
        return not (self.widening or self.narrowing)


def _sym_direction(old: SymDecision, new: SymDecision, which: str) -> z3.BoolRef:
    allow = EFFECT_CODE[ALLOW]
    both_allow = z3.And(old.effect == allow, new.effect == allow)
    if which == WIDENING:
        ttl = z3.And(both_allow, old.has_ttl, z3.Or(z3.Not(new.has_ttl), new.ttl > old.ttl))
        return z3.Or(new.effect < old.effect, ttl)
    ttl = z3.And(both_allow, new.has_ttl, z3.Or(z3.Not(old.has_ttl), new.ttl < old.ttl))
    return z3.Or(new.effect > old.effect, ttl)


def diff(old, new, *, bounds: Bounds = Bounds(), timeout: float = DEFAULT_TIMEOUT, limit: int = 20, restrict=None) -> DiffResult:
    """Every kind of request ``old`` and ``new`` decide differently (effect or ttl).

    ``restrict``, when given, is called with the request space once the formulas are
    built and returns constraints that narrow the question to some requests."""
    space = RequestSpace(bounds)
    delta = changed_rules(old, new)
    if delta is not None and not delta:
        return DiffResult([], assumptions(space, (old, new)))
    old_rules, new_rules = old.rules, new.rules
    scope = None
    if delta is not None:
        scopes = [(action, r.targets) for r in delta for action in r.actions]
        scope = region(space, scopes)
        old_rules, new_rules = slice_rules(old.rules, scopes), slice_rules(new.rules, scopes)
    a = PolicyEncoding(old, space, old_rules).decision()
    b = PolicyEncoding(new, space, new_rules).decision()
    session = Session(space, timeout)
    if scope is not None:
        session.add(scope)
    if restrict is not None:
        session.add(*restrict(space))
    result = DiffResult([], [])
    session.seal()
    for which in (WIDENING, NARROWING):
        session.solver.push()
        session.add(_sym_direction(a, b, which))
        count = 0
        while True:
            model = session.check(f"diff ({which})")
            if model is None:
                break
            if count >= limit:
                result.complete = False
                break
            with confirming(space, f"diff ({which})"):
                diff_ = _confirm_difference(old, new, space, model, a, b, which)
            result.differences.append(diff_)
            setattr(result, which, True)
            count += 1
            session.add(z3.Not(_kind(model, a, b)))
        session.solver.pop()
    result.assumptions = assumptions(space, (old, new))
    return result


def _kind(model: z3.ModelRef, a: SymDecision, b: SymDecision) -> z3.BoolRef:
    """The class of the request ``model`` describes: both effects, both sets of
    determining rules, and how the ttls compare."""
    conds = []
    for d in (a, b):
        conds.append(d.effect == model.eval(d.effect, model_completion=True))
        for det in d.determining.values():
            conds.append(det == model.eval(det, model_completion=True))
    both_allow = z3.And(a.effect == EFFECT_CODE[ALLOW], b.effect == EFFECT_CODE[ALLOW])
    ttl_rel = [z3.And(both_allow, x) for x in (b.has_ttl, a.has_ttl, b.ttl > a.ttl, b.ttl < a.ttl)]
    conds += [c == model.eval(c, model_completion=True) for c in ttl_rel]
    return z3.And(conds)


def _confirm_difference(old, new, space, model, a: SymDecision, b: SymDecision, which: str) -> Difference:
    request = space.request(model)
    d_old = evaluate_checked(old, request, "diff")
    d_new = evaluate_checked(new, request, "diff")
    _agree(d_old, a, model, request, "the old policies")
    _agree(d_new, b, model, request, "the new policies")
    found = direction(d_old, d_new)
    if found != which:
        raise AnalysisBug(f"diff: the solver reported a {which} change, the evaluator finds {found or 'none'}", request)
    return Difference(request, d_old, d_new, which)


def _agree(decision: Decision, sym: SymDecision, model, request: dict, what: str) -> None:
    effect = EFFECT_NAME[model.eval(sym.effect, model_completion=True).as_long()]
    if effect != decision.effect:
        raise AnalysisBug(f"{what}: the encoding decides {effect}, the evaluator {decision.effect}", request)
    if decision.effect == ALLOW:
        has = z3.is_true(model.eval(sym.has_ttl, model_completion=True))
        ttl = model.eval(sym.ttl, model_completion=True) if has else None
        if has != (decision.credential_ttl is not None) or (has and _number(ttl) != decision.credential_ttl):
            raise AnalysisBug(f"{what}: the encoding gives credential ttl {_number(ttl) if has else None}, the evaluator {decision.credential_ttl}", request)


def _number(value):
    from fractions import Fraction

    frac = Fraction(value.as_fraction())
    return frac.numerator if frac.denominator == 1 else float(frac)


# ---- prove ---------------------------------------------------------------------------------


@dataclass
class ProofResult:
    invariant: A.Invariant
    source: str
    holds: bool
    assumptions: list[str]
    counterexample: dict | None = None
    decision: Decision | None = None


def invariant_rule(policies, invariant: A.Invariant) -> A.Rule:
    """The invariant's scope as a forbid rule: in scope exactly when that rule matches."""
    from ..testing.invariants import scope_policies

    return scope_policies(policies, invariant).rules[0]


def prove(
    policies, invariant: A.Invariant, *, source: str = "", bounds: Bounds = Bounds(), timeout: float = DEFAULT_TIMEOUT, restrict=None
) -> ProofResult:
    """Prove that no request in the invariant's scope gets its forbidden effect, or find one
    (``restrict`` as for :func:`diff`)."""
    space = RequestSpace(bounds)
    scopes = [(invariant.action, invariant.targets)]
    enc = PolicyEncoding(policies, space, slice_rules(policies.rules, scopes))
    decision = enc.decision()
    own = enc.identities()[0]
    scope_rule = enc.rule(invariant_rule(policies, invariant), own)
    session = Session(space, timeout)
    session.add(region(space, scopes), scope_rule.matched_as_gate, decision.effect == EFFECT_CODE[invariant.effect])
    if restrict is not None:
        session.add(*restrict(space))
    model = session.check(f"invariant `{invariant.name}`")
    notes = assumptions(space, (policies,))
    if model is None:
        return ProofResult(invariant, source, True, notes)
    def in_scope(request: dict, _actual: Decision) -> None:
        if not _in_scope(policies, invariant, request):
            raise AnalysisBug(f"invariant `{invariant.name}`: the reported request is not in the invariant's scope", request)

    request, actual = _confirmed(policies, space, decision, model, f"invariant `{invariant.name}`", "prove", in_scope)
    return ProofResult(invariant, source, False, notes, request, actual)


def _in_scope(policies, invariant: A.Invariant, request: dict) -> bool:
    """The invariant's scope, decided by the evaluator, as ``nhipl test`` decides it."""
    from ..testing.invariants import in_scope, scope_policies

    return in_scope(scope_policies(policies, invariant), request)


# ---- rules ---------------------------------------------------------------------------------

NEVER_MATCHES, NEVER_DECIDES, REDUNDANT = "never-matches", "never-decides", "redundant"


@dataclass
class RuleFinding:
    rule: A.Rule
    kind: str  # NEVER_MATCHES | NEVER_DECIDES | REDUNDANT
    message: str
    covered_by: tuple[str, ...] = ()


@dataclass
class RulesResult:
    findings: list[RuleFinding]
    assumptions: list[str]
    rules: int = 0


def rules(policies, *, bounds: Bounds = Bounds(), timeout: float = DEFAULT_TIMEOUT, only=None) -> RulesResult:
    """Rules that can never match, never decide, or whose removal changes no decision
    (``only``: a predicate choosing the rules to examine; all by default)."""
    from ..policies import Policies

    findings: list[RuleFinding] = []
    notes: set[str] = set()
    for rule in policies.rules:
        if only is not None and not only(rule):
            continue
        scopes = [(action, rule.targets) for action in rule.actions]
        space = RequestSpace(bounds)
        enc = PolicyEncoding(policies, space, slice_rules(policies.rules, scopes))
        decision = enc.decision()
        session = Session(space, timeout)
        session.add(region(space, scopes))
        where = f"rule `{rule.id}`"
        if session.check(where, decision.matched[rule.id]) is None:
            findings.append(RuleFinding(rule, NEVER_MATCHES, "no request matches this rule"))
        elif session.check(where, decision.determining[rule.id]) is None:
            findings.append(RuleFinding(rule, NEVER_DECIDES, "the rule matches requests but never determines a decision"))
        else:
            rest = Policies([_without(m, rule) for m in policies.modules])
            if diff(policies, rest, bounds=bounds, timeout=timeout, limit=1).equivalent:
                findings.append(RuleFinding(rule, REDUNDANT, "removing this rule changes no decision's effect or credential ttl"))
        notes.update(space.notes)
    space = RequestSpace(bounds)
    space.notes = notes
    return RulesResult(findings, assumptions(space, (policies,)), len(policies.rules))


def _without(module: A.Module, rule: A.Rule) -> A.Module:
    items = []
    for item in module.items:
        if item is rule:
            continue
        if isinstance(item, A.TaskBlock) and any(r is rule for r in item.rules):
            item = A.TaskBlock(item.intent, tuple(r for r in item.rules if r is not rule), item.span)
        items.append(item)
    return A.Module(module.source, tuple(items), module.comments, module.path)


# ---- reach ---------------------------------------------------------------------------------


@dataclass
class Grant:
    """A permit the identity can be allowed by, with a request that shows it."""

    rule: A.Rule
    request: dict
    decision: Decision


@dataclass
class Reach:
    agent: str
    chain: tuple[str, ...]
    grants: list[Grant] = field(default_factory=list)
    delegations: list["Reach"] = field(default_factory=list)


@dataclass
class ReachResult:
    root: Reach
    assumptions: list[str]


def reach(policies, agent: str, *, bounds: Bounds = Bounds(), timeout: float = DEFAULT_TIMEOUT, depth: int | None = None) -> ReachResult:
    """What ``agent`` can be allowed to do, itself and, through the delegations the policies
    allow, as a delegatee (depth-first, up to ``depth`` delegations, at most the chain bound)."""
    depth = bounds.chain if depth is None else min(depth, bounds.chain)
    notes: set[str] = set()
    root = _reach(policies, agent, (), bounds, timeout, depth, notes)
    space = RequestSpace(bounds)
    space.notes = notes
    return ReachResult(root, assumptions(space, (policies,)))


def _reach(policies, agent: str, chain: tuple[str, ...], bounds, timeout, depth, notes) -> Reach:
    out = Reach(agent, chain)
    for rule in policies.rules:
        if rule.effect != A.PERMIT:
            continue
        found = _grant(policies, agent, chain, rule, bounds, timeout, notes)
        if found is not None:
            out.grants.append(found)
    if len(chain) >= depth:
        return out
    for delegatee in sorted(policies.agents):
        if delegatee == agent or delegatee in chain:
            continue
        if _may_delegate(policies, agent, chain, delegatee, bounds, timeout, notes):
            out.delegations.append(_reach(policies, delegatee, chain + (agent,), bounds, timeout, depth, notes))
    return out


def _confirmed(policies, space: RequestSpace, decision: SymDecision, model, what: str, question: str,
               check: Callable[[dict, Decision], None] | None = None) -> tuple[dict, Decision]:
    """The request ``model`` describes and the evaluator's decision on it, confirmed to agree
    with the encoding (and by ``check``, which raises :class:`AnalysisBug`); a disagreement
    where the encoding left a condition open is "undecided", else a bug."""
    request = space.request(model)
    with confirming(space, what):
        actual = evaluate_checked(policies, request, question)
        _agree(actual, decision, model, request, what)
        if check is not None:
            check(request, actual)
    return request, actual


def _identity_constraints(space: RequestSpace, agent: str, chain: tuple[str, ...]) -> list:
    """The principal is ``agent`` with its declared attributes only; the chain is ``chain``."""
    conds = [space.principal_id == string_literal(agent), space.chain_length == len(chain)]
    conds += [space.chain[i] == string_literal(c) for i, c in enumerate(chain)]
    return conds


def _no_request_attrs(space: RequestSpace) -> list:
    return [z3.Not(node.sym.present) for node in space.principal_attrs.values()]


def _grant(policies, agent, chain, rule, bounds, timeout, notes) -> Grant | None:
    space = RequestSpace(bounds)
    scopes = [(action, rule.targets) for action in rule.actions]
    decision = PolicyEncoding(policies, space, slice_rules(policies.rules, scopes)).decision()
    session = Session(space, timeout)
    session.add(region(space, scopes), *_identity_constraints(space, agent, chain), *_no_request_attrs(space))
    model = session.check(f"reach `{agent}`", decision.determining[rule.id], decision.effect == EFFECT_CODE[ALLOW])
    notes.update(space.notes)
    if model is None:
        return None
    def determined_by_rule(request: dict, actual: Decision) -> None:
        if rule.id not in actual.rules:
            raise AnalysisBug(f"reach: rule `{rule.id}` does not determine the evaluator's decision", request)

    request, actual = _confirmed(policies, space, decision, model, f"reach `{agent}`", "reach", determined_by_rule)
    return Grant(rule, request, actual)


def _may_delegate(policies, agent, chain, delegatee, bounds, timeout, notes) -> bool:
    space = RequestSpace(bounds)
    target = (("delegate", (delegatee,)),)
    decision = PolicyEncoding(policies, space, slice_rules(policies.rules, list(target))).decision()
    session = Session(space, timeout)
    session.add(
        space.action == string_literal("delegate"),
        space.tool == string_literal(delegatee),
        *_identity_constraints(space, agent, chain),
        *_no_request_attrs(space),
    )
    model = session.check(f"reach `{agent}`", decision.effect == EFFECT_CODE[ALLOW])
    notes.update(space.notes)
    if model is None:
        return False
    _confirmed(policies, space, decision, model, f"reach `{agent}` delegating to `{delegatee}`", "reach")
    return True


__all__ = [
    "DiffResult",
    "Difference",
    "Identity",
    "ProofResult",
    "Reach",
    "ReachResult",
    "RuleFinding",
    "RulesResult",
    "diff",
    "direction",
    "prove",
    "reach",
    "rules",
]


# ---- blast radius ----------------------------------------------------------------------------


def sensitive_reach(policies, agents, *, bounds: Bounds = Bounds(), timeout: float = DEFAULT_TIMEOUT) -> tuple[list[dict], list[str]]:
    """For each identity of ``agents``: the sensitive tools (a tool whose declared
    ``sensitive`` is true) that it, or a declared agent it can delegate to under the
    policies (up to the chain bound), can be allowed to call or asked approval for.
    Entries as the simulator's blast radius (``identity``, ``tools``, ``via``, ``reach``),
    each tool a confirmed example of its sensitive declaration. Also the assumptions."""
    notes: set[str] = set()
    patterns = [p for p, attrs in policies.tools if attrs.get("sensitive") is True]
    candidates = sorted(set(agents) | set(policies.agents))
    memo: dict[tuple, list[str]] = {}
    out = []
    for identity in sorted(set(agents)):
        reach_chain: dict[str, tuple[str, ...]] = {identity: ()}
        frontier = [identity]
        while frontier:
            nxt = []
            for agent in frontier:
                chain = reach_chain[agent]
                if len(chain) >= bounds.chain:
                    continue
                for other in candidates:
                    if other in reach_chain:
                        continue
                    if _may_delegate(policies, agent, chain, other, bounds, timeout, notes):
                        reach_chain[other] = chain + (agent,)
                        nxt.append(other)
            frontier = nxt
        via: dict[str, list[str]] = {}
        for agent, chain in reach_chain.items():
            key = (agent, chain if policies.attenuate else ())
            if key not in memo:
                memo[key] = _sensitive_tools(policies, agent, key[1], patterns, bounds, timeout, notes)
            for tool in memo[key]:
                via.setdefault(tool, []).append(agent)
        if via:
            out.append({"identity": identity, "tools": sorted(via), "via": {t: sorted(a) for t, a in sorted(via.items())}, "reach": sorted(reach_chain)})
    out.sort(key=lambda e: (-len(e["tools"]), e["identity"]))
    space = RequestSpace(bounds)
    space.notes = notes
    return out, assumptions(space, (policies,))


def _sensitive_tools(policies, agent, chain, patterns, bounds, timeout, notes) -> list[str]:
    def reports_a_sensitive_tool(request: dict, _actual: Decision) -> None:
        if policies.tool_attrs(request["tool"]).get("sensitive") is not True:
            raise AnalysisBug("blast radius: the reported tool is not sensitive", request)

    found = []
    for pattern in patterns:
        space = RequestSpace(bounds)
        scopes = [("call", (pattern,))]
        enc = PolicyEncoding(policies, space, slice_rules(policies.rules, scopes))
        decision = enc.decision()
        sensitive = enc.lookup(A.Path("tool", ("sensitive",)), enc.identities()[0]).value()
        session = Session(space, timeout)
        session.add(
            region(space, scopes),
            _bool_true(sensitive),
            decision.effect != EFFECT_CODE["deny"],
            *_identity_constraints(space, agent, chain),
            *_no_request_attrs(space),
        )
        model = session.check(f"blast radius of `{agent}`")
        notes.update(space.notes)
        if model is None:
            continue
        request, _ = _confirmed(policies, space, decision, model, f"blast radius of `{agent}`", "blast radius", reports_a_sensitive_tool)
        found.append(request["tool"])
    return found


def _bool_true(value) -> z3.BoolRef:
    from .symbolic import BOOL

    present = value.present if not isinstance(value.present, bool) else z3.BoolVal(value.present)
    return z3.And(present, value.is_kind(BOOL), value.b if value.b is not None else z3.BoolVal(False))
