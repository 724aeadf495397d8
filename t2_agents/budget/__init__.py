"""How many paths: budget policies, stop rules and the estimator shipped for the default model.

- :mod:`~t2_agents.budget.protocols`: what the graph uses from a policy
  (:class:`BudgetPolicy`: ``choose`` and optional capabilities with defaults) and what T2 uses
  from an estimator (:class:`BudgetEstimator`);
- :mod:`~t2_agents.budget.policies`: the policies (fixed, callable, oracle, T2);
- :mod:`~t2_agents.budget.stop_rules`: sequential stop rules, one registry
  (:func:`register_stop_rule`): each rule's live decision and its replay in one class, on the
  vote tallies of :mod:`~t2_agents.budget.tallies`;
- :mod:`~t2_agents.budget.names`: the policy names the CLI, evaluation and endpoint accept;
- :mod:`~t2_agents.budget.shipped`: the shipped estimator and ``load_t2_policy``.

Example:
    >>> from t2_agents.budget import FixedPolicy
    >>> FixedPolicy(4).n
    4
"""

from __future__ import annotations

from t2_agents.budget.policies import FixedPolicy, T2Policy
from t2_agents.budget.protocols import BasicPolicy, BudgetEstimator, BudgetPolicy
from t2_agents.budget.shipped import choose_policy, load_t2_policy
from t2_agents.budget.stop_rules import StopCriterion, StopRule, register_stop_rule

__all__ = [
    "BasicPolicy",
    "BudgetEstimator",
    "BudgetPolicy",
    "FixedPolicy",
    "StopCriterion",
    "StopRule",
    "T2Policy",
    "choose_policy",
    "load_t2_policy",
    "register_stop_rule",
]
