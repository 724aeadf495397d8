"""What a T2 probe predicts and how predictions become budgets: the heads, and the curve's knob.

A *head* answers "what does each layer's probe regress, and what budget follows?". Each head is
one class here, registered in :data:`HEADS` under its name; the name is the on-disk form
(``metadata.json``'s ``probe_config.head``) and the ``t2 train --head`` value, and code asks the
head object (:func:`head_named`, ``ProbeConfig.head_object``) instead of comparing names.

- :class:`NStarHead` (``nstar``, the paper's): one output, ``log2 N*_x`` (Huber or MSE); layers
  combine by a weighted mean, mapped to the nearest grid value in log2 space.
- :class:`CurveHead` (``curve``, ours): one output per grid budget, the question's exact
  accuracy curve ``A_x(N)`` (bounded in [0, 1], MSE); layers combine by a weighted mean of the
  clipped curves, and a cost knob turns a curve into a budget.

**The knob** (the curve head's). Two rules turn a predicted curve ``A_hat(N)`` into a budget:
``tolerance`` (the smallest candidate ``N`` whose predicted accuracy is within the tolerance of
the predicted best) and ``price`` (the ``N`` maximising predicted accuracy minus the price per
path). :func:`calibrate_knob` sweeps both on the validation split and keeps, per rule, the
largest value whose validation accuracy stays within a target of fixed ``N_D``'s; the rule that
then spends fewer samples is the default. The result is a :class:`KnobCalibration`, stored in
the artifact as the ``knob`` entry of the validation report.

Adding a head: subclass :class:`Head` (its class variables and abstract methods), add an
instance to :data:`HEADS`, and test it; training, the report, the artifact and ``t2 train`` ask
the registry.

Example:
    >>> from t2_agents.estimator.probes import EstimatorSpec
    >>> spec = EstimatorSpec(model_identity="toy", hidden_size=4, layers=(0,), grid=(1, 2, 4),
    ...                      n_min=1, n_max=4)
    >>> knob_budgets(spec, np.array([[0.2, 0.5, 0.51]]), "tolerance", 0.02).tolist()
    [2]
    >>> head_named("curve").budgets(spec, np.array([[0.2, 0.5, 0.51]]), ("price", 0.0)).tolist()
    [4]
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt

from t2_agents.checks import check_tolerance
from t2_agents.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "HEADS",
    "KNOB_SWEEPS",
    "BudgetGrid",
    "CurveHead",
    "Head",
    "KnobCalibration",
    "KnobPoint",
    "KnobRule",
    "KnobSetting",
    "NStarHead",
    "calibrate_knob",
    "combine_curves",
    "curve_budgets",
    "head_named",
    "knob_budgets",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class BudgetGrid(Protocol):
    """The part of an estimator's spec a head reads (``EstimatorSpec`` is one)."""

    @property
    def grid(self) -> tuple[int, ...]:
        """Budget grid of the labels (a curve head predicts one value per entry)."""
        ...

    @property
    def candidates(self) -> IntArray:
        """Grid values inside ``[n_min, n_max]``: the possible budgets."""
        ...

    def to_grid(self, log2_pred: FloatArray) -> IntArray:
        """Nearest candidate in log2 space."""
        ...


KnobRule = Literal["tolerance", "price"]
"""A cost knob's rule: ``tolerance`` (accuracy given up against the predicted best) or
``price`` (accuracy one more sample must buy)."""
KnobSetting = tuple[KnobRule, float]
"""A rule and its value: what the curve head turns a predicted curve into a budget with."""

KNOB_SWEEPS: Mapping[KnobRule, tuple[float, ...]] = MappingProxyType({
    "tolerance": tuple(round(0.0025 * i, 4) for i in range(81)),  # 0 .. 0.2
    "price": (0.0, *(round(1e-4 * 1.25**i, 6) for i in range(32))),  # 0, 1e-4 .. ~0.1
})  # fmt: skip
"""The values :func:`calibrate_knob` tries per rule, in order."""

_CORRUPT = "the artifact's validation report is corrupt; train the estimator again"


@dataclass(frozen=True, kw_only=True)
class KnobPoint:
    """One point of a knob sweep on the validation split.

    Example:
        >>> KnobPoint(rule="price", value=0.01, accuracy=0.3, mean_n=4.5).to_dict()
        {'price': 0.01, 'accuracy': 0.3, 'mean_n': 4.5}
    """

    rule: KnobRule
    """``tolerance`` or ``price``."""
    value: float
    """The knob's value under that rule."""
    accuracy: float
    """Mean validation accuracy (exact, from the curves) of the budgets it chose."""
    mean_n: float
    """Their mean budget."""

    def to_dict(self) -> dict[str, float]:
        """The on-disk form: ``{rule: value, "accuracy": ..., "mean_n": ...}``."""
        return {self.rule: self.value, "accuracy": self.accuracy, "mean_n": self.mean_n}

    @classmethod
    def from_dict(cls, rule: object, raw: object) -> KnobPoint:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ConfigError: Not that form.
        """
        rule = _rule(rule)
        if not isinstance(raw, Mapping) or set(raw) != {rule, "accuracy", "mean_n"}:
            raise ConfigError(
                f"knob point {raw!r} is not {{{rule!r}, 'accuracy', 'mean_n'}}; {_CORRUPT}"
            )
        value, accuracy, mean_n = (_number(raw[k], k) for k in (rule, "accuracy", "mean_n"))
        return cls(rule=rule, value=value, accuracy=accuracy, mean_n=mean_n)


@dataclass(frozen=True, kw_only=True)
class KnobCalibration:
    """The curve head's knob, calibrated on the validation split by :func:`calibrate_knob`.

    Example:
        >>> KnobCalibration.uncalibrated().default
        ('tolerance', 0.0)
    """

    default_rule: KnobRule
    """The rule ``predict`` uses when no knob is given: the one reaching the accuracy target
    with fewer samples on validation."""
    default_tolerance: float
    """The largest swept tolerance whose validation accuracy met the target, in [0, 1]."""
    default_price: float
    """The largest swept price per sample whose validation accuracy met the target, in [0, 1]."""
    target: str
    """The target, in words (e.g. ``validation accuracy >= fixed N_D=32 accuracy - 0.01``)."""
    n_d_accuracy: float | None
    """Validation accuracy of fixed ``N_D`` (None: ``N_D`` unknown or off the grid)."""
    chosen: tuple[KnobPoint, ...] = ()
    """The chosen point of each rule, in sweep order."""
    sweep: tuple[KnobPoint, ...] = ()
    """Every swept point, rule after rule."""

    def __post_init__(self) -> None:
        _rule(self.default_rule)
        check_tolerance(self.default_tolerance, name="default_tolerance")
        check_tolerance(self.default_price, name="default_price")

    @property
    def default(self) -> KnobSetting:
        """The default rule and its calibrated value."""
        if self.default_rule == "price":
            return "price", self.default_price
        return "tolerance", self.default_tolerance

    @classmethod
    def uncalibrated(cls) -> KnobCalibration:
        """Tolerance 0 (the predicted best budget): for curve-head artifacts without a knob."""
        return cls(default_rule="tolerance", default_tolerance=0.0, default_price=0.0,
                   target="not calibrated", n_d_accuracy=None)  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        """The on-disk form (the ``knob`` entry of the validation report)."""
        sweep: dict[str, list[dict[str, float]]] = {}
        for point in self.sweep:
            sweep.setdefault(point.rule, []).append(point.to_dict())
        return {
            "default_rule": self.default_rule,
            "default_tolerance": self.default_tolerance,
            "default_price": self.default_price,
            "target": self.target,
            "n_d_accuracy": self.n_d_accuracy,
            "chosen": {p.rule: p.to_dict() for p in self.chosen},
            "sweep": sweep,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> KnobCalibration:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ConfigError: A field is missing or of the wrong type.

        Example:
            >>> k = KnobCalibration.uncalibrated()
            >>> KnobCalibration.from_dict(k.to_dict()) == k
            True
        """
        missing = sorted({"default_rule", "default_tolerance", "default_price"} - set(raw))
        chosen, sweep = raw.get("chosen", {}), raw.get("sweep", {})
        target, reference = raw.get("target", ""), raw.get("n_d_accuracy")
        if missing or not isinstance(chosen, Mapping) or not isinstance(sweep, Mapping):
            raise ConfigError(
                f"knob {sorted(raw)} lacks {missing} or has no 'chosen'/'sweep' objects; {_CORRUPT}"
            )
        if not isinstance(target, str):
            raise ConfigError(f"knob target={target!r} is not a str; {_CORRUPT}")
        if not all(isinstance(points, list) for points in sweep.values()):
            raise ConfigError(f"knob sweep entries are not lists; {_CORRUPT}")
        return cls(
            default_rule=_rule(raw["default_rule"]),
            default_tolerance=_number(raw["default_tolerance"], "default_tolerance"),
            default_price=_number(raw["default_price"], "default_price"),
            target=target,
            n_d_accuracy=None if reference is None else _number(reference, "n_d_accuracy"),
            chosen=tuple(KnobPoint.from_dict(rule, p) for rule, p in chosen.items()),
            sweep=tuple(KnobPoint.from_dict(r, p) for r, points in sweep.items() for p in points),
        )


def _rule(value: object) -> KnobRule:
    if value == "tolerance":
        return "tolerance"
    if value == "price":
        return "price"
    raise ConfigError(f"knob rule {value!r} is not 'tolerance' or 'price'; {_CORRUPT}")


def _number(value: object, name: str) -> float:
    """``value`` unchanged (an int stays an int, so a report re-saves byte for byte)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"knob {name}={value!r} is not a finite number; {_CORRUPT}")
    return value


# ------------------------------------------------------------------------------------ the knob
def knob_budgets(spec: BudgetGrid, curves: FloatArray, rule: KnobRule, value: float) -> IntArray:
    """Budgets from predicted curves [Q, G] under a knob rule (see ``T2Estimator.predict``).

    Example:
        >>> from t2_agents.estimator.probes import EstimatorSpec
        >>> spec = EstimatorSpec("toy", 4, (0,), (1, 2, 3), 1, 3)
        >>> knob_budgets(spec, np.array([[0.2, 0.5, 0.6]]), "price", 0.2).tolist()
        [2]
    """
    cand = spec.candidates
    cols = np.array([spec.grid.index(int(c)) for c in cand])
    sub = curves[:, cols]  # [Q, C]
    if rule == "price":  # argmax of accuracy - price * N (np.argmax: smallest N among ties)
        return np.asarray(cand[np.argmax(sub - value * cand[None, :], axis=1)], dtype=np.int64)
    ok = sub >= sub.max(axis=1, keepdims=True) - value - 1e-12
    return np.asarray(cand[np.argmax(ok, axis=1)], dtype=np.int64)


def curve_budgets(spec: BudgetGrid, curves: FloatArray, tolerance: float) -> IntArray:
    """Smallest candidate budget whose predicted accuracy is within ``tolerance`` of the best.

    Example:
        >>> from t2_agents.estimator.probes import EstimatorSpec
        >>> spec = EstimatorSpec("toy", 4, (0,), (1, 2, 3), 1, 3)
        >>> curve_budgets(spec, np.array([[0.2, 0.5, 0.6]]), 0.1).tolist()
        [2]
    """
    return knob_budgets(spec, curves, "tolerance", tolerance)


def calibrate_knob(
    spec: BudgetGrid, predicted: FloatArray, true: FloatArray, n_d: int | None, target: float
) -> KnobCalibration:
    """Per rule, the largest knob whose validation accuracy is >= fixed N_D's minus ``target``;
    the default rule is the one that then spends fewer samples.

    Args:
        spec: The estimator's grid and clamp range.
        predicted: Combined predicted curves of the validation questions, ``[V, G]``.
        true: Their exact curves, ``[V, G]``.
        n_d: The dataset-optimal budget (None, or off the grid: the target is taken against
            the sweep's first, most generous, point).
        target: Accuracy (0..1) the default may lose against fixed ``N_D``.

    Example:
        >>> from t2_agents.estimator.probes import EstimatorSpec
        >>> spec = EstimatorSpec("toy", 4, (0,), (1, 2), 1, 2)
        >>> c = np.array([[0.5, 0.5], [0.2, 0.6]])
        >>> calibrate_knob(spec, c, c, 2, 0.01).default_rule
        'price'
    """
    rows = np.arange(len(true))
    reference = None
    if n_d is not None and n_d in spec.grid:
        reference = float(true[:, spec.grid.index(n_d)].mean())
    sweep: list[KnobPoint] = []
    chosen: list[KnobPoint] = []
    for rule, values in KNOB_SWEEPS.items():
        points = []
        for value in values:
            budgets = knob_budgets(spec, predicted, rule, value)
            cols = np.array([spec.grid.index(int(b)) for b in budgets])
            points.append(KnobPoint(rule=rule, value=value, accuracy=float(true[rows, cols].mean()),
                                    mean_n=float(budgets.mean())))  # fmt: skip
        floor = (reference if reference is not None else points[0].accuracy) - target
        allowed = [p for p in points if p.accuracy >= floor - 1e-12] or [points[0]]
        chosen.append(max(allowed, key=lambda p: p.value))
        sweep += points
    default = min(chosen, key=lambda p: (p.mean_n, p.rule != "price"))
    by_rule = {p.rule: p.value for p in chosen}
    return KnobCalibration(
        default_rule=default.rule,
        default_tolerance=by_rule["tolerance"],
        default_price=by_rule["price"],
        target=f"validation accuracy >= fixed N_D={n_d} accuracy - {target}",
        n_d_accuracy=reference,
        chosen=tuple(chosen),
        sweep=tuple(sweep),
    )


def combine_curves(preds: FloatArray, weights: FloatArray) -> FloatArray:
    """Weighted mean of per-layer curves [Q, L, G] (each clipped to [0, 1]) -> [Q, G].

    Example:
        >>> combine_curves(np.array([[[0.2, 1.4], [0.4, 0.6]]]), np.array([0.5, 0.5])).tolist()
        [[0.30000000000000004, 0.8]]
    """
    return np.asarray(np.einsum("qlg,l->qg", np.clip(preds, 0.0, 1.0), weights), np.float64)


# ------------------------------------------------------------------------------------ heads
class Head(ABC):
    """What the per-layer probes predict, how layers combine, and how a budget follows.

    Example:
        >>> head_named("nstar").outputs(32), head_named("curve").outputs(32)
        (1, 32)
    """

    name: ClassVar[str]
    """Registry key: the on-disk form (``probe_config.head``) and the ``--head`` value."""
    summary: ClassVar[str]
    """What the combined probes predict, in a few words (for help texts and messages)."""
    has_knob: ClassVar[bool] = False
    """True when budgets follow a cost knob (tolerance or price) calibrated on validation."""
    needs_curves: ClassVar[bool] = False
    """True when training needs each question's exact accuracy curve (``fit(curves=...)``)."""
    predicts_curve: ClassVar[bool] = False
    """True when the combined prediction is an accuracy curve on the grid."""
    predicts_log2: ClassVar[bool] = False
    """True when the combined prediction is a ``log2`` budget (errors in doublings)."""

    @abstractmethod
    def outputs(self, grid_size: int) -> int:
        """Outputs of one layer's probe for a grid of ``grid_size`` budgets."""

    def bounded(self, kind: str) -> bool:
        """True when a probe of ``kind`` (``mlp``/``ridge``) ends in a sigmoid (outputs in
        (0, 1)); no head bounds its outputs by default."""
        del kind
        return False

    @abstractmethod
    def target(self, log2_labels: torch.Tensor, curves: torch.Tensor | None) -> torch.Tensor:
        """The training target from ``log2 N*`` labels [Q] and exact curves [Q, G] (or None)."""

    @abstractmethod
    def loss(
        self, pred: torch.Tensor, target: torch.Tensor, *, kind: str, huber_delta: float
    ) -> torch.Tensor:
        """Training (and early-stopping) loss; ``kind`` is ``ProbeConfig.loss``."""

    def clip(self, preds: FloatArray) -> FloatArray:
        """Per-layer predictions as errors and layer weights measure them (unchanged here)."""
        return preds

    @abstractmethod
    def combine(self, preds: FloatArray, weights: FloatArray) -> FloatArray:
        """Combine per-layer predictions ``[Q, L, ...]`` with normalised ``weights`` [L]."""

    @abstractmethod
    def budgets(self, spec: BudgetGrid, combined: FloatArray, knob: KnobSetting | None) -> IntArray:
        """Budgets on the grid's candidates from combined predictions (``knob``: the cost
        knob to apply, for a head that has one)."""

    def calibrate(
        self, spec: BudgetGrid, combined: FloatArray, target: FloatArray, n_d: int | None,
        tolerance_target: float,
    ) -> KnobCalibration | None:  # fmt: skip
        """The knob's calibration on the validation rows (None: the head has no knob)."""
        del spec, combined, target, n_d, tolerance_target
        return None

    def read_calibration(self, validation: Mapping[str, object] | None) -> KnobCalibration | None:
        """The knob's calibration from an artifact's validation report (None: no knob)."""
        del validation
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NStarHead(Head):
    """The paper's head: regress ``log2 N*_x``; the budget is the nearest candidate in log2.

    Example:
        >>> from t2_agents.estimator.probes import EstimatorSpec
        >>> spec = EstimatorSpec("toy", 4, (0,), (1, 2, 4, 8), 1, 8)
        >>> NStarHead().budgets(spec, np.array([0.2, 1.6, 2.9]), None).tolist()
        [1, 4, 8]
    """

    name = "nstar"
    summary = "log2 N*"
    predicts_log2 = True

    def outputs(self, grid_size: int) -> int:
        """One output: the log2 budget."""
        del grid_size
        return 1

    def target(self, log2_labels: torch.Tensor, curves: torch.Tensor | None) -> torch.Tensor:
        """``log2 N*`` per question."""
        del curves
        return log2_labels

    def loss(
        self, pred: torch.Tensor, target: torch.Tensor, *, kind: str, huber_delta: float
    ) -> torch.Tensor:
        """Huber (``kind="huber"``, transition at ``huber_delta`` doublings) or MSE."""
        from torch.nn import functional as F

        if kind == "huber":
            return F.huber_loss(pred, target, delta=huber_delta)
        return F.mse_loss(pred, target)

    def combine(self, preds: FloatArray, weights: FloatArray) -> FloatArray:
        """Weighted mean of the layers' log2 estimates: [Q, L] -> [Q]."""
        return np.asarray(preds @ weights, dtype=np.float64)

    def budgets(self, spec: BudgetGrid, combined: FloatArray, knob: KnobSetting | None) -> IntArray:
        """Nearest candidate in log2 space (the nstar head has no knob)."""
        if knob is not None:
            raise ConfigError(
                f"{knob[0]}={knob[1]!r} needs the curve head; the nstar head predicts log2 N*: "
                "drop it or train with --head curve"
            )
        return spec.to_grid(combined)


class CurveHead(Head):
    """Predict the accuracy curve ``A_x(N)`` on the grid; a cost knob picks the budget.

    Example:
        >>> from t2_agents.estimator.probes import EstimatorSpec
        >>> spec = EstimatorSpec("toy", 4, (0,), (1, 2, 4), 1, 4)
        >>> CurveHead().budgets(spec, np.array([[0.2, 0.5, 0.51]]), ("tolerance", 0.0)).tolist()
        [4]
    """

    name = "curve"
    summary = "the accuracy curve A(N) on the grid, with a cost knob"
    has_knob = True
    needs_curves = True
    predicts_curve = True

    def outputs(self, grid_size: int) -> int:
        """One output per grid budget."""
        return grid_size

    def bounded(self, kind: str) -> bool:
        """An MLP curve probe ends in a sigmoid; a ridge one is linear (clipped when combined)."""
        return kind == "mlp"

    def target(self, log2_labels: torch.Tensor, curves: torch.Tensor | None) -> torch.Tensor:
        """The exact accuracy curve per question, ``[Q, G]``."""
        del log2_labels
        if curves is None:
            raise ConfigError("the curve head trains on curves; pass curves=[Q, len(grid)]")
        return curves

    def loss(
        self, pred: torch.Tensor, target: torch.Tensor, *, kind: str, huber_delta: float
    ) -> torch.Tensor:
        """MSE on the curve values (``kind`` and ``huber_delta`` apply to log2 targets only)."""
        from torch.nn import functional as F

        del kind, huber_delta
        return F.mse_loss(pred, target)

    def clip(self, preds: FloatArray) -> FloatArray:
        """Curves clipped to [0, 1] (a ridge probe's are unbounded)."""
        return np.clip(preds, 0.0, 1.0)

    def combine(self, preds: FloatArray, weights: FloatArray) -> FloatArray:
        """Weighted mean of the clipped layer curves: [Q, L, G] -> [Q, G]."""
        return combine_curves(preds, weights)

    def budgets(self, spec: BudgetGrid, combined: FloatArray, knob: KnobSetting | None) -> IntArray:
        """The knob's budget from each predicted curve (``knob`` is required)."""
        if knob is None:
            raise ConfigError("the curve head needs a knob: pass (rule, value), e.g. ('price', 0)")
        return knob_budgets(spec, combined, knob[0], knob[1])

    def calibrate(
        self, spec: BudgetGrid, combined: FloatArray, target: FloatArray, n_d: int | None,
        tolerance_target: float,
    ) -> KnobCalibration:  # fmt: skip
        """:func:`calibrate_knob` on the validation rows."""
        return calibrate_knob(spec, combined, target, n_d, tolerance_target)

    def read_calibration(self, validation: Mapping[str, object] | None) -> KnobCalibration:
        """The ``knob`` entry of the report; an artifact without one uses tolerance 0."""
        raw = None if validation is None else validation.get("knob")
        if raw is None:
            return KnobCalibration.uncalibrated()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"knob={raw!r} is not an object; the report is corrupt")
        return KnobCalibration.from_dict(raw)


HEADS: Mapping[str, Head] = MappingProxyType({h.name: h for h in (NStarHead(), CurveHead())})
"""Every head by name, in ``--head`` help order."""


def head_named(name: object) -> Head:
    """The registered head called ``name``.

    Raises:
        ConfigError: No head has that name.

    Example:
        >>> head_named("curve").has_knob
        True
    """
    head = HEADS.get(name) if isinstance(name, str) else None
    if head is None:
        raise ConfigError(f"head={name!r} is not one of {tuple(HEADS)}; pick one of them")
    return head
