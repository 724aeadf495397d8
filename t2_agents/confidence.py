"""Path confidence: DeepConf's statistics of a reasoning path's token log-probabilities.

DeepConf (Fu et al., 2025, arXiv 2508.15260) scores a path by how peaked the model's next-token
distributions were while it was written. At generated position ``t``, with the ``k`` largest
log-probabilities ``log P_t(1) >= ... >= log P_t(k)`` of the model's distribution there, the
**token confidence** is

    c_t = -(1/k) * sum_j log P_t(j)

A peaked distribution (one likely token, the rest very unlikely) gives a large ``c_t``; a flat
one a small ``c_t``. A path of ``T`` tokens is summarised by (:class:`PathConfidence`):

* ``mean``: the mean of ``c_t`` over the path (DeepConf's *average trace confidence*);
* ``lowest_group``: the lowest *group confidence*, the mean of ``c_t`` over a sliding window of
  ``window`` consecutive tokens, minimised over the windows (one window of the whole path when
  it is shorter than ``window``): a path with one stretch of hesitation scores low;
* ``tail``: the mean of ``c_t`` over the last ``tail`` tokens (where the answer is written).

Paths here are at most 48 tokens, so the window and the tail default to 16 tokens instead of
DeepConf's 2,048. Both engines compute ``c_t`` from the model's **untempered** distribution
(raw logits: the transformers engine reads the LM head's output, vLLM's default
``logprobs_mode="raw_logprobs"``), so the confidence does not change with the sampling
temperature, and with ``top_k = 20`` as in DeepConf's code.

**Non-finite log-probabilities.** NaN and ``+inf`` entries are dropped, and so are ``-inf`` ones
(a token the model rules out, e.g. a masked token among the top ``k`` of a tiny vocabulary):
``c_t`` averages the finite entries of position ``t``. A position without any finite entry is
skipped (:attr:`PathConfidence.skipped` counts them) and the statistics use the other
positions. A path with no usable position has no confidence (None): the confidence-based vote
rules then fall back to the plain vote and say so. Nothing here raises on odd numbers.

Example:
    >>> logprobs = [[-0.5, -3.5], [-1.0, -2.0], [-0.5, -0.5], [-1.0, -1.0]]  # top 2 per token
    >>> conf = path_confidence(logprobs, top_k=2, window=2, tail=1)
    >>> conf.mean, conf.lowest_group, conf.tail
    (1.25, 0.75, 1.0)
    >>> PathConfidence.from_compact(conf.compact()) == conf.rounded()
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from t2_agents.checks import check_int
from t2_agents.errors import ConfigError, DataError

__all__ = [
    "CONFIDENCE_STATISTICS",
    "DEFAULT_TAIL",
    "DEFAULT_TOP_K",
    "DEFAULT_WINDOW",
    "ConfidenceStatistic",
    "PathConfidence",
    "check_confidence_settings",
    "confidence_from_steps",
    "path_confidence",
    "position_confidence",
    "token_confidences",
]

DEFAULT_TOP_K = 20
"""Log-probabilities per position averaged into a token confidence (DeepConf's ``k``)."""
DEFAULT_WINDOW = 16
"""Tokens per sliding window of the group confidence (DeepConf: 2,048; our paths are short)."""
DEFAULT_TAIL = 16
"""Last tokens averaged into the tail confidence."""

ConfidenceStatistic = Literal["mean", "lowest_group", "tail"]
"""Which summary of a path's confidence a vote rule reads."""
CONFIDENCE_STATISTICS: tuple[str, ...] = get_args(ConfidenceStatistic)
"""Every :data:`ConfidenceStatistic`."""

_DIGITS = 4  # decimals kept in a collection record (token confidences are O(1..20))


@dataclass(frozen=True, slots=True)
class PathConfidence:
    """DeepConf's confidence summary of one sampled path (see the module docs).

    Example:
        >>> PathConfidence(mean=5.0, lowest_group=3.5, tail=6.0, tokens=12).value("tail")
        6.0
    """

    mean: float
    """Mean token confidence over the path."""
    lowest_group: float
    """Lowest mean token confidence over a sliding window of ``window`` tokens."""
    tail: float
    """Mean token confidence over the last ``tail`` tokens."""
    tokens: int
    """Positions that entered the statistics."""
    skipped: int = 0
    """Positions skipped because none of their log-probabilities was finite."""

    def __post_init__(self) -> None:
        for name in ("mean", "lowest_group", "tail"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DataError(f"PathConfidence.{name}={value!r} must be a finite number")
            if not math.isfinite(value):
                raise DataError(f"PathConfidence.{name}={value!r} must be a finite number")
        check_int("tokens", self.tokens, low=1)
        check_int("skipped", self.skipped, low=0)

    def value(self, statistic: ConfidenceStatistic) -> float:
        """The statistic a vote rule reads (``mean``, ``lowest_group`` or ``tail``).

        Raises:
            ConfigError: An unknown statistic.
        """
        if statistic not in CONFIDENCE_STATISTICS:
            raise ConfigError(
                f"statistic={statistic!r} is not one of {CONFIDENCE_STATISTICS}; pass one of them"
            )
        return float(getattr(self, statistic))

    def compact(self) -> list[float]:
        """The JSON form a collection record stores per sample: ``[mean, lowest, tail, tokens]``.

        Floats are rounded to 4 decimals; ``skipped`` is not stored.

        Example:
            >>> PathConfidence(mean=1.23456, lowest_group=1.0, tail=2.0, tokens=3).compact()
            [1.2346, 1.0, 2.0, 3]
        """
        return [
            round(self.mean, _DIGITS),
            round(self.lowest_group, _DIGITS),
            round(self.tail, _DIGITS),
            self.tokens,
        ]

    def rounded(self) -> PathConfidence:
        """This confidence as :meth:`compact` keeps it (rounded, ``skipped`` dropped)."""
        return PathConfidence.from_compact(self.compact())

    @classmethod
    def from_compact(cls, data: object) -> PathConfidence:
        """Read :meth:`compact`'s list back.

        Raises:
            DataError: Not a list of three finite numbers and a token count.

        Example:
            >>> PathConfidence.from_compact([2.0, 1.5, 2.5, 7]).lowest_group
            1.5
        """
        if not isinstance(data, list | tuple) or len(data) != 4:
            raise DataError(
                f"a stored confidence must be [mean, lowest_group, tail, tokens], got {data!r}; "
                "recollect the folder with t2 collect"
            )
        mean, lowest, tail, tokens = data
        try:
            return cls(
                mean=float(mean), lowest_group=float(lowest), tail=float(tail), tokens=int(tokens)
            )
        except (TypeError, ValueError, ConfigError) as exc:
            raise DataError(f"a stored confidence {data!r} is malformed ({exc})") from exc

    def to_dict(self) -> dict[str, float | int]:
        """All fields as a JSON-ready dict (graph state, the endpoint's paths)."""
        return {
            "mean": self.mean,
            "lowest_group": self.lowest_group,
            "tail": self.tail,
            "tokens": self.tokens,
            "skipped": self.skipped,
        }

    @classmethod
    def from_dict(cls, data: object) -> PathConfidence | None:
        """Read :meth:`to_dict`'s form back; None for None (a path without confidence).

        Raises:
            DataError: A malformed dict.
        """
        if data is None:
            return None
        if not isinstance(data, dict):
            raise DataError(f"a path confidence must be a dict or None, got {data!r}")
        try:
            return cls(
                mean=float(data["mean"]),
                lowest_group=float(data["lowest_group"]),
                tail=float(data["tail"]),
                tokens=int(data["tokens"]),
                skipped=int(data.get("skipped", 0)),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise DataError(f"a path confidence {data!r} is malformed ({exc})") from exc


def check_confidence_settings(top_k: int | None, window: int, tail: int) -> None:
    """Validate an engine's confidence settings (``top_k`` None turns confidence off).

    Raises:
        ConfigError: A value that is not an int >= 1 (the message names it and the fix).

    Example:
        >>> check_confidence_settings(20, 16, 16)
    """
    if top_k is not None:
        check_int("confidence_top_k", top_k, low=1)
    check_int("confidence_window", window, low=1)
    check_int("confidence_tail", tail, low=1)


def token_confidences(
    positions: Iterable[Sequence[float] | npt.ArrayLike], *, top_k: int = DEFAULT_TOP_K
) -> tuple[npt.NDArray[np.float64], int]:
    """Each position's token confidence ``c_t``, and how many positions were skipped.

    Args:
        positions: Per generated position, the log-probabilities the engine returned (any
            order; more than ``top_k`` of them, e.g. the sampled token beside the top ``k``,
            keeps the ``top_k`` largest).
        top_k: How many of the largest log-probabilities enter ``c_t``.

    Returns:
        ``(c, skipped)``: the finite confidences in path order and the positions skipped
        (no finite entry; see the module docs).

    Raises:
        ConfigError: ``top_k`` is not an int >= 1.

    Example:
        >>> c, skipped = token_confidences([[-0.5, -1.5, -9.0], [float("nan")]], top_k=2)
        >>> c.tolist(), skipped
        ([1.0], 1)
    """
    check_int("top_k", top_k, low=1)
    values: list[float] = []
    skipped = 0
    for position in positions:
        row = np.asarray(position, dtype=np.float64).ravel()
        row = row[np.isfinite(row)]
        if row.size == 0:
            skipped += 1
            continue
        if row.size > top_k:
            row = np.partition(row, row.size - top_k)[row.size - top_k :]
        values.append(-float(row.mean()))
    return np.asarray(values, dtype=np.float64), skipped


def position_confidence(logprobs: Sequence[float] | npt.ArrayLike, *, top_k: int) -> float:
    """One generated position's token confidence ``c_t`` (NaN when no entry is finite).

    What the engines watch while a path is decoded (:mod:`t2_agents.early_stop`).

    Example:
        >>> position_confidence([-0.5, -1.5, -9.0], top_k=2)
        1.0
    """
    c, _ = token_confidences([logprobs], top_k=top_k)
    return float(c[0]) if c.size else math.nan


def path_confidence(
    positions: Iterable[Sequence[float] | npt.ArrayLike],
    *,
    top_k: int = DEFAULT_TOP_K,
    window: int = DEFAULT_WINDOW,
    tail: int = DEFAULT_TAIL,
) -> PathConfidence | None:
    """Summarise a path's per-position log-probabilities (see the module docs).

    Args:
        positions: Per generated position, the log-probabilities the engine returned.
        top_k: Log-probabilities per position averaged into ``c_t``.
        window: Tokens per sliding window of the lowest group confidence.
        tail: Last tokens averaged into the tail confidence.

    Returns:
        The summary, or None when no position had a finite log-probability (or the path is
        empty).

    Raises:
        ConfigError: ``top_k``, ``window`` or ``tail`` is not an int >= 1.

    Example:
        >>> path_confidence([]) is None
        True
        >>> path_confidence([[-0.0, -4.0]], top_k=2).mean
        2.0
    """
    check_int("window", window, low=1)
    check_int("tail", tail, low=1)
    c, skipped = token_confidences(positions, top_k=top_k)
    if c.size == 0:
        return None
    width = min(window, c.size)
    sums = np.convolve(c, np.ones(width), mode="valid")
    return PathConfidence(
        mean=float(c.mean()),
        lowest_group=float(sums.min() / width),
        tail=float(c[-tail:].mean()),
        tokens=int(c.size),
        skipped=skipped,
    )


def confidence_from_steps(
    steps: Iterable[Mapping[Any, Any] | None] | None,
    *,
    top_k: int = DEFAULT_TOP_K,
    window: int = DEFAULT_WINDOW,
    tail: int = DEFAULT_TAIL,
) -> PathConfidence | None:
    """:func:`path_confidence` of vLLM-style per-token log-probabilities.

    vLLM's ``CompletionOutput.logprobs`` holds, per generated token, a ``{token_id: Logprob}``
    mapping (a list of dicts, or its ``FlatLogprobs``, which reads the same) with the top ``k``
    tokens and the sampled one; each entry's ``logprob`` is read and the ``k`` largest enter the
    token confidence. An empty position (None) is skipped; no steps at all give None.

    Example:
        >>> from types import SimpleNamespace as Lp
        >>> step = {1: Lp(logprob=-0.5), 2: Lp(logprob=-1.5), 9: Lp(logprob=-7.0)}
        >>> confidence_from_steps([step], top_k=2).mean
        1.0
    """
    if steps is None:
        return None
    return path_confidence(
        ([float(entry.logprob) for entry in (step or {}).values()] for step in steps),
        top_k=top_k,
        window=window,
        tail=tail,
    )
