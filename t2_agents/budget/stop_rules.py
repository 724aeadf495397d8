"""Sequential stop rules shared by replay (:mod:`t2_agents.evaluate.replay`) and the live graph.

A sequential policy samples reasoning paths in *waves*, votes after every wave and stops once
its rule fires (or at the cap). The criteria are written once here, on vote statistics that may
be numbers or numpy arrays, so the vectorised replay over thousands of orders and the live graph
deciding one wave at a time apply exactly the same tests.

Rules (:class:`StopRule` ``kind``):

* ``"adaptive"``: Adaptive-Consistency (Aggarwal et al., 2023). Stop once the Beta
  approximation between the two leading answers (votes ``v1 >= v2``, uniform prior) gives
  ``P(p1 > p2) = P(Beta(v1 + 1, v2 + 1) > 1/2) = P(Binomial(v1 + v2 + 1, 1/2) <= v1) >=
  threshold``; the published rule checks after every sample (``wave=1``, the default).
* ``"esc"``: Early-Stopping Self-Consistency (Li et al., 2024). Waves (windows) of ``window``
  paths; stop after a window whose paths all carry the same answer (a path without an answer
  breaks unanimity).
* ``"hybrid"`` (ours): a first parallel wave of the budget policy's ``N`` (T2's prediction),
  then waves of ``window`` paths while the vote is not *decisive*: at least ``min_votes`` valid
  votes and a leader share ``>= decisive_share`` or the Beta probability ``>= threshold``, up to
  its own cap: the budget where the policy's predicted accuracy curve saturates (the smallest
  ``N`` within ``cap_tolerance`` of the predicted best; ``n_max`` for a policy without a curve).

Every rule stops at the cap (``n_max``) at the latest. Paths without an answer never vote.
Why the hybrid has its own cap: a small model seldom agrees with itself, so a vote that must
become decisive runs on to ``n_max`` on hard questions, where the curve head already predicts
that more paths buy nothing.

Example:
    >>> rule = StopRule(kind="esc", window=2)
    >>> rule.decide(["7", "7", "8", "8"], wave=["8", "8"]).stop
    True
    >>> leader_probability(4, 0)
    0.96875
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from t2_agents.checks import check_accuracy, check_int
from t2_agents.errors import ConfigError

__all__ = [
    "CAP_FIX",
    "StopDecision",
    "StopKind",
    "StopRule",
    "StopRules",
    "beta_confident",
    "decisive",
    "leader_probability",
    "leader_table",
    "vote_counts",
    "window_unanimous",
]

StopKind = Literal["adaptive", "esc", "hybrid"]
"""The live sequential rules (see the module docs)."""

CAP_FIX = "pass e.g. 0.0 (cap the hybrid where its predicted curve peaks) or None (cap at n_max)"
"""The fix a bad ``cap_tolerance`` message names."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class StopRules:
    """Settings of the sequential stopping rules (see the module docs).

    Example:
        >>> StopRules(window=2).threshold
        0.95
    """

    threshold: float = 0.95
    """Beta probability that the leader is the majority, to stop (adaptive, hybrid); in
    [0.5, 1): below 0.5 every vote would stop, 1 never stops."""
    window: int = 4
    """ESC window size and the hybrid's follow-up wave size."""
    decisive_share: float = 0.75
    """Leader share of the valid votes that makes the hybrid's vote decisive."""
    min_votes: int = 2
    """Valid votes the hybrid needs before its vote can be decisive."""
    cap_tolerance: float | None = 0.0
    """The hybrid's cap: the smallest N whose predicted accuracy (the budget policy's curve
    head) is within this accuracy (0..1) of the predicted best; 0: where the predicted curve
    peaks. None, or a policy without a predicted curve: ``n_max``."""

    def __post_init__(self) -> None:
        check_int("window", self.window, low=1)
        check_int("min_votes", self.min_votes, low=1)
        if self.cap_tolerance is not None:
            check_accuracy("cap_tolerance", self.cap_tolerance, fix=CAP_FIX)
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float):
            raise ConfigError(f"threshold={self.threshold!r} must be a number in [0.5, 1)")
        if not 0.5 <= self.threshold < 1.0:
            raise ConfigError(
                f"threshold={self.threshold!r} is outside [0.5, 1) (a probability that the "
                "leader wins; 1 would never stop); pass e.g. 0.95"
            )
        if not 0.0 < self.decisive_share <= 1.0:
            raise ConfigError(
                f"decisive_share={self.decisive_share!r} must be in (0, 1], e.g. 0.75"
            )


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


def beta_confident(top1: Any, top2: Any, threshold: float) -> Any:
    """Adaptive-Consistency's test: ``leader_probability(top1, top2) >= threshold``.

    Works on ints or on int arrays of the same shape (the replay's ``[R, M]`` traces).

    Example:
        >>> bool(beta_confident(4, 0, 0.95)), bool(beta_confident(3, 0, 0.95))
        (True, False)
    """
    t1, t2 = np.asarray(top1, dtype=np.int64), np.asarray(top2, dtype=np.int64)
    size = int(max(t1.max(initial=0), t2.max(initial=0)))
    return leader_table(size)[t1, t2] >= threshold


def decisive(top1: Any, top2: Any, valid: Any, rules: StopRules) -> Any:
    """The hybrid's test: enough valid votes and a clear leader (share or Beta probability).

    Example:
        >>> bool(decisive(3, 1, 4, StopRules())), bool(decisive(2, 2, 4, StopRules()))
        (True, False)
    """
    t1, v = np.asarray(top1), np.asarray(valid)
    share = t1 >= rules.decisive_share * v
    return (v >= rules.min_votes) & (share | beta_confident(top1, top2, rules.threshold))


def window_unanimous(window: Any) -> Any:
    """ESC's test on answer ids ``[..., w]`` (``-1``: no answer): one answer, all valid.

    Example:
        >>> bool(window_unanimous([3, 3, 3])), bool(window_unanimous([-1, -1]))
        (True, False)
    """
    ids = np.asarray(window)
    return (ids == ids[..., :1]).all(axis=-1) & (ids[..., 0] >= 0)


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
class StopDecision:
    """What a rule decided after one wave."""

    stop: bool
    """Whether to stop sampling."""
    reason: str
    """Why (``"adaptive"``, ``"esc"``, ``"decisive"``, ``"n_max"``...) or ``"continue"``."""
    leader_probability: float
    """The Beta probability that the current leader is the majority answer."""


@dataclass(frozen=True, kw_only=True)
class StopRule(StopRules):
    """A live sequential policy: the rule, its settings, and the wave sizes.

    Args: see the fields (all keyword-only); the settings of :class:`StopRules` apply.

    Raises:
        ConfigError: Unknown ``kind``, a threshold outside [0.5, 1), a non-positive window or
            wave (:meth:`check_cap` refuses waves above the step's ``n_max``).

    Example:
        >>> StopRule(kind="hybrid").wave_sizes(first=3, n_max=8)
        (3, 4)
        >>> StopRule(kind="adaptive").wave_sizes(first=3, n_max=8)
        (1, 1)
    """

    kind: StopKind = "hybrid"
    """``adaptive``, ``esc`` or ``hybrid``."""
    wave: int | None = None
    """Paths per follow-up wave; None: 1 for ``adaptive`` (the published rule), ``window``
    for ``esc`` and ``hybrid``. One engine call samples one wave."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in get_args(StopKind):
            raise ConfigError(f"kind={self.kind!r} is not one of {get_args(StopKind)}")
        if self.wave is not None:
            check_int("wave", self.wave, low=1)
        if self.kind == "esc" and self.wave not in (None, self.window):
            raise ConfigError(
                f"wave={self.wave} differs from window={self.window}; ESC's waves are its "
                "windows: leave wave out or set window instead"
            )

    @property
    def name(self) -> str:
        """Short name for states and ledgers, e.g. ``hybrid`` or ``esc-4``."""
        if self.kind == "esc":
            return f"esc-{self.window}"
        if self.kind == "adaptive":
            return f"adaptive-{self.threshold:g}"
        return "hybrid"

    def follow_up(self) -> int:
        """Paths per follow-up wave."""
        if self.wave is not None:
            return self.wave
        return 1 if self.kind == "adaptive" else self.window

    def wave_sizes(self, *, first: int, n_max: int) -> tuple[int, int]:
        """``(first wave, follow-up wave)``; the hybrid's first wave is the policy's ``first``.

        Raises:
            ConfigError: A wave larger than ``n_max`` (see :meth:`check_cap`).
        """
        self.check_cap(n_max)
        start = min(first, n_max) if self.kind == "hybrid" else self.follow_up()
        return start, self.follow_up()

    def check_cap(self, n_max: int) -> None:
        """Refuse follow-up waves (or ESC windows) larger than the step's ``n_max``.

        Raises:
            ConfigError: The wave would not fit under ``n_max``.
        """
        size = self.follow_up()
        if size > n_max:
            raise ConfigError(
                f"the {self.kind} rule's waves of {size} paths exceed n_max={n_max}; pass "
                f"wave/window <= {n_max} or raise n_max"
            )

    def decide(
        self, answers: Sequence[str | None], *, wave: Sequence[str | None], n_max: int = 0
    ) -> StopDecision:
        """Decide after a wave: stop or sample another.

        Args:
            answers: Every answer so far (this wave's included), None for no answer.
            wave: This wave's answers (ESC tests their unanimity).
            n_max: The cap; reaching it always stops (0: no cap check).

        Example:
            >>> StopRule(kind="adaptive").decide(["4"] * 4, wave=["4"]).reason
            'adaptive'
        """
        top1, top2, valid = vote_counts(answers)
        p = leader_probability(top1, top2)
        if self.kind == "adaptive" and bool(beta_confident(top1, top2, self.threshold)):
            return StopDecision(True, "adaptive", p)
        if self.kind == "esc" and len(wave) == self.window:
            index: dict[str, int] = {}
            ids = [-1 if a is None else index.setdefault(a, len(index)) for a in wave]
            if bool(window_unanimous(ids)):
                return StopDecision(True, "esc", p)
        if self.kind == "hybrid" and bool(decisive(top1, top2, valid, self)):
            return StopDecision(True, "decisive", p)
        if n_max and len(answers) >= n_max:
            return StopDecision(True, "n_max", p)
        return StopDecision(False, "continue", p)
