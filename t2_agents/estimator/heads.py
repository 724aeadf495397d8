"""The cost knob of a curve-head estimator: budgets from predicted accuracy curves.

Two rules turn a question's predicted curve ``A_hat(N)`` (on the estimator's grid) into a budget:
``tolerance`` (the smallest candidate ``N`` whose predicted accuracy is within the tolerance of
the predicted best) and ``price`` (the ``N`` maximising predicted accuracy minus the price per
path). :func:`calibrate_knob` sweeps both on the validation split and keeps, per rule, the
largest value whose validation accuracy stays within a target of fixed ``N_D``'s; the rule that
then spends fewer samples is the default.

Example:
    >>> from t2_agents.estimator.probes import EstimatorSpec
    >>> spec = EstimatorSpec(model_identity="toy", hidden_size=4, layers=(0,), grid=(1, 2, 4),
    ...                      n_min=1, n_max=4)
    >>> knob_budgets(spec, np.array([[0.2, 0.5, 0.51]]), "tolerance", 0.02).tolist()
    [2]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.estimator.probes import EstimatorSpec

__all__ = ["KNOB_SWEEPS", "calibrate_knob", "curve_budgets", "knob_budgets"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def knob_budgets(spec: EstimatorSpec, curves: FloatArray, rule: str, value: float) -> IntArray:
    """Budgets from predicted curves [Q, G] under a knob rule (see ``T2Estimator.predict``)."""
    cand = spec.candidates
    cols = np.array([spec.grid.index(int(c)) for c in cand])
    sub = curves[:, cols]  # [Q, C]
    if rule == "price":  # argmax of accuracy - price * N (np.argmax: smallest N among ties)
        return np.asarray(cand[np.argmax(sub - value * cand[None, :], axis=1)], dtype=np.int64)
    ok = sub >= sub.max(axis=1, keepdims=True) - value - 1e-12
    return np.asarray(cand[np.argmax(ok, axis=1)], dtype=np.int64)


def curve_budgets(spec: EstimatorSpec, curves: FloatArray, tolerance: float) -> IntArray:
    """Smallest candidate budget whose predicted accuracy is within ``tolerance`` of the best."""
    return knob_budgets(spec, curves, "tolerance", tolerance)


KNOB_SWEEPS: dict[str, tuple[float, ...]] = {
    "tolerance": tuple(round(0.0025 * i, 4) for i in range(81)),  # 0 .. 0.2
    "price": (0.0, *(round(1e-4 * 1.25**i, 6) for i in range(32))),  # 0, 1e-4 .. ~0.1
}


def calibrate_knob(
    spec: EstimatorSpec, predicted: FloatArray, true: FloatArray, n_d: int | None, target: float
) -> dict[str, Any]:
    """Per rule, the largest knob whose validation accuracy is >= fixed N_D's minus ``target``;
    the default rule is the one that then spends fewer samples."""
    rows = np.arange(len(true))
    reference = None
    if n_d is not None and n_d in spec.grid:
        reference = float(true[:, spec.grid.index(n_d)].mean())
    sweeps: dict[str, list[dict[str, float]]] = {}
    chosen: dict[str, dict[str, float]] = {}
    for rule, values in KNOB_SWEEPS.items():
        sweep = []
        for value in values:
            budgets = knob_budgets(spec, predicted, rule, value)
            cols = np.array([spec.grid.index(int(b)) for b in budgets])
            sweep.append({rule: value, "accuracy": float(true[rows, cols].mean()),
                          "mean_n": float(budgets.mean())})  # fmt: skip
        floor = (reference if reference is not None else sweep[0]["accuracy"]) - target
        allowed = [p for p in sweep if p["accuracy"] >= floor - 1e-12] or [sweep[0]]
        chosen[rule] = max(allowed, key=lambda p: p[rule])
        sweeps[rule] = sweep
    rule = min(chosen, key=lambda r: (chosen[r]["mean_n"], r != "price"))
    return {
        "default_rule": rule,
        "default_tolerance": chosen["tolerance"]["tolerance"],
        "default_price": chosen["price"]["price"],
        "target": f"validation accuracy >= fixed N_D={n_d} accuracy - {target}",
        "n_d_accuracy": reference,
        "chosen": chosen,
        "sweep": sweeps,
    }
