"""Cancel a wave's requests still in flight once its stop rule has fired (``send`` fan-out).

In the ``send`` fan-out the paths of one wave run as concurrent LangGraph tasks. With a rule that
can decide on part of a wave (its ``can_fire_within_a_wave``: ``hybrid``, or ``adaptive`` with waves
larger than one path; ESC needs its whole window), every branch of the wave shares one
:class:`WaveBoard`: a branch that finishes adds its answer, and once the earlier waves' answers plus
the finished ones satisfy the rule the board *fires*. The board's event is the engine's cancel
signal (:data:`t2_agents.backends.base.CANCEL_EVENT`, set around each branch's engine call): the
transformers engine stops generating at the next token, vLLM aborts the request, the server engine
sends no further request; a branch not started yet does not start. Branches that return after the
board fired are kept as *cancelled* (``finish_reason="cancelled"``): they do not vote, and the
ledger counts the tokens they really generated. A cancel signal the caller had already set (e.g. the
endpoint's, on a client disconnect) still works: the board's event is set when either is.

Boards live in this process, keyed by the step and the wave; the ``wave`` node drops its board
when the wave is done. A run resumed in another process starts a fresh board.

Example:
    >>> from t2_agents.budget.stop_rules import StopRule
    >>> board = WaveBoard(StopRule(kind="hybrid"), prior=[])
    >>> board.add("7"), board.add("7"), board.fired
    (True, True, True)
    >>> board.add("7")  # returned after the rule fired: cancelled
    False
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from t2_agents.budget.stop_rules import StopRule

__all__ = ["WaveBoard", "board_for", "can_fire_within_a_wave", "drop_board"]

_MAX_BOARDS = 4096  # boards of runs that failed mid-wave are dropped oldest first


class _Linked(threading.Event):
    """An event that also reads as set once any of ``sources`` is set (engines poll it)."""

    def __init__(self, *sources: threading.Event | None) -> None:
        super().__init__()
        self._sources = [source for source in sources if source is not None]

    def is_set(self) -> bool:
        return super().is_set() or any(source.is_set() for source in self._sources)


class WaveBoard:
    """The shared view of one wave's branches (see the module docs).

    Args:
        rule: The step's stop rule.
        prior: The answers of the earlier waves (None: no answer).
    """

    def __init__(self, rule: StopRule, *, prior: Sequence[str | None]) -> None:
        self.rule = rule
        self._answers: list[str | None] = list(prior)
        self._lock = threading.Lock()
        self._fired = threading.Event()

    @property
    def fired(self) -> bool:
        """Whether the rule has fired on this wave."""
        return self._fired.is_set()

    def add(self, answer: str | None) -> bool:
        """Add a finished branch's answer; False when the rule had fired before (cancelled)."""
        with self._lock:
            if self._fired.is_set():
                return False
            self._answers.append(answer)
            if self.rule.decide(self._answers, wave=[]).stop:
                self._fired.set()
            return True

    def cancel_event(self, outer: threading.Event | None) -> threading.Event:
        """An engine cancel event that reads as set once the board fires (or ``outer`` is)."""
        return _Linked(self._fired, outer)

    def close(self) -> None:
        """Mark the wave over: a branch still running is cancelled."""
        self._fired.set()


_BOARDS: OrderedDict[str, WaveBoard] = OrderedDict()
_LOCK = threading.Lock()


def can_fire_within_a_wave(rule: StopRule) -> bool:
    """Whether part of a wave can make ``rule`` fire (hybrid; adaptive with waves > 1).

    The rule's own answer
    (:meth:`~t2_agents.budget.stop_rules.StopCriterion.can_fire_within_a_wave`).

    Example:
        >>> can_fire_within_a_wave(StopRule(kind="esc")), can_fire_within_a_wave(StopRule())
        (False, True)
    """
    return rule.criterion.can_fire_within_a_wave(rule)


def board_for(key: str, rule: StopRule, prior: Sequence[str | None]) -> WaveBoard:
    """The board of wave ``key`` (created by its first branch).

    Example:
        >>> board_for("doc:0", StopRule(), []) is board_for("doc:0", StopRule(), [])
        True
    """
    with _LOCK:
        board = _BOARDS.get(key)
        if board is None:
            board = _BOARDS[key] = WaveBoard(rule, prior=prior)
            while len(_BOARDS) > _MAX_BOARDS:
                _BOARDS.popitem(last=False)[1].close()
        return board


def drop_board(key: str) -> None:
    """Forget wave ``key``'s board (the wave node calls this when the wave is done)."""
    with _LOCK:
        board = _BOARDS.pop(key, None)
    if board is not None:
        board.close()
