"""Tests of t2_agents.curves.allocate: concave envelopes, greedy budget allocation, difficulty
curves."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from t2_agents.curves.allocate import DifficultyCurves, allocate_budget, concave_envelope
from t2_agents.curves.exact import accuracy_curve
from t2_agents.errors import ConfigError, DataError
from t2_agents.evaluate.offline import EvalConfig, evaluate_pools
from t2_agents.evaluate.replay import ReplayPool

M = 16


# ---------------------------------------------------------------------------- envelope
def test_concave_envelope_skips_flat_steps() -> None:
    assert concave_envelope([0.5, 0.5, 0.8, 0.8, 0.9]).tolist() == [1, 3, 5]
    assert concave_envelope([0.2]).tolist() == [1]
    assert concave_envelope([0.1, 0.5, 0.7, 0.8]).tolist() == [1, 2, 3, 4]  # strictly concave


def test_concave_envelope_lies_above_the_curve() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        curve = np.sort(rng.uniform(size=12))
        vertices = concave_envelope(curve)
        hull = np.interp(np.arange(1, 13), vertices, curve[vertices - 1])
        assert (hull >= curve - 1e-12).all()


# ---------------------------------------------------------------------------- allocation
def test_allocation_never_exceeds_the_budget() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        q, length = int(rng.integers(1, 8)), int(rng.integers(1, 10))
        curves = np.maximum.accumulate(rng.uniform(size=(q, length)), axis=1)
        caps = rng.integers(1, length + 1, size=q)
        budget = int(rng.integers(q, q * length + 3))
        out = allocate_budget(curves, budget, caps=caps)
        assert out.sum() <= budget
        assert (out >= 1).all() and (out <= caps).all()


def test_greedy_is_optimal_for_concave_curves() -> None:
    rng = np.random.default_rng(2)
    for _ in range(30):
        steps = -np.sort(-rng.uniform(0.01, 0.2, size=(3, 4)), axis=1)  # decreasing gains
        curves = np.cumsum(steps, axis=1)
        budget = int(rng.integers(3, 13))
        out = allocate_budget(curves, budget)
        best = max(
            sum(curves[i, n - 1] for i, n in enumerate(combo))
            for combo in itertools.product(range(1, 5), repeat=3)
            if sum(combo) <= budget
        )
        assert sum(curves[i, n - 1] for i, n in enumerate(out)) == pytest.approx(best)


def test_allocation_leaves_budget_that_buys_nothing() -> None:
    curves = [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert allocate_budget(curves, 6).tolist() == [1, 1]


def test_allocation_bad_input() -> None:
    with pytest.raises(ConfigError, match="budget=2 is below the 3 questions"):
        allocate_budget(np.zeros((3, 4)), 2)
    with pytest.raises(ConfigError, match="caps"):
        allocate_budget(np.zeros((2, 4)), 4, caps=[1, 5])
    with pytest.raises(DataError, match="shape"):
        allocate_budget(np.zeros(4), 4)


# ---------------------------------------------------------------------------- curve model
def test_difficulty_curves_bin_and_shrink() -> None:
    signal = np.array([0.0, 0.1, 0.2, 3.0, 3.1, 3.2])
    curves = np.array([[1.0, 1.0]] * 3 + [[0.0, 0.5]] * 3)
    exact = DifficultyCurves.fit(signal, curves, bins=2, prior=0.0)
    assert exact.counts == (3, 3)
    assert exact.predict([-1.0, 5.0]).tolist() == [[1.0, 1.0], [0.0, 0.5]]
    shrunk = DifficultyCurves.fit(signal, curves, bins=2, prior=3.0)
    assert shrunk.predict([0.0])[0, 0] == pytest.approx((3 * 1.0 + 3 * 0.5) / 6)
    one = DifficultyCurves.fit(np.zeros(6), curves, bins=4)  # no spread: a single bin
    assert one.counts == (6,) and one.n_max == 2
    assert set(one.to_dict()) == {"edges", "counts", "curves"}


def test_difficulty_curves_bad_input() -> None:
    with pytest.raises(DataError, match="do not match"):
        DifficultyCurves.fit([0.0, 1.0], [[1.0]])
    with pytest.raises(ConfigError, match="bins"):
        DifficultyCurves.fit([0.0], [[1.0]], bins=0)
    with pytest.raises(DataError, match="NaN"):
        DifficultyCurves.fit([np.nan], [[1.0]])


# ---------------------------------------------------------------------------- constructed data
def _kind_pool(kind: str, rng: np.random.Generator) -> tuple[ReplayPool, float]:
    """A pool of a known difficulty kind and the signal a feature would show for it."""
    if kind == "easy":
        answers = ["c"] * M
    elif kind == "hard":  # the right answer is a slim plurality: many samples pay off
        answers = ["c"] * 6 + ["w1"] * 4 + ["w2"] * 3 + ["w3"] * 3
    else:  # hopeless: a confident wrong answer
        answers = ["w"] * 12 + ["c"] * 4
    signal = {"easy": 0.0, "hard": 3.0, "hopeless": 1.5}[kind] + rng.normal(0, 0.2)
    order = rng.permutation(M)
    pool = ReplayPool(tuple(answers[i] for i in order), (10,) * M, frozenset({"c"}))
    return pool, float(signal)


def _dataset(n: int, seed: int) -> tuple[list[ReplayPool], np.ndarray]:
    rng = np.random.default_rng(seed)
    kinds = [("easy", "hard", "hopeless")[i % 3] for i in range(n)]
    made = [_kind_pool(k, rng) for k in kinds]
    return [p for p, _ in made], np.array([s for _, s in made])


def test_allocation_beats_fixed_n_when_difficulty_is_visible() -> None:
    train_pools, train_signal = _dataset(60, seed=0)
    train_curves = np.stack([accuracy_curve(p.pool, M) for p in train_pools])
    model = DifficultyCurves.fit(train_signal, train_curves, bins=3)
    pools, signal = _dataset(30, seed=1)
    predicted = model.predict(signal)
    for n in (2, 4, 8, 16):
        config = EvalConfig(policies=("fixed", "alloc"), budget=30 * n)
        report = evaluate_pools(pools, config=config, predicted_curves=predicted)
        alloc = report.result(f"alloc (B={30 * n})")
        assert alloc.mean_samples <= n
        same_cost = next(r for r in report.results if r.policy == "fixed@alloc")
        assert alloc.accuracy >= report.result(f"fixed N={n}").accuracy - 1e-12
        assert alloc.accuracy >= same_cost.accuracy - 1e-12
        assert alloc.delta_fixed is not None and alloc.delta_fixed >= -1e-12
    generous = evaluate_pools(
        pools, config=EvalConfig(policies=("fixed", "alloc"), budget=30 * M),
        predicted_curves=predicted,
    )  # fmt: skip
    best = generous.result(f"alloc (B={30 * M})")
    assert best.accuracy >= generous.result(f"fixed N={M}").accuracy - 1e-12
    assert best.mean_samples < M  # easy and hopeless questions keep a single sample
