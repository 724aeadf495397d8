"""Allocate a total sample budget across a batch of questions by predicted marginal gain.

This goes beyond the T2 paper, which picks each question's ``N`` on its own. Given a batch of
questions and a total budget ``B`` (samples), :func:`allocate_budget` gives every question one
sample and then spends the rest where the *predicted* accuracy gain per extra sample is largest.

**Where the predicted curves come from.** Nothing here looks at the evaluated pools. A
:class:`DifficultyCurves` model is fitted on TRAINING collections: each training question gets a
difficulty signal (the T2 estimator's predicted ``log2 N*``), the questions are cut into
equal-count bins of that signal, and each bin's predicted curve ``A_hat(N)`` is the mean of the
exact ``A_x(N)`` curves of its training questions (shrunk towards the all-question mean by
``prior`` pseudo-questions, so a thin bin does not produce a wild curve). An evaluated question's
predicted curve is the curve of the bin its own signal falls into.

**The greedy rule.** Majority-vote curves are not concave (under the uniform tie rule going from
1 to 2 samples never helps, and per-question curves have steps), so a plain "+1 where the gain
is largest" greedy stalls at the first flat step. :func:`allocate_budget` therefore walks each
question's upper concave envelope: the increments are the envelope's segments (from one vertex
to the next), taken in order of decreasing gain per sample while they fit into the budget; a
segment that does not fit closes that question. For the envelope this greedy is optimal (it is
the fractional knapsack of concave pieces); for the real, non-concave curves it is a heuristic.

**What it can and cannot do.**

* It can move samples from questions the signal calls easy (or hopeless) to questions in the
  middle, at the same total cost: the curves of the bins say where an extra sample buys most.
* It cannot see anything the signal does not carry. All questions of one bin get the same curve,
  so within a bin it cannot tell them apart (ties are broken by question order); an
  uninformative signal collapses every bin to the mean curve and the allocation to a near
  uniform fixed ``N``.
* The bins are fitted on the estimator's predictions for its own training questions, which are
  in-sample and therefore better separated than on new questions; the predicted curves are
  optimistic about how different the bins are.
* It is an offline, batch-level plan: it needs the whole batch up front, uses no feedback from
  the samples (unlike early stopping), and leaves unspent any budget that buys no predicted gain
  (so compare it at its actual mean ``N``, which :mod:`t2_agents.evaluate` does).
* Predicted curves stop at the training pools' size, so no question gets more samples than that.

Example:
    >>> curves = np.array([[1.0, 1.0, 1.0], [0.4, 0.4, 0.7], [0.0, 0.0, 0.0]])
    >>> allocate_budget(curves, 5).tolist()
    [1, 3, 1]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.checks import check_int
from t2_agents.errors import ConfigError, DataError

__all__ = ["DifficultyCurves", "allocate_budget", "concave_envelope"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_GAIN_FLOOR = 1e-12  # segments gaining less per sample are not worth a sample


@dataclass(frozen=True, eq=False)
class DifficultyCurves:
    """Predicted accuracy curves ``A_hat(N)`` per bin of a difficulty signal.

    Build one with :meth:`fit`; :meth:`predict` maps signals to curves.

    Example:
        >>> dc = DifficultyCurves.fit([0.0, 0.1, 3.0, 3.1], [[1, 1], [1, 1], [0, 1], [0, 1]],
        ...                           bins=2, prior=0.0)
        >>> dc.predict([0.05, 3.05]).tolist()
        [[1.0, 1.0], [0.0, 1.0]]
    """

    edges: tuple[float, ...]
    """Inner bin edges on the signal, ascending: bin ``b`` holds ``edges[b-1] <= s < edges[b]``."""
    curves: FloatArray
    """``[n_bins, n_max]``: predicted ``A_hat(N)`` for ``N = 1..n_max`` in each bin."""
    counts: tuple[int, ...]
    """Training questions in each bin."""

    @classmethod
    def fit(
        cls,
        signal: npt.ArrayLike,
        curves: npt.ArrayLike,
        *,
        bins: int = 5,
        prior: float = 5.0,
    ) -> DifficultyCurves:
        """Fit bin curves from training questions' signals ``[Q]`` and exact curves ``[Q, n]``.

        Args:
            signal: Difficulty signal per training question (e.g. T2's predicted log2 ``N*``).
            curves: Exact ``A_x(N)`` of each training question, ``N = 1..n``.
            bins: Number of equal-count bins (fewer when the signal has fewer distinct values).
            prior: Pseudo-questions of the all-question mean curve added to every bin.

        Raises:
            DataError: Empty or mismatched inputs, or non-finite values.
            ConfigError: ``bins < 1`` or ``prior < 0``.
        """
        s = np.asarray(signal, dtype=np.float64)
        c = np.asarray(curves, dtype=np.float64)
        if s.ndim != 1 or c.ndim != 2 or len(s) != len(c) or c.size == 0:
            raise DataError(
                f"signal {s.shape} and curves {c.shape} do not match; pass [Q] and [Q, n] "
                "with Q >= 1 training questions"
            )
        if not (np.isfinite(s).all() and np.isfinite(c).all()):
            raise DataError("signal or curves hold NaN/inf; pass finite values")
        check_int("bins", bins, low=1)
        if not prior >= 0.0:
            raise ConfigError(f"prior={prior!r} must be >= 0 (pseudo-questions)")
        quantiles = np.quantile(s, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="higher")
        edges = np.unique(quantiles[(quantiles > s.min()) & (quantiles <= s.max())])
        index = np.searchsorted(edges, s, side="right")
        overall = c.mean(axis=0)
        table = np.empty((len(edges) + 1, c.shape[1]))
        counts = []
        for b in range(len(edges) + 1):
            members = c[index == b]
            counts.append(len(members))
            weight = len(members) + prior
            table[b] = (members.sum(axis=0) + prior * overall) / weight if weight else overall
        return cls(edges=tuple(float(e) for e in edges), curves=table, counts=tuple(counts))

    @property
    def n_max(self) -> int:
        """Length of the predicted curves (the training pools' size)."""
        return int(self.curves.shape[1])

    def bin_of(self, signal: npt.ArrayLike) -> IntArray:
        """Bin index of each signal value.

        Example:
            >>> DifficultyCurves((1.0,), np.zeros((2, 1)), (1, 1)).bin_of([0.5, 1.0]).tolist()
            [0, 1]
        """
        s = np.asarray(signal, dtype=np.float64)
        if s.ndim != 1 or not np.isfinite(s).all():
            raise DataError(f"signal has shape {s.shape} or non-finite values; pass finite [Q]")
        return np.searchsorted(np.asarray(self.edges), s, side="right").astype(np.int64)

    def predict(self, signal: npt.ArrayLike) -> FloatArray:
        """Predicted curves ``[Q, n_max]`` for signals ``[Q]`` (the curve of each one's bin)."""
        return np.asarray(self.curves[self.bin_of(signal)], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (edges, bin sizes, curves)."""
        return {
            "edges": list(self.edges),
            "counts": list(self.counts),
            "curves": [[round(float(v), 6) for v in row] for row in self.curves],
        }


def concave_envelope(curve: npt.ArrayLike) -> IntArray:
    """Budgets ``N`` (1-based) at the vertices of the upper concave envelope of ``A(N)``.

    The first and the last budget are always vertices; points on a straight segment are not.

    Example:
        >>> concave_envelope([0.5, 0.5, 0.8, 0.8, 0.9]).tolist()
        [1, 3, 5]
    """
    values = np.asarray(curve, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise DataError(f"curve has shape {values.shape}; pass a non-empty 1-D curve")
    hull: list[int] = []
    for x in range(len(values)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or below the chord a -> x: drop it
            if (values[b] - values[a]) * (x - a) <= (values[x] - values[a]) * (b - a) + 1e-15:
                hull.pop()
            else:
                break
        hull.append(x)
    return np.asarray(hull, dtype=np.int64) + 1


def allocate_budget(
    curves: npt.ArrayLike, budget: int, *, caps: Sequence[int] | npt.ArrayLike | None = None
) -> IntArray:
    """Per-question budgets summing to at most ``budget``, by greedy predicted marginal gain.

    Every question gets 1 sample; the rest is spent on envelope segments in order of decreasing
    predicted gain per sample (see the module docs). Budget that buys no predicted gain stays
    unspent.

    Args:
        curves: Predicted ``A_hat(N)``, ``[Q, n]`` for ``N = 1..n``.
        budget: Total samples for the batch (>= Q).
        caps: Largest ``N`` per question (default ``n``; each within ``1..n``).

    Returns:
        ``[Q]`` int budgets with ``1 <= N_x <= caps[x]`` and ``sum(N_x) <= budget``.

    Raises:
        DataError: ``curves`` is empty or not 2-D.
        ConfigError: ``budget < Q`` or bad ``caps``.

    Example:
        >>> allocate_budget([[0.2, 0.2, 0.6], [0.5, 0.5, 0.55]], 4).tolist()
        [3, 1]
    """
    values = np.asarray(curves, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise DataError(f"curves has shape {values.shape}; pass [n_questions, n_max] curves")
    n_q, length = values.shape
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < n_q:
        raise ConfigError(
            f"budget={budget!r} is below the {n_q} questions; every question needs one sample, "
            f"so pass a budget >= {n_q}"
        )
    limit = np.full(n_q, length, dtype=np.int64) if caps is None else np.asarray(caps, np.int64)
    if limit.shape != (n_q,) or limit.min() < 1 or limit.max() > length:
        raise ConfigError(f"caps must hold {n_q} values within 1..{length}")
    segments: list[tuple[float, int, int, int]] = []
    for q in range(n_q):
        vertices = concave_envelope(values[q, : limit[q]])
        for a, b in itertools.pairwise(vertices):
            gain = (values[q, b - 1] - values[q, a - 1]) / (b - a)
            if gain > _GAIN_FLOOR:
                segments.append((-float(gain), q, int(a), int(b)))
    segments.sort()
    out = np.ones(n_q, dtype=np.int64)
    spent, closed = n_q, set()
    for _, q, a, b in segments:
        if q in closed or out[q] != a:
            continue
        if spent + (b - a) > budget:
            closed.add(q)
            continue
        out[q] = b
        spent += b - a
    return out
