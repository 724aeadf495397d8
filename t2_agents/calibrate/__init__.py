"""Calibration data: sampled pools per question, and the training set built from them.

- :mod:`~t2_agents.calibrate.collect`: sample M completions per question, grade them and store
  the answer pools (resumable, ``t2 collect``);
- :mod:`~t2_agents.calibrate.training_set`: pools and features joined into labelled rows, one
  per distinct question (``t2 train``).

The package does not re-export :func:`~t2_agents.calibrate.collect.collect`: a package
attribute named like a submodule would shadow ``import t2_agents.calibrate.collect``.

Example:
    >>> from t2_agents.calibrate import CollectConfig
    >>> CollectConfig(task="lcm", questions=4, samples=8, model="m").samples
    8
"""

from __future__ import annotations

from t2_agents.calibrate.collect import CollectConfig, Collection, load_collection
from t2_agents.calibrate.training_set import TrainingSet, load_training_set

__all__ = [
    "CollectConfig",
    "Collection",
    "TrainingSet",
    "load_collection",
    "load_training_set",
]
