"""Majority vote over the final answers of sampled reasoning paths.

Each completion's answer casts one vote, or ``weights[i]`` votes in a weighted vote; a None
answer (no answer found) does not vote and is counted as invalid.

Tie rule (the exact accuracy function assumes this rule): when ``t`` answers tie for the most
votes, the winner is ``random.Random(seed).choice(sorted(tied))``, a uniform draw among the
tied answers sorted lexicographically. It is deterministic for a given seed, and over random
seeds each tied answer wins with probability ``1/t``, so a correct answer in a ``t``-way tie
earns ``1/t`` credit in expectation. Integer vote counts are compared exactly; weighted totals
tie when they are within a relative tolerance of ``1e-12`` of the top total.

Example:
    >>> verdict = vote(["12", "12", "7", None])
    >>> verdict.answer, verdict.share, verdict.valid, verdict.invalid
    ('12', 0.6666666666666666, 3, 1)
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from typing_extensions import TypedDict

from t2_agents.errors import ConfigError

__all__ = ["Verdict", "VerdictDict", "majority", "vote"]


class VerdictDict(TypedDict):
    """:meth:`Verdict.to_dict`: the verdict as JSON (graph states, ``t2 ask``, the endpoint)."""

    answer: str | None
    share: float
    distribution: dict[str, float]
    valid: int
    invalid: int
    tied: list[str]
    rule: str
    warning: str | None


_REL_TOL = 1e-12


@dataclass(frozen=True)
class Verdict:
    """The outcome of a vote. ``Verdict()`` is the outcome of a vote with no answers.

    Example:
        >>> vote(["a", "b", "b"]).to_dict()["distribution"]
        {'b': 2.0, 'a': 1.0}
    """

    answer: str | None = None
    """The winning answer; None when no valid answer carries any vote."""
    share: float = 0.0
    """The winner's votes divided by all valid votes; 0.0 when there are none."""
    distribution: dict[str, float] = field(default_factory=dict)
    """Answer -> votes, sorted by votes (descending) then answer."""
    valid: int = 0
    """How many completions had an answer."""
    invalid: int = 0
    """How many completions had no answer (None)."""
    tied: tuple[str, ...] = ()
    """The top answers that tied, sorted; length 1 without a tie, empty without votes."""
    rule: str = "majority"
    """The vote rule that decided (:mod:`t2_agents.vote_rules`); ``majority`` after a
    confidence rule fell back."""
    warning: str | None = None
    """Why the requested vote rule was not applied (paths without confidence), if it was not."""

    def to_dict(self) -> VerdictDict:
        """Return the verdict as a JSON-ready dictionary.

        Example:
            >>> Verdict().to_dict()["answer"] is None
            True
        """
        return {
            "answer": self.answer,
            "share": self.share,
            "distribution": dict(self.distribution),
            "valid": self.valid,
            "invalid": self.invalid,
            "tied": list(self.tied),
            "rule": self.rule,
            "warning": self.warning,
        }


def vote(
    answers: Sequence[str | None],
    *,
    weights: Sequence[float] | None = None,
    seed: int = 0,
) -> Verdict:
    """Majority-vote the answers, breaking ties at random with ``seed`` (see the module docs).

    Args:
        answers: One normalised answer per completion; None where no answer was found.
        weights: Optional votes per completion, finite and >= 0, one per answer, with a finite
            sum. When every valid answer has weight 0 nothing is voted and the answer is None.
        seed: Seed of the tie-breaking draw.

    Returns:
        The verdict.

    Raises:
        ConfigError: ``weights`` has the wrong length, a negative or non-finite value, or a
            sum beyond the float range.

    Example:
        >>> vote(["a", "b", "b"], weights=[3.0, 1.0, 1.0]).answer
        'a'
    """
    checked = _check_weights(weights, len(answers))
    totals: dict[str, list[float]] = {}
    for index, answer in enumerate(answers):
        if answer is not None:
            totals.setdefault(answer, []).append(1.0 if checked is None else checked[index])
    summed = {answer: math.fsum(votes) for answer, votes in totals.items()}
    valid = sum(len(votes) for votes in totals.values())
    ordered = dict(sorted(summed.items(), key=lambda item: (-item[1], item[0])))
    total = math.fsum(ordered.values())
    if total <= 0.0:
        return Verdict(distribution=ordered, valid=valid, invalid=len(answers) - valid)
    tied = _tied(ordered, exact=checked is None)
    winner = random.Random(seed).choice(tied)
    return Verdict(
        answer=winner,
        share=min(1.0, ordered[winner] / total),
        distribution=ordered,
        valid=valid,
        invalid=len(answers) - valid,
        tied=tied,
    )


def majority(answers: Sequence[str | None], seed: int = 0) -> str | None:
    """Return the winning answer of an unweighted :func:`vote`.

    Args:
        answers: One normalised answer per completion; None where no answer was found.
        seed: Seed of the tie-breaking draw.

    Returns:
        The winner, or None when no answer is valid.

    Example:
        >>> majority(["3", None, "3", "4"])
        '3'
    """
    return vote(answers, seed=seed).answer


def _check_weights(weights: Sequence[float] | None, expected: int) -> list[float] | None:
    if weights is None:
        return None
    if len(weights) != expected:
        raise ConfigError(
            f"weights has {len(weights)} values but answers has {expected}; "
            "pass exactly one weight per answer"
        )
    checked: list[float] = []
    for index, weight in enumerate(weights):
        try:
            value = float(weight)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0.0:
            raise ConfigError(
                f"weights[{index}]={weight!r} is not a finite number >= 0; "
                "pass finite, non-negative weights"
            )
        checked.append(value)
    try:
        total = math.fsum(checked)
    except OverflowError:  # finite weights whose exact sum exceeds the float range
        total = math.inf
    if not math.isfinite(total):
        raise ConfigError(
            f"weights sum to more than {sys.float_info.max:.3g}, the largest float; "
            "pass smaller weights, e.g. divided by their maximum"
        )
    return checked


def _tied(ordered: dict[str, float], *, exact: bool) -> tuple[str, ...]:
    top = max(ordered.values())
    if exact:
        return tuple(sorted(answer for answer, votes in ordered.items() if votes == top))
    return tuple(
        sorted(
            answer
            for answer, votes in ordered.items()
            if math.isclose(votes, top, rel_tol=_REL_TOL, abs_tol=0.0)
        )
    )
