"""The T2 estimator: layer-wise probes that predict a question's optimal budget ``N*_x``.

For each chosen layer ``l`` a small MLP (:class:`~t2_agents.estimator.probes.LayerProbe`) reads the
final-prompt-token hidden state ``h_l(x)`` (standardised with training-split statistics) and
regresses ``log2 N*_x``. All probes share one train/validation split. After training (early
stopping on validation loss), layer ``l`` gets the weight

    w_l = (1 / mse_l) / sum_{j in K} (1 / mse_j)   for l in K,   w_l = 0 otherwise,

where ``mse_l`` is the probe's validation mean squared error on the log2 scale and ``K`` is every
layer, or the ``top_k`` layers with the lowest ``mse_l`` when ``ProbeConfig.top_k`` is set. Inverse
MSE weighting is the minimum-variance combination of independent unbiased estimates; it needs no
temperature and leaves a layer that is pure noise (``mse_l`` near the label variance) with a
small but non-zero say. The estimate is ``sum_l w_l * probe_l(h_l(x))``, mapped to the grid value
nearest in log2 space among grid values inside ``[n_min, n_max]`` (which also clamps it).

**Heads.** What the probes predict is a head object (:mod:`t2_agents.estimator.heads`, named by
``ProbeConfig.head``); the estimator asks it for the training target, the loss, the probes'
outputs, the layer combination and the budgets. ``nstar`` is the paper's head above.
``curve`` makes each probe predict the question's whole exact accuracy curve ``A_x(N)`` at every
grid budget (values in [0, 1], MSE on the curve); layers are weighted the same way by their
validation curve MSE. The budget then follows one of two cost knobs: ``tolerance`` (the
smallest N whose predicted accuracy is within the tolerance of the predicted maximum) or
``price`` (the N maximising predicted accuracy minus the price per sample: spending where a
sample buys the most). Both are calibrated on the validation split — the largest value whose
validation accuracy stays within ``tolerance_target`` (1 point) of fixed ``N_D`` — and the rule
that then spends fewer samples is the default (a
:class:`~t2_agents.estimator.heads.KnobCalibration`). ``ProbeConfig.kind="ridge"`` replaces the
MLPs by closed-form ridge regressions (the linear baseline, same features, split and rounding).

**Guard.** With ``guard=GuardConfig()`` (``t2 train`` does this by default) the estimator also
fits a :class:`~t2_agents.estimator.guard.DistributionGuard` on one layer (``GuardConfig.depth``):
a question whose features lie farther from the training questions than its nearest training
task's threshold (99 % of that task's questions, each measured with its phrasing left out) gets
at least the safe budget (the largest over training tasks of the smallest fixed N within 2
points of the task's N_D accuracy) instead of an extrapolated one.
``predict(..., guard=False)`` returns the probes' budgets alone.

The validation split is grouped by question identity (``groups``): copies of one question never
sit on both sides. The weights are chosen on the same validation split that the reported
combined metrics use, so those metrics are slightly optimistic; compare estimators on a held-out
set.

The probes and their settings live in :mod:`t2_agents.estimator.probes`, their training in
:mod:`t2_agents.estimator.training`, the heads and the curve head's knob in
:mod:`t2_agents.estimator.heads`, the fit's validation metrics in
:mod:`t2_agents.estimator.report`, and what the estimator was trained on in
:mod:`t2_agents.estimator.summary`. Artifacts are a directory with ``probes.safetensors`` and
``metadata.json`` (nothing is pickled); :mod:`t2_agents.estimator.artifact` writes, reads and
checks them.

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 2, 8)).astype(np.float32)
    >>> y = np.where(x[:, 0, 0] > 0, 8, 2)
    >>> est, report = T2Estimator.fit(x, y, layers=[3, 5], grid=[1, 2, 4, 8], n_min=1, n_max=8,
    ...                               model_identity="toy", hidden_size=8,
    ...                               config=ProbeConfig(epochs=5))
    >>> est.predict_one(x[0]) in (1, 2, 4, 8)
    True
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from t2_agents.checks import check_optional_int, check_tolerance
from t2_agents.errors import ConfigError, DataError
from t2_agents.estimator.artifact import load_artifact, metadata_header, save_artifact
from t2_agents.estimator.guard import DistributionGuard, GuardConfig
from t2_agents.estimator.heads import HEADS, Head, KnobCalibration, KnobSetting
from t2_agents.estimator.probes import EstimatorSpec, LayerProbe, ProbeConfig
from t2_agents.estimator.report import FitReport, build_report
from t2_agents.estimator.summary import TrainingSummary
from t2_agents.estimator.training import (
    fit_probe,
    layer_weights,
    one_thread,
    predict_probe,
    split_rows,
)

__all__ = ["FitReport", "T2Estimator"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


_DEFAULT_CONFIG = ProbeConfig()


class T2Estimator:
    """Weighted layer-wise probes mapping prompt features to a budget on the grid.

    Build one with :meth:`fit` or :meth:`load`.

    Example:
        >>> est = T2Estimator.load("artifacts/smollm2")  # doctest: +SKIP
        >>> est.predict_one(features_for_one_question)  # doctest: +SKIP
        4
    """

    def __init__(
        self,
        probes: Sequence[LayerProbe],
        *,
        spec: EstimatorSpec,
        weights: Sequence[float] | FloatArray,
        config: ProbeConfig,
        training: TrainingSummary | None = None,
        validation: Mapping[str, Any] | None = None,
        knob: KnobCalibration | None = None,
        created: str | None = None,
        guard: DistributionGuard | None = None,
    ) -> None:
        """Assemble an estimator from its parts (:meth:`fit` and :meth:`load` do this).

        Args:
            probes: One fitted probe per layer of ``spec``.
            spec: Model identity, layers, grid and clamp range.
            weights: Per-layer combination weights (non-negative, summing to 1).
            config: The probes' configuration (it names the head).
            training: What the estimator was trained on (None: not recorded).
            validation: The fit's report as stored (``FitReport.to_dict()``).
            knob: The head's calibrated knob (a head without one: None; a head with one and
                None: tolerance 0, the predicted best budget).
            created: When it was fitted (ISO 8601).
            guard: The out-of-distribution guard.

        Raises:
            ConfigError: Parts that do not fit together.
        """
        head = config.head_object
        if knob is not None and not head.has_knob:
            raise ConfigError(
                f"knob={knob.default} was given for the {head.name} head, which has no knob; "
                "drop it (only a head with a cost knob is calibrated)"
            )
        w = np.asarray(weights, dtype=np.float64)
        if len(probes) != len(spec.layers) or w.shape != (len(spec.layers),):
            raise ConfigError(f"need one probe and one weight per layer {list(spec.layers)}")
        if not (np.isfinite(w).all() and (w >= 0).all() and abs(w.sum() - 1.0) < 1e-6):
            raise ConfigError(f"weights={w.tolist()} must be non-negative and sum to 1")
        if guard is not None and (
            guard.layer not in spec.layers or len(guard.safe_curve) != len(spec.grid)
        ):
            raise ConfigError(
                f"the guard reads layer {guard.layer} with a safe curve of "
                f"{len(guard.safe_curve)} points; need one of layers {list(spec.layers)} and "
                f"{len(spec.grid)} points (the grid): fit the guard with the estimator"
            )
        self._probes = [p.eval() for p in probes]
        self._guard = guard
        self._spec, self._weights, self._config, self._head = spec, w, config, head
        if knob is None and head.has_knob:
            knob = KnobCalibration.uncalibrated()
        self._knob = knob
        self._training = training if training is not None else TrainingSummary()
        self._created = created
        self._validation = None if validation is None else json.loads(json.dumps(dict(validation)))

    @property
    def spec(self) -> EstimatorSpec:
        """Model identity, layers, grid and clamp range."""
        return self._spec

    @property
    def probes(self) -> tuple[LayerProbe, ...]:
        """The fitted probes, one per layer of :attr:`layers` (in eval mode; do not train them
        in place: :func:`~t2_agents.estimator.adapt.adapt_estimator` copies them)."""
        return tuple(self._probes)

    @property
    def layers(self) -> tuple[int, ...]:
        """Layer ids, in the order of the features' second axis."""
        return self._spec.layers

    @property
    def grid(self) -> tuple[int, ...]:
        """Budget grid of the training labels."""
        return self._spec.grid

    @property
    def n_min(self) -> int:
        """Smallest budget :meth:`predict` returns."""
        return self._spec.n_min

    @property
    def n_max(self) -> int:
        """Largest budget :meth:`predict` returns."""
        return self._spec.n_max

    @property
    def model_identity(self) -> str:
        """Identity of the model whose hidden states the probes read."""
        return self._spec.model_identity

    @property
    def hidden_size(self) -> int:
        """Feature width ``d``."""
        return self._spec.hidden_size

    @property
    def config(self) -> ProbeConfig:
        """Probe configuration used for training."""
        return self._config

    @property
    def weights(self) -> tuple[float, ...]:
        """Per-layer combination weights (sum to 1), in :attr:`layers` order."""
        return tuple(float(v) for v in self._weights)

    @property
    def metadata(self) -> dict[str, Any]:
        """Everything ``metadata.json`` holds (a fresh copy: the on-disk form)."""
        header = metadata_header(self._spec, self._config, self._weights.tolist())
        record: dict[str, Any] = {} if self._created is None else {"created": self._created}
        record["training_data"] = self._training.to_dict()
        if self._validation is not None:
            record["validation"] = self._validation
        guard = {} if self._guard is None else {"guard": self._guard.metadata()}
        plain: dict[str, Any] = json.loads(json.dumps(record))
        return header | plain | guard

    @property
    def guard(self) -> DistributionGuard | None:
        """The out-of-distribution guard (None: every prediction is the probes' own)."""
        return self._guard

    @property
    def head(self) -> str:
        """The head's name: ``nstar`` (regresses log2 N*) or ``curve`` (predicts A_x(N) on the
        grid); ``config.head_object`` is the head itself."""
        return self._config.head

    @property
    def has_knob(self) -> bool:
        """True when :meth:`predict` takes a ``tolerance`` or a ``price`` (the curve head)."""
        return self._head.has_knob

    @property
    def knob(self) -> KnobCalibration | None:
        """The head's knob as calibrated on validation (None for a head without one)."""
        return self._knob

    @property
    def default_rule(self) -> str:
        """``tolerance`` or ``price``: the rule used when no knob is given (chosen on
        validation: the one reaching the accuracy target with fewer samples)."""
        return "tolerance" if self._knob is None else self._knob.default_rule

    @property
    def default_tolerance(self) -> float:
        """The tolerance calibrated on validation (0 without a knob)."""
        return 0.0 if self._knob is None else float(self._knob.default_tolerance)

    @property
    def default_price(self) -> float:
        """The price per sample calibrated on validation (0 without a knob)."""
        return 0.0 if self._knob is None else float(self._knob.default_price)

    @property
    def training(self) -> TrainingSummary:
        """What the estimator was trained on (folders, settings, ``N_D``, question keys)."""
        return self._training

    @property
    def training_keys(self) -> frozenset[str]:
        """Identity keys of the questions the estimator was fitted on (empty if not recorded)."""
        return self._training.keys

    @property
    def training_instance_keys(self) -> frozenset[str]:
        """Instance keys of the training questions (empty if not recorded: older artifacts)."""
        return self._training.instances

    # ------------------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        layers: Sequence[int],
        grid: Sequence[int],
        n_min: int,
        n_max: int,
        model_identity: str,
        hidden_size: int,
        config: ProbeConfig = _DEFAULT_CONFIG,
        n_d: int | None = None,
        curves: np.ndarray | None = None,
        groups: Sequence[str] | None = None,
        tasks: Sequence[str] | None = None,
        phrasings: Sequence[str] | None = None,
        tolerance_target: float = 0.01,
        guard: GuardConfig | None = None,
        data_summary: TrainingSummary | Mapping[str, object] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> tuple[T2Estimator, FitReport]:
        """Train one probe per layer on ``features`` [Q, L, d] and labels ``N*`` [Q].

        Args:
            features: ``[Q, L, d]`` final-prompt-token hidden states.
            labels: ``N*_x`` per question (grid values).
            curves: ``[Q, len(grid)]`` exact accuracy curves; required by a head that trains on
                them (``Head.needs_curves``: the curve head).
            groups: Question identity per row (e.g. :func:`~t2_agents.tasks.question_key`);
                rows of one group stay on one side of the train/validation split.
            tasks: Task name per row; the guard's safe budget is the largest per-task one
                (and, by default, each task gets its own guard threshold).
            phrasings: Phrasing group per row (``TrainingSet.phrasings``), for the guard's
                threshold: a row's distance is measured with its whole group left out.
            tolerance_target: Curve head: the default tolerance is the largest one whose
                validation accuracy is at least fixed ``N_D``'s minus this (needs ``n_d``).
            guard: Fit a :class:`~t2_agents.estimator.guard.DistributionGuard` on all rows (needs
                ``curves`` and ``n_d``): questions far from the training set get at least its
                safe budget. None: no guard.
            data_summary: What the rows are (stored as ``training_data``): a
                :class:`~t2_agents.estimator.summary.TrainingSummary`, or a plain JSON object.
            progress: ``progress(name, done, total)`` after each layer.

        Example:
            >>> est, rep = T2Estimator.fit(x, y, layers=[3, 5], grid=[1, 2, 4, 8], n_min=1,
            ...     n_max=8, model_identity="m", hidden_size=8)  # doctest: +SKIP
        """
        spec = EstimatorSpec(model_identity, hidden_size, tuple(layers), tuple(grid), n_min, n_max)
        head = config.head_object
        x = spec.check_features(features)
        y = _check_labels(labels, len(x), spec.grid)
        exact = None
        if curves is not None or head.needs_curves:
            exact = _check_curves(curves, len(x), len(spec.grid))
        target = head.target(y, exact)
        check_optional_int("n_d", n_d, low=1)
        if guard is not None and (exact is None or n_d is None):
            raise ConfigError("guard= needs curves= and n_d= (the safe budget comes from them)")
        summary = _check_summary(data_summary)
        train, val = split_rows(len(y), config, groups)
        probes, preds, epochs = [], [], []
        with one_thread():
            for i, layer in enumerate(spec.layers):
                xl = torch.from_numpy(np.ascontiguousarray(x[:, i, :]))  # [Q, d]
                probe, best = fit_probe(xl, target, train, val, config, len(spec.grid))
                probes.append(probe)
                preds.append(predict_probe(probe, xl[val]))
                epochs.append(best)
                if progress is not None:
                    progress(f"layer {layer}", i + 1, len(spec.layers))
        val_preds = np.stack(preds, axis=1)  # [V, L] or [V, L, G]
        t_val = target[val].double().numpy()
        weights = layer_weights(head.clip(val_preds), t_val, config.top_k)
        combined = head.combine(val_preds, weights)  # [V] or [V, G]
        knob = head.calibrate(spec, combined, t_val, n_d, tolerance_target)
        report = build_report(spec, config, val_preds, y, target, train, val, weights, epochs, n_d,
                         knob, exact)  # fmt: skip
        created = datetime.now(UTC).isoformat(timespec="seconds")
        # A layer with weight 0 (outside top_k) never changes a prediction: keep only the probes
        # that count, so the artifact stays small and inference encodes only those layers.
        kept = np.flatnonzero(weights > 0)
        spec = replace(spec, layers=tuple(spec.layers[i] for i in kept))
        fitted_guard = None
        if guard is not None and exact is not None and n_d is not None:
            at = guard.layer_slot(len(kept))  # among the layers that count
            fitted_guard = DistributionGuard.fit(
                x[:, int(kept[at])], layer=spec.layers[at], curves=exact.numpy(),
                grid=spec.grid, n_d=n_d, tasks=tasks, phrasings=phrasings, config=guard,
            )  # fmt: skip
        estimator = cls(
            [probes[i] for i in kept], spec=spec, weights=weights[kept], config=config,
            training=summary, validation=report.to_dict(), knob=knob, created=created,
            guard=fitted_guard,
        )  # fmt: skip
        return estimator, report

    # ------------------------------------------------------------------------------ inference
    def predict_curve(self, features: np.ndarray, *, guard: bool = True) -> FloatArray:
        """Predicted accuracy curve ``[Q, len(grid)]`` (a head that predicts curves only).

        With ``guard`` (and a :attr:`guard`), a question the guard flags gets the guard's safe
        curve (the slowest training task's mean curve) instead of an extrapolated one.

        Example:
            >>> est.predict_curve(x).shape  # doctest: +SKIP
            (40, 32)

        Raises:
            ConfigError: The estimator's head does not predict curves (nstar).
        """
        if not self._head.predicts_curve:
            raise ConfigError(
                f"this estimator has the {self.head} head (it predicts {self._head.summary}, not "
                f"A(N)); train one with --head {_head_that(lambda h: h.predicts_curve)} to get "
                "curves"
            )
        x = self._spec.check_features(features)
        curves = self._combine(x)
        if guard and self._guard is not None:
            return self._guard.apply_curves(curves, self._guard_rows(self._guard, x))
        return curves

    def predict_log2(self, features: np.ndarray) -> FloatArray:
        """Weighted log2 budget estimate for ``features`` [Q, L, d]; returns [Q] floats.

        For a head that does not predict log2 budgets (curve): log2 of :meth:`predict`'s budget
        at the default knob.

        Example:
            >>> est.predict_log2(x).shape  # doctest: +SKIP
            (40,)
        """
        x = self._spec.check_features(features)
        if self._head.predicts_log2:
            return self._combine(x)
        return np.log2(self.predict(x).astype(np.float64))

    def predict(
        self,
        features: np.ndarray,
        *,
        tolerance: float | None = None,
        price: float | None = None,
        guard: bool = True,
    ) -> IntArray:
        """Budgets on the grid, clamped to ``[n_min, n_max]``, for ``features`` [Q, L, d].

        The curve head has two cost knobs (give at most one; none uses the calibrated default
        rule and value): ``tolerance``, the smallest N whose predicted accuracy is within
        ``tolerance`` of the predicted best; ``price``, the N maximising predicted accuracy minus
        ``price`` per sample (the marginal-gain rule: with calibrated curves it spends a total
        budget where it buys the most accuracy).

        Args:
            features: ``[Q, L, d]``.
            tolerance: Accepted accuracy loss against the predicted best budget, in [0, 1].
            price: Accuracy one more sample must buy, in [0, 1].
            guard: Apply the estimator's :attr:`guard` (if it has one): questions far from the
                training set get at least its safe budget. False: the probes' budgets as they are.

        Example:
            >>> est.predict(x, tolerance=0.02)[:3].tolist()  # doctest: +SKIP
            [2, 8, 2]

        Raises:
            ConfigError: A knob for the nstar head, both knobs, or a knob outside [0, 1].
        """
        x = self._spec.check_features(features)
        knob = self._rule(tolerance, price)
        budgets = self._head.budgets(self._spec, self._combine(x), knob)
        if guard and self._guard is not None:
            budgets = self._guard.apply(budgets, self._guard_rows(self._guard, x))
        return budgets

    def out_of_distribution(self, features: np.ndarray) -> npt.NDArray[np.bool_]:
        """Which questions of ``features`` [Q, L, d] the :attr:`guard` flags (all False without).

        Example:
            >>> est.out_of_distribution(x).mean()  # doctest: +SKIP
            0.01
        """
        x = self._spec.check_features(features)
        if self._guard is None:
            return np.zeros(len(x), dtype=np.bool_)
        return self._guard.flags(self._guard_rows(self._guard, x))

    def _rule(self, tolerance: float | None, price: float | None) -> KnobSetting | None:
        """The knob :meth:`predict` applies: the one given, or the calibrated default (None for
        a head without a knob). The one place a knob value is checked."""
        if self._knob is None:
            if tolerance is not None or price is not None:
                knob = "tolerance" if tolerance is not None else "price"
                curve = _head_that(lambda h: h.has_knob)
                raise ConfigError(
                    f"{knob}={tolerance if price is None else price!r} needs the {curve} head; "
                    f"this estimator predicts {self._head.summary} ({self.head} head): drop it "
                    f"or train with --head {curve}"
                )
            return None
        if tolerance is not None and price is not None:
            raise ConfigError(
                f"tolerance={tolerance!r} and price={price!r} are two rules; give one of them"
            )
        if tolerance is not None:
            return "tolerance", check_tolerance(tolerance, name="tolerance")
        if price is not None:
            return "price", check_tolerance(price, name="price")
        return self._knob.default

    def predict_one(
        self,
        features: np.ndarray,
        *,
        tolerance: float | None = None,
        price: float | None = None,
        guard: bool = True,
    ) -> int:
        """Budget for one question's ``features`` [L, d] (see :meth:`predict`).

        Example:
            >>> est.predict_one(x[0])  # doctest: +SKIP
            8
        """
        x = self._spec.check_features(features, batched=False)  # [1, L, d]
        return int(self.predict(x, tolerance=tolerance, price=price, guard=guard)[0])

    def _guard_rows(
        self, guard: DistributionGuard, x: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """The guard's layer of ``x`` [Q, L, d]: [Q, d]."""
        return x[:, self._spec.layers.index(guard.layer)]

    def _combine(self, x: npt.NDArray[np.float32]) -> FloatArray:
        preds = [
            predict_probe(probe, torch.from_numpy(np.ascontiguousarray(x[:, i, :])))
            for i, (probe, w) in enumerate(zip(self._probes, self._weights, strict=True))
            if w > 0
        ]
        kept = self._weights[self._weights > 0]
        stacked = np.stack(preds, axis=1)  # [Q, L'] or [Q, L', G]
        return self._head.combine(stacked, kept / kept.sum())

    # ------------------------------------------------------------------------------ artifacts
    def save(self, directory: str | Path) -> Path:
        """Write ``probes.safetensors`` + ``metadata.json`` into ``directory`` (replaced whole).

        The files go to a temporary sibling directory that is renamed into place, so a crash
        never leaves a half-written artifact.

        Example:
            >>> est.save("artifacts/smollm2")  # doctest: +SKIP
            PosixPath('artifacts/smollm2')
        """
        save_artifact(
            directory, layers=self._spec.layers, probes=self._probes, metadata=self.metadata,
            guard=self._guard,
        )  # fmt: skip
        return Path(directory)

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        expect_identity: str | None = None,
        expect_hidden_size: int | None = None,
    ) -> T2Estimator:
        """Load an artifact written by :meth:`save`, checking it fits the expected model.

        Example:
            >>> T2Estimator.load("artifacts/smollm2", expect_hidden_size=576)  # doctest: +SKIP
        """
        art = load_artifact(
            directory, expect_identity=expect_identity, expect_hidden_size=expect_hidden_size
        )
        return cls(
            art.probes, spec=art.spec, weights=art.weights, config=art.config,
            training=art.training, validation=art.validation, knob=art.knob, created=art.created,
            guard=art.guard,
        )  # fmt: skip


def _check_labels(labels: object, n: int, grid: tuple[int, ...]) -> torch.Tensor:
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"labels have shape {y.shape}; expected [{n}] (one per question)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels have dtype {y.dtype}; pass integer N* values from the grid")
    off = sorted({int(v) for v in y if int(v) not in grid})
    if off:
        raise DataError(f"labels {off[:10]} are not in grid={list(grid)}; label with this grid")
    if len(np.unique(y)) == 1:
        raise DataError(
            f"nothing to learn: all N* = {int(y[0])}; collect more varied questions "
            "or use a fixed budget"
        )
    return torch.from_numpy(np.log2(y.astype(np.float64)).astype(np.float32))  # [Q]


def _check_curves(curves: object, n: int, g: int) -> torch.Tensor:
    if curves is None:
        raise DataError(
            "the curve head needs each question's accuracy curve: pass curves=[Q, len(grid)] "
            "(t2 train computes them from the pools)"
        )
    c = np.asarray(curves, dtype=np.float64)
    if c.shape != (n, g):
        raise DataError(f"curves have shape {c.shape}; expected [{n}, {g}] (question x grid)")
    if not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
        raise DataError("curves must hold accuracies in [0, 1]; recompute them from the pools")
    return torch.from_numpy(c.astype(np.float32))  # [Q, G]


def _check_summary(summary: TrainingSummary | Mapping[str, object] | None) -> TrainingSummary:
    """``data_summary`` as a :class:`TrainingSummary` whose on-disk form is plain JSON."""
    if not isinstance(summary, TrainingSummary):
        return TrainingSummary.from_dict(summary or {})
    try:
        json.dumps(summary.to_dict())
    except (TypeError, ValueError) as exc:
        msg = f"data_summary is not JSON-serialisable ({exc}); pass plain values"
        raise ConfigError(msg) from exc
    return summary


def _head_that(wanted: Callable[[Head], bool]) -> str:
    """The name of the first registered head with what a message asks for (e.g. a knob)."""
    return next(name for name, head in HEADS.items() if wanted(head))
