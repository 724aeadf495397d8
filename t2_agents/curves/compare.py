"""Equal-cost comparison of budget policies on exact accuracy curves, with bootstrap intervals.

A per-question budget policy is worth its features only if it beats the trivial alternative of
the **same cost**: a fixed N equal to its mean N. Budgets are integers but a mean is not, so the
fixed-N accuracy at a fractional mean ``n`` is interpolated linearly between ``floor(n)`` and
``ceil(n)`` — exactly what a mix of the two fixed budgets (in the right proportion) achieves.

Everything here works on ``curves`` ``[Q, n_max]`` (exact ``A_x(N)`` for N = 1..n_max, from
:mod:`t2_agents.curves.exact`) and per-question integer budgets ``[Q]``. Confidence intervals come
from
a paired bootstrap over questions: each resample recomputes the policy's accuracy, its mean
cost, the fixed-N curve and ``N_D``'s accuracy on the same questions.

Example:
    >>> curves = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.75, 0.9]])
    >>> round(fixed_accuracy(curves, 1.5), 4)
    0.5417
    >>> row = equal_cost(curves, np.array([1, 1, 3]), n_d=3, resamples=200)
    >>> round(row.accuracy, 3), round(row.mean_n, 3)
    (0.633, 1.667)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.errors import ConfigError, DataError

__all__ = ["EqualCost", "equal_cost", "fixed_accuracy", "paired_difference", "pareto"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_CHUNK = 250


@dataclass(frozen=True)
class EqualCost:
    """A policy against fixed N at its own mean cost and against fixed ``N_D``."""

    questions: int
    """Questions compared."""
    accuracy: float
    """The policy's exact accuracy."""
    mean_n: float
    """Its mean number of paths."""
    fixed_at_equal_cost: float
    """Fixed-N accuracy interpolated at ``mean_n``."""
    gain: float
    """``accuracy - fixed_at_equal_cost``."""
    gain_ci: tuple[float, float]
    """Bootstrap 95 % interval of ``gain``."""
    n_d: int
    """The dataset-optimal budget it is compared with (chosen on training data)."""
    n_d_accuracy: float
    """Fixed ``N_D``'s accuracy."""
    vs_n_d: float
    """``accuracy - n_d_accuracy``."""
    vs_n_d_ci: tuple[float, float]
    """Bootstrap 95 % interval of ``vs_n_d``."""
    sample_share: float
    """``mean_n / n_d``: the share of ``N_D``'s samples the policy spends."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (intervals become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _check(curves: object, budgets: object | None = None) -> tuple[FloatArray, IntArray]:
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise DataError(f"curves have shape {c.shape}; expected [questions, n_max] with both > 0")
    if budgets is None:
        return c, np.zeros(0, dtype=np.int64)
    b = np.asarray(budgets)
    if b.shape != (c.shape[0],) or not np.issubdtype(b.dtype, np.integer):
        raise DataError(f"budgets have shape {b.shape} ({b.dtype}); expected [{c.shape[0]}] ints")
    if b.min() < 1 or b.max() > c.shape[1]:
        raise ConfigError(
            f"budgets span {int(b.min())}..{int(b.max())}, outside 1..{c.shape[1]} (the curves' "
            "n_max); clamp the policy to the pools' size"
        )
    return c, b.astype(np.int64)


def fixed_accuracy(curves: FloatArray, n: float) -> float:
    """Fixed-N accuracy at a possibly fractional ``n`` (linear between neighbouring budgets).

    Example:
        >>> fixed_accuracy(np.array([[0.2, 0.4, 0.5]]), 2.5)
        0.45
    """
    c, _ = _check(curves)
    mean = c.mean(axis=0)  # [n_max]
    if not 1 <= n <= len(mean):
        raise ConfigError(f"n={n} is outside 1..{len(mean)}; pass a budget the pools cover")
    low = math.floor(n)
    high = min(low + 1, len(mean))
    frac = n - low
    return float((1 - frac) * mean[low - 1] + frac * mean[high - 1])


def _interp_rows(means: FloatArray, n: FloatArray) -> FloatArray:
    """Row-wise :func:`fixed_accuracy`: ``means`` [B, n_max] at ``n`` [B]."""
    low = np.floor(n).astype(np.int64)
    high = np.minimum(low + 1, means.shape[1])
    frac = n - low
    rows = np.arange(len(n))
    return np.asarray((1 - frac) * means[rows, low - 1] + frac * means[rows, high - 1])


def equal_cost(
    curves: FloatArray,
    budgets: IntArray,
    *,
    n_d: int,
    resamples: int = 2000,
    seed: int = 0,
) -> EqualCost:
    """Compare per-question ``budgets`` with fixed N at equal cost and with fixed ``n_d``.

    Args:
        curves: ``[Q, n_max]`` exact accuracy curves.
        budgets: ``[Q]`` the policy's budgets (1..n_max).
        n_d: Dataset-optimal budget (from the training set).
        resamples: Bootstrap resamples of the questions (paired: same resample for all terms).
        seed: Bootstrap seed.

    Raises:
        ConfigError: Budgets or ``n_d`` outside the curves' range, ``resamples`` < 100.
    """
    c, b = _check(curves, budgets)
    if not 1 <= n_d <= c.shape[1]:
        raise ConfigError(f"n_d={n_d} is outside 1..{c.shape[1]}; pass the training set's N_D")
    if resamples < 100:
        raise ConfigError(f"resamples={resamples} is too few for a 95 % interval; use >= 100")
    rows = np.arange(len(b))
    got = c[rows, b - 1]  # [Q] the policy's accuracy per question
    mean_n = float(b.mean())
    fixed = fixed_accuracy(c, mean_n)
    nd_acc = float(c[:, n_d - 1].mean())
    gains, vs_nd = _bootstrap(c, b, got, n_d, resamples, seed)
    return EqualCost(
        questions=len(b),
        accuracy=float(got.mean()),
        mean_n=mean_n,
        fixed_at_equal_cost=fixed,
        gain=float(got.mean()) - fixed,
        gain_ci=_interval(gains),
        n_d=n_d,
        n_d_accuracy=nd_acc,
        vs_n_d=float(got.mean()) - nd_acc,
        vs_n_d_ci=_interval(vs_nd),
        sample_share=mean_n / n_d,
    )


def _bootstrap(
    c: FloatArray, b: IntArray, got: FloatArray, n_d: int, resamples: int, seed: int
) -> tuple[FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    gains, vs_nd = [], []
    q = len(b)
    for start in range(0, resamples, _CHUNK):
        idx = rng.integers(0, q, size=(min(_CHUNK, resamples - start), q))  # [B, Q]
        acc = got[idx].mean(axis=1)  # [B]
        means = c[idx].mean(axis=1)  # [B, n_max]
        gains.append(acc - _interp_rows(means, b[idx].mean(axis=1)))
        vs_nd.append(acc - means[:, n_d - 1])
    return np.concatenate(gains), np.concatenate(vs_nd)


def _interval(values: FloatArray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def paired_difference(
    policy: Sequence[float], baseline: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Mean of ``policy - baseline`` over questions, with a paired bootstrap 95 % interval.

    Per-question values of two policies on the same questions (credit, samples...). Uses
    :func:`equal_cost` on two-column "curves" (column 1 the baseline, column 2 the policy, every
    question at budget 2, N_D = 1): its ``vs_n_d`` is then the paired difference and
    ``vs_n_d_ci`` its interval (the same resample for both terms).

    Example:
        >>> d = paired_difference([1.0, 1.0, 0.0], [0.0, 1.0, 0.0], resamples=200, seed=0)
        >>> round(d["difference"], 3), len(d["ci"]), d["questions"]
        (0.333, 2, 3)
    """
    curves = np.stack([np.asarray(baseline, float), np.asarray(policy, float)], axis=1)
    row = equal_cost(curves, np.full(len(curves), 2), n_d=1, resamples=resamples, seed=seed)
    return {"difference": row.vs_n_d, "ci": list(row.vs_n_d_ci), "questions": row.questions}


def pareto(curves: FloatArray, budget_sets: Sequence[IntArray]) -> list[tuple[float, float]]:
    """``(mean N, accuracy)`` of each budget vector (e.g. one per knob value).

    Example:
        >>> pareto(np.array([[0.2, 0.4], [0.6, 0.7]]), [np.array([1, 1]), np.array([2, 2])])
        [(1.0, 0.4), (2.0, 0.55)]
    """
    points = []
    for budgets in budget_sets:
        c, b = _check(curves, budgets)
        points.append((float(b.mean()), float(c[np.arange(len(b)), b - 1].mean())))
    return points
