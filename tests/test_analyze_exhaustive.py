"""`nhipl analyze` against exhaustive evaluation on a finite request space.

`diff` reports a difference exactly when evaluating every request of the space finds
one, and every request it reports is a real difference; `prove` refutes an invariant
exactly when exhaustive search finds a request in its scope with the forbidden effect.

CI runs a few hundred generated pairs (seeded, reproducible). The nightly run checks
thousands: `NHIPL_ANALYZE_PAIRS=3000 pytest -m nightly tests/test_analyze_exhaustive.py`.
"""

from __future__ import annotations

import os
import random

import pytest

pytest.importorskip("z3")

import nhipl  # noqa: E402
from nhipl import ast as A  # noqa: E402
from nhipl.analyze import Bounds, diff, direction, prove  # noqa: E402
from nhipl.testing.invariants import in_scope, scope_policies  # noqa: E402

from .analyzegen import header, load_pair, policy_pair, requests, restrict, rule  # noqa: E402

CI_PAIRS = 120
BOUNDS = Bounds(chain=2, list_items=2)
SPACE = requests()


def _exhaustive_diff(old, new):
    found = {"widening": False, "narrowing": False}
    for req, a, b in zip(SPACE, old.evaluate_many(SPACE), new.evaluate_many(SPACE)):
        d = direction(a, b)
        if d is not None:
            found[d] = True
    return found


def check_diff_pair(seed: int) -> None:
    rng = random.Random(seed)
    pair = policy_pair(rng)
    old, new = load_pair(pair)
    result = diff(old, new, bounds=BOUNDS, restrict=restrict, limit=3)
    truth = _exhaustive_diff(old, new)
    context = f"seed {seed}\n--- old\n{pair[0]}\n--- new\n{pair[1]}\n"
    assert result.widening == truth["widening"], context + f"solver widening={result.widening}"
    assert result.narrowing == truth["narrowing"], context + f"solver narrowing={result.narrowing}"
    for d in result.differences:  # each one decided again, outside the analysis
        assert direction(old.evaluate(d.request), new.evaluate(d.request)) == d.direction, context
        assert d.request in SPACE, context + f"request outside the space: {d.request}"


INVARIANT_FORMS = (
    'never allow call "t.*"',
    'never allow agent "a1" to call "*"',
    'never allow delegate "*" when delegation.depth >= 1',
    'never approval_required call "*.x"',
    'never deny agent in "g1" to call "t.x" when args has n',
    'never allow call "*" when args.n > 1 unless approval.granted',
)


def check_prove(seed: int) -> None:
    rng = random.Random(seed)
    text = "\n".join(header(rng) + [rule(rng) for _ in range(rng.randint(1, 4))])
    form = rng.choice(INVARIANT_FORMS)
    policies = nhipl.loads(text + f'\ninvariant "generated" {{ {form} }}', source="gen_test.nhipl")
    (_, invariant), = policies.invariants
    result = prove(policies, invariant, bounds=BOUNDS, restrict=restrict)
    scope = scope_policies(policies, invariant)
    witnesses = [
        req for req, d in zip(SPACE, policies.evaluate_many(SPACE)) if d.effect == invariant.effect and in_scope(scope, req)
    ]
    context = f"seed {seed}\n{text}\ninvariant: {form}\n"
    assert result.holds == (not witnesses), context + f"solver holds={result.holds}, exhaustive found {witnesses[:1]}"
    if not result.holds:
        assert result.counterexample in SPACE, context
        assert policies.evaluate(result.counterexample).effect == invariant.effect, context
        assert in_scope(scope, result.counterexample), context


def _pairs() -> int:
    return int(os.environ.get("NHIPL_ANALYZE_PAIRS", "0")) or CI_PAIRS


@pytest.mark.parametrize("block", range(4))
def test_diff_matches_exhaustive_evaluation(block):
    n = CI_PAIRS // 4
    for seed in range(block * n, (block + 1) * n):
        check_diff_pair(seed)


@pytest.mark.parametrize("block", range(4))
def test_prove_matches_exhaustive_search(block):
    n = CI_PAIRS // 4
    for seed in range(10_000 + block * n, 10_000 + (block + 1) * n):
        check_prove(seed)


@pytest.mark.nightly
def test_diff_and_prove_nightly():
    total = _pairs()
    start = int(os.environ.get("NHIPL_ANALYZE_SEED", "100000"))
    for seed in range(start, start + total):
        check_diff_pair(seed)
        check_prove(seed + 1_000_000)


def test_the_generator_reaches_every_outcome():
    """The pairs above are not all equivalent, nor all different: the test can fail both ways."""
    outcomes = set()
    for seed in range(16):
        old, new = load_pair(policy_pair(random.Random(seed)))
        found = _exhaustive_diff(old, new)
        outcomes.add((found["widening"], found["narrowing"]))
    assert {(False, False), (True, False), (False, True)} <= outcomes


def test_an_invariant_scope_is_the_policies_own_rule_shape():
    policies = nhipl.loads('permit any agent to call "t.*";\ninvariant "x" { never allow call "t.*" }')
    (_, inv), = policies.invariants
    assert isinstance(inv, A.Invariant)
    result = prove(policies, inv, bounds=BOUNDS, restrict=restrict)
    assert not result.holds and result.counterexample["tool"].startswith("t.")
