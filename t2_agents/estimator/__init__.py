"""The T2 model: one probe per layer on final-prompt-token features, weighted by validation error.

- :mod:`~t2_agents.estimator.estimator`: :class:`T2Estimator` (fit, predict, save, load);
- :mod:`~t2_agents.estimator.heads`: what a probe predicts, one :class:`Head` object per kind in
  :data:`HEADS` (the optimal budget, or the whole accuracy curve with its cost knob, a
  :class:`KnobCalibration`);
- :mod:`~t2_agents.estimator.probes`: the per-layer probes (MLP, ridge);
- :mod:`~t2_agents.estimator.training`: probe training and layer weights;
- :mod:`~t2_agents.estimator.report`: the validation report of a fit;
- :mod:`~t2_agents.estimator.summary`: what an estimator was trained on (:class:`TrainingSummary`)
  and what readers of a fitted one use (:class:`FittedEstimator`);
- :mod:`~t2_agents.estimator.guard`: the distribution guard;
- :mod:`~t2_agents.estimator.artifact`: the on-disk form (safetensors + JSON, no pickle).

The package imports nothing from ``budget``, ``graph`` or ``serve``; names load on first use,
so importing it does not import torch.

Example:
    >>> from t2_agents.estimator import T2Estimator
    >>> T2Estimator.__name__
    'T2Estimator'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "T2Estimator": "t2_agents.estimator.estimator",
    "FitReport": "t2_agents.estimator.report",
    "DistributionGuard": "t2_agents.estimator.guard",
    "GuardConfig": "t2_agents.estimator.guard",
    "ProbeConfig": "t2_agents.estimator.probes",
    "HEADS": "t2_agents.estimator.heads",
    "Head": "t2_agents.estimator.heads",
    "KnobCalibration": "t2_agents.estimator.heads",
    "FittedEstimator": "t2_agents.estimator.summary",
    "TrainingSummary": "t2_agents.estimator.summary",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from t2_agents.estimator.estimator import T2Estimator
    from t2_agents.estimator.guard import DistributionGuard, GuardConfig
    from t2_agents.estimator.heads import HEADS, Head, KnobCalibration
    from t2_agents.estimator.probes import ProbeConfig
    from t2_agents.estimator.report import FitReport
    from t2_agents.estimator.summary import FittedEstimator, TrainingSummary


def __getattr__(name: str) -> Any:
    """Import a name from its module on first use (then it is a plain attribute)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 't2_agents.estimator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
