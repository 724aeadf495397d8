"""Tests of t2_agents.curves.compare: interpolated equal-cost baselines and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from t2_agents.curves.compare import equal_cost, fixed_accuracy, pareto
from t2_agents.errors import ConfigError, DataError


def _curves(q: int = 300, n: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1, size=(q, 1))
    rise = rng.uniform(-0.2, 0.3, size=(q, 1))
    return np.clip(start + rise * np.log2(np.arange(1, n + 1))[None, :] / 4, 0, 1)


def test_fixed_accuracy_interpolates_between_budgets() -> None:
    c = _curves()
    mean = c.mean(axis=0)
    assert fixed_accuracy(c, 3.0) == pytest.approx(mean[2])
    assert fixed_accuracy(c, 3.25) == pytest.approx(0.75 * mean[2] + 0.25 * mean[3])
    assert fixed_accuracy(c, 16.0) == pytest.approx(mean[15])
    with pytest.raises(ConfigError, match=r"n=0.5 is outside 1..16"):
        fixed_accuracy(c, 0.5)


def test_a_fixed_policy_gains_nothing_at_equal_cost() -> None:
    c = _curves()
    row = equal_cost(c, np.full(len(c), 5), n_d=16, resamples=300)
    assert row.gain == pytest.approx(0.0, abs=1e-12)
    assert row.gain_ci[0] == pytest.approx(0.0, abs=1e-12) == row.gain_ci[1]
    assert row.sample_share == pytest.approx(5 / 16)
    assert row.vs_n_d == pytest.approx(c[:, 4].mean() - c[:, 15].mean())


def test_oracle_beats_fixed_and_the_interval_covers_the_gain() -> None:
    c = _curves()
    oracle = np.argmax(c, axis=1) + 1
    row = equal_cost(c, oracle, n_d=16, resamples=1000, seed=3)
    assert row.gain > 0 and row.gain_ci[0] > 0
    assert row.gain_ci[0] <= row.gain <= row.gain_ci[1]
    assert row.vs_n_d_ci[0] <= row.vs_n_d <= row.vs_n_d_ci[1]
    again = equal_cost(c, oracle, n_d=16, resamples=1000, seed=3)
    assert again == row  # seeded


def test_bootstrap_interval_width_matches_a_simulation() -> None:
    """The CI of a random policy's gain is as wide as the spread over fresh question samples."""
    rng = np.random.default_rng(7)
    gains = []
    for _ in range(200):
        c = _curves(q=200, seed=int(rng.integers(1 << 30)))
        budgets = np.where(c[:, 7] > c[:, 1], 8, 2)
        gains.append(equal_cost(c, budgets, n_d=16, resamples=100).gain)
    c = _curves(q=200, seed=11)
    row = equal_cost(c, np.where(c[:, 7] > c[:, 1], 8, 2), n_d=16, resamples=2000)
    simulated = np.percentile(gains, 97.5) - np.percentile(gains, 2.5)
    assert 0.6 < (row.gain_ci[1] - row.gain_ci[0]) / simulated < 1.6


def test_pareto_and_bad_input() -> None:
    c = np.array([[0.2, 0.4], [0.6, 0.7]])
    assert pareto(c, [np.array([1, 2])]) == [(1.5, pytest.approx(0.45))]
    with pytest.raises(ConfigError, match=r"budgets span 1..3, outside 1..2"):
        equal_cost(c, np.array([1, 3]), n_d=2)
    with pytest.raises(DataError, match="expected \\[2\\] ints"):
        equal_cost(c, np.array([1.0, 2.0]), n_d=2)
    with pytest.raises(ConfigError, match=r"n_d=3 is outside 1\.\.2"):
        equal_cost(c, np.array([1, 2]), n_d=3)
    with pytest.raises(ConfigError, match="resamples=10"):
        equal_cost(c, np.array([1, 2]), n_d=2, resamples=10)
    with pytest.raises(DataError, match="curves have shape"):
        fixed_accuracy(np.zeros((0, 3)), 1)
