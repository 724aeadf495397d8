"""Questions an estimator never saw: the calibration task settings and held-out draws.

:data:`TASK_SETTINGS` holds the reasoning-gym options the 135M default model is sometimes right
on (the calibration settings of ``bench/calibration_plan.json``), so the budget matters;
:func:`heldout_questions` draws questions of those tasks, skipping every question an estimator
was trained on (:func:`training_keys` reads them from its metadata). The demo, the agent
examples and the endpoint benchmark draw their questions here.

Example:
    >>> [q.task for q in heldout_questions(3, tasks=("lcm", "products"), seed=7)]
    ['lcm', 'products', 'lcm']
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from t2_agents.checks import check_int
from t2_agents.errors import ConfigError
from t2_agents.estimator.summary import TrainingSummary
from t2_agents.tasks import Question, load_task

__all__ = ["DEFAULT_TASKS", "TASK_SETTINGS", "heldout_questions", "training_keys"]

TASK_SETTINGS: dict[str, dict[str, Any]] = {
    # No "/": at these settings reasoning-gym's division questions have wrong gold answers
    # ("Calculate 4 / 1." -> "2"), measured while choosing the calibration tasks.
    "basic_arithmetic": {
        "max_digits": 1,
        "max_terms": 3,
        "allow_parentheses": False,
        "operators": ["+", "-", "*"],
    },
    "syllogism": {},
    "products": {"max_digits": 2},
    "lcm": {"max_value": 30},
    "gcd": {"max_value": 60},
    "aiw": {},
    "number_format": {},
    "leg_counting": {"min_animals": 1, "max_animals": 2},
    "chain_sum": {"max_digits": 2, "max_terms": 3},
    "number_sequence": {},
}
"""reasoning-gym task -> options the default model is sometimes right on: the calibration
settings of ``bench/calibration_plan.json`` (chain_sum and number_sequence are held out of
training entirely)."""

DEFAULT_TASKS: tuple[str, ...] = ("basic_arithmetic", "syllogism", "products")
"""Tasks :func:`heldout_questions` (and so ``t2 demo``) draws from by default."""


def heldout_questions(
    questions: int,
    *,
    tasks: Sequence[str] = DEFAULT_TASKS,
    seed: int = 2026,
    exclude: Collection[str] = (),
) -> list[Question]:
    """Held-out reasoning-gym questions, taking the tasks in turn.

    Question ``i`` is question ``i // len(tasks)`` of task ``tasks[i % len(tasks)]``, generated
    with :data:`TASK_SETTINGS`' options (reasoning-gym's defaults for other tasks) and ``seed``.
    A seed alone does not hold questions out (easy task settings have small question spaces, so
    other seeds repeat them): pass the estimator's training question keys as ``exclude`` (see
    :func:`training_keys`) and every question whose :attr:`~t2_agents.tasks.Question.key` is
    among them is skipped.

    Args:
        questions: How many questions (>= 1).
        tasks: reasoning-gym task names (at least one).
        seed: Dataset seed.
        exclude: Question keys (:func:`~t2_agents.tasks.question_key`) never to draw.

    Returns:
        The questions, in the order described.

    Raises:
        ConfigError: ``questions < 1``, no tasks, a task reasoning-gym does not know, or a task
            whose settings hold too few questions outside ``exclude``.

    Example:
        >>> qs = heldout_questions(2, tasks=("products",), seed=3)
        >>> [q.id for q in qs]
        ['products-3-0', 'products-3-1']
    """
    check_int("questions", questions, low=1)
    names = list(tasks)
    if not names:
        raise ConfigError("tasks is empty; pass at least one reasoning-gym task name")
    per_task = math.ceil(questions / len(names))
    skip = frozenset(exclude)
    pools = {name: _unseen(name, per_task, seed, skip) for name in dict.fromkeys(names)}
    return [pools[names[i % len(names)]][i // len(names)] for i in range(questions)]


def _unseen(name: str, wanted: int, seed: int, exclude: frozenset[str]) -> list[Question]:
    """The first ``wanted`` questions of a task whose keys are not in ``exclude``."""
    config = TASK_SETTINGS.get(name)
    size = wanted
    fresh: list[Question] = []
    while True:
        try:
            drawn = load_task(name, size=size, seed=seed, config=config)
        except ConfigError as exc:
            if size == wanted:
                raise  # unknown task, bad options or fewer distinct questions than wanted
            raise ConfigError(
                f"task {name!r} ({config or {}}) has too few questions the estimator did not "
                f"train on: wanted {wanted}, found {len(fresh)} unseen before the task ran out "
                f"of distinct questions ({exc}); ask for fewer demo questions or pick other tasks"
            ) from exc
        fresh = [q for q in drawn if q.key not in exclude]
        if len(fresh) >= wanted:
            return fresh[:wanted]
        # `wanted + len(exclude)` distinct questions always hold `wanted` unseen ones
        assert size < wanted + len(exclude)
        size = min(size * 2, wanted + len(exclude))


def training_keys(estimator: object) -> frozenset[str]:
    """The question keys an estimator was trained on, from its metadata (empty when absent).

    Reads the :class:`~t2_agents.estimator.summary.TrainingSummary` in ``estimator.metadata``;
    artifacts trained before the keys were recorded have none, and then nothing can be excluded.
    (``T2Estimator.training_keys`` is the typed way; this takes any policy's estimator, and
    ``BudgetEstimator`` does not declare the keys yet.)

    Example:
        >>> class Fitted:
        ...     metadata = {"training_data": {"question_keys": ["0123456789abcdef"]}}
        >>> sorted(training_keys(Fitted()))
        ['0123456789abcdef']
        >>> training_keys(object())
        frozenset()
    """
    metadata = getattr(estimator, "metadata", None)
    if not isinstance(metadata, Mapping):
        return frozenset()
    return TrainingSummary.from_metadata(metadata).keys
