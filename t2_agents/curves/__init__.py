"""Accuracy-curve maths: what N paths buy, and what one budget costs against another.

- :mod:`~t2_agents.curves.exact`: the budget–accuracy function A_x(N) computed exactly over a
  pool of answers, the labels N*_x, N_D and the curse report;
- :mod:`~t2_agents.curves.compare`: policies compared at equal cost, paired bootstrap intervals;
- :mod:`~t2_agents.curves.allocate`: a total budget spread over many questions by marginal gain.

The package imports nothing above the leaves (``errors``, ``checks``).

Example:
    >>> from t2_agents.curves import AnswerPool, accuracy_curve
    >>> pool = AnswerPool({"a": 3, "b": 1}, frozenset({"a"}))
    >>> round(float(accuracy_curve(pool, 1)[0]), 6)
    0.75
"""

from __future__ import annotations

from t2_agents.curves.allocate import DifficultyCurves, allocate_budget
from t2_agents.curves.compare import EqualCost, equal_cost, paired_difference
from t2_agents.curves.exact import (
    AnswerPool,
    CurseReport,
    accuracy_curve,
    budget_labels,
    curse_report,
    dataset_optimal_budget,
    optimal_budget,
)

__all__ = [
    "AnswerPool",
    "CurseReport",
    "DifficultyCurves",
    "EqualCost",
    "accuracy_curve",
    "allocate_budget",
    "budget_labels",
    "curse_report",
    "dataset_optimal_budget",
    "equal_cost",
    "optimal_budget",
    "paired_difference",
]
