"""Asking the solver, and checking every answer with the evaluator.

A request the solver reports is turned into a request object and decided again by
``Policies.evaluate``; a disagreement between the two raises
:class:`AnalysisBug`, never a result.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import replace

import z3

from .. import ast as A
from ..errors import NhiplError
from .space import RequestSpace
from .symbolic import globs_may_overlap, glob_constraint, string_literal

DEFAULT_TIMEOUT = 60.0
# preferences given up one unsat core at a time before asking with none
MAX_RELAXATIONS = 12
# seconds per question spent on tidy requests before asking without preferences
PREFERENCE_BUDGET = 3.0


class AnalysisBug(NhiplError):
    """The encoding and the evaluator disagree on a request: a bug in nhipl, never an answer."""

    def __init__(self, message: str, request: dict | None = None):
        self.message = message
        self.request = request
        super().__init__(message)


class Undecided(NhiplError):
    """The solver gave up (time limit) before answering."""

    def __init__(self, question: str, reason: str):
        self.question = question
        self.reason = reason
        super().__init__(f"{question}: the solver could not decide ({reason})")


class Session:
    """One solver over one request space; ``check`` prefers whole numbers."""

    def __init__(self, space: RequestSpace, timeout: float = DEFAULT_TIMEOUT):
        self.space = space
        self.solver = z3.Solver()
        self.timeout = timeout
        self.solver.set("core.minimize", True)
        self._sealed = 0
        self._numbers = 0
        self._integers = z3.Bool("analysis?integers")
        self._preferred: list = []
        self._given_up: set[int] = set()

    def add(self, *constraints) -> None:
        self.solver.add(*constraints)

    def seal(self) -> None:
        """Add the axioms of every request node made since the last call (call it before a
        ``push`` whose ``pop`` must not drop them)."""
        axioms = self.space.axioms
        if self._sealed < len(axioms):
            self.solver.add(*axioms[self._sealed :])
            self._sealed = len(axioms)
        preferences = self.space.preferences
        for i in range(len(self._preferred), len(preferences)):
            literal = z3.Bool(f"analysis?prefer{i}")
            self.solver.add(z3.Implies(literal, preferences[i]))
            self._preferred.append(literal)
        numbers = self.space.numbers
        if self._numbers < len(numbers):
            self.solver.add(*(z3.Implies(self._integers, z3.IsInt(n)) for n in numbers[self._numbers :]))
            self._numbers = len(numbers)

    def check(self, question: str, *assumptions) -> z3.ModelRef | None:
        """A model of the constraints (and ``assumptions``), or None when there is none.
        Whole numbers and tidy requests (optional fields left out, no chain) are tried
        first, giving up the preferences the solver names as in the way."""
        self.seal()
        # the preferences an earlier question of this session had to give up are not tried
        # again: the next request asked for is usually of the same shape
        preferred = [p for p in [self._integers] + self._preferred if p.get_id() not in self._given_up]
        # tidiness is worth a little time only: past PREFERENCE_BUDGET the plain question is asked
        deadline = time.monotonic() + min(PREFERENCE_BUDGET, self.timeout)
        for _ in range(MAX_RELAXATIONS):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.solver.set("timeout", max(1, int(left * 1000)))
            result = self.solver.check(*preferred, *assumptions)
            if result == z3.sat:
                return self.solver.model()
            if result != z3.unsat:
                break
            core = {c.get_id() for c in self.solver.unsat_core()}
            kept = [p for p in preferred if p.get_id() not in core]
            if len(kept) == len(preferred):
                return None  # the question itself is unsatisfiable
            self._given_up.update(p.get_id() for p in preferred if p.get_id() in core)
            preferred = kept
        self.solver.set("timeout", max(1, int(self.timeout * 1000)))
        result = self.solver.check(*assumptions)
        if result == z3.sat:
            return self.solver.model()
        if result == z3.unsat:
            return None
        raise Undecided(question, self.solver.reason_unknown())


UNENCODED = "not encoded"


@contextmanager
def confirming(space: RequestSpace, question: str):
    """Check a reported request; when the encoding left a condition open, a disagreement
    means "undecided", not a bug."""
    try:
        yield
    except AnalysisBug as bug:
        if any(note.startswith(UNENCODED) for note in space.notes):
            raise Undecided(question, f"a condition the encoding leaves open decides the request it found ({bug.message})") from None
        raise


def evaluate_checked(policies, request: dict, what: str):
    """``policies.evaluate(request)``; a request the evaluator refuses is a bug in the encoding."""
    from ..errors import RequestError

    try:
        return policies.evaluate(request)
    except RequestError as err:
        raise AnalysisBug(f"{what}: the solver built a request the evaluator refuses: {err}", request) from None


# ---- slicing ------------------------------------------------------------------------------


def _shape(rule: A.Rule) -> A.Rule:
    """A rule without its id: two rules of this shape decide alike."""
    return replace(rule, id="", explicit_id=False, annotations=(), because=None)


def declarations_equal(old, new) -> bool:
    return old.agents == new.agents and old.tools == new.tools and old.attenuate == new.attenuate


def changed_rules(old, new) -> list[A.Rule] | None:
    """The rules in one set and not the other (as a multiset of shapes), or None when the
    declarations differ (then every rule may decide differently)."""
    if not declarations_equal(old, new):
        return None
    from collections import Counter

    a = Counter(_shape(r) for r in old.rules)
    b = Counter(_shape(r) for r in new.rules)
    delta = (a - b) + (b - a)
    shapes = set(delta)
    return [r for r in list(old.rules) + list(new.rules) if _shape(r) in shapes]


def region(space: RequestSpace, scopes: list[tuple[str, tuple[str, ...]]]) -> z3.BoolRef:
    """Requests whose action and tool fall under one of ``scopes`` (action, targets)."""
    return z3.Or(
        [z3.And(space.action == string_literal(action), z3.Or([glob_constraint(t, space.tool) for t in targets])) for action, targets in scopes]
        or [z3.BoolVal(False)]
    )


def slice_rules(rules, scopes: list[tuple[str, tuple[str, ...]]]) -> list[A.Rule]:
    """The rules that can match a request in the region of ``scopes``; the others cannot."""
    by_action: dict[str, list[str]] = {}
    for action, targets in scopes:
        by_action.setdefault(action, []).extend(targets)
    kept = []
    for rule in rules:
        targets = [u for action in rule.actions for u in by_action.get(action, ())]
        if targets and any(globs_may_overlap(t, u) for t in rule.targets for u in targets):
            kept.append(rule)
    return kept
