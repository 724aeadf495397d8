"""Sequential stop rules: one registry, each rule's live decision and its replay in one class.

A sequential policy samples reasoning paths in *waves*, votes after every wave and stops once
its rule fires (or at the cap). Each rule is one :class:`StopCriterion` subclass registered with
:func:`register_stop_rule`; its test (:meth:`StopCriterion.fires`) is written once, on vote
statistics that are numbers for the live graph (one wave at a time) and ``[R, M]`` arrays for
the vectorised replay over ``R`` random orders (:meth:`StopCriterion.replay_stops`), so both
apply exactly the same test. The graph (``StopRule(kind=...)``, ``ThinkingContext(stop=...)``,
a run's ``{"stop": kind}``), the replay (:mod:`t2_agents.evaluate.replay`, ``t2 eval``), the
live evaluation (``t2 eval --live``), the endpoint (``t2.stop_rule``) and the CLI read the
kinds from the registry (:func:`stop_rule_kinds`).

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

Adding a rule is one class: give it a ``kind``, a ``summary``, a ``reason`` and a
:meth:`~StopCriterion.fires` test, decorate it with :func:`register_stop_rule` (the class
attributes of :class:`StopCriterion` say what else it may change: its waves, whether it takes
the policy's ``N`` and cap, its names).

Example:
    >>> rule = StopRule(kind="esc", window=2)
    >>> rule.decide(["7", "7", "8", "8"], wave=["8", "8"]).stop
    True
    >>> stop_rule_kinds()
    ('adaptive', 'esc', 'hybrid')
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np

from t2_agents.budget.tallies import (
    BoolArray,
    IntArray,
    Votes,
    VoteTrace,
    beta_confident,
    leader_probability,
    leader_table,
    vote_counts,
    window_unanimous,
)
from t2_agents.checks import check_accuracy, check_int
from t2_agents.errors import ConfigError

__all__ = [
    "CAP_FIX",
    "Adaptive",
    "Esc",
    "Hybrid",
    "StopCriterion",
    "StopDecision",
    "StopKind",
    "StopRule",
    "StopRules",
    "VoteTrace",
    "Votes",
    "beta_confident",
    "check_stop_kind",
    "decisive",
    "leader_probability",
    "leader_table",
    "register_stop_rule",
    "stop_criterion",
    "stop_rule_kinds",
    "unregister_stop_rule",
    "vote_counts",
    "window_unanimous",
]

StopKind = str
"""A registered stop rule's kind (:func:`stop_rule_kinds`: ``adaptive``, ``esc``, ``hybrid``
and any rule registered since)."""

CAP_FIX = "pass e.g. 0.0 (cap the hybrid where its predicted curve peaks) or None (cap at n_max)"
"""The fix a bad ``cap_tolerance`` message names."""


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


def decisive(top1: object, top2: object, valid: object, rules: StopRules) -> BoolArray:
    """The hybrid's test: enough valid votes and a clear leader (share or Beta probability).

    Example:
        >>> bool(decisive(3, 1, 4, StopRules())), bool(decisive(2, 2, 4, StopRules()))
        (True, False)
    """
    t1, v = np.asarray(top1), np.asarray(valid)
    share = t1 >= rules.decisive_share * v
    return np.asarray(
        (v >= rules.min_votes) & (share | beta_confident(top1, top2, rules.threshold))
    )


@dataclass(frozen=True)
class StopDecision:
    """What a rule decided after one wave."""

    stop: bool
    """Whether to stop sampling."""
    reason: str
    """Why (``"adaptive"``, ``"esc"``, ``"decisive"``, ``"n_max"``...) or ``"continue"``."""
    leader_probability: float
    """The Beta probability that the current leader is the majority answer."""


class StopCriterion(ABC):
    """One sequential stop rule: its test, its waves, its names (subclass and register it).

    The class attributes describe the rule; :meth:`fires` is its test, applied by the live graph
    (:meth:`StopRule.decide`, numbers) and by the replay (:meth:`replay_stops`, arrays).

    Example:
        >>> stop_criterion("hybrid").takes_first_wave, stop_criterion("esc").whole_waves
        (True, True)
    """

    kind: ClassVar[str] = ""
    """The registry key (a subclass must set it): ``StopRule(kind=...)``, ``t2.stop_rule``,
    ``t2 eval --policies``."""
    summary: ClassVar[str]
    """One line for help texts and the policy-name registry."""
    reason: ClassVar[str]
    """The stop reason recorded when :meth:`fires` (e.g. ``decisive``)."""
    takes_first_wave: ClassVar[bool] = False
    """The first wave is the budget policy's N (the hybrid); otherwise the policy is not asked
    and the first wave is a follow-up wave."""
    caps: ClassVar[bool] = False
    """The rule also stops at the policy's predicted saturation budget (``cap_tolerance``)."""
    whole_waves: ClassVar[bool] = False
    """The test needs a whole wave (ESC's window): never fires on part of a wave."""

    @abstractmethod
    def fires(self, votes: Votes, settings: StopRules) -> BoolArray:
        """Whether the rule stops after the wave that ended with ``votes`` (elementwise).

        Args:
            votes: The vote so far: 0-d arrays live, ``[R, M]`` arrays in replay.
            settings: The rule's settings.
        """

    def default_wave(self, settings: StopRules) -> int:
        """Paths per follow-up wave when ``StopRule.wave`` is left out (``window``)."""
        return settings.window

    def validate(self, rule: StopRule) -> None:
        """Refuse settings this rule cannot run with (default: accept).

        Raises:
            ConfigError: The settings contradict the rule.
        """
        del rule

    def short_name(self, rule: StopRule) -> str:
        """The rule's name in states and ledgers (default: its kind)."""
        del rule
        return self.kind

    def label(self, settings: StopRules) -> str:
        """The rule's row name in the live evaluation's table (default: its kind)."""
        del settings
        return self.kind

    def can_fire_within_a_wave(self, rule: StopRule) -> bool:
        """Whether part of a wave can make the rule fire (then in-flight paths are cancelled)."""
        return not self.whole_waves and (self.takes_first_wave or rule.follow_up() > 1)

    def replay_stops(
        self, trace: VoteTrace, settings: StopRules, *, first: int, cap: int
    ) -> tuple[IntArray, IntArray]:
        """Where the rule stops on every replay order: samples drawn ``[R]`` and waves ``[R]``.

        The rule may stop at the end of a wave: after ``first`` draws (the policy's N for a
        rule that takes it, else a follow-up wave), then every follow-up wave; at ``cap`` when
        it :attr:`caps`; at the pool's end at the latest.

        Args:
            trace: The vote after every draw of every order (``[R, M]``).
            settings: The rule's settings.
            first: The policy's N (used by a rule that :attr:`takes_first_wave`).
            cap: The last sample a capped rule draws (1-based, at most ``M``).
        """
        r, m = trace.seq.shape
        step = self.default_wave(settings)
        start = first if self.takes_first_wave else step
        n = np.arange(1, m + 1)
        ok = (
            self.fires(trace.votes(width=step), settings) & (n >= start) & ((n - start) % step == 0)
        )
        ok = np.array(np.broadcast_to(ok, (r, m)))
        if self.caps:
            ok[:, cap - 1] = True  # the live waves are cut to the cap too
        ok[:, -1] = True
        samples = np.argmax(ok, axis=1).astype(np.int64) + 1
        rounds = 1 + (-(-(samples - start) // step))
        return samples, rounds.astype(np.int64)


_REGISTRY: dict[str, StopCriterion] = {}
_C = TypeVar("_C", bound=type[StopCriterion])


def register_stop_rule(cls: _C) -> _C:
    """Class decorator: register a :class:`StopCriterion` subclass under its ``kind``.

    Raises:
        ConfigError: The class has no ``kind``, or another rule has it already.

    Example:
        >>> @register_stop_rule
        ... class FirstAgreement(StopCriterion):
        ...     kind, summary, reason = "agree-2", "stop once two votes agree", "agree"
        ...     def fires(self, votes, settings): return votes.top1 >= 2
        >>> StopRule(kind="agree-2").decide(["7", "7"], wave=["7"]).reason
        'agree'
        >>> unregister_stop_rule("agree-2")
    """
    kind = cls.kind
    if not isinstance(kind, str) or not kind.strip():
        raise ConfigError(f"{cls.__name__} needs a class attribute kind = '<name>' to register")
    if kind in _REGISTRY:
        raise ConfigError(
            f"stop rule {kind!r} is registered already ({type(_REGISTRY[kind]).__name__}); "
            f"choose another kind or unregister_stop_rule({kind!r}) first"
        )
    _REGISTRY[kind] = cls()
    return cls


def unregister_stop_rule(kind: str) -> None:
    """Remove rule ``kind`` from the registry (e.g. a test's toy rule).

    Raises:
        ConfigError: No rule ``kind`` is registered.
    """
    check_stop_kind(kind)
    del _REGISTRY[kind]


def stop_rule_kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order (the built-in rules first).

    Example:
        >>> stop_rule_kinds()[:2]
        ('adaptive', 'esc')
    """
    return tuple(_REGISTRY)


def check_stop_kind(kind: object, *, option: str = "kind") -> str:
    """Return ``kind`` if a stop rule is registered under it.

    Raises:
        ConfigError: No such rule; the message lists the registered kinds.

    Example:
        >>> check_stop_kind("esc")
        'esc'
    """
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise ConfigError(
            f"{option}={kind!r} is not one of the registered stop rules "
            f"({', '.join(_REGISTRY)}); pass one of them, or register a rule with "
            "t2_agents.budget.stop_rules.register_stop_rule"
        )
    return kind


def stop_criterion(kind: str) -> StopCriterion:
    """The registered rule ``kind``.

    Raises:
        ConfigError: No such rule (see :func:`check_stop_kind`).
    """
    return _REGISTRY[check_stop_kind(kind)]


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
    """A registered rule: ``adaptive``, ``esc``, ``hybrid`` (:func:`stop_rule_kinds`)."""
    wave: int | None = None
    """Paths per follow-up wave; None: 1 for ``adaptive`` (the published rule), ``window``
    for ``esc`` and ``hybrid``. One engine call samples one wave."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_stop_kind(self.kind)
        if self.wave is not None:
            check_int("wave", self.wave, low=1)
        self.criterion.validate(self)

    @property
    def criterion(self) -> StopCriterion:
        """The registered rule of :attr:`kind`."""
        return stop_criterion(self.kind)

    @property
    def name(self) -> str:
        """Short name for states and ledgers, e.g. ``hybrid`` or ``esc-4``."""
        return self.criterion.short_name(self)

    @property
    def takes_first_wave(self) -> bool:
        """Whether the first wave is the budget policy's N (the hybrid)."""
        return self.criterion.takes_first_wave

    def follow_up(self) -> int:
        """Paths per follow-up wave."""
        return self.wave if self.wave is not None else self.criterion.default_wave(self)

    def wave_sizes(self, *, first: int, n_max: int) -> tuple[int, int]:
        """``(first wave, follow-up wave)``; the hybrid's first wave is the policy's ``first``.

        Raises:
            ConfigError: A wave larger than ``n_max`` (see :meth:`check_cap`).
        """
        self.check_cap(n_max)
        start = min(first, n_max) if self.takes_first_wave else self.follow_up()
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
        votes = Votes.of(answers, wave=wave)
        p = leader_probability(int(votes.top1), int(votes.top2))
        criterion = self.criterion
        if bool(criterion.fires(votes, self)):
            return StopDecision(True, criterion.reason, p)
        if n_max and len(answers) >= n_max:
            return StopDecision(True, "n_max", p)
        return StopDecision(False, "continue", p)


@register_stop_rule
class Adaptive(StopCriterion):
    """Adaptive-Consistency: one path at a time, stop on the Beta test (see the module docs).

    Example:
        >>> Adaptive().label(StopRules())
        'adaptive (0.95)'
    """

    kind = "adaptive"
    summary = "Adaptive-Consistency: one path at a time, stop on the Beta test"
    reason = "adaptive"

    def fires(self, votes: Votes, settings: StopRules) -> BoolArray:
        """The Beta probability that the leader is the majority reaches ``threshold``."""
        return np.asarray(beta_confident(votes.top1, votes.top2, settings.threshold))

    def default_wave(self, settings: StopRules) -> int:
        """One path (the published rule)."""
        return 1

    def short_name(self, rule: StopRule) -> str:
        """``adaptive-<threshold>``."""
        return f"adaptive-{rule.threshold:g}"

    def label(self, settings: StopRules) -> str:
        """``adaptive (<threshold>)``."""
        return f"adaptive ({settings.threshold:g})"


@register_stop_rule
class Esc(StopCriterion):
    """Early-Stopping Self-Consistency: stop after a unanimous window (see the module docs).

    Example:
        >>> Esc().label(StopRules(window=3))
        'esc (window 3)'
    """

    kind = "esc"
    summary = "Early-Stopping Self-Consistency: windows of paths, stop on a unanimous window"
    reason = "esc"
    whole_waves = True

    def fires(self, votes: Votes, settings: StopRules) -> BoolArray:
        """The latest wave is a whole window of one answer (a missing answer breaks it)."""
        if votes.wave.shape[-1] != settings.window:
            return np.zeros(votes.wave.shape[:-1], dtype=np.bool_)
        return np.asarray(window_unanimous(votes.wave))

    def validate(self, rule: StopRule) -> None:
        """ESC's waves are its windows.

        Raises:
            ConfigError: ``wave`` differs from ``window``.
        """
        if rule.wave not in (None, rule.window):
            raise ConfigError(
                f"wave={rule.wave} differs from window={rule.window}; ESC's waves are its "
                "windows: leave wave out or set window instead"
            )

    def short_name(self, rule: StopRule) -> str:
        """``esc-<window>``."""
        return f"esc-{rule.window}"

    def label(self, settings: StopRules) -> str:
        """``esc (window <window>)``."""
        return f"esc (window {settings.window})"


@register_stop_rule
class Hybrid(StopCriterion):
    """Ours: the policy's N first, then windows until the vote is decisive or the cap.

    Example:
        >>> Hybrid().label(StopRules(window=2, cap_tolerance=None))
        'hybrid (t2, then 2)'
    """

    kind = "hybrid"
    summary = "T2's N first, then windows until the vote is decisive"
    reason = "decisive"
    takes_first_wave = True
    caps = True

    def fires(self, votes: Votes, settings: StopRules) -> BoolArray:
        """Enough valid votes and a clear leader (:func:`decisive`)."""
        return decisive(votes.top1, votes.top2, votes.valid, settings)

    def label(self, settings: StopRules) -> str:
        """``hybrid (t2, then <window>[, cap at tolerance <t>])``."""
        cap = (
            ""
            if settings.cap_tolerance is None
            else f", cap at tolerance {settings.cap_tolerance:g}"
        )
        return f"hybrid (t2, then {settings.window}{cap})"
