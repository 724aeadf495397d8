"""What a T2 estimator fit measured on its validation split: :class:`FitReport`.

Per-layer and combined errors (log2 scale for the ``nstar`` head, accuracy curve for ``curve``),
the train-mean and ``N_D`` baselines, how often the budget lands on the label's grid value, the
curve head's knob calibration, and the validation accuracy at equal cost, the number heads are
chosen by. :meth:`~t2_agents.estimator.estimator.T2Estimator.fit` returns it; ``t2 train`` prints
:meth:`FitReport.table`.

Example:
    >>> FitReport.header[0]
    'probe'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch

from t2_agents.estimator.heads import KnobCalibration
from t2_agents.estimator.probes import EstimatorSpec, ProbeConfig

__all__ = ["FitReport", "build_report"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FitReport:
    """Validation metrics of a fit (errors on the log2 scale, fractions on the grid).

    Example:
        >>> r = FitReport((0,), (0.5,), (0.4,), (1.0,), (3,), 0.5, 0.4, 1.0, 1.2, 2.0, None,
        ...               None, None, 0.5, 0.9, 40, 10)
        >>> r.table()[-1][0]
        'baseline: train mean'
    """

    header: ClassVar[tuple[str, ...]] = (
        "probe", "val MAE", "val MSE", "weight", "exact / within 2x"
    )  # fmt: skip

    layers: tuple[int, ...]
    layer_mae: tuple[float, ...]
    layer_mse: tuple[float, ...]
    weights: tuple[float, ...]
    best_epochs: tuple[int, ...]
    combined_mae: float
    combined_mse: float
    mean_baseline_mae: float
    mean_baseline_mse: float
    train_mean_log2: float
    n_d: int | None
    n_d_baseline_mae: float | None
    n_d_baseline_mse: float | None
    grid_exact: float
    grid_within_2x: float
    n_train: int
    n_val: int
    head: str = "nstar"
    """The head's name: errors are on the log2 scale (nstar) or on A(N) (curve)."""
    knob: KnobCalibration | None = None
    """A head with a knob (curve): its calibrated defaults and the validation sweep."""
    equal_cost: dict[str, float] | None = None
    """With curves: validation accuracy and mean N at the default knob, fixed N at that mean
    cost (interpolated) and the gain over it, the number to choose heads by."""

    def to_dict(self) -> dict[str, Any]:
        """The on-disk form (the artifact's ``validation`` entry): tuples become lists, the knob
        its :meth:`~t2_agents.estimator.heads.KnobCalibration.to_dict`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, KnobCalibration):
                value = value.to_dict()
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def table(self) -> list[tuple[str, ...]]:
        """Rows matching :attr:`header`: one per layer, the combination, then the baselines."""
        rows: list[tuple[str, ...]] = [
            (f"layer {layer}", f"{mae:.3f}", f"{mse:.3f}", f"{w:.3f}", "")
            for layer, mae, mse, w in zip(
                self.layers, self.layer_mae, self.layer_mse, self.weights, strict=True
            )
        ]
        grid_cell = f"{self.grid_exact:.1%} / {self.grid_within_2x:.1%}"
        rows.append(("combined", f"{self.combined_mae:.3f}", f"{self.combined_mse:.3f}", "1.000",
                     grid_cell))  # fmt: skip
        mae, mse = self.n_d_baseline_mae, self.n_d_baseline_mse
        if self.n_d is not None and mae is not None and mse is not None:  # nstar head only
            rows.append((f"baseline: N_D={self.n_d}", f"{mae:.3f}", f"{mse:.3f}", "", ""))
        rows.append(("baseline: train mean", f"{self.mean_baseline_mae:.3f}",
                     f"{self.mean_baseline_mse:.3f}", "", ""))  # fmt: skip
        return rows


def _errors(pred: FloatArray, y: FloatArray) -> tuple[float, float]:
    diff = pred - y
    return float(np.abs(diff).mean()), float((diff**2).mean())


def build_report(
    spec: EstimatorSpec,
    config: ProbeConfig,
    val_preds: FloatArray,
    y: torch.Tensor,
    target: torch.Tensor,
    train: torch.Tensor,
    val: torch.Tensor,
    weights: FloatArray,
    epochs: Sequence[int],
    n_d: int | None,
    knob: KnobCalibration | None,
    exact: torch.Tensor | None,
) -> FitReport:
    """The report of a fit from its validation predictions ``val_preds`` ([V, L] or [V, L, G]).

    Errors are measured on the head's target (``target``: log2 labels or curves) as the head
    clips them; budgets follow the head (at the knob's default when it has one); the ``N_D``
    baseline is reported for a head that predicts ``log2 N*``.

    Example:
        >>> build_report(spec, config, val_preds, y, target, train, val, w, epochs, 16, None,
        ...              None).n_val  # doctest: +SKIP
        20
    """
    head = config.head_object
    t_va, t_tr = target[val].double().numpy(), target[train].double().numpy()
    y_va = y[val].double().numpy()
    preds = head.clip(val_preds)
    per_layer = [_errors(preds[:, i], t_va) for i in range(preds.shape[1])]
    combined = head.combine(val_preds, weights)  # [V] or [V, G]
    budgets = head.budgets(spec, combined, None if knob is None else knob.default)
    on_grid = np.log2(budgets.astype(np.float64))
    mean_err = _errors(np.broadcast_to(t_tr.mean(axis=0), t_va.shape), t_va)
    nd_err: tuple[float | None, float | None] = (None, None)
    if n_d and head.predicts_log2:
        nd_err = _errors(np.full_like(t_va, math.log2(n_d)), t_va)
    return FitReport(
        layers=spec.layers,
        layer_mae=tuple(e[0] for e in per_layer),
        layer_mse=tuple(e[1] for e in per_layer),
        weights=tuple(float(w) for w in weights),
        best_epochs=tuple(int(e) for e in epochs),
        combined_mae=_errors(combined, t_va)[0],
        combined_mse=_errors(combined, t_va)[1],
        mean_baseline_mae=mean_err[0],
        mean_baseline_mse=mean_err[1],
        train_mean_log2=float(y[train].double().mean()),
        n_d=n_d,
        n_d_baseline_mae=nd_err[0],
        n_d_baseline_mse=nd_err[1],
        grid_exact=float(np.mean(np.abs(on_grid - y_va) < 1e-9)),
        grid_within_2x=float(np.mean(np.abs(on_grid - y_va) <= 1.0 + 1e-9)),
        n_train=len(train),
        n_val=len(val),
        head=config.head,
        knob=knob,
        equal_cost=None if exact is None else _val_equal_cost(spec, exact[val], budgets),
    )


def _val_equal_cost(
    spec: EstimatorSpec, curves: torch.Tensor, budgets: IntArray
) -> dict[str, float]:
    from t2_agents.curves.compare import fixed_accuracy

    c = curves.double().numpy()  # [V, G]
    cols = np.array([spec.grid.index(int(b)) for b in budgets])
    accuracy = float(c[np.arange(len(c)), cols].mean())
    mean_n = float(budgets.mean())
    if spec.grid != tuple(range(1, len(spec.grid) + 1)):
        return {"accuracy": accuracy, "mean_n": mean_n}
    fixed = fixed_accuracy(c, mean_n)
    return {"accuracy": accuracy, "mean_n": mean_n, "fixed": fixed, "gain": accuracy - fixed}
