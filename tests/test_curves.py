"""Tests of t2_agents.curves.exact: exact majority-vote curves and overscaling statistics."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2_agents.curves.exact import (
    AnswerPool,
    CurseReport,
    accuracy_curve,
    budget_labels,
    curse_report,
    dataset_optimal_budget,
    optimal_budget,
    plot_curse,
)
from t2_agents.errors import ConfigError, DataError

ABC = AnswerPool({"a": 8, "b": 7, "c": 5}, frozenset({"a"}))


# ----------------------------------------------------------------------------- hand-computed


def test_iid_hand_computed() -> None:
    # p = (a 0.4 correct, b 0.35, c 0.25).
    # N=1: 0.4.  N=2: P(aa) + P(one a, one other) * 1/2 = 0.16 + 2*0.4*0.6*0.5 = 0.40.
    # N=3: aaa 0.4^3 = 0.064 (win); exactly two a: 3*0.4^2*0.6 = 0.288 (win);
    #      one a + b + c: 3! * 0.4*0.35*0.25 = 0.21, a 3-way tie -> credit 1/3 = 0.07;
    #      one a + bb or cc: a loses; no a: a loses.  Total 0.064 + 0.288 + 0.07 = 0.422.
    curve = accuracy_curve(ABC, 3, model="iid")
    assert curve == pytest.approx([0.4, 0.4, 0.422], abs=1e-12)


def test_pool_hand_computed() -> None:
    # {a, a, b}, a correct. N=1: 2/3. N=2: subsets {a,a}: 1, {a,b} x2: 1/2 each -> 2/3. N=3: 1.
    pool = AnswerPool({"a": 2, "b": 1}, frozenset({"a"}))
    assert accuracy_curve(pool, 3) == pytest.approx([2 / 3, 2 / 3, 1.0], abs=1e-12)


def test_pool_with_invalid_hand_computed() -> None:
    # {a, x, -} with "-" invalid, a correct. N=1: 1/3 (a); N=2: {a,x} 1/2, {a,-} 1, {x,-} 0 -> 1/2.
    pool = AnswerPool({"a": 1, "x": 1}, frozenset({"a"}), invalid=1)
    assert accuracy_curve(pool, 3) == pytest.approx([1 / 3, 0.5, 0.5], abs=1e-12)


def test_two_correct_answers_split_ties() -> None:
    # a and b both correct, c wrong, one each. N=3: three-way tie, 2/3 credit.
    pool = AnswerPool({"a": 1, "b": 1, "c": 1}, frozenset({"a", "b"}))
    assert accuracy_curve(pool, 3) == pytest.approx([2 / 3, 2 / 3, 2 / 3], abs=1e-12)


def test_only_invalid_and_no_correct() -> None:
    assert np.all(accuracy_curve(AnswerPool({}, frozenset(), invalid=4), 4) == 0.0)
    assert np.all(accuracy_curve(AnswerPool({"a": 3}, frozenset({"z"})), 3) == 0.0)
    assert np.all(accuracy_curve(AnswerPool({}, frozenset({"a"})), 5) == 0.0)


def test_single_correct_among_invalid_matches_closed_form() -> None:
    pool = AnswerPool({"a": 1}, frozenset({"a"}), invalid=255)
    n = np.arange(1, 257)
    assert accuracy_curve(pool, 256) == pytest.approx(n / 256, abs=1e-12)
    iid = accuracy_curve(pool, 256, model="iid")
    assert iid == pytest.approx(1 - (255 / 256) ** n, abs=1e-12)


def _credit(draw: tuple[str | None, ...], correct: frozenset[str]) -> float:
    votes: dict[str, int] = {}
    for answer in draw:
        if answer is not None:
            votes[answer] = votes.get(answer, 0) + 1
    if not votes:
        return 0.0
    top = max(votes.values())
    winners = [a for a, v in votes.items() if v == top]
    return sum(a in correct for a in winners) / len(winners)


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 8))
    counts = {f"a{i}": int(c) for i, c in enumerate(rng.integers(0, 3, size=k))}
    correct = frozenset(a for a in counts if rng.random() < 0.4)
    pool = AnswerPool(counts, correct, invalid=int(rng.integers(0, 3)))
    items = [a for a, c in counts.items() for _ in range(c)] + [None] * pool.invalid
    if not items:
        return
    n_max = min(len(items), 8)
    curve = accuracy_curve(pool, n_max)
    for n in range(1, n_max + 1):
        exact = np.mean([_credit(s, correct) for s in itertools.combinations(items, n)])
        assert curve[n - 1] == pytest.approx(exact, abs=1e-12)
    iid = accuracy_curve(pool, 4, model="iid")
    for n in range(1, 5):
        exact = np.mean([_credit(s, correct) for s in itertools.product(items, repeat=n)])
        assert iid[n - 1] == pytest.approx(exact, abs=1e-12)


# ----------------------------------------------------------------------------- Monte Carlo


def _simulate(pool: AnswerPool, n: int, model: str, rng: np.random.Generator) -> np.ndarray:
    answers = list(pool.counts)
    labels = np.repeat(np.arange(len(answers) + 1), [*pool.counts.values(), pool.invalid])
    trials = 20_000
    if model == "pool":
        draws = rng.permuted(np.tile(labels, (trials, 1)), axis=1)[:, :n]
    else:
        draws = rng.choice(labels, size=(trials, n), replace=True)
    votes = (draws[:, :, None] == np.arange(len(answers))[None, None, :]).sum(axis=1)
    top = votes.max(axis=1, keepdims=True)
    tied = (votes == top) & (top > 0)
    correct = np.array([a in pool.correct for a in answers], dtype=bool)
    n_tied = np.maximum(tied.sum(axis=1), 1)
    return np.asarray((tied & correct).sum(axis=1) / n_tied, dtype=np.float64)


MC_POOLS = [
    AnswerPool({"a": 5, "b": 4, "c": 3, "d": 1}, frozenset({"b"}), invalid=3),
    AnswerPool({"a": 3, "b": 3, "c": 3, "d": 2, "e": 1}, frozenset({"a", "c"}), invalid=0),
    AnswerPool({"x": 2, "y": 2, "z": 1, "w": 1, "v": 1}, frozenset({"z"}), invalid=5),
    AnswerPool({"a": 7, "b": 6, "c": 2}, frozenset({"a", "b"}), invalid=1),
]


@pytest.mark.parametrize("model", ["pool", "iid"])
@pytest.mark.parametrize("index", range(len(MC_POOLS)))
def test_matches_monte_carlo(model: str, index: int) -> None:
    pool = MC_POOLS[index]
    rng = np.random.default_rng(1234 + index)
    n_max = min(pool.size, 12)
    curve = accuracy_curve(pool, n_max, model=model)  # type: ignore[arg-type]
    for n in (1, 2, 3, 4, 5, 7, n_max):
        credit = _simulate(pool, n, model, rng)
        se = credit.std() / math.sqrt(credit.size)
        assert abs(curve[n - 1] - credit.mean()) <= 4 * se + 1e-9, (n, curve[n - 1])


# ----------------------------------------------------------------------------- plateaus, budgets


def test_pool_plateau_reaches_one_exactly() -> None:
    # a has 5 of 8: for N >= 6 at least N - 3 >= 3 draws of a beat b's 2; at N = 5 {aabbc} ties.
    pool = AnswerPool({"a": 5, "b": 2, "c": 1}, frozenset({"a"}))
    curve = accuracy_curve(pool, 8)
    assert curve[5:] == pytest.approx(1.0, abs=1e-12)
    assert np.all(curve[:5] < 1.0 - 1e-6)
    assert optimal_budget(curve) == 6


def test_eps_under_iid() -> None:
    pool = AnswerPool({"a": 6, "b": 4}, frozenset({"a"}))
    curve = accuracy_curve(pool, 64, model="iid")
    assert np.all(np.diff(curve[::2]) > 0)  # odd N strictly improve
    assert curve[1] == pytest.approx(curve[0], abs=1e-12)  # two answers: A(2k) = A(2k-1)
    epsilons = (0.0, 0.01, 0.05, 0.2, 0.4)
    budgets = [optimal_budget(curve, eps=e) for e in epsilons]
    assert budgets == sorted(budgets, reverse=True)
    assert budgets[0] == 63  # A(64) = A(63): the smallest maximiser is odd
    for eps, n_star in zip(epsilons, budgets, strict=True):
        assert curve[n_star - 1] >= curve.max() - eps - 1e-12
        assert np.all(curve[: n_star - 1] < curve.max() - eps - 1e-12)
    assert 1 < budgets[3] < budgets[2] < budgets[0]
    assert budgets[-1] == 1  # A(1) = 0.6 is within 0.4 of the max (about 0.946)


def test_optimal_budget_grid_and_errors() -> None:
    curve = np.array([0.5, 0.6, 0.6, 0.9, 0.9])
    assert optimal_budget(curve) == 4
    assert optimal_budget(curve, grid=[1, 2, 3]) == 2
    assert optimal_budget(curve, grid=[3, 1]) == 3
    with pytest.raises(ConfigError, match="eps"):
        optimal_budget(curve, eps=1.0)
    with pytest.raises(ConfigError, match="grid"):
        optimal_budget(curve, grid=[0, 2])
    with pytest.raises(ConfigError, match="grid"):
        optimal_budget(curve, grid=[6])
    assert dataset_optimal_budget(np.array([[0.2, 0.9, 0.7], [1.0, 0.6, 0.6]])) == 2


def test_errors_name_value_limit_and_fix() -> None:
    pool = AnswerPool({"a": 2, "b": 1}, frozenset({"a"}))
    with pytest.raises(ConfigError, match=r"n_max=4.*M=3.*iid.*more samples"):
        accuracy_curve(pool, 4)
    assert accuracy_curve(pool, 10, model="iid").shape == (10,)
    with pytest.raises(ConfigError, match="n_max=0"):
        accuracy_curve(pool, 0)
    with pytest.raises(ConfigError, match="model"):
        accuracy_curve(pool, 2, model="bootstrap")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        AnswerPool({"a": -1}, frozenset())
    with pytest.raises(DataError):
        AnswerPool({"a": 1}, frozenset(), invalid=-2)
    with pytest.raises(DataError):
        curse_report([], n_max=3)


def test_from_answers() -> None:
    pool = AnswerPool.from_answers(["4", "4", None, "5", "04"], lambda a: int(a) == 4)
    assert dict(pool.counts) == {"4": 2, "5": 1, "04": 1}
    assert pool.correct == frozenset({"4", "04"})
    assert (pool.invalid, pool.size) == (1, 5)


# ----------------------------------------------------------------------------- properties


def _pool(counts: list[int], correct: set[int], invalid: int) -> AnswerPool:
    """Answers ``a0, a1, ...`` with these counts; ``correct`` holds the indices of right ones."""
    return AnswerPool(
        {f"a{i}": c for i, c in enumerate(counts)},
        frozenset(f"a{i}" for i in correct),
        invalid=invalid,
    )


counts_st = st.lists(st.integers(min_value=0, max_value=6), min_size=0, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    counts=counts_st,
    invalid=st.integers(min_value=0, max_value=4),
    correct=st.sets(st.integers(min_value=0, max_value=6), max_size=3),
)
def test_property_curves_bounded_and_full_pool_deterministic(
    counts: list[int], invalid: int, correct: set[int]
) -> None:
    pool = _pool(counts, correct, invalid)
    m = pool.size
    if m == 0:
        assert np.all(accuracy_curve(pool, 3) == 0.0)
        return
    curve = accuracy_curve(pool, m)
    iid = accuracy_curve(pool, m + 3, model="iid")
    for arr in (curve, iid):
        assert np.all((arr >= 0.0) & (arr <= 1.0))
    positive = {a: c for a, c in pool.counts.items() if c > 0}
    top = max(positive.values(), default=0)
    winners = [a for a, c in positive.items() if c == top]
    expected = sum(a in pool.correct for a in winners) / len(winners) if winners else 0.0
    assert curve[-1] == pytest.approx(expected, abs=1e-12)
    assert curve[0] == pytest.approx(sum(positive.get(a, 0) for a in pool.correct) / m, abs=1e-12)
    assert iid[0] == pytest.approx(curve[0], abs=1e-12)


# ----------------------------------------------------------------------------- report, plot

TOY = [
    AnswerPool({"a": 4}, frozenset({"a"})),  # always right: N* = 1
    AnswerPool({"a": 2, "b": 1, "c": 1}, frozenset({"a"})),  # plateau at N = 3
    AnswerPool({"a": 1, "b": 3}, frozenset({"a"})),  # A falls with N: N* = 1
]


def test_curse_report_toy_dataset() -> None:
    curves = np.stack([accuracy_curve(p, 4) for p in TOY])
    # Pool 2: N=1 1/2; N=2: aa 1/6 * 1, ab/ac 4/6 * 1/2, bc 1/6 * 0 -> 1/2;
    # N=3: aab, aac win, abc (2 of 4 triples) ties 1/3 -> (2 + 2/3)/4 = 2/3; N=4: a wins -> 1.
    assert curves[1] == pytest.approx([0.5, 0.5, 2 / 3, 1.0], abs=1e-12)
    # Pool 3: N=1 1/4; N=2: ab 1/2 * 1/2 -> 1/4; N=3: abb -> 0; N=4: 0.
    assert curves[2] == pytest.approx([0.25, 0.25, 0.0, 0.0], abs=1e-12)
    report = curse_report(TOY, n_max=4)
    assert isinstance(report, CurseReport)
    assert report.optimal == (1, 4, 1)
    # mean A: N=1 (1 + .5 + .25)/3 = .5833, N=4 (1 + 1 + 0)/3 = .6667 -> N_D = 4.
    assert report.n_d == 4
    assert report.accuracy_at_n_d == pytest.approx(2 / 3)
    assert report.mean_optimal == pytest.approx(2.0)
    assert report.overscaling_index == pytest.approx(0.5)
    assert report.utilisation == pytest.approx((0.25 + 1 + 0.25) / 3)
    assert report.redundancy == pytest.approx(1 - 0.5)
    assert report.oracle_accuracy == pytest.approx((1 + 1 + 0.25) / 3)
    assert report.mean_single_accuracy == pytest.approx((1 + 0.5 + 0.25) / 3)
    assert report.curse_holds
    assert report.grid == (1, 2, 3, 4)
    assert report.to_dict()["optimal"] == [1, 4, 1]
    assert budget_labels(TOY, n_max=4).tolist() == [1, 4, 1]
    coarse = curse_report(TOY, n_max=4, grid=[1, 2])
    assert (coarse.n_d, coarse.optimal, coarse.grid) == (1, (1, 1, 1), (1, 2))


def test_plot_curse_writes_png(tmp_path: Path) -> None:
    reports = {
        "toy": curse_report(TOY, n_max=4),
        "toy-iid": curse_report(TOY, n_max=16, model="iid", eps=0.01),
    }
    out = plot_curse(reports, tmp_path / "curse.png")
    assert out.exists() and out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ hostile input (issue 7)

small_counts = st.lists(st.integers(min_value=0, max_value=4), min_size=0, max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    counts=small_counts,
    invalid=st.integers(min_value=0, max_value=4),
    correct=st.sets(st.integers(min_value=0, max_value=4), max_size=2),
)
def test_property_pool_curve_defined_on_1_to_m_with_a_plateau(
    counts: list[int], invalid: int, correct: set[int]
) -> None:
    pool = _pool(counts, correct, invalid)
    m = pool.size
    for bad in (0, -1):
        with pytest.raises(ConfigError, match=f"n_max={bad}"):
            accuracy_curve(pool, bad)
    if m == 0:  # nothing was sampled: no credit for any N, under either model
        assert accuracy_curve(pool, 2).tolist() == [0.0, 0.0]
        assert accuracy_curve(pool, 2, model="iid").tolist() == [0.0, 0.0]
        return
    with pytest.raises(ConfigError, match=rf"n_max={m + 1} exceeds the pool size M={m}"):
        accuracy_curve(pool, m + 1)
    curve = accuracy_curve(pool, m)
    assert curve.shape == (m,) and np.all((curve >= 0.0) & (curve <= 1.0))
    # The documented plateau: once the correct answer wins every N-subset (A = 1), it wins every
    # larger subset too. M <= 20 here, so A < 1 means A <= 1 - 1/C(20, 10) (far from 1e-12).
    ones = np.flatnonzero(curve >= 1.0 - 1e-12)
    if ones.size:
        assert np.all(curve[ones[0] :] >= 1.0 - 1e-12)
    if not any(pool.counts.get(a, 0) for a in pool.correct):  # no correct completion: 0 credit
        assert np.all(curve == 0.0)
    if set(a for a, c in pool.counts.items() if c) <= pool.correct:  # only correct answers
        valid = m - pool.invalid
        assert curve == pytest.approx(1 - _p_all_invalid(m, valid), abs=1e-12)


def _p_all_invalid(m: int, valid: int) -> np.ndarray:
    """P(an N-subset of M completions holds no valid one), for N = 1..M."""
    return np.array([math.comb(m - valid, n) / math.comb(m, n) for n in range(1, m + 1)])


@settings(max_examples=10, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=5),
    invalid=st.integers(min_value=0, max_value=40),
)
def test_property_large_pools(counts: list[int], invalid: int) -> None:
    pool = AnswerPool({f"a{i}": c for i, c in enumerate(counts)}, frozenset({"a0"}), invalid)
    m = pool.size
    if m == 0:
        return
    curve = accuracy_curve(pool, m)
    assert curve.shape == (m,) and np.all((curve >= 0.0) & (curve <= 1.0))
    assert curve[0] == pytest.approx(counts[0] / m, abs=1e-9)
    iid = accuracy_curve(pool, min(m, 64), model="iid")
    assert np.all((iid >= 0.0) & (iid <= 1.0))


def test_single_completion_pools() -> None:
    assert accuracy_curve(AnswerPool({"a": 1}, frozenset({"a"})), 1).tolist() == [1.0]
    assert accuracy_curve(AnswerPool({"a": 1}, frozenset()), 1).tolist() == [0.0]
    assert accuracy_curve(AnswerPool({}, frozenset({"a"}), invalid=1), 1).tolist() == [0.0]
    assert (
        accuracy_curve(AnswerPool({"a": 1}, frozenset({"a"})), 5, model="iid").tolist() == [1.0] * 5
    )


@settings(max_examples=200, deadline=None)
@given(
    curve=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30),
    eps=st.floats(min_value=0.0, max_value=0.99),
    data=st.data(),
)
def test_property_optimal_budget_is_the_smallest_good_grid_budget(
    curve: list[float], eps: float, data: st.DataObject
) -> None:
    grid = data.draw(st.lists(st.integers(1, len(curve)), min_size=1, max_size=len(curve)))
    for candidates in (None, grid):
        n_star = optimal_budget(curve, eps=eps, grid=candidates)
        budgets = sorted(set(candidates)) if candidates else list(range(1, len(curve) + 1))
        best = max(curve[b - 1] for b in budgets)
        assert n_star in budgets
        assert curve[n_star - 1] >= best - eps - 1e-12
        assert all(curve[b - 1] < best - eps - 1e-12 for b in budgets if b < n_star)


@pytest.mark.parametrize(
    ("curve", "match"),
    [
        ([math.nan, 0.5], r"curve holds nan at N=1"),  # was IndexError
        ([0.5, math.inf], r"curve holds inf at N=2"),
        ([], r"curve has shape \(0,\)"),
        ([[0.5]], r"1-D"),
    ],
)
def test_optimal_budget_rejects_bad_curves(curve: list[float], match: str) -> None:
    with pytest.raises(DataError, match=match):
        optimal_budget(curve)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid": [1.7, 2]}, r"holds 1\.7, not an integer budget"),  # was silently 1
        ({"grid": ["2"]}, r"holds '2', not an integer budget"),  # was a bare ValueError
        ({"grid": [True]}, r"holds True"),
        ({"eps": "0.1"}, r"eps='0\.1' is outside \[0, 1\)"),  # was a TypeError
        ({"eps": math.nan}, r"eps=nan"),
        ({"eps": -0.1}, r"eps=-0\.1"),
    ],
)
def test_optimal_budget_rejects_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        optimal_budget([0.5, 0.7], **kwargs)  # type: ignore[arg-type]


def test_dataset_budget_rejects_non_finite_curves() -> None:
    with pytest.raises(DataError, match="curve holds nan at N=2"):
        dataset_optimal_budget([[0.5, math.nan], [0.5, 0.5]])
