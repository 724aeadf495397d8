"""Adapt a trained estimator to new traffic with a few labelled questions, without its data.

A user's agents ask questions the shipped calibration never foresaw. :func:`adapt_estimator`
starts from a trained :class:`~t2_agents.estimator.estimator.T2Estimator` and a small labelled
:class:`~t2_agents.calibrate.training_set.TrainingSet` of the new traffic (pools collected with
``t2 collect`` or recorded by ``t2 serve --record`` and labelled by ``t2 label``), and needs
nothing else: the original training features are not required.

1. **Probes**: each layer's probe continues training from its current weights on the new rows
   (its input standardisation kept), with early stopping on a validation split of the new rows
   grouped by question. Epoch 0 (the probe as it was) competes: a layer whose validation loss
   does not improve keeps its old weights.
2. **Layer weights**: inverse validation MSE on the new validation rows (as in a fit).
3. **Guard**: the new rows join the guard's reference points
   (:meth:`~t2_agents.estimator.guard.DistributionGuard.extend`), so questions like them are no
   longer flagged, and each new task gets its own threshold.
4. **Knob**: kept (the price or tolerance chosen when the estimator was fitted), or calibrated
   again on the new validation rows with ``recalibrate_knob``.

The training summary's question and instance keys become the union of both sets, so held-out
checks keep excluding every question the adapted estimator has seen; the summary's ``other``
records the adaptation (rows, validation losses before and after, epochs per layer).

Example:
    >>> adapted, report = adapt_estimator(shipped, labelled)  # doctest: +SKIP
    >>> report.val_mse_after < report.val_mse_before  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from t2_agents.checks import check_int
from t2_agents.errors import ConfigError, DataError
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.estimator.probes import LayerProbe, ProbeConfig
from t2_agents.estimator.summary import TrainingSummary
from t2_agents.estimator.training import (
    layer_weights,
    one_thread,
    predict_probe,
    split_rows,
    train_epochs,
)

if TYPE_CHECKING:
    from t2_agents.calibrate.training_set import TrainingSet

__all__ = ["AdaptConfig", "AdaptReport", "adapt_estimator"]


@dataclass(frozen=True, kw_only=True)
class AdaptConfig:
    """How :func:`adapt_estimator` continues training.

    Example:
        >>> AdaptConfig().lr
        0.0003
    """

    lr: float = 3e-4
    """AdamW learning rate (lower than a fit's: the probes start trained)."""
    weight_decay: float = 1e-2
    """AdamW decoupled weight decay."""
    epochs: int = 100
    """Most epochs per layer; early stopping usually ends sooner."""
    patience: int = 10
    """Stop after this many epochs without a lower validation loss."""
    batch_size: int = 32
    """Mini-batch size."""
    val_fraction: float = 0.25
    """Share of the new questions held out for early stopping and the layer weights."""
    train_probes: bool = True
    """Train the probes further (False: only the layer weights and the guard adapt)."""
    reweight: bool = True
    """Re-weight the layers by their validation MSE on the new rows (False keeps the weights)."""
    extend_guard: bool = True
    """Add the new rows to the guard's reference points (False keeps the guard as it was)."""
    recalibrate_knob: bool = False
    """Calibrate the cost knob again on the new validation rows (the same rule as a fit: the
    largest knob within ``tolerance_target`` of fixed ``N_D``); False keeps the fitted knob."""
    tolerance_target: float = 0.01
    """With ``recalibrate_knob``: the accuracy the default knob may give up against ``N_D``."""
    seed: int = 0
    """Seed of the split and the batch order (adaptation is deterministic)."""

    def __post_init__(self) -> None:
        for name in ("epochs", "patience", "batch_size"):
            check_int(name, getattr(self, name), low=1)
        for name, ok, rule in (
            ("lr", self.lr > 0, "> 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
        ):
            if not ok:
                raise ConfigError(f"AdaptConfig.{name}={getattr(self, name)!r} must be {rule}")


@dataclass(frozen=True)
class AdaptReport:
    """What an adaptation did, measured on the new rows' validation split."""

    questions: int
    """New labelled questions used."""
    train: int
    """Of them, rows the probes trained on."""
    val: int
    """Rows held out for early stopping and the layer weights."""
    val_mse_before: float
    """Combined curve (or log2 N*) MSE of the estimator as it was, on those rows."""
    val_mse_after: float
    """The same for the adapted estimator."""
    epochs: tuple[int, ...]
    """Best epoch per layer (0: the layer kept its old probe)."""
    flagged_before: float
    """Share of the new questions the old guard flagged."""
    flagged_after: float
    """Share the adapted guard flags."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def adapt_estimator(
    estimator: T2Estimator,
    data: TrainingSet,
    *,
    config: AdaptConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[T2Estimator, AdaptReport]:
    """Continue training ``estimator`` on the labelled new questions ``data``.

    Args:
        estimator: A fitted estimator (e.g. the shipped one).
        data: Labelled pools of the new traffic, with features of at least the estimator's
            layers and pools of at least ``estimator.n_max`` samples.
        config: Training settings.
        progress: ``progress(name, done, total)`` after each layer.

    Returns:
        The adapted estimator and what changed.

    Raises:
        DataError: Features of another model or without the estimator's layers, pools smaller
            than its grid, or too few questions to split (the message says how many to label).
    """
    config = config or AdaptConfig()
    x, target = _inputs(estimator, data)
    head = estimator.config.head_object
    train, val = split_rows(
        len(target),
        replace(estimator.config, val_fraction=config.val_fraction, seed=config.seed),
        data.keys,
    )
    probes, preds_before, preds_after, epochs = [], [], [], []
    with one_thread():
        for i, (layer, shipped) in enumerate(zip(estimator.layers, estimator.probes, strict=True)):
            probe = copy.deepcopy(shipped)  # the estimator's own probes stay as they are
            xl = torch.from_numpy(np.ascontiguousarray(x[:, i, :]))  # [Q, d]
            preds_before.append(predict_probe(probe, xl[val]))
            tuned, best = (
                _continue(probe, xl, target, train, val, estimator.config, config)
                if config.train_probes
                else (probe, 0)
            )
            probes.append(tuned)
            preds_after.append(predict_probe(tuned, xl[val]))
            epochs.append(best)
            if progress is not None:
                progress(f"layer {layer}", i + 1, len(estimator.layers))
    t_val = target[val].double().numpy()
    before = np.stack(preds_before, axis=1)  # [V, L] or [V, L, G]
    after = np.stack(preds_after, axis=1)
    old_w = np.asarray(estimator.weights, dtype=np.float64)
    weights = layer_weights(head.clip(after), t_val, None) if config.reweight else old_w
    mse_before = _mse(head.combine(head.clip(before), old_w), t_val)
    combined = head.combine(head.clip(after), weights)
    mse_after = _mse(combined, t_val)
    knob = estimator.knob
    if config.recalibrate_knob and estimator.has_knob:
        n_d = estimator.training.n_d
        knob = head.calibrate(estimator.spec, combined, t_val, n_d, config.tolerance_target)
    guard, flagged_before, flagged_after = estimator.guard, 0.0, 0.0
    if guard is not None:
        rows = x[:, estimator.layers.index(guard.layer)]  # [Q, d]
        flagged_before = float(guard.flags(rows).mean())
        if config.extend_guard:
            guard = guard.extend(rows, tasks=data.tasks, phrasings=data.phrasings)
        flagged_after = float(guard.flags(rows).mean())
    report = AdaptReport(
        questions=len(target),
        train=len(train),
        val=len(val),
        val_mse_before=mse_before,
        val_mse_after=mse_after,
        epochs=tuple(epochs),
        flagged_before=flagged_before,
        flagged_after=flagged_after,
    )
    adapted = T2Estimator(
        probes,
        spec=estimator.spec,
        weights=weights,
        config=estimator.config,
        training=_summary(estimator.training, data, report),
        validation=estimator.metadata.get("validation"),
        knob=knob,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        guard=guard,
    )
    return adapted, report


def _inputs(estimator: T2Estimator, data: TrainingSet) -> tuple[np.ndarray, torch.Tensor]:
    """The new rows' features at the estimator's layers [Q, L, d] and the head's targets."""
    if data.model != estimator.model_identity:
        raise DataError(
            f"the labelled questions were collected with {data.model!r} but the estimator reads "
            f"{estimator.model_identity!r}; collect or record them with that model"
        )
    missing = [layer for layer in estimator.layers if layer not in data.layers]
    if missing:
        raise DataError(
            f"the labelled questions lack features of layers {missing} that the estimator reads "
            f"(they have {list(data.layers)}); collect or record them with all layers"
        )
    grid = estimator.grid
    if data.curves.shape[1] < grid[-1]:
        raise DataError(
            f"pools of {data.curves.shape[1]} samples are smaller than the estimator's largest "
            f"budget {grid[-1]}; collect pools of at least {grid[-1]} samples"
        )
    slots = [data.layers.index(layer) for layer in estimator.layers]
    x = np.ascontiguousarray(data.features[:, slots, :], dtype=np.float32)
    curves = torch.from_numpy(data.curves[:, [n - 1 for n in grid]].astype(np.float32))  # [Q, G]
    labels = torch.from_numpy(np.minimum(data.labels, grid[-1]).astype(np.float32))
    target = estimator.config.head_object.target(torch.log2(labels), curves)
    return x, target


def _continue(
    probe: LayerProbe, x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, val: torch.Tensor,
    probe_config: ProbeConfig, config: AdaptConfig,
) -> tuple[LayerProbe, int]:  # fmt: skip
    """Train ``probe`` further on rows ``train``; the best epoch on ``val`` (0: unchanged)."""
    torch.manual_seed(config.seed)
    return train_epochs(
        probe, x[train], y[train], x[val], y[val], config=replace(probe_config, seed=config.seed),
        lr=config.lr, weight_decay=config.weight_decay, epochs=config.epochs,
        patience=config.patience, batch_size=config.batch_size, keep_start=True,
    )  # fmt: skip


def _mse(pred: np.ndarray, target: np.ndarray) -> float:
    value = float(np.mean((np.asarray(pred) - target) ** 2))
    return value if math.isfinite(value) else math.inf


def _summary(old: TrainingSummary, data: TrainingSet, report: AdaptReport) -> TrainingSummary:
    keys = sorted(set(old.question_keys or ()) | set(data.keys))
    instances = sorted(set(old.instance_keys or ()) | set(data.instance_keys))
    adapted = {
        "questions": report.questions,
        "tasks": dict(data.summary.tasks or {}),
        "folders": list(data.summary.folders or ()),
        "report": report.to_dict(),
    }
    history = [*old.other.get("adapted", []), adapted]
    return replace(
        old,
        question_keys=tuple(keys),
        instance_keys=tuple(instances),
        other={**old.other, "adapted": history},
    )
