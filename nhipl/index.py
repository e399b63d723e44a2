"""The rule index: which rules can apply to a request, found without scanning them all.

Rules are indexed by action, then by target: exact targets in a hash map, glob
targets by their literal prefix (looked up for every prefix of the tool name), by
their literal suffix when the prefix is empty, and the rest (``*``) in one short
list. The candidate rules for an (action, tool) pair are worked out once and
cached (a :class:`Bucket`); so are, for an (action, tool, principal id) triple when
the principal's attributes come from declarations, the rules of that bucket whose
subject the principal matches, in rule order (a :class:`Fit`). A decision is then
one hash lookup and a walk over one to three rules at any policy size.

Buckets of the tools rules name exactly, and the identities of declared agents,
are built when the index is; fits as requests arrive. Every cache holds at most
:data:`CACHE_LIMIT` entries and starts over when full; a request that brings its
own principal attributes is matched afresh.
"""

from __future__ import annotations

import sys
from itertools import islice
from operator import attrgetter
from typing import NamedTuple, assert_never

from . import ast as A
from .conditions import condition
from .decision import ALLOW, Decision, allow_lines
from .semantics import intent_guard
from .values import Glob, glob, glob_match

_new_tuple = tuple.__new__

# Each cache (buckets per action, identities, tools, fits) holds at most this many
# entries and starts over when full; 100,000 fits take about 20 MB.
CACHE_LIMIT = 100_000

# A rule's effect as the candidate loop compares it (small ints compare fastest).
FORBID, PERMIT, APPROVAL = 0, 1, 2
_KIND = {A.FORBID: FORBID, A.PERMIT: PERMIT, A.APPROVAL: APPROVAL}


class Identity(NamedTuple):
    """What a fit needs to know of an identity: its id, its attributes, its
    distinct groups and its credential ttl ceiling (or None)."""

    id: str
    principal: dict
    groups: tuple[str, ...]
    ceiling: int | float | None


class Fit:
    """An identity with the rules of one bucket whose subject it matches, in rule
    order (``candidates``). A slotted class: the evaluator reads it on every
    decision."""

    __slots__ = ("id", "principal", "candidates", "ceiling")

    def __init__(self, id: str, principal: dict, candidates: tuple["CompiledRule", ...], ceiling: int | float | None):
        self.id, self.principal, self.candidates, self.ceiling = id, principal, candidates, ceiling


class CompiledRule:
    """A rule as the evaluator reads it.

    ``want`` is the task intent the rule needs: its task scope's, or the one its
    ``when`` starts by testing (``guarded``). ``rest`` is the condition left to
    check once the request's intent equals ``want`` (``cond`` itself when there
    is no guard); ``cond`` is the whole condition."""

    # What the candidate loop reads comes first: at 10,000 rules the evaluator's
    # time goes to cache misses, and these fit one 64-byte line with the header.
    __slots__ = (
        "want", "rest", "resources", "kind", "allowed", "scoped",
        "cond", "index", "rule", "id", "ids", "intent", "ttl", "ttl_seconds", "because", "handed",
    )  # fmt: skip

    def __init__(self, index: int, rule: A.Rule, conditions: dict, handed: bool = False):
        self.index = index
        self.rule = rule
        self.id = rule.id
        self.kind = _KIND[rule.effect]
        self.intent = rule.task_intent
        # A `for` rule's resources constrain the steps it hands over (``handed``), not the delegation step.
        self.handed = handed
        on = rule.resources if handed or rule.handover is None else None
        self.resources = tuple(glob(r) for r in on) if on is not None else None
        self.cond = condition(conditions, rule.when, rule.unless)
        guard, rest = intent_guard(rule.when) if rule.task_intent is None else (None, None)
        if guard is not None:
            self.want, self.scoped, self.rest = sys.intern(guard), False, condition(conditions, rest, rule.unless)
        else:
            scope = rule.task_intent
            self.want, self.scoped, self.rest = sys.intern(scope) if scope is not None else None, True, self.cond
        self.ttl = rule.ttl
        self.ttl_seconds = rule.ttl.seconds if rule.ttl is not None else None
        self.ids = (rule.id,)
        self.because = rule.because
        # The decision when this permit alone allows and no ttl ceiling applies:
        # immutable, so built once and shared, its reason lines with it (read for every
        # answer the decision service gives).
        self.allowed = (
            _new_tuple(Decision, (ALLOW, self.ids, self.ttl_seconds, (), allow_lines(self.ids, (), None, self.ttl_seconds, ()), None, ()))
            if self.kind == PERMIT
            else None
        )


class TargetIndex:
    """Rules of one action, found by tool name without scanning them all."""

    def __init__(self) -> None:
        self.exact: dict[str, list[CompiledRule]] = {}
        self.prefix: dict[str, list[tuple[Glob, CompiledRule]]] = {}
        self.suffix: dict[str, list[tuple[Glob, CompiledRule]]] = {}
        self.rest: list[tuple[Glob, CompiledRule]] = []
        self.prefix_lengths: list[int] = []

    def add(self, target: str, crule: CompiledRule) -> None:
        g = glob(target)
        if g.exact:
            self.exact.setdefault(target, []).append(crule)
        elif g.prefix:
            self.prefix.setdefault(g.prefix, []).append((g, crule))
        elif g.suffix:
            self.suffix.setdefault(g.suffix, []).append((g, crule))
        else:
            self.rest.append((g, crule))

    def freeze(self) -> None:
        self.prefix_lengths = sorted({len(p) for p in self.prefix})
        self.suffix_lengths = sorted({len(s) for s in self.suffix})

    def lookup(self, tool: str) -> list[CompiledRule]:
        found: dict[int, CompiledRule] = {}
        for cr in self.exact.get(tool, ()):
            found[cr.index] = cr
        n = len(tool)
        for length in self.prefix_lengths:
            if length > n:
                break
            for g, cr in self.prefix.get(tool[:length], ()):
                if g.match(tool):
                    found[cr.index] = cr
        for length in self.suffix_lengths:
            if length > n:
                break
            for g, cr in self.suffix.get(tool[n - length :], ()):
                if g.match(tool):
                    found[cr.index] = cr
        for g, cr in self.rest:
            if g.match(tool):
                found[cr.index] = cr
        return [found[i] for i in sorted(found)]


class Bucket:
    """The rules that can apply to one (action, tool), split by subject. Every
    rule sits in exactly one of ``any``, ``ids`` (once per agent id), ``groups``
    (once per group) or ``id_globs``; gathering drops the repeats of a rule that
    names several groups of one identity. Read only when a fit
    is worked out, not per decision."""

    __slots__ = ("any", "ids", "groups", "id_globs")

    def __init__(self, rules: list[CompiledRule]):
        any_: list[CompiledRule] = []
        ids: dict[str, list[CompiledRule]] = {}
        groups: dict[str, list[CompiledRule]] = {}
        id_globs = []
        for cr in rules:
            match cr.rule.subject:
                case A.AnyAgent():
                    any_.append(cr)
                case A.AgentGroup(groups=wanted):
                    for group in dict.fromkeys(wanted):
                        groups.setdefault(group, []).append(cr)
                case A.AgentIds(ids=subject_ids):
                    globs = tuple(glob(i) for i in subject_ids)
                    if all(g.exact for g in globs):
                        for i in dict.fromkeys(subject_ids):
                            ids.setdefault(i, []).append(cr)
                    else:
                        id_globs.append((globs, cr))
                case unknown:
                    assert_never(unknown)
        self.any = tuple(any_)
        self.ids = {k: tuple(v) for k, v in ids.items()}
        self.groups = {k: tuple(v) for k, v in groups.items()}
        self.id_globs = tuple(id_globs)

    def fit(self, identity: Identity) -> Fit:
        """The identity with its groups replaced by the rules of this bucket whose
        subject it matches, in rule order."""
        pid, principal, groups, ceiling = identity
        found = [*self.any, *self.ids.get(pid, ())]
        for g in groups:
            found += self.groups.get(g, ())
        if len(groups) > 1:  # a rule naming several of the identity's groups is found once
            found = list({cr.index: cr for cr in found}.values())
        for globs, cr in self.id_globs:
            if any(g.match(pid) for g in globs):
                found.append(cr)
        found.sort(key=_BY_INDEX)
        return Fit(pid, principal, tuple(found), ceiling)


NO_RULES = Bucket([])


def identity(principal: dict) -> Identity:
    """The :class:`Identity` of ``principal`` (merged attributes with ``id``)."""
    ceiling = principal.get("max_credential_ttl")
    if not (ceiling.__class__ is int or ceiling.__class__ is float):
        ceiling = None
    groups = principal.get("groups")
    groups = tuple(dict.fromkeys(g for g in groups if g.__class__ is str)) if groups.__class__ is list else ()
    return _new_tuple(Identity, (principal["id"], principal, groups, ceiling))


_BY_INDEX = attrgetter("index")


class RuleIndex:
    """The index of one policy set, with its bounded caches: buckets per
    (action, tool), declared identities, fits per (action, tool, principal id)
    and tool attributes."""

    def __init__(self, policies) -> None:
        self.policies = policies
        self.by_action: dict[str, TargetIndex] = {}
        conditions: dict = {}  # one closure per distinct condition, shared by the rules
        for i, rule in enumerate(policies.rules):
            cr = CompiledRule(i, rule, conditions)
            for action in dict.fromkeys(rule.actions):
                index = self.by_action.setdefault(action, TargetIndex())
                for target in rule.targets:
                    index.add(target, cr)
        for index in self.by_action.values():
            index.freeze()
        # `permit ... to delegate N for ACTIONS TARGETS` rules, as the steps they hand
        # over; None when no rule has `for`, so other policy sets never look
        handovers = [CompiledRule(i, rule, conditions, handed=True) for i, rule in enumerate(policies.rules) if rule.handover is not None]
        self.handovers: tuple[CompiledRule, ...] | None = tuple(handovers) or None
        self.handover_fits: dict[tuple[str, str, str, str], Fit] = {}
        # action -> tool -> bucket, filled as tools are seen; an action no rule
        # names has no entry (its bucket is always empty)
        self.buckets: dict[str, dict[str, Bucket]] = {action: {} for action in self.by_action}
        self.identities: dict[str, Identity] = {}
        # (action, tool, principal id) -> Bucket.fit of the declared principal: one
        # hash lookup per decision finds the rules that can apply, in rule order
        self.fits: dict[tuple[str, str, str], Fit] = {}
        self.tools: dict[str, dict] = {}
        # What can be known before the first request is built now, so that a
        # first sight only works out its fit: the bucket of every tool a rule
        # names exactly, and the identity of every declared agent.
        # (Each within its cache's bound.)
        for action, index in self.by_action.items():
            for tool in islice(index.exact, CACHE_LIMIT):
                self.bucket(action, tool)
        for pid in islice(policies.agents, CACHE_LIMIT):
            self.declared_identity(pid)

    def sizes(self) -> dict[str, int]:
        """How many entries each cache holds now."""
        return {
            "buckets": sum(len(by_tool) for by_tool in self.buckets.values()),
            "identities": len(self.identities),
            "fits": len(self.fits),
            "handover_fits": len(self.handover_fits),
            "tools": len(self.tools),
        }

    def bucket(self, action: str, tool: str) -> Bucket:
        by_tool = self.buckets.get(action)
        if by_tool is None:
            return NO_RULES
        bucket = by_tool.get(tool)
        if bucket is None:
            bucket = Bucket(self.by_action[action].lookup(tool))
            if len(by_tool) >= CACHE_LIMIT:
                by_tool.clear()
            by_tool[tool] = bucket
        return bucket

    def declared_identity(self, pid: str) -> Identity:
        """:func:`identity` of ``pid`` with its declared attributes."""
        entry = self.identities.get(pid)
        if entry is None:
            entry = identity(self.policies.principal(pid, None))
            if len(self.identities) >= CACHE_LIMIT:
                self.identities.clear()
            self.identities[pid] = entry
        return entry

    def delegator_fit(self, action: str, tool: str, pid: str, next_hop: str) -> Fit:
        """The declared fit of delegator ``pid`` for a step, with the `for` rules by
        which ``pid`` hands that step to ``next_hop`` merged in, in rule order
        (a rule that covers the step itself is taken as that)."""
        fit = self.declared_fit(action, tool, pid)
        if self.handovers is None:
            return fit
        key = (action, tool, pid, next_hop)
        merged = self.handover_fits.get(key)
        if merged is None:
            handing = [
                cr for cr in self.handovers
                if action in cr.rule.handover.actions
                and any(glob_match(t, tool) for t in cr.rule.handover.targets)
                and any(glob_match(t, next_hop) for t in cr.rule.targets)
            ]  # fmt: skip
            if handing:
                own = {cr.index for cr in fit.candidates}
                extra = [cr for cr in Bucket(handing).fit(self.declared_identity(pid)).candidates if cr.index not in own]
                if extra:
                    fit = Fit(fit.id, fit.principal, tuple(sorted((*fit.candidates, *extra), key=_BY_INDEX)), fit.ceiling)
            if len(self.handover_fits) >= CACHE_LIMIT:
                self.handover_fits.clear()
            self.handover_fits[key] = merged = fit
        return merged

    def declared_fit(self, action: str, tool: str, pid: str) -> Fit:
        key = (action, tool, pid)
        return self.fits.get(key) or self.fit(key)

    def fit(self, key: tuple[str, str, str]) -> Fit:
        """:meth:`Bucket.fit` of the declared principal for ``key``, an (action,
        tool, principal id) triple the memo does not hold yet; remembered."""
        action, tool, pid = key
        bucket = self.bucket(action, tool)
        fit = bucket.fit(self.declared_identity(pid))
        if bucket is not NO_RULES:  # an action no rule names: nothing worth keeping
            if len(self.fits) >= CACHE_LIMIT:
                self.fits.clear()
            self.fits[key] = fit
        return fit

    def tool(self, name: str) -> dict:
        """The declared attributes of tool ``name``, with its name."""
        tool = self.tools.get(name)
        if tool is None:
            tool = {**self.policies.tool_attrs(name), "name": name}
            if len(self.tools) >= CACHE_LIMIT:
                self.tools.clear()
            self.tools[name] = tool
        return tool
