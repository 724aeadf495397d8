"""Replay mode: sequential sampling policies re-run on a question's collected pool.

A question's pool of ``M`` collected completions stands in for the model. One *replay order* is a
random permutation of the pool; a policy draws the completions in that order and stops by its
rule, so what it would have sampled is read off the pool instead of decoded. Its credit is the
majority vote over what it drew with the library's tie rule (:mod:`t2_agents.voting`: uniform among
the tied top answers) taken in expectation, ``k/t`` when ``k`` of the ``t`` tied answers are
correct, instead of drawing; completions without an answer do not vote. Over random orders a
fixed ``N`` averages to the exact ``A_x(N)`` of :func:`~t2_agents.curves.exact.accuracy_curve`.

Stopping rules (every rule stops at the pool size ``M`` at the latest):

* ``"fixed"``: stop after ``n`` completions (one round).
* every sequential rule of the registry (:func:`~t2_agents.budget.stop_rules.stop_rule_kinds`:
  ``"adaptive"``, ``"esc"``, ``"hybrid"`` and any rule registered since), replayed by its own
  :meth:`~t2_agents.budget.stop_rules.StopCriterion.replay_stops`: the test the live graph
  applies wave by wave, on the vote after every draw. The waves are the live ones: the first
  is ``n`` (T2's budget) for a rule that takes the policy's N (the hybrid) and a follow-up wave
  otherwise (one completion for ``"adaptive"``, ``window`` for ``"esc"``); the hybrid also
  stops at ``cap`` (T2's predicted saturation budget). Rounds: the waves drawn. With 0.95 a
  unanimous ``"adaptive"`` run stops after 4 votes (3 give 0.9375).

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
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.budget.stop_rules import (
    StopRules,
    VoteTrace,
    leader_probability,
    stop_criterion,
    stop_rule_kinds,
)
from t2_agents.checks import check_int
from t2_agents.confidence import PathConfidence
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
    "replay_rules",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Rule = str
"""``"fixed"`` or a registered stop rule's kind (:func:`replay_rules`)."""


def replay_rules() -> tuple[Rule, ...]:
    """Every stopping rule :func:`replay` knows: ``fixed`` and the registered stop rules.

    Example:
        >>> replay_rules()
        ('fixed', 'adaptive', 'esc', 'hybrid')
    """
    return ("fixed", *stop_rule_kinds())


RULES: tuple[Rule, ...] = replay_rules()
"""The rules :func:`replay` knew at import (:func:`replay_rules` adds rules registered since)."""
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
    confidences: tuple[PathConfidence | None, ...] | None = None
    """Each completion's path confidence (None where the engine gave none); None for a
    collection made without confidences. The confidence vote rules read it
    (:mod:`t2_agents.vote_rules`)."""
    pool: AnswerPool = field(init=False, repr=False)
    """The answer summary (counts) for the exact curves."""

    def __post_init__(self) -> None:
        if len(self.answers) != len(self.tokens) or not self.answers:
            raise DataError(
                f"a pool needs >= 1 completion and one token count each; got "
                f"{len(self.answers)} answers and {len(self.tokens)} token counts"
            )
        if self.confidences is not None and len(self.confidences) != len(self.answers):
            raise DataError(
                f"a pool needs one confidence (or None) per completion; got "
                f"{len(self.confidences)} for {len(self.answers)} completions"
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
            confidences = _confidences(samples)
        except (KeyError, TypeError, ValueError, AttributeError, DataError) as exc:
            raise DataError(f"record {label!r} has a malformed sample ({exc}); recollect") from exc
        correct = frozenset(str(a) for a in record.get("correct", ()))
        built = cls(answers, tokens, correct, confidences)
        if "counts" in record and dict(built.pool.counts) != dict(record["counts"]):
            raise DataError(f"record {label!r}: sample answers do not match its counts; recollect")
        return built


def _confidences(samples: list[Any]) -> tuple[PathConfidence | None, ...] | None:
    """The samples' stored confidences; None when no sample has one (an older collection)."""
    if not any("conf" in s for s in samples):
        return None
    return tuple(
        None if s.get("conf") is None else PathConfidence.from_compact(s["conf"]) for s in samples
    )


@dataclass(frozen=True)
class _Trace:
    """The vote after each draw, for every replay order: arrays ``[R, M]``."""

    votes: VoteTrace  # answer ids drawn and the vote tallies
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
    return _Trace(VoteTrace(seq, top1, top2, valid), credit, tokens)


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
    r, m = trace.votes.seq.shape
    if rule != "fixed":
        return stop_criterion(rule).replay_stops(trace.votes, config, first=first, cap=cap)
    samples = np.full(r, min(first, m), dtype=np.int64)
    return samples, np.ones(r, dtype=np.int64)


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
        rules: Rules from :func:`replay_rules`.
        orders: Replay orders ``[R, M]``, each row a permutation of ``0..M-1``.
        stop: Rule settings.
        n: The fixed ``N`` (``"fixed"``) and the first wave of a rule that takes the
            policy's N (the hybrid), ``1..M``.
        cap: The last sample of a capped rule (the hybrid's predicted saturation budget), at
            least ``n``; larger than ``M`` or None: ``M``.

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
    known = replay_rules()
    unknown = [r for r in rules if r not in known]
    if unknown:
        raise ConfigError(f"rules {unknown} are unknown; use {', '.join(known)}")
    first = 1
    takes_n = [r for r in rules if r == "fixed" or stop_criterion(r).takes_first_wave]
    if takes_n:
        if n is None or isinstance(n, bool) or not 1 <= n <= pool.size:
            raise ConfigError(f"{'/'.join(takes_n)} need n within 1..M={pool.size}; got n={n!r}")
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
