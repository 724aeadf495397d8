"""Replay mode: sequential sampling policies re-run on a question's collected pool.

A question's pool of ``M`` collected completions stands in for the model. One *replay order* is a
random permutation of the pool; a policy draws the completions in that order and stops by its
rule, so what it would have sampled is read off the pool instead of decoded. Its credit is the
majority vote over what it drew with the library's tie rule (:mod:`t2_agents.voting`: uniform among
the tied top answers) taken in expectation, ``k/t`` when ``k`` of the ``t`` tied answers are
correct, instead of drawing; completions without an answer do not vote. Over random orders a
fixed ``N`` averages to the exact ``A_x(N)`` of :func:`~t2_agents.curves.exact.accuracy_curve`.

Stopping rules (every rule stops at the pool size ``M`` at the latest; the criteria are those of
:mod:`t2_agents.budget.stop_rules`, which the live graph applies wave by wave):

* ``"fixed"``: stop after ``n`` completions (one round).
* ``"adaptive"``: Adaptive-Consistency (Aggarwal et al., 2023). One completion at a time; stop
  once the Beta approximation between the two leading answers (votes ``v1 >= v2``, uniform
  prior) gives ``P(p1 > p2) = P(Beta(v1 + 1, v2 + 1) > 1/2) = P(Binomial(v1 + v2 + 1, 1/2) <=
  v1) >= threshold``. With 0.95 a unanimous run stops after 4 votes (3 give 0.9375). Every
  completion is a round.
* ``"esc"``: Early-Stopping Self-Consistency (Li et al., 2024). Windows of ``window``
  completions; stop after a window whose completions all carry the same answer (a completion
  without an answer breaks unanimity). The answer is the vote over everything drawn. Every
  window is a round.
* ``"hybrid"`` (ours): a first parallel wave of ``n`` completions (T2's budget), then one more
  wave of ``window`` completions while the vote is not *decisive*: at least ``min_votes`` valid
  votes, and a leader share of the valid votes ``>= decisive_share`` or the Beta probability
  above ``>= threshold``, stopping at ``cap`` (T2's predicted saturation budget) at the latest.
  Rounds: 1 + the follow-up waves.

Example:
    >>> pool = ReplayPool(("4", "4", "5", "4"), (3, 3, 3, 3), frozenset({"4"}))
    >>> out = replay(pool, "fixed", n=3, replays=100)
    >>> float(out.credit.mean()), int(out.tokens[0])
    (1.0, 9)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from t2_agents.budget.stop_rules import (
    StopRules,
    beta_confident,
    decisive,
    leader_probability,
    window_unanimous,
)
from t2_agents.checks import check_int
from t2_agents.curves.exact import AnswerPool
from t2_agents.errors import ConfigError, DataError

__all__ = [
    "RULES",
    "Replay",
    "ReplayPool",
    "Rule",
    "StopRules",
    "leader_probability",
    "random_orders",
    "replay",
    "replay_many",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Rule = Literal["fixed", "adaptive", "esc", "hybrid"]
RULES: tuple[Rule, ...] = ("fixed", "adaptive", "esc", "hybrid")
"""Every stopping rule :func:`replay` knows."""
_TRACE_ELEMENTS = 1 << 22  # replays x M x answers per chunk of the vote trace (bounds memory)


@dataclass(frozen=True, eq=False)
class ReplayPool:
    """One question's collected completions in collection order: answers, tokens, grading.

    Example:
        >>> ReplayPool(("4", None, "5"), (2, 9, 3), frozenset({"4"})).pool.invalid
        1
    """

    answers: tuple[str | None, ...]
    """Extracted answer of each completion (None: no answer, does not vote)."""
    tokens: tuple[int, ...]
    """Completion tokens of each completion."""
    correct: frozenset[str]
    """Answers graded correct."""
    pool: AnswerPool = field(init=False, repr=False)
    """The answer summary (counts) for the exact curves."""

    def __post_init__(self) -> None:
        if len(self.answers) != len(self.tokens) or not self.answers:
            raise DataError(
                f"a pool needs >= 1 completion and one token count each; got "
                f"{len(self.answers)} answers and {len(self.tokens)} token counts"
            )
        valid = [a for a in self.answers if a is not None]
        counts = dict(Counter(valid))
        pool = AnswerPool(counts, frozenset(self.correct), invalid=len(self.answers) - len(valid))
        object.__setattr__(self, "pool", pool)

    @property
    def size(self) -> int:
        """Pool size ``M``."""
        return len(self.answers)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ReplayPool:
        """Build from a :func:`~t2_agents.calibrate.collect.load_collection` record.

        Raises:
            DataError: The record has no per-sample answers or they contradict its counts.
        """
        label = record.get("id", "?")
        samples = record.get("samples")
        if not isinstance(samples, list) or not samples:
            raise DataError(
                f"record {label!r} has no per-sample answers ('samples'); recollect it with "
                "t2 collect"
            )
        try:
            answers = tuple(None if s["answer"] is None else str(s["answer"]) for s in samples)
            tokens = tuple(int(s["tokens"]) for s in samples)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"record {label!r} has a malformed sample ({exc}); recollect") from exc
        built = cls(answers, tokens, frozenset(str(a) for a in record.get("correct", ())))
        if "counts" in record and dict(built.pool.counts) != dict(record["counts"]):
            raise DataError(f"record {label!r}: sample answers do not match its counts; recollect")
        return built


@dataclass(frozen=True)
class _Trace:
    """The vote after each draw, for every replay order: arrays ``[R, M]``."""

    seq: IntArray  # answer id drawn at step i (-1: no answer)
    top1: IntArray  # leading answer's votes after i + 1 draws
    top2: IntArray  # runner-up's votes
    valid: IntArray  # valid votes
    credit: FloatArray  # expected credit of the vote (uniform tie rule)
    tokens: FloatArray  # cumulative completion tokens


def _trace(pool: ReplayPool, orders: IntArray) -> _Trace:
    names = sorted(pool.pool.counts)
    index = {a: i for i, a in enumerate(names)}
    ids = np.array([-1 if a is None else index[a] for a in pool.answers], dtype=np.int64)
    correct = np.array([a in pool.correct for a in names], dtype=bool)
    seq = ids[orders]
    r, m, k = seq.shape[0], seq.shape[1], len(names)
    top1, top2 = np.zeros((r, m), np.int64), np.zeros((r, m), np.int64)
    credit = np.zeros((r, m))
    step = max(1, _TRACE_ELEMENTS // max(1, m * k))
    for s in range(0, r if k else 0, step):
        counts = np.cumsum(seq[s : s + step, :, None] == np.arange(k), axis=1, dtype=np.int64)
        if k >= 2:
            part = np.partition(counts, k - 2, axis=2)
            top1[s : s + step], top2[s : s + step] = part[..., k - 1], part[..., k - 2]
        else:
            top1[s : s + step] = counts[..., 0]
        lead = top1[s : s + step, :, None]
        tied = (counts == lead) & (lead > 0)
        n_tied = tied.sum(axis=2)
        credit[s : s + step] = (tied & correct).sum(axis=2) / np.maximum(n_tied, 1)
    valid = np.cumsum(seq >= 0, axis=1, dtype=np.int64)
    tokens = np.cumsum(np.asarray(pool.tokens, dtype=np.float64)[orders], axis=1)
    return _Trace(seq, top1, top2, valid, credit, tokens)


@dataclass(frozen=True)
class Replay:
    """One policy replayed on one pool: per replay order ``[R]``."""

    credit: FloatArray
    """Expected vote credit (0..1)."""
    samples: IntArray
    """Completions drawn."""
    tokens: FloatArray
    """Completion tokens of the drawn completions."""
    rounds: IntArray
    """Sequential waves."""


def _stops(
    trace: _Trace, rule: Rule, config: StopRules, first: int, cap: int
) -> tuple[IntArray, IntArray]:
    """Samples drawn when ``rule`` stops ``[R]`` and the rounds it took ``[R]``."""
    r, m = trace.seq.shape
    n = np.arange(1, m + 1)
    sure = beta_confident(trace.top1, trace.top2, config.threshold)
    w = config.window
    if rule == "fixed":
        ok = np.broadcast_to(n == first, (r, m)).copy()
    elif rule == "adaptive":
        ok = sure
    elif rule == "esc":
        ok = np.zeros((r, m), dtype=bool)
        if m >= w:
            win = np.lib.stride_tricks.sliding_window_view(trace.seq, w, axis=1)  # [R, m-w+1, w]
            unanimous = window_unanimous(win)
            ok[:, w - 1 :: w] = unanimous[:, ::w]
    else:
        ok = decisive(trace.top1, trace.top2, trace.valid, config)
        ok &= (n >= first) & ((n - first) % w == 0)
        ok[:, cap - 1] = True  # the live waves are cut to the cap too
    ok[:, -1] = True
    samples = np.argmax(ok, axis=1).astype(np.int64) + 1
    if rule == "adaptive":
        rounds = samples
    elif rule == "esc":
        rounds = -(-samples // w)
    elif rule == "hybrid":
        rounds = 1 + (-(-(samples - first) // w))
    else:
        rounds = np.ones(r, dtype=np.int64)
    return samples, rounds


def random_orders(m: int, replays: int, rng: np.random.Generator) -> IntArray:
    """``replays`` independent uniform permutations of ``0..m-1``, ``[replays, m]``.

    Example:
        >>> sorted(random_orders(4, 2, np.random.default_rng(0))[1].tolist())
        [0, 1, 2, 3]
    """
    return np.asarray(rng.permuted(np.tile(np.arange(m), (replays, 1)), axis=1), dtype=np.int64)


def replay_many(
    pool: ReplayPool,
    rules: Sequence[Rule],
    *,
    orders: npt.ArrayLike,
    stop: StopRules | None = None,
    n: int | None = None,
    cap: int | None = None,
) -> dict[Rule, Replay]:
    """Replay several rules on the same orders (one shared vote trace).

    Args:
        pool: The question's pool.
        rules: Rules from :data:`RULES`.
        orders: Replay orders ``[R, M]``, each row a permutation of ``0..M-1``.
        stop: Rule settings.
        n: The fixed ``N`` (``"fixed"``) and the hybrid's first wave (``1..M``).
        cap: The hybrid's last sample (its predicted saturation budget), at least ``n``;
            larger than ``M`` or None: ``M``.

    Raises:
        ConfigError: Unknown rule, bad orders, ``n`` missing or outside ``1..M``, or ``cap``
            below ``n``.

    Example:
        >>> pool = ReplayPool(("7",) * 8, (5,) * 8, frozenset({"7"}))
        >>> out = replay_many(pool, ["esc", "adaptive"], orders=[list(range(8))])
        >>> int(out["esc"].samples[0]), int(out["adaptive"].samples[0])
        (4, 4)
    """
    cfg = stop or StopRules()
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ConfigError(f"rules {unknown} are unknown; use {', '.join(RULES)}")
    first = 1
    if any(r in ("fixed", "hybrid") for r in rules):
        if n is None or isinstance(n, bool) or not 1 <= n <= pool.size:
            raise ConfigError(f"fixed/hybrid need n within 1..M={pool.size}; got n={n!r}")
        first = int(n)
    last = pool.size if cap is None else min(pool.size, int(cap))
    if cap is not None and (isinstance(cap, bool) or cap < first):
        raise ConfigError(f"the hybrid's cap={cap!r} is below its first wave n={first}")
    perm = np.asarray(orders, dtype=np.int64)
    if perm.ndim != 2 or perm.shape[1] != pool.size or perm.shape[0] < 1:
        raise ConfigError(f"orders have shape {perm.shape}; pass [replays, M={pool.size}]")
    if not (np.sort(perm, axis=1) == np.arange(pool.size)).all():
        raise ConfigError(f"every order must be a permutation of 0..{pool.size - 1}")
    trace = _trace(pool, perm)
    rows = np.arange(perm.shape[0])
    out: dict[Rule, Replay] = {}
    for rule in rules:
        samples, rounds = _stops(trace, rule, cfg, first, last)
        out[rule] = Replay(
            trace.credit[rows, samples - 1], samples, trace.tokens[rows, samples - 1], rounds
        )
    return out


def replay(
    pool: ReplayPool,
    rule: Rule,
    *,
    n: int | None = None,
    stop: StopRules | None = None,
    replays: int = 200,
    seed: int = 0,
) -> Replay:
    """Replay one rule on ``replays`` random orders of ``pool`` (seeded).

    Example:
        >>> pool = ReplayPool(("7",) * 8, (5,) * 8, frozenset({"7"}))
        >>> replay(pool, "esc", replays=3).samples.tolist()
        [4, 4, 4]
    """
    check_int("replays", replays, low=1)
    orders = random_orders(pool.size, replays, np.random.default_rng(seed))
    return replay_many(pool, [rule], orders=orders, stop=stop, n=n)[rule]
