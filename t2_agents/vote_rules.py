"""Vote rules: how the sampled paths' answers are combined, one registry (like the stop rules).

The plain majority counts every path with an answer once. DeepConf (Fu et al., 2025,
arXiv 2508.15260) also reads each path's confidence (:mod:`t2_agents.confidence`): it weights the
vote by it, or keeps only the most confident paths. Each rule is one :class:`VoteCriterion`
registered with :func:`register_vote_rule`; its :meth:`~VoteCriterion.weights` is written once,
on arrays, so the live vote (the graph's aggregation node, the endpoint's ``t2.vote``) and the
Monte-Carlo replay (:func:`mc_accuracy_curve`, ``t2 eval --vote``) apply the same rule.

Rules (:class:`VoteSettings` ``kind``):

* ``"majority"`` (default): one vote per path with an answer (:func:`t2_agents.voting.vote`).
* ``"weighted"``: each path votes with its confidence (``statistic``, clamped at 0): DeepConf's
  confidence-weighted majority vote.
* ``"filtered"``: keep the ``ceil(eta / 100 * v)`` most confident of the ``v`` paths with an
  answer (ties: the earlier path first), then a plain majority over them: DeepConf's top-η %
  filtering (it reports η = 10 and 90; with the few paths T2 picks here, 10 % of 8 keeps one).

The tie rule is the library's (:mod:`t2_agents.voting`): uniform among the tied top answers.
A rule that reads confidence needs it on every path with an answer; when one lacks it (a
backend without log-probabilities, an old collection) the vote **falls back to the plain
majority** and the verdict's ``warning`` says so. Nothing raises on missing confidence.

Example:
    >>> from t2_agents.confidence import PathConfidence
    >>> conf = [PathConfidence(mean=c, lowest_group=c, tail=c, tokens=4) for c in (9, 1, 1)]
    >>> apply_vote(["7", "8", "8"], conf, VoteSettings(kind="weighted")).answer
    '7'
    >>> verdict = apply_vote(["7", "8", "8"], [None] * 3, VoteSettings(kind="filtered"))
    >>> verdict.answer, verdict.rule, verdict.warning is not None
    ('8', 'majority', True)
    >>> vote_rule_kinds()
    ('majority', 'weighted', 'filtered')
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

import numpy as np
import numpy.typing as npt

from t2_agents.checks import check_int
from t2_agents.confidence import CONFIDENCE_STATISTICS, ConfidenceStatistic, PathConfidence
from t2_agents.errors import ConfigError, DataError
from t2_agents.voting import Verdict, vote

__all__ = [
    "ETA_FIX",
    "Filtered",
    "Majority",
    "McCurve",
    "VoteCriterion",
    "VoteSettings",
    "Weighted",
    "apply_vote",
    "check_vote_kind",
    "mc_accuracy_curve",
    "register_vote_rule",
    "unregister_vote_rule",
    "vote_criterion",
    "vote_rule_kinds",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ETA_FIX = "pass a percentage in (0, 100], e.g. 50 (keep the more confident half) or 90"
"""The fix a bad ``eta`` message names."""
_REL_TOL = 1e-12  # weighted totals tie within this relative tolerance (as in voting.vote)


@dataclass(frozen=True, kw_only=True)
class VoteSettings:
    """Which vote rule combines the paths, and its parameters (see the module docs).

    Example:
        >>> VoteSettings(kind="filtered", eta=90).eta
        90.0
    """

    kind: str = "majority"
    """A registered rule (:func:`vote_rule_kinds`): ``majority``, ``weighted``, ``filtered``."""
    eta: float = 50.0
    """``filtered``: the percentage of the paths with an answer kept, the most confident
    first; in (0, 100]."""
    statistic: ConfidenceStatistic = "lowest_group"
    """The confidence summary the rules read: ``mean``, ``lowest_group`` or ``tail``."""

    def __post_init__(self) -> None:
        check_vote_kind(self.kind)
        eta = self.eta
        if isinstance(eta, bool) or not isinstance(eta, int | float) or not math.isfinite(eta):
            raise ConfigError(f"eta={eta!r} is not a number; {ETA_FIX}")
        if not 0.0 < eta <= 100.0:
            raise ConfigError(f"eta={eta!r} is outside (0, 100]; {ETA_FIX}")
        object.__setattr__(self, "eta", float(eta))
        if self.statistic not in CONFIDENCE_STATISTICS:
            raise ConfigError(
                f"statistic={self.statistic!r} is not one of {CONFIDENCE_STATISTICS}; "
                "pass one of them (DeepConf's best were lowest_group and tail)"
            )

    @property
    def criterion(self) -> VoteCriterion:
        """The registered rule of :attr:`kind`."""
        return vote_criterion(self.kind)


class VoteCriterion(ABC):
    """One vote rule: the votes each path casts (subclass and register it).

    Example:
        >>> Majority().weights(np.array([[2.0, np.nan]]), np.array([[True, True]]),
        ...                    VoteSettings()).tolist()
        [[1.0, 1.0]]
    """

    kind: ClassVar[str] = ""
    """The rule's registered name."""
    summary: ClassVar[str] = ""
    """One line for help texts."""
    needs_confidence: ClassVar[bool] = True
    """Whether the rule reads confidences (else it never falls back)."""

    @abstractmethod
    def weights(
        self, confidence: FloatArray, valid: BoolArray, settings: VoteSettings
    ) -> FloatArray:
        """The votes of each path, ``[..., n]`` (rows are independent votes).

        Args:
            confidence: The statistic of each path, ``[..., n]`` (NaN: none).
            valid: Whether each path has an answer, ``[..., n]``.
            settings: The rule's parameters.

        Returns:
            Finite weights ``>= 0`` of the same shape (ignored where ``valid`` is False).
        """


_REGISTRY: dict[str, VoteCriterion] = {}
_C = TypeVar("_C", bound=type[VoteCriterion])


def register_vote_rule(cls: _C) -> _C:
    """Class decorator: register a :class:`VoteCriterion` subclass under its ``kind``.

    Raises:
        ConfigError: No ``kind``, or the kind is taken.

    Example:
        >>> @register_vote_rule
        ... class FirstOnly(VoteCriterion):
        ...     kind, summary, needs_confidence = "first", "the first path decides", False
        ...     def weights(self, confidence, valid, settings):
        ...         return ((np.cumsum(valid, axis=-1) == 1) & valid) * 1.0
        >>> apply_vote(["3", "4", "4"], [None] * 3, VoteSettings(kind="first")).answer
        '3'
        >>> unregister_vote_rule("first")
    """
    kind = cls.kind
    if not kind:
        raise ConfigError(f"{cls.__name__} needs a class attribute kind = '<name>' to register")
    if kind in _REGISTRY:
        raise ConfigError(
            f"vote rule {kind!r} is registered already ({type(_REGISTRY[kind]).__name__}); "
            f"choose another kind or unregister_vote_rule({kind!r}) first"
        )
    _REGISTRY[kind] = cls()
    return cls


def unregister_vote_rule(kind: str) -> None:
    """Remove a registered rule (the built-in ones included).

    Raises:
        ConfigError: No rule ``kind`` is registered.
    """
    _REGISTRY.pop(check_vote_kind(kind))


def vote_rule_kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order (the built-in rules first)."""
    return tuple(_REGISTRY)


def check_vote_kind(kind: object, *, option: str = "vote") -> str:
    """Return ``kind`` if a vote rule is registered under it.

    Raises:
        ConfigError: No such rule; the message lists the registered kinds.

    Example:
        >>> check_vote_kind("weighted")
        'weighted'
    """
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise ConfigError(
            f"{option}={kind!r} is not one of the registered vote rules "
            f"({', '.join(_REGISTRY)}); pass one of them, or register a rule with "
            "t2_agents.vote_rules.register_vote_rule"
        )
    return kind


def vote_criterion(kind: str) -> VoteCriterion:
    """The registered rule ``kind``.

    Raises:
        ConfigError: No such rule.
    """
    return _REGISTRY[check_vote_kind(kind)]


@register_vote_rule
class Majority(VoteCriterion):
    """The plain majority: one vote per path with an answer."""

    kind, summary, needs_confidence = "majority", "one vote per path (the default)", False

    def weights(
        self, confidence: FloatArray, valid: BoolArray, settings: VoteSettings
    ) -> FloatArray:
        """One vote each."""
        return np.ones(np.shape(valid), dtype=np.float64)


@register_vote_rule
class Weighted(VoteCriterion):
    """DeepConf's confidence-weighted vote: each path votes with its confidence."""

    kind, summary = "weighted", "each path votes with its confidence"

    def weights(
        self, confidence: FloatArray, valid: BoolArray, settings: VoteSettings
    ) -> FloatArray:
        """The confidence, clamped at 0 (token confidences are >= 0 by construction)."""
        return np.where(valid & np.isfinite(confidence), np.maximum(confidence, 0.0), 0.0)


@register_vote_rule
class Filtered(VoteCriterion):
    """DeepConf's top-η % filter, then the plain majority over the kept paths."""

    kind, summary = "filtered", "keep the eta % most confident paths, then majority"

    def weights(
        self, confidence: FloatArray, valid: BoolArray, settings: VoteSettings
    ) -> FloatArray:
        """1 for the ``ceil(eta% of the valid)`` most confident valid paths, else 0."""
        key = np.where(valid & np.isfinite(confidence), confidence, -np.inf)
        order = np.argsort(-key, axis=-1, kind="stable")  # most confident first, earlier first
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(key.shape[-1]), axis=-1)
        count = valid.sum(axis=-1, keepdims=True)
        keep = np.ceil(count * settings.eta / 100.0 - 1e-9)
        return np.asarray(valid & (ranks < keep), dtype=np.float64)


def _statistics(
    confidences: Sequence[PathConfidence | None] | None, n: int, settings: VoteSettings
) -> FloatArray:
    if confidences is None:
        return np.full(n, np.nan)
    if len(confidences) != n:
        raise ConfigError(
            f"confidences has {len(confidences)} values but answers has {n}; pass one "
            "PathConfidence (or None) per answer"
        )
    return np.array(
        [np.nan if c is None else c.value(settings.statistic) for c in confidences],
        dtype=np.float64,
    )


def _missing(confidence: FloatArray, valid: BoolArray) -> int:
    return int((valid & ~np.isfinite(confidence)).sum())


def apply_vote(
    answers: Sequence[str | None],
    confidences: Sequence[PathConfidence | None] | None,
    settings: VoteSettings | None = None,
    *,
    seed: int = 0,
) -> Verdict:
    """Vote the answers by the rule of ``settings`` (see the module docs).

    Args:
        answers: One normalised answer per path; None where no answer was found.
        confidences: One confidence (or None) per path; None when no path has one.
        settings: The rule; None: the plain majority.
        seed: Seed of the tie-breaking draw.

    Returns:
        The verdict, with ``rule`` the rule that decided (``majority`` after a fallback) and
        ``warning`` saying why it fell back. Paths a filter dropped stay in the
        distribution with 0 votes.

    Raises:
        ConfigError: ``confidences`` has the wrong length.

    Example:
        >>> apply_vote(["1", "2", "2"], None).answer
        '2'
    """
    chosen = settings or VoteSettings()
    rule = chosen.criterion
    valid = np.array([a is not None for a in answers], dtype=bool)
    confidence = _statistics(confidences, len(answers), chosen)
    if isinstance(rule, Majority):  # integer votes, compared exactly
        return replace(vote(answers, seed=seed), rule=rule.kind)
    missing = _missing(confidence, valid) if rule.needs_confidence else 0
    if missing:
        warning = (
            f"vote rule {rule.kind!r} needs the confidence of every path with an answer, but "
            f"{missing} of {int(valid.sum())} have none (the engine gave no log-probabilities): "
            "fell back to the plain majority"
        )
        return replace(vote(answers, seed=seed), rule="majority", warning=warning)
    weights = rule.weights(confidence, valid, chosen)
    verdict = vote(answers, weights=[float(w) for w in weights], seed=seed)
    return replace(verdict, rule=rule.kind)


@dataclass(frozen=True)
class McCurve:
    """A Monte-Carlo estimate of ``A_x(N)`` under a vote rule (see :func:`mc_accuracy_curve`)."""

    mean: FloatArray
    """Estimated ``A_x(N)`` for ``N = 1..n_max``."""
    stderr: FloatArray
    """Its standard error (the draws' standard deviation over ``sqrt(draws)``)."""
    fallback: bool
    """The pool lacked a confidence on a path with an answer, so the plain majority was scored."""


def mc_accuracy_curve(
    answers: Sequence[str | None],
    confidences: Sequence[PathConfidence | None] | None,
    correct: frozenset[str] | set[str],
    settings: VoteSettings,
    n_max: int,
    *,
    draws: int = 1000,
    seed: int = 0,
) -> McCurve:
    """Estimate ``A_x(N)`` (expected credit of a vote of ``N`` pooled paths) by Monte Carlo.

    Each draw is a random permutation of the pool; its first ``N`` paths are the ``N``-subset
    drawn without replacement (the ``"pool"`` model of :mod:`t2_agents.curves.exact`), voted by
    the rule with the uniform tie credit (``k/t`` when ``k`` of ``t`` tied answers are correct),
    so the estimate is unbiased; one permutation serves every ``N``.

    Why not exact: :func:`~t2_agents.curves.exact.accuracy_curve` sums over answer *count*
    vectors, which decide the plain majority. A weighted vote is decided by sums of real-valued
    confidences over the drawn subset, and a filter by the joint ranking of the drawn paths'
    confidences: both depend on *which* paths were drawn, not how many of each answer, and the
    number of subsets is exponential in ``M``. Under ``majority`` this function estimates the
    exact curve (a test checks it agrees within its standard error).

    Args:
        answers: Each pooled path's answer (None: no answer, no vote).
        confidences: Each path's confidence (or None); None for none at all.
        correct: The answers graded correct.
        settings: The vote rule.
        n_max: Largest ``N`` (at most the pool size).
        draws: Random permutations (the standard error shrinks as ``1/sqrt(draws)``).
        seed: Seed of the permutations.

    Returns:
        The estimate, its standard error, and whether the rule fell back to majority.

    Raises:
        ConfigError: ``n_max`` or ``draws`` out of range.
        DataError: An empty pool.

    Example:
        >>> curve = mc_accuracy_curve(["4", "4", "5"], None, {"4"}, VoteSettings(), 3, draws=2000)
        >>> [round(float(a), 1) for a in curve.mean]
        [0.7, 0.7, 1.0]
    """
    m = len(answers)
    if m == 0:
        raise DataError("the pool is empty; pass at least one path")
    check_int("n_max", n_max, low=1)
    check_int("draws", draws, low=2)
    if n_max > m:
        raise ConfigError(f"n_max={n_max} exceeds the pool size {m}; pass n_max <= {m}")
    names = sorted({a for a in answers if a is not None})
    ids = np.array([-1 if a is None else names.index(a) for a in answers], dtype=np.int64)
    good = np.array([a in correct for a in names], dtype=bool)
    valid = ids >= 0
    confidence = _statistics(confidences, m, settings)
    rule = settings.criterion
    fallback = rule.needs_confidence and _missing(confidence, valid) > 0
    if fallback:
        rule = vote_criterion("majority")
    rng = np.random.default_rng(seed)
    orders = np.argsort(rng.random((draws, m)), axis=1)
    seq, conf, ok = ids[orders], confidence[orders], valid[orders]
    onehot = (seq[:, :, None] == np.arange(len(names))) & ok[:, :, None]  # [R, M, K]
    mean, stderr = np.zeros(n_max), np.zeros(n_max)
    for n in range(1, n_max + 1):
        weights = rule.weights(conf[:, :n], ok[:, :n], settings)  # [R, n]
        totals = np.einsum("rn,rnk->rk", weights, onehot[:, :n, :])
        top = totals.max(axis=1, initial=0.0)[:, None]
        tied = (totals >= top - _REL_TOL * np.abs(top)) & (top > 0)
        credit = (tied & good).sum(axis=1) / np.maximum(tied.sum(axis=1), 1)
        mean[n - 1] = credit.mean()
        stderr[n - 1] = credit.std(ddof=1) / math.sqrt(draws)
    return McCurve(mean=mean, stderr=stderr, fallback=bool(fallback))
