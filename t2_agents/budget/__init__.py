"""How many paths: budget policies, stop rules and the estimator shipped for the default model.

- :mod:`~t2_agents.budget.policies`: the :class:`BudgetPolicy` protocol and its policies
  (fixed, oracle, T2);
- :mod:`~t2_agents.budget.stop_rules`: sequential stop rules (one registry: each rule's live
  decision and its replay);
- :mod:`~t2_agents.budget.names`: the policy names the CLI, evaluation and endpoint accept;
- :mod:`~t2_agents.budget.shipped`: the shipped estimator and ``load_t2_policy``.

Example:
    >>> from t2_agents.budget import FixedPolicy
    >>> FixedPolicy(4).n
    4
"""

from __future__ import annotations

from t2_agents.budget.policies import BudgetEstimator, BudgetPolicy, FixedPolicy, T2Policy
from t2_agents.budget.shipped import choose_policy, load_t2_policy
from t2_agents.budget.stop_rules import StopRule

__all__ = [
    "BudgetEstimator",
    "BudgetPolicy",
    "FixedPolicy",
    "StopRule",
    "T2Policy",
    "choose_policy",
    "load_t2_policy",
]
