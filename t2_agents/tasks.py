"""Questions to think about: reasoning-gym tasks and JSONL files, with their graders.

A :class:`Question` carries the user message the model sees (the task text plus an instruction),
its gold answer and a grader. reasoning-gym questions are graded by the task's own
``score_answer`` (a score of 1 is correct) or by exact match of normalised answers; JSONL
questions by exact match of normalised answers.

Example:
    >>> qs = load_task("lcm", size=2, seed=1)
    >>> qs[0].id
    'lcm-1-0'
    >>> qs[0].is_correct(qs[0].gold)
    True
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2_agents.answers import get_extractor, normalize_answer
from t2_agents.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_INSTRUCTION",
    "Question",
    "load_jsonl",
    "load_task",
    "question_key",
]

_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

DEFAULT_INSTRUCTION = "Give only the final answer."
"""Appended to every question; the measured prompt in DESIGN.md section 4."""

_MAX_DRAW_FACTOR = 16
"""``load_task`` draws at most this many items per wanted question before giving up."""


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
    _score: Callable[[str], float] | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        """Identity of the question: :func:`question_key` of its text (not of its id)."""
        return question_key(self.text)

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
        if normalize_answer(answer) == normalize_answer(self.gold):
            return True
        if self._score is None:
            return False
        try:
            return self._score(answer) >= 0.99
        except Exception:  # a task scorer choking on odd text means "not correct", not a crash
            return False


def load_task(
    name: str,
    *,
    size: int,
    seed: int,
    config: Mapping[str, Any] | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
) -> list[Question]:
    """Generate ``size`` distinct questions of a reasoning-gym task.

    Items are drawn in order (item ``i`` of seed ``s`` is always the same question) and an item
    whose text repeats an earlier one is skipped, so the result never holds a question twice
    and a larger ``size`` extends a smaller one. A question's id keeps its item index.

    Args:
        name: reasoning-gym task name, e.g. ``"lcm"``.
        size: Number of distinct questions (>= 1).
        seed: Dataset seed; the same seed gives the same questions.
        config: Task options passed to ``reasoning_gym.create_dataset``.
        instruction: Appended to each question.

    Raises:
        ConfigError: Unknown task, bad size or bad task options, or task settings whose
            question space holds fewer than ``size`` distinct questions.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size={size!r} must be an int >= 1; pass the number of questions")
    draw = size
    while True:
        dataset = _create(name, draw, seed, config)
        picked: dict[str, int] = {}
        for i in range(draw):
            picked.setdefault(question_key(str(dataset[i]["question"])), i)
            if len(picked) == size:
                break
        if len(picked) == size:
            return [_rg_question(dataset, name, seed, i, instruction) for i in picked.values()]
        if draw >= _MAX_DRAW_FACTOR * size:
            raise ConfigError(
                f"task {name!r} with options {dict(config or {})} gave only {len(picked)} distinct "
                f"questions in {draw} items (seed {seed}), fewer than size={size}; ask for at "
                f"most {len(picked)} questions or widen the task options (larger value ranges, "
                "more terms)"
            )
        draw = min(draw * 2, _MAX_DRAW_FACTOR * size)


def _create(name: str, size: int, seed: int, config: Mapping[str, Any] | None) -> Any:
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(name, size=size, seed=seed, **dict(config or {}))
    except Exception as exc:
        raise ConfigError(
            f"reasoning-gym cannot create task {name!r} with options {dict(config or {})}: {exc}; "
            "check the task name (e.g. lcm, gcd, products, chain_sum) and its options"
        ) from exc


def _rg_question(dataset: Any, name: str, seed: int, index: int, instruction: str) -> Question:
    entry = dataset[index]

    def score(answer: str) -> float:
        return float(dataset.score_answer(answer, entry))

    return Question(
        id=f"{name}-{seed}-{index}",
        task=name,
        text=str(entry["question"]),
        gold=str(entry["answer"]),
        instruction=instruction,
        _score=score,
    )


def load_jsonl(
    path: str | Path, *, task: str | None = None, instruction: str = DEFAULT_INSTRUCTION
) -> list[Question]:
    """Read questions from a JSONL file with ``question`` and ``answer`` fields.

    Optional fields: ``id`` (else ``<file stem>-<line>``) and ``task`` (selects the extractor).
    Lines end with ``\\n``, ``\\r\\n`` or ``\\r``; a leading UTF-8 byte order mark is
    skipped. Every field is text handed to the model as is: nothing in a file is executed.

    Raises:
        DataError: Missing file, invalid UTF-8 or JSON (``NaN`` and ``Infinity`` included), a
            missing, empty or non-scalar field, text that is not valid Unicode (a lone
            surrogate), duplicate ids.
    """
    source = Path(path)
    if not source.is_file():
        raise DataError(f"JSONL file {str(source)!r} does not exist; pass a file of questions")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source} is not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8"
        ) from exc
    # Not str.splitlines(): it also splits at U+2028, U+0085 and other characters that are
    # allowed, unescaped, inside JSON strings.
    lines = _LINE_BREAK_RE.split(text)
    questions = [
        _jsonl_question(line, source, number, task, instruction)
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    if not questions:
        raise DataError(
            f"{source} holds no questions; add lines like {{'question':..,'answer':..}}"
        )
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{source} repeats the id {dup!r}; ids must be unique")
    return questions


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON; quote it or drop it")


def _jsonl_question(
    line: str, source: Path, number: int, task: str | None, instruction: str
) -> Question:
    try:
        row = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}:{number} is not valid JSON ({exc.msg}); fix that line") from exc
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{source}:{number} is not valid JSON ({exc}); fix that line") from exc
    if not isinstance(row, dict):
        raise DataError(
            f"{source}:{number} is not a JSON object; write {{'question':..,'answer':..}}"
        )
    for key in ("question", "answer"):
        if row.get(key) is None or not str(row[key]).strip():  # null would read as 'None'
            raise DataError(f"{source}:{number} has no non-empty {key!r} field; add it")
    for key in ("question", "answer", "id", "task"):
        value = row.get(key)
        if isinstance(value, dict | list):
            kind = "object" if isinstance(value, dict) else "array"
            raise DataError(f"{source}:{number} has a JSON {kind} as {key!r}; write it as a string")
        surrogate = _SURROGATE_RE.search(value) if isinstance(value, str) else None
        if surrogate is not None:
            raise DataError(
                f"{source}:{number} has a lone surrogate in {key!r} ({surrogate.group()!r} at "
                f"character {surrogate.start()}), which is not Unicode text; fix that line"
            )
    return Question(
        id=str(row.get("id", f"{source.stem}-{number}")),
        task=str(row.get("task", task or "jsonl")),
        text=str(row["question"]),
        gold=str(row["answer"]),
        instruction=instruction,
    )
