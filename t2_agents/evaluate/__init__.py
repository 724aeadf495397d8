"""Evaluation: budget policies side by side on the same questions.

- :mod:`~t2_agents.evaluate.replay`: sequential stop rules replayed on random orders of a pool;
- :mod:`~t2_agents.evaluate.offline`: every policy replayed on collected pools;
- :mod:`~t2_agents.evaluate.folders`: the same on ``t2 collect`` folders, training questions
  dropped (``t2 eval``);
- :mod:`~t2_agents.evaluate.head_to_head`: the one runner that sends the same questions through
  one graph per policy (``t2 demo``, ``t2 eval --live``);
- :mod:`~t2_agents.evaluate.live`: every live policy through the graph on collected questions;
- :mod:`~t2_agents.evaluate.questions`: held-out questions an estimator never saw.

Example:
    >>> from t2_agents.evaluate import EvalConfig
    >>> EvalConfig(policies=("fixed", "esc")).policies
    ('fixed', 'esc')
"""

from __future__ import annotations

from t2_agents.evaluate.folders import evaluate_folders
from t2_agents.evaluate.head_to_head import Trial, policy_totals, run_policy
from t2_agents.evaluate.live import live_eval
from t2_agents.evaluate.offline import EvalConfig, EvalReport, evaluate_pools
from t2_agents.evaluate.questions import heldout_questions

__all__ = [
    "EvalConfig",
    "EvalReport",
    "Trial",
    "evaluate_folders",
    "evaluate_pools",
    "heldout_questions",
    "live_eval",
    "policy_totals",
    "run_policy",
]
