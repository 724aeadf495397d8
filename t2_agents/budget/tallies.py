"""Vote tallies and the tests the stop rules apply to them, for one step or for many orders.

The stop rules (:mod:`t2_agents.budget.stop_rules`) decide on the same statistics in two
settings: the live graph after one wave (:meth:`Votes.of`: numbers, as 0-d arrays) and the
replay after every draw of ``R`` random orders of a pool (:class:`VoteTrace`: ``[R, M]``
arrays). Every test here works elementwise on both.

Example:
    >>> votes = Votes.of(["7", "7", None, "8"], wave=["8"])
    >>> int(votes.top1), int(votes.top2), int(votes.valid), votes.wave.tolist()
    (2, 1, 3, [1])
    >>> leader_probability(4, 0)
    0.96875
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from t2_agents.checks import check_int

__all__ = [
    "BoolArray",
    "FloatArray",
    "IntArray",
    "VoteTrace",
    "Votes",
    "beta_confident",
    "leader_probability",
    "leader_table",
    "vote_counts",
    "window_unanimous",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@functools.lru_cache(maxsize=8)
def leader_table(m: int) -> FloatArray:
    """``table[v1, v2] = P(Binomial(v1 + v2 + 1, 1/2) <= v1)`` for ``v1, v2 <= m`` (exact).

    Example:
        >>> float(leader_table(4)[4, 0])
        0.96875
    """
    table = np.zeros((m + 1, m + 1))
    for n in range(1, 2 * m + 2):
        cdf, acc, term = [], 0, 1  # term = C(n, k), updated exactly
        for k in range(n + 1):
            acc += term
            cdf.append(acc / 2**n)
            term = term * (n - k) // (k + 1)
        for v1 in range(max(0, n - 1 - m), min(m, n - 1) + 1):
            table[v1, n - 1 - v1] = cdf[v1]
    table.setflags(write=False)
    return table


def leader_probability(v1: int, v2: int) -> float:
    """Beta approximation of P(the answer with ``v1`` votes beats the one with ``v2``).

    ``P(Beta(v1 + 1, v2 + 1) > 1/2)`` (Aggarwal et al., 2023, uniform prior).

    Example:
        >>> leader_probability(4, 0), leader_probability(3, 0)
        (0.96875, 0.9375)
    """
    check_int("v1", v1, low=0)
    check_int("v2", v2, low=0)
    return float(leader_table(max(v1, v2))[v1, v2])


def beta_confident(top1: object, top2: object, threshold: float) -> BoolArray:
    """Adaptive-Consistency's test: ``leader_probability(top1, top2) >= threshold``.

    Works on ints or on int arrays of the same shape (the replay's ``[R, M]`` traces).

    Example:
        >>> bool(beta_confident(4, 0, 0.95)), bool(beta_confident(3, 0, 0.95))
        (True, False)
    """
    t1, t2 = np.asarray(top1, dtype=np.int64), np.asarray(top2, dtype=np.int64)
    size = int(max(t1.max(initial=0), t2.max(initial=0)))
    return np.asarray(leader_table(size)[t1, t2] >= threshold)


def window_unanimous(window: object) -> BoolArray:
    """ESC's test on answer ids ``[..., w]`` (``-1``: no answer): one answer, all valid.

    Example:
        >>> bool(window_unanimous([3, 3, 3])), bool(window_unanimous([-1, -1]))
        (True, False)
    """
    ids = np.asarray(window)
    return np.asarray((ids == ids[..., :1]).all(axis=-1) & (ids[..., 0] >= 0))


def vote_counts(answers: Sequence[str | None]) -> tuple[int, int, int]:
    """``(top1, top2, valid)`` vote counts of a list of answers (None does not vote).

    Example:
        >>> vote_counts(["a", "b", "a", None])
        (2, 1, 3)
    """
    counts = sorted(Counter(a for a in answers if a is not None).values(), reverse=True)
    top1 = counts[0] if counts else 0
    top2 = counts[1] if len(counts) > 1 else 0
    return top1, top2, sum(counts)


@dataclass(frozen=True)
class Votes:
    """The vote after a wave: 0-d arrays for one live step, ``[R, M]`` arrays in replay.

    Example:
        >>> Votes.of(["a", "b", "a"], wave=["a"]).valid.tolist()
        3
    """

    top1: IntArray
    """Votes of the leading answer."""
    top2: IntArray
    """Votes of the runner-up (0 when there is none)."""
    valid: IntArray
    """Paths that carry an answer (the others do not vote)."""
    wave: IntArray
    """Answer ids of the latest wave, ``[..., w]`` (``-1``: no answer; equal ids, equal
    answers). Live: the wave as sampled (empty while a wave is still running); in replay: the
    last ``w`` draws at every position (``w`` the rule's follow-up wave), ``-1`` before the
    first draw."""

    @classmethod
    def of(cls, answers: Sequence[str | None], *, wave: Sequence[str | None]) -> Votes:
        """The vote of one live step: every answer so far and this wave's.

        Example:
            >>> Votes.of([None, "x"], wave=[None, "x"]).wave.tolist()
            [-1, 0]
        """
        top1, top2, valid = vote_counts(answers)
        index: dict[str, int] = {}
        for answer in answers:
            if answer is not None:
                index.setdefault(answer, len(index))
        ids = [-1 if a is None else index.setdefault(a, len(index)) for a in wave]
        as_int = functools.partial(np.asarray, dtype=np.int64)
        return cls(as_int(top1), as_int(top2), as_int(valid), as_int(ids).reshape(len(ids)))


@dataclass(frozen=True)
class VoteTrace:
    """The vote after every draw of ``R`` replay orders: arrays ``[R, M]``.

    Example:
        >>> trace = VoteTrace.of([[0, 0, -1, 1]])
        >>> trace.top1.tolist(), trace.valid.tolist()
        ([[1, 2, 2, 2]], [[1, 2, 2, 3]])
    """

    seq: IntArray
    """The answer id drawn at each step (``-1``: no answer)."""
    top1: IntArray
    """The leading answer's votes after ``i + 1`` draws."""
    top2: IntArray
    """The runner-up's votes after ``i + 1`` draws."""
    valid: IntArray
    """Valid votes after ``i + 1`` draws."""

    @classmethod
    def of(cls, seq: npt.ArrayLike) -> VoteTrace:
        """Tally answer-id sequences ``[R, M]`` (small inputs; the replay tallies in chunks).

        Example:
            >>> VoteTrace.of([[1, 0, 1]]).top2.tolist()
            [[0, 1, 1]]
        """
        ids = np.asarray(seq, dtype=np.int64)
        k = int(ids.max(initial=-1)) + 1
        counts = np.cumsum(ids[:, :, None] == np.arange(k), axis=1, dtype=np.int64)
        ranked = np.sort(counts, axis=2) if k else np.zeros((*ids.shape, 1), np.int64)
        top2 = ranked[..., -2] if k >= 2 else np.zeros(ids.shape, np.int64)
        valid = np.cumsum(ids >= 0, axis=1, dtype=np.int64)
        return cls(ids, ranked[..., -1], top2, valid)

    def votes(self, *, width: int) -> Votes:
        """:class:`Votes` at every position, the wave being the last ``width`` draws.

        Example:
            >>> VoteTrace.of([[2, 2, 2]]).votes(width=2).wave.tolist()
            [[[-1, 2], [2, 2], [2, 2]]]
        """
        r = self.seq.shape[0]
        padded = np.concatenate([np.full((r, width - 1), -1, dtype=np.int64), self.seq], axis=1)
        wave = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)
        return Votes(self.top1, self.top2, self.valid, wave)
