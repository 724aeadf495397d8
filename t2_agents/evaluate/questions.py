"""Questions an estimator never saw: the calibration task settings and held-out draws.

:data:`TASK_SETTINGS` holds the reasoning-gym options the 135M default model is sometimes right
on (the calibration settings of ``bench/calibration_plan.json``), so the budget matters;
:func:`heldout_questions` draws questions of those tasks, skipping every question an estimator
was trained on, by text or by instance (an estimator's ``training_keys`` and
``training_instance_keys``, :class:`~t2_agents.budget.protocols.BudgetEstimator`). The demo, the
agent examples and the endpoint benchmark draw their questions here.

Example:
    >>> [q.task for q in heldout_questions(3, tasks=("lcm", "products"), seed=7)]
    ['lcm', 'products', 'lcm']
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from t2_agents.checks import check_int
from t2_agents.errors import ConfigError
from t2_agents.tasks import Question, load_task

__all__ = ["DEFAULT_TASKS", "TASK_SETTINGS", "heldout_questions"]

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
    exclude_instances: Collection[str] = (),
) -> list[Question]:
    """Held-out reasoning-gym questions, taking the tasks in turn.

    Question ``i`` is question ``i // len(tasks)`` of task ``tasks[i % len(tasks)]``, generated
    with :data:`TASK_SETTINGS`' options (reasoning-gym's defaults for other tasks) and ``seed``.
    A seed alone does not hold questions out (easy task settings have small question spaces, so
    other seeds repeat them): pass the estimator's training keys as ``exclude`` and its
    instance keys as ``exclude_instances`` (``estimator.training_keys`` and
    ``estimator.training_instance_keys``), and every question whose
    :attr:`~t2_agents.tasks.Question.key` or :attr:`~t2_agents.tasks.Question.instance_key` is
    among them is skipped: "LCM of 22, 18" is a training question when "LCM of 18, 22" is.

    Args:
        questions: How many questions (>= 1).
        tasks: reasoning-gym task names (at least one).
        seed: Dataset seed.
        exclude: Question keys (:func:`~t2_agents.tasks.question_key`) never to draw.
        exclude_instances: Instance keys (:attr:`~t2_agents.tasks.Question.instance_key`)
            never to draw.

    Returns:
        The questions, in the order described.

    Raises:
        ConfigError: ``questions < 1``, no tasks, a task reasoning-gym does not know, or a task
            whose settings hold too few questions outside ``exclude`` and ``exclude_instances``.

    Example:
        >>> qs = heldout_questions(2, tasks=("products",), seed=3)
        >>> [q.id for q in qs]
        ['products-3-0', 'products-3-1']
        >>> qs[0].instance  # "9 * 5" would be the same question
        'mul:5,9'
        >>> [q.id for q in heldout_questions(1, tasks=("products",), seed=3,
        ...                                  exclude_instances={qs[0].instance_key})]
        ['products-3-1']
    """
    check_int("questions", questions, low=1)
    names = list(tasks)
    if not names:
        raise ConfigError("tasks is empty; pass at least one reasoning-gym task name")
    per_task = math.ceil(questions / len(names))
    skip = (frozenset(exclude), frozenset(exclude_instances))
    pools = {name: _unseen(name, per_task, seed, *skip) for name in dict.fromkeys(names)}
    return [pools[names[i % len(names)]][i // len(names)] for i in range(questions)]


def _unseen(
    name: str, wanted: int, seed: int, exclude: frozenset[str], instances: frozenset[str]
) -> list[Question]:
    """The first ``wanted`` questions of a task whose text and instance keys are not excluded.

    Draws twice as many questions until enough are unseen; once a draw asks for more distinct
    questions than the task settings hold, bisects down to the largest draw that works.
    """
    config = TASK_SETTINGS.get(name)
    size, works, fails = wanted, 0, 0  # fails: smallest size known to be too large (0: none)
    fresh: list[Question] = []
    while True:
        try:
            drawn = load_task(name, size=size, seed=seed, config=config)
        except ConfigError as exc:
            if size == wanted:
                raise  # unknown task, bad options or fewer distinct questions than wanted
            fails, problem = size, exc
        else:
            fresh = [q for q in drawn if q.key not in exclude and q.instance_key not in instances]
            if len(fresh) >= wanted:
                return fresh[:wanted]
            works = size
        if not fails:
            size *= 2
        elif fails - works > 1:
            size = (works + fails) // 2
        else:
            raise ConfigError(
                f"task {name!r} ({config or {}}) has too few questions the estimator did not "
                f"train on: wanted {wanted}, found {len(fresh)} unseen (by text and by instance) "
                f"before the task ran out of distinct questions ({problem}); ask for fewer demo "
                "questions or pick other tasks"
            ) from problem
