"""Exact majority-vote accuracy curves and the overscaling curse.

For one question ``x`` we hold a pool of ``M`` sampled completions, summarised by an
:class:`AnswerPool`: how many completions gave each extracted answer (``counts``), which answers
are graded correct (``correct``) and how many completions carry no answer (``invalid``).

**Vote and tie rule.** Drawing ``N`` completions, the vote is the plurality answer among the drawn
completions that have an answer; completions without an answer do not vote. Ties among the top
answers are broken uniformly at random, so a tie among ``t`` answers that includes a correct one
earns fractional credit ``1/t`` (two correct answers in the tie earn ``2/t``). If no drawn
completion has an answer the credit is 0. ``A_x(N)`` is the expected credit.

**Draw models.**

* ``"pool"``: the ``N`` completions are a uniformly random ``N``-subset of the ``M`` completions
  (without replacement, multivariate hypergeometric), so ``1 <= N <= M``. Curves have true
  plateaus: once the correct answer wins every subset, ``A_x(N) = 1`` exactly.
* ``"iid"``: ``N`` independent draws from the empirical distribution ``counts / M`` (multinomial),
  for any ``N``.

Curves are computed exactly with generating polynomials, not Monte Carlo: for each correct answer
``c`` and each number ``j >= 1`` of draws of ``c``, every other answer contributes the truncated
polynomial ``sum_{i<j} w(m, i) x^i + tau w(m, j) x^j`` (``tau`` marks a tie) and the invalid
completions contribute ``sum_i w(m0, i) x^i``; ``w(m, i) = C(m, i)`` for ``"pool"`` and
``p^i / i!`` for ``"iid"``. The tie credit ``1/(1+t)`` equals ``integral_0^1 tau^t dtau``, which
Gauss-Legendre quadrature in ``tau`` evaluates exactly. The curse statistics compare each question's
optimal budget ``N*_x`` with the single dataset-wide budget ``N_D``.

Example:
    >>> pool = AnswerPool({"4": 2, "5": 1}, frozenset({"4"}))
    >>> [round(float(a), 4) for a in accuracy_curve(pool, 3)]
    [0.6667, 0.6667, 1.0]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from t2_agents.errors import ConfigError, DataError

__all__ = [
    "AnswerPool",
    "CurseReport",
    "DrawModel",
    "accuracy_curve",
    "budget_labels",
    "curse_report",
    "dataset_optimal_budget",
    "optimal_budget",
    "plot_curse",
]

DrawModel = Literal["pool", "iid"]
FloatArray = npt.NDArray[np.float64]

_SLACK = 1e-12
_LOG_RANGE_LIMIT = 600.0  # nats; keeps every scaled coefficient inside float64 range
_SHIFT_LIMIT = 12  # longer rival kernels use a batched Toeplitz matmul instead of shift-adds
_BLOCK_ELEMENTS = 1 << 21  # Toeplitz band elements per matmul block (bounds memory to ~16 MB)


@dataclass(frozen=True)
class AnswerPool:
    """Answer summary of the ``M`` sampled completions for one question.

    Attributes:
        counts: Answer -> number of completions that gave it.
        correct: Answers graded correct; an answer absent from ``counts`` contributes 0.
        invalid: Number of completions without an extracted answer (they do not vote).

    Example:
        >>> AnswerPool({"a": 3, "b": 1}, frozenset({"a"}), invalid=1).size
        5
    """

    counts: Mapping[str, int]
    correct: frozenset[str]
    invalid: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.counts, Mapping):
            raise DataError(f"counts={self.counts!r} is not a mapping; pass {{answer: count}}")
        for answer, count in self.counts.items():
            if not isinstance(answer, str):
                raise DataError(f"answer {answer!r} is not a str; pass answers as strings")
            _check_count(f"counts[{answer!r}]", count)
        _check_count("invalid", self.invalid)
        if isinstance(self.correct, str) or not all(isinstance(a, str) for a in self.correct):
            raise DataError(f"correct={self.correct!r} must be a set of answer strings")
        object.__setattr__(self, "counts", MappingProxyType(dict(self.counts)))
        object.__setattr__(self, "correct", frozenset(self.correct))

    @property
    def size(self) -> int:
        """Number of completions ``M`` in the pool, invalid ones included."""
        return sum(self.counts.values()) + self.invalid

    @classmethod
    def from_answers(
        cls, answers: Sequence[str | None], is_correct: Callable[[str], bool]
    ) -> AnswerPool:
        """Build a pool from one extracted answer per completion (``None`` = no answer).

        Example:
            >>> AnswerPool.from_answers(["4", "4", None, "5"], lambda a: a == "4").counts["4"]
            2
        """
        valid = [a for a in answers if a is not None]
        counts = Counter(valid)
        correct = frozenset(a for a in counts if is_correct(a))
        return cls(dict(counts), correct, invalid=len(answers) - len(valid))


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DataError(f"{name}={value!r} is not a non-negative int; pass a completion count")


def _check_n_max(n_max: object) -> int:
    if isinstance(n_max, bool) or not isinstance(n_max, int | np.integer) or n_max < 1:
        raise ConfigError(f"n_max={n_max!r} is not an int >= 1; pass n_max >= 1")
    return int(n_max)


def _log_factorials(n: int) -> FloatArray:
    """``log(k!)`` for ``k = 0..n``."""
    return np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))


def _log_weights(m: int, total: int, n_max: int, model: DrawModel, lf: FloatArray) -> FloatArray:
    """Unscaled ``log w(m, i)`` for ``i = 0..n_max`` (``-inf`` where the weight is 0)."""
    i = np.arange(n_max + 1)
    if model == "iid":
        return i * math.log(m / total) - lf[i]
    out = np.full(n_max + 1, -np.inf)
    k = i[i <= m]
    out[k] = lf[m] - lf[k] - lf[m - k]
    return out


def _log_scale(log_z: FloatArray) -> float:
    """Log of the x-scale ``s`` that centres ``log Z(N) + N log s`` around 0 (ternary search)."""
    n = np.arange(len(log_z))

    def spread(ls: float) -> float:
        return float(np.max(np.abs(log_z + n * ls)))

    lo, hi = -50.0, 50.0
    for _ in range(100):
        a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        lo, hi = (lo, b) if spread(a) < spread(b) else (a, hi)
    ls = (lo + hi) / 2
    if spread(ls) > _LOG_RANGE_LIMIT:
        raise ConfigError(
            f"n_max={len(log_z) - 1} is too large for the exact float64 computation; "
            "pass a smaller n_max (up to ~1000 is supported)"
        )
    return ls


def _shift_rows(arr: FloatArray, start: int) -> FloatArray:
    """Row ``r`` of ``arr[..., L]`` shifted right along the last axis by ``r + start`` (0-fill)."""
    rows, length = arr.shape[0], arr.shape[-1]
    src = np.arange(length)[None, :] - np.arange(start, start + rows)[:, None]
    idx = np.clip(src, 0, None).reshape((rows,) + (1,) * (arr.ndim - 2) + (length,))
    mask = (src >= 0).reshape(idx.shape)
    return np.take_along_axis(arr, idx, axis=-1) * mask


def _convolve_truncated(poly: FloatArray, w: FloatArray, n_shift: int) -> FloatArray:
    """``out[j-1, q, n] = sum_{i<j} w[i] poly[j-1, q, n-i]`` with ``i <= n_shift``.

    Row ``j`` only needs degrees ``n <= L - 1 - j`` (the winner adds ``j`` draws), so rivals with
    ``i > L - 1 - j`` draws are skipped.
    """
    length = poly.shape[-1]
    out: FloatArray = w[0] * poly
    for i in range(1, n_shift + 1):
        stop = length - 1 - i
        if w[i] != 0.0 and stop > i:
            out[i:stop, :, i:] += w[i] * poly[i:stop, :, : length - i]
    return out


def _truncated_toeplitz(w: FloatArray, first_j: int, n_rows: int, size: int) -> FloatArray:
    """``T[r, n', n] = w[n - n']`` if ``0 <= n - n' < first_j + r`` else 0 (one matrix per j)."""
    j = np.arange(first_j, first_j + n_rows)[:, None]
    kernel = np.where(np.arange(size)[None, :] < j, w[None, :size], 0.0)
    padded = np.concatenate([np.zeros((n_rows, size - 1)), kernel], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=1)
    return np.ascontiguousarray(windows[:, ::-1, :])


def _convolve_banded(poly: FloatArray, w: FloatArray) -> FloatArray:
    """Same as :func:`_convolve_truncated` via batched Toeplitz matmuls (long kernels)."""
    n_j, length = poly.shape[0], poly.shape[-1]
    out = np.zeros_like(poly)
    step = max(1, min(_BLOCK_ELEMENTS // (length * length), -(-length // 2)))
    for start in range(0, min(n_j, length - 1), step):
        rows = min(step, n_j - start)
        keep = length - 1 - start  # degrees still needed by the first row of the block
        band = _truncated_toeplitz(w, start + 1, rows, keep)
        block = np.ascontiguousarray(poly[start : start + rows, :, :keep])
        out[start : start + rows, :, :keep] = np.matmul(block, band)
    return out


def _apply_factor(poly: FloatArray, w: FloatArray, tau: FloatArray) -> FloatArray:
    """Multiply ``poly[j-1, q, n]`` by the truncated factor of one rival answer.

    The rival gets ``i < j`` draws (weight ``w[i]``) or ties with exactly ``j`` draws (weight
    ``tau[q] * w[j]``).
    """
    n_j = poly.shape[0]
    last = int(np.flatnonzero(w)[-1])
    n_shift = min(n_j - 1, last)
    if n_shift > _SHIFT_LIMIT:
        out = _convolve_banded(poly, w)
    else:
        out = _convolve_truncated(poly, w, n_shift)
    n_tie = min(n_j, last)
    if n_tie:
        tie = _shift_rows(poly[:n_tie], 1)
        out[:n_tie] += tie * (w[1 : n_tie + 1, None, None] * tau[None, :, None])
    return out


def _winner_mass(
    w_c: FloatArray, rivals: list[FloatArray], w_inv: FloatArray, n_quad: int
) -> FloatArray:
    """Scaled, tie-weighted mass of draws where answer ``c`` (weights ``w_c``) wins, per N."""
    n_j = int(np.flatnonzero(w_c)[-1]) if np.any(w_c[1:]) else 0
    if n_j == 0:
        return np.zeros_like(w_c)
    nodes, weights = np.polynomial.legendre.leggauss(n_quad)
    tau, q_weights = (nodes + 1.0) / 2.0, weights / 2.0
    poly = np.broadcast_to(w_inv, (n_j, n_quad, len(w_c))).copy()
    for w in rivals:
        poly = _apply_factor(poly, w, tau)
    credit = q_weights @ poly  # [n_j, L]: integral over tau of the tie polynomial
    return np.asarray((_shift_rows(credit, 1) * w_c[1 : n_j + 1, None]).sum(axis=0))


def accuracy_curve(pool: AnswerPool, n_max: int, *, model: DrawModel = "pool") -> FloatArray:
    """Exact expected majority-vote credit ``A(N)`` for ``N = 1..n_max``.

    Args:
        pool: The question's answer pool.
        n_max: Largest vote size; for ``model="pool"`` at most the pool size ``M``.
        model: ``"pool"`` (draw without replacement) or ``"iid"`` (multinomial draws).

    Returns:
        Array of shape ``[n_max]``; entry ``i`` is ``A(N = i + 1)``, within ``[0, 1]``.

    Raises:
        ConfigError: ``n_max < 1``, unknown ``model``, or ``n_max > M`` under ``"pool"``.

    Example:
        >>> pool = AnswerPool({"a": 8, "b": 7, "c": 5}, frozenset({"a"}))
        >>> [round(float(a), 3) for a in accuracy_curve(pool, 3, model="iid")]
        [0.4, 0.4, 0.422]
    """
    n_max = _check_n_max(n_max)
    if model not in ("pool", "iid"):
        raise ConfigError(f"model={model!r} is unknown; pass model='pool' or model='iid'")
    total = pool.size
    if total == 0:
        return np.zeros(n_max)
    if model == "pool" and n_max > total:
        raise ConfigError(
            f"n_max={n_max} exceeds the pool size M={total} under model='pool'; "
            "pass n_max <= M, use model='iid', or collect more samples"
        )
    lf = _log_factorials(max(n_max, total))
    n = np.arange(n_max + 1)
    log_z = -lf[n] if model == "iid" else lf[total] - lf[n] - lf[total - n]
    ls = _log_scale(log_z)
    answers = [(a, m) for a, m in pool.counts.items() if m > 0]
    w = {a: np.exp(_log_weights(m, total, n_max, model, lf) + n * ls) for a, m in answers}
    w_inv = (n == 0).astype(np.float64)
    if pool.invalid > 0:
        w_inv = np.exp(_log_weights(pool.invalid, total, n_max, model, lf) + n * ls)
    mass = np.zeros(n_max + 1)
    for c in (a for a, _ in answers if a in pool.correct):
        rivals = [w[a] for a, _ in answers if a != c]
        mass += _winner_mass(w[c], rivals, w_inv, max(1, math.ceil((len(rivals) + 1) / 2)))
    return np.clip(mass[1:] * np.exp(-(log_z[1:] + n[1:] * ls)), 0.0, 1.0)


def _check_grid(grid: Sequence[int] | None, n_max: int) -> npt.NDArray[np.int64]:
    if grid is None:
        return np.arange(1, n_max + 1, dtype=np.int64)
    odd = [g for g in grid if isinstance(g, bool) or not isinstance(g, int | np.integer)]
    if odd:
        raise ConfigError(
            f"grid={list(grid)!r} holds {odd[0]!r}, not an integer budget; "
            f"pass integers between 1 and {n_max}"
        )
    values = sorted({int(g) for g in grid})
    if not values or values[0] < 1 or values[-1] > n_max:
        raise ConfigError(
            f"grid={list(grid)!r} must be a non-empty set of budgets within 1..{n_max}; "
            f"pass budgets between 1 and the curve length {n_max}"
        )
    return np.asarray(values, dtype=np.int64)


def optimal_budget(
    curve: npt.ArrayLike, *, eps: float = 0.0, grid: Sequence[int] | None = None
) -> int:
    """Smallest budget ``N*`` in ``grid`` whose accuracy is within ``eps`` of the grid maximum.

    Args:
        curve: ``A(N)`` for ``N = 1..len(curve)``.
        eps: Accuracy the caller is willing to give up, in ``[0, 1)``.
        grid: Candidate budgets (default ``1..len(curve)``), integers in ``1..len(curve)``.

    Raises:
        DataError: ``curve`` is not a non-empty 1-D array of finite values.
        ConfigError: ``eps`` is not in ``[0, 1)`` or ``grid`` holds a non-integer or a budget
            outside ``1..len(curve)``.

    Example:
        >>> optimal_budget([0.5, 0.7, 0.7, 0.71], eps=0.02)
        2
    """
    values = np.asarray(curve, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise DataError(f"curve has shape {values.shape}; pass a non-empty 1-D accuracy curve")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            f"curve holds {values[bad[0]]} at N={bad[0] + 1}; pass finite accuracies A(N)"
        )
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0.0 <= eps < 1.0:
        raise ConfigError(f"eps={eps!r} is outside [0, 1); pass an accuracy tolerance in [0, 1)")
    budgets = _check_grid(grid, values.size)
    acc = values[budgets - 1]
    best = int(np.flatnonzero(acc >= acc.max() - eps - _SLACK)[0])
    return int(budgets[best])


def dataset_optimal_budget(curves: npt.ArrayLike, grid: Sequence[int] | None = None) -> int:
    """Smallest budget ``N_D`` in ``grid`` maximising the mean accuracy over questions.

    Example:
        >>> dataset_optimal_budget([[0.2, 0.9, 0.7], [1.0, 0.6, 0.6]])
        2
    """
    values = np.asarray(curves, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise DataError(f"curves has shape {values.shape}; pass [n_questions, n_max] curves")
    return optimal_budget(values.mean(axis=0), grid=grid)


@dataclass(frozen=True)
class CurseReport:
    """Dataset-level overscaling statistics (per-question ``N*_x`` against one ``N_D``).

    Example:
        >>> pools = [AnswerPool({"a": 3}, frozenset({"a"})), AnswerPool({"a": 2, "b": 1},
        ...          frozenset({"b"}))]
        >>> curse_report(pools, n_max=3).n_d
        1
    """

    n_questions: int
    n_max: int
    grid: tuple[int, ...]
    mean_curve: tuple[float, ...]
    n_d: int
    accuracy_at_n_d: float
    mean_optimal: float
    overscaling_index: float
    utilisation: float
    redundancy: float
    oracle_accuracy: float
    mean_single_accuracy: float
    curse_holds: bool
    optimal: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _report_from_curves(curves: FloatArray, eps: float, grid: Sequence[int] | None) -> CurseReport:
    budgets = _check_grid(grid, curves.shape[1])
    optimal = np.array([optimal_budget(c, eps=eps, grid=grid) for c in curves])
    n_d = dataset_optimal_budget(curves, grid=grid)
    mean_curve = curves.mean(axis=0)
    mean_opt = float(optimal.mean())
    utilisation = float(np.mean(np.minimum(optimal, n_d) / n_d))
    return CurseReport(
        n_questions=int(curves.shape[0]),
        n_max=int(curves.shape[1]),
        grid=tuple(int(b) for b in budgets),
        mean_curve=tuple(float(mean_curve[b - 1]) for b in budgets),
        n_d=n_d,
        accuracy_at_n_d=float(mean_curve[n_d - 1]),
        mean_optimal=mean_opt,
        overscaling_index=mean_opt / n_d,
        utilisation=utilisation,
        redundancy=1.0 - utilisation,
        oracle_accuracy=float(curves[np.arange(len(optimal)), optimal - 1].mean()),
        mean_single_accuracy=float(curves[:, 0].mean()),
        curse_holds=bool(n_d > mean_opt),
        optimal=tuple(int(o) for o in optimal),
    )


def _curves(pools: Sequence[AnswerPool], n_max: int, model: DrawModel) -> FloatArray:
    if len(pools) == 0:
        raise DataError("pools is empty; pass at least one AnswerPool")
    return np.stack([accuracy_curve(p, n_max, model=model) for p in pools])


def curse_report(
    pools: Sequence[AnswerPool],
    *,
    n_max: int,
    model: DrawModel = "pool",
    eps: float = 0.0,
    grid: Sequence[int] | None = None,
) -> CurseReport:
    """Overscaling-curse statistics of a dataset of answer pools.

    Raises:
        DataError: ``pools`` is empty.

    Example:
        >>> pools = [AnswerPool({"a": 4}, frozenset({"a"})),
        ...          AnswerPool({"a": 2, "b": 2}, frozenset({"a"}))]
        >>> r = curse_report(pools, n_max=4)
        >>> (r.n_d, r.optimal)
        (1, (1, 1))
    """
    return _report_from_curves(_curves(pools, n_max, model), eps, grid)


def budget_labels(
    pools: Sequence[AnswerPool],
    *,
    n_max: int,
    model: DrawModel = "pool",
    eps: float = 0.0,
    grid: Sequence[int] | None = None,
) -> npt.NDArray[np.int64]:
    """Per-question optimal budgets ``N*_x`` (training labels for a budget estimator).

    Example:
        >>> budget_labels([AnswerPool({"a": 2, "b": 1}, frozenset({"a"}))], n_max=3).tolist()
        [3]
    """
    curves = _curves(pools, n_max, model)
    return np.array([optimal_budget(c, eps=eps, grid=grid) for c in curves], dtype=np.int64)


def _log2_bins(n_max: int) -> FloatArray:
    top = math.ceil(math.log2(max(n_max, 1))) + 1
    return np.asarray(2.0 ** (np.arange(top + 1) - 0.5), dtype=np.float64)


def plot_curse(reports: Mapping[str, CurseReport], path: str | Path) -> Path:
    """Two-panel PNG: mean ``A(N)`` per task (left) and the ``N*_x`` histogram (right).

    Example:
        >>> r = curse_report([AnswerPool({"a": 2, "b": 1}, frozenset({"a"}))], n_max=3)
        >>> plot_curse({"toy": r}, "/tmp/curse.png").name
        'curse.png'
    """
    if not reports:
        raise ConfigError("reports is empty; pass {task name: CurseReport}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    bins = _log2_bins(max(r.n_max for r in reports.values()))
    # With several tasks the histogram stacks the tasks; an "all" row would double-count them.
    parts_only = {n: r for n, r in reports.items() if n != "all"} or dict(reports)
    for k, (name, r) in enumerate(reports.items()):
        color = "black" if name == "all" else f"C{k}"
        width = 2.5 if name == "all" else 1.5
        left.plot(r.grid, r.mean_curve, marker=".", color=color, lw=width, label=name)
        left.plot([r.n_d], [r.accuracy_at_n_d], marker="*", ms=14, color=color, ls="none")
        left.axhline(r.oracle_accuracy, color=color, ls="--", lw=0.8)
    right.hist(
        [r.optimal for r in parts_only.values()],
        bins=bins,
        stacked=True,
        color=[f"C{k}" for k, n in enumerate(reports) if n in parts_only],
        label=list(parts_only),
    )
    overall = reports.get("all") or next(iter(reports.values()))
    right.axvline(overall.mean_optimal, color="black", ls="--", label="mean N*_x")
    right.axvline(overall.n_d, color="black", ls=":", label="N_D")
    left.set(xlabel="N (votes, log2)", ylabel="mean accuracy A(N)")
    left.set_xscale("log", base=2)
    left.set_title("Mean accuracy vs N (star = N_D, dashed = oracle accuracy)", fontsize=10)
    right.set_xscale("log", base=2)
    right.set(xlabel="per-question optimal N*_x (log2 bins)", ylabel="questions")
    right.set_title("Per-question optimal budgets (stacked by task)", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    parts = [f"{n}: {r.overscaling_index:.2f} (N_D={r.n_d})" for n, r in reports.items()]
    lines = [", ".join(parts[i : i + 3]) for i in range(0, len(parts), 3)]
    fig.suptitle("Overscaling index mean N*_x / N_D — " + "\n".join(lines), fontsize=11)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
