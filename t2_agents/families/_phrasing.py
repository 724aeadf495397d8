"""Pieces the family modules share: answer extractors, names for word problems, field types.

The names here are public so that :mod:`~t2_agents.families._catalog` and
:mod:`~t2_agents.families._traffic` can share them; the package does not export them.

Example:
    >>> word_answer(("even", "odd"))("Answer: odd, not even")
    'odd'
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from t2_agents.answers import extract_answer

__all__ = ["NAMES", "Fields", "number_answer", "shuffled", "word_answer", "yesno_answer"]

_T = TypeVar("_T")

NAMES = ("Sam", "Maya", "Leo", "Ana", "Omar", "Priya", "Tom", "Lena", "Kofi", "Mei")
"""First names for word problems."""

Fields = tuple[str, dict[str, object]]
"""What a family's render function returns: the gold answer and the template's fields."""

_ANSWER_MARK_RE = re.compile(r"(?i)\banswer\b")


def number_answer(text: str, /) -> str | None:
    """The default extractor of a family: the answer number."""
    return extract_answer(text, kind="number")


def yesno_answer(text: str, /) -> str | None:
    """Extractor of yes/no families."""
    return extract_answer(text, kind="yesno")


def word_answer(words: Sequence[str]) -> Callable[[str], str | None]:
    """An extractor for answers that are one of ``words``: the first one named after the last
    "answer" marker, else the last one named (lower-cased)."""
    pattern = re.compile(r"\b(" + "|".join(words) + r")\b", re.IGNORECASE)

    def extract(text: str, /) -> str | None:
        marks = list(_ANSWER_MARK_RE.finditer(text))
        after = pattern.findall(text[marks[-1].end() :]) if marks else []
        found = after[:1] or pattern.findall(text)
        return found[-1].lower() if found else None

    return extract


def shuffled(rng: random.Random, values: Sequence[_T]) -> list[_T]:
    """``values`` in an order drawn from ``rng`` (a copy)."""
    out = list(values)
    rng.shuffle(out)
    return out
