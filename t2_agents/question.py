"""One question: its text, gold answer, grader and two identities (text and instance).

A :class:`Question` carries the user message the model sees (the question plus an
instruction), its gold answer and a grader. It has two identities: :attr:`Question.key` (its
normalised text, :func:`question_key`) and :attr:`Question.instance_key` (what it asks: the
operation and its operands, the same in any phrasing or operand order). Where questions come
from is :mod:`t2_agents.tasks` (reasoning-gym, JSONL) and :mod:`t2_agents.families` (agent-phrased
families); this leaf module is what both build on.

Example:
    >>> q = Question("q1", "agent_arithmetic", "What is 3 + 5?", "8", instance="sum:3,5")
    >>> q.prompt, q.is_correct("8")
    ('What is 3 + 5? Give only the final answer.', True)
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from t2_agents.answers import get_extractor, same_answer

__all__ = ["DEFAULT_INSTRUCTION", "Question", "question_key"]

DEFAULT_INSTRUCTION = "Give only the final answer."
"""Appended to every question; the measured prompt in DESIGN.md section 4."""


def question_key(text: str) -> str:
    """A question's identity: a hash of its text, Unicode-, case- and whitespace-normalised.

    reasoning-gym seeds item ``i`` with ``Random(seed + i)`` and easy task settings have small
    question spaces, so two seeds can produce the same question: compare keys, never seeds.

    Example:
        >>> question_key("What is  2+2?") == question_key(" what is 2+2? ")
        True
    """
    normal = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Question:
    """One question with its gold answer and grader."""

    id: str
    """Stable id: ``<task>-<seed>-<index>`` for reasoning-gym, the JSONL ``id`` or line number."""
    task: str
    """Task name (selects the answer extractor)."""
    text: str
    """The question as the dataset states it."""
    gold: str
    """The gold answer as the dataset states it."""
    instruction: str = DEFAULT_INSTRUCTION
    """Appended to ``text`` to form the prompt."""
    instance: str = ""
    """What the question asks, e.g. ``"lcm:18,22"`` (:class:`~t2_agents.families.Instance`);
    empty when unknown (JSONL questions, older data)."""
    template: int | None = None
    """Index of the phrasing template that wrote ``text`` (agent families); None otherwise."""
    _score: Callable[[str], float] | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        """Identity of the question: :func:`question_key` of its text (not of its id)."""
        return question_key(self.text)

    @property
    def instance_key(self) -> str:
        """Identity of what is asked: :func:`question_key` of :attr:`instance`, else :attr:`key`.

        Example:
            >>> a = Question("a", "agent_arithmetic", "What is 3 + 5?", "8", instance="sum:3,5")
            >>> b = Question("b", "agent_arithmetic", "Compute 5 plus 3.", "8", instance="sum:3,5")
            >>> a.instance_key == b.instance_key, a.key == b.key
            (True, False)
        """
        return question_key(self.instance) if self.instance else self.key

    @property
    def prompt(self) -> str:
        """The user message sent to the model."""
        return f"{self.text.rstrip()} {self.instruction}".strip()

    def extract(self, completion: str) -> str | None:
        """Extract the normalised final answer of a completion with the task's extractor."""
        return get_extractor(self.task)(completion)

    def is_correct(self, answer: str | None) -> bool:
        """Grade an (extracted) answer: normalised exact match, or the task's own scorer."""
        if answer is None:
            return False
        if same_answer(answer, self.gold, task=self.task):
            return True
        if self._score is None:
            return False
        try:
            return self._score(answer) >= 0.99
        except Exception:  # a task scorer choking on odd text means "not correct", not a crash
            return False
