"""Online early stop of weak paths: DeepConf-online's floor on the sliding-window confidence.

DeepConf (Fu et al., 2025, arXiv 2508.15260) stops a reasoning path while it is decoded once
its *group confidence* (the mean token confidence ``c_t`` over the last ``window`` tokens; see
:mod:`t2_agents.confidence`) falls below a floor: such a path is unlikely to end in a right
answer, and the tokens it would still have cost are saved. A stopped path does not vote.

Where the floor comes from (:class:`EarlyStop`):

* ``warmup``: DeepConf's own recipe. The first ``warmup`` paths of a question run to the end;
  the floor is the ``100 - keep`` percentile of their lowest group confidences
  (:func:`warmup_floor`; DeepConf-low keeps 90 %, DeepConf-high 10 %). The other paths stop
  below it. This needs the warm-up paths before the rest, so it runs in the batched fan-out.
* ``floor``: a fixed floor, e.g. a percentile of the lowest group confidences of a calibration
  collection's paths (:func:`calibrated_floor`). No warm-up: every path may stop, which suits
  T2's small budgets (with N = 3 a warm-up of 2 would leave one path to stop).

The test is the same everywhere: :class:`WindowMonitor` while a path is decoded (the engines),
:func:`stop_position` on a finished path's ``c_t`` (the replay). Stopping only cuts a path, so
the replay of full paths is exact: a path stops at the first token ``t >= window`` whose
window ``c_{t-window+1..t}`` has a mean below the floor, and keeps its first ``t`` tokens.
A path shorter than ``window`` tokens is never stopped.

Engines that can stop paths declare :class:`~t2_agents.backends.base.StopsWeakPaths`; their
stopped completions end with ``finish_reason="low_confidence"``.

Example:
    >>> stop_position([3.0, 3.0, 1.0, 1.0, 3.0], floor=2.5, window=2)
    3
    >>> warmup_floor([1.0, 2.0, 3.0, 4.0, 5.0], keep=50.0)
    3.0
    >>> EarlyStop(floor=4.2).describe()
    'floor 4.2'
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from t2_agents.checks import check_int
from t2_agents.errors import ConfigError, DataError

__all__ = [
    "LOW_CONFIDENCE",
    "EarlyStop",
    "WindowMonitor",
    "calibrated_floor",
    "check_floor",
    "stop_position",
    "warmup_floor",
]

LOW_CONFIDENCE = "low_confidence"
"""The finish reason of a path stopped for low confidence."""


def _check_keep(keep: object) -> float:
    if isinstance(keep, bool) or not isinstance(keep, int | float) or not (0 < keep <= 100):
        raise ConfigError(
            f"keep={keep!r} must be a percentage in (0, 100]: the share of warm-up paths whose "
            "confidence is at or above the floor (DeepConf-low: 90, DeepConf-high: 10)"
        )
    return float(keep)


def check_floor(floor: object) -> float:
    """``floor`` as a float if it is a finite number (booleans refused), else a ConfigError.

    Example:
        >>> check_floor(4)
        4.0
    """
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not math.isfinite(floor):
        raise ConfigError(
            f"floor={floor!r} must be a finite number (a token confidence, e.g. 4.0; see "
            "t2_agents.early_stop.calibrated_floor)"
        )
    return float(floor)


@dataclass(frozen=True, kw_only=True, slots=True)
class EarlyStop:
    """When a path is stopped for low confidence: a fixed floor, or one set by warm-up paths.

    Example:
        >>> EarlyStop(warmup=4, keep=90).describe()
        'warm-up 4, keep 90 %'
        >>> EarlyStop()
        Traceback (most recent call last):
        ...
        t2_agents.errors.ConfigError: EarlyStop needs a floor=... or warmup >= 1 (...
    """

    floor: float | None = None
    """Stop every path whose window confidence falls below this (no warm-up)."""
    warmup: int = 0
    """Paths decoded to the end first; their lowest group confidences set the floor for the
    others. 0: use ``floor``."""
    keep: float = 90.0
    """With a warm-up: the percentage of the warm-up paths' lowest group confidences at or
    above the floor, in (0, 100] (90: stop only the weakest; 10: keep only the strongest)."""

    def __post_init__(self) -> None:
        check_int("warmup", self.warmup, low=0)
        _check_keep(self.keep)
        if self.floor is not None:
            check_floor(self.floor)
        if (self.floor is None) == (self.warmup == 0):
            raise ConfigError(
                "EarlyStop needs a floor=... or warmup >= 1 (exactly one): "
                f"got floor={self.floor!r}, warmup={self.warmup!r}; pass e.g. "
                "EarlyStop(warmup=4, keep=90) or EarlyStop(floor=calibrated_floor(...))"
            )

    def describe(self) -> str:
        """A short label for reports and ledgers."""
        if self.floor is not None:
            return f"floor {self.floor:g}"
        return f"warm-up {self.warmup}, keep {self.keep:g} %"


class WindowMonitor:
    """Watch one path's token confidences as they are decoded; say when it must stop.

    Example:
        >>> monitor = WindowMonitor(floor=2.5, window=2)
        >>> [monitor.push(c) for c in (3.0, 3.0, 1.0, 1.0)]
        [False, False, True, True]
        >>> monitor.tokens
        4
    """

    __slots__ = ("_recent", "floor", "tokens", "window")

    def __init__(self, *, floor: float, window: int) -> None:
        self.floor = check_floor(floor)
        self.window = check_int("window", window, low=1)
        self.tokens = 0
        self._recent: deque[float] = deque()

    def push(self, confidence: float) -> bool:
        """Add the next token's confidence; True once the window's mean is below the floor.

        A non-finite confidence (no finite log-probability at that position) is skipped, as in
        :func:`~t2_agents.confidence.path_confidence`; it still counts as a generated token.
        """
        self.tokens += 1
        if not math.isfinite(confidence):
            return False
        self._recent.append(confidence)
        if len(self._recent) > self.window:
            self._recent.popleft()
        # fsum: the window's exact mean, so the live test and the replay agree to the last bit
        return (
            len(self._recent) == self.window and math.fsum(self._recent) / self.window < self.floor
        )


def stop_position(confidences: Iterable[float], *, floor: float, window: int) -> int | None:
    """Tokens a path keeps when stopped below ``floor``, or None when it never stops.

    Exactly :class:`WindowMonitor`'s decision, on a finished path's token confidences.

    Example:
        >>> stop_position([5.0, 5.0, 5.0], floor=2.0, window=2) is None
        True
    """
    monitor = WindowMonitor(floor=floor, window=window)
    for confidence in confidences:
        if monitor.push(float(confidence)):
            return monitor.tokens
    return None


def warmup_floor(lowest_group: Sequence[float], *, keep: float) -> float:
    """The floor set by warm-up paths: the ``100 - keep`` percentile of their lowest group
    confidences (linear interpolation, numpy's default).

    Raises:
        DataError: No finite confidence (the engine returned no log-probabilities).
        ConfigError: ``keep`` outside (0, 100].

    Example:
        >>> warmup_floor([2.0, 4.0], keep=100.0)
        2.0
    """
    keep = _check_keep(keep)
    values = np.asarray([float(x) for x in lowest_group], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise DataError(
            "no warm-up path has a confidence, so no floor can be set; use an engine that "
            "returns log-probabilities (confidence_top_k set) or a fixed EarlyStop(floor=...)"
        )
    return float(np.percentile(values, 100.0 - keep))


def calibrated_floor(lowest_group: Iterable[float], *, keep: float) -> float:
    """A fixed floor from many paths' lowest group confidences (e.g. a calibration collection).

    The same percentile as :func:`warmup_floor`, over a whole collection's paths instead of one
    question's warm-up: about ``100 - keep`` % of such paths would have been stopped.

    Example:
        >>> calibrated_floor([1.0, 2.0, 3.0, 4.0, 5.0], keep=75.0)
        2.0
    """
    return warmup_floor(list(lowest_group), keep=keep)
