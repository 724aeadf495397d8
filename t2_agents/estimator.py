"""The T2 estimator: layer-wise probes that predict a question's optimal budget ``N*_x``.

For each chosen layer ``l`` a small MLP (:class:`~t2_agents.probes.LayerProbe`) reads the
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

The weights are chosen on the same validation split that the reported combined metrics use, so
those metrics are slightly optimistic; compare estimators on a held-out set.

The probes and their settings live in :mod:`t2_agents.probes`. Artifacts are a directory with
``probes.safetensors`` and ``metadata.json`` (nothing is pickled); :mod:`t2_agents.artifact`
writes, reads and checks them.

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
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from t2_agents.artifact import load_artifact, metadata_header, save_artifact
from t2_agents.errors import ConfigError, DataError
from t2_agents.probes import LayerProbe, ProbeConfig, _check_int, _Spec

__all__ = ["FitReport", "T2Estimator"]

_MSE_FLOOR = 1e-12
_MIN_TRAIN, _MIN_VAL = 8, 2
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
        "probe", "val MAE (log2)", "val MSE (log2)", "weight", "exact / within 2x"
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

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
        if self.n_d is not None:
            rows.append((f"baseline: N_D={self.n_d}", f"{self.n_d_baseline_mae:.3f}",
                         f"{self.n_d_baseline_mse:.3f}", "", ""))  # fmt: skip
        rows.append(("baseline: train mean", f"{self.mean_baseline_mae:.3f}",
                     f"{self.mean_baseline_mse:.3f}", "", ""))  # fmt: skip
        return rows


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
        spec: _Spec,
        weights: Sequence[float] | FloatArray,
        config: ProbeConfig,
        metadata: Mapping[str, object],
    ) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if len(probes) != len(spec.layers) or w.shape != (len(spec.layers),):
            raise ConfigError(f"need one probe and one weight per layer {list(spec.layers)}")
        if not (np.isfinite(w).all() and (w >= 0).all() and abs(w.sum() - 1.0) < 1e-6):
            raise ConfigError(f"weights={w.tolist()} must be non-negative and sum to 1")
        self._probes = [p.eval() for p in probes]
        self._spec, self._weights, self._config = spec, w, config
        self._extra = json.loads(json.dumps(dict(metadata)))

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
        """Everything ``metadata.json`` holds (a fresh copy)."""
        head = metadata_header(self._spec, self._config, self._weights.tolist())
        extra: dict[str, Any] = json.loads(json.dumps(self._extra))
        return head | extra

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
        data_summary: Mapping[str, object] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> tuple[T2Estimator, FitReport]:
        """Train one probe per layer on ``features`` [Q, L, d] and labels ``N*`` [Q].

        ``progress(name, done, total)`` is called after each layer (``done`` = 1..total).

        Example:
            >>> est, rep = T2Estimator.fit(x, y, layers=[3, 5], grid=[1, 2, 4, 8], n_min=1,
            ...     n_max=8, model_identity="m", hidden_size=8)  # doctest: +SKIP
        """
        spec = _Spec(model_identity, hidden_size, tuple(layers), tuple(grid), n_min, n_max)
        x = spec.check_features(features)
        y = _check_labels(labels, len(x), spec.grid)
        _check_int("n_d", n_d, 1, optional=True)
        summary = _check_summary(data_summary)
        train, val = _split(len(y), config)
        probes, preds, epochs = [], [], []
        for i, layer in enumerate(spec.layers):
            xl = torch.from_numpy(np.ascontiguousarray(x[:, i, :]))  # [Q, d]
            probe, best = _train_probe(xl[train], y[train], xl[val], y[val], config=config)
            probes.append(probe)
            preds.append(_predict(probe, xl[val]))
            epochs.append(best)
            if progress is not None:
                progress(f"layer {layer}", i + 1, len(spec.layers))
        val_preds = np.stack(preds, axis=1)  # [V, L]
        weights = _layer_weights(val_preds, y[val].double().numpy(), config.top_k)
        report = _report(spec, val_preds, y, train, val, weights, epochs, n_d)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        extra = {"created": created, "training_data": summary, "validation": report.to_dict()}
        # A layer with weight 0 (outside top_k) never changes a prediction: keep only the probes
        # that count, so the artifact stays small and inference encodes only those layers.
        kept = np.flatnonzero(weights > 0)
        spec = replace(spec, layers=tuple(spec.layers[i] for i in kept))
        estimator = cls(
            [probes[i] for i in kept], spec=spec, weights=weights[kept], config=config,
            metadata=extra,
        )  # fmt: skip
        return estimator, report

    # ------------------------------------------------------------------------------ inference
    def predict_log2(self, features: np.ndarray) -> FloatArray:
        """Weighted log2 budget estimate for ``features`` [Q, L, d]; returns [Q] floats.

        Example:
            >>> est.predict_log2(x).shape  # doctest: +SKIP
            (40,)
        """
        return self._combine(self._spec.check_features(features))

    def predict(self, features: np.ndarray) -> IntArray:
        """Budgets on the grid, clamped to ``[n_min, n_max]``, for ``features`` [Q, L, d].

        Example:
            >>> est.predict(x)[:3].tolist()  # doctest: +SKIP
            [2, 8, 2]
        """
        return self._spec.to_grid(self.predict_log2(features))

    def predict_one(self, features: np.ndarray) -> int:
        """Budget for one question's ``features`` [L, d].

        Example:
            >>> est.predict_one(x[0])  # doctest: +SKIP
            8
        """
        x = self._spec.check_features(features, batched=False)  # [1, L, d]
        return int(self._spec.to_grid(self._combine(x))[0])

    def _combine(self, x: npt.NDArray[np.float32]) -> FloatArray:
        out = np.zeros(len(x), dtype=np.float64)  # [Q]
        for i, (probe, w) in enumerate(zip(self._probes, self._weights, strict=True)):
            if w > 0:
                out += w * _predict(probe, torch.from_numpy(np.ascontiguousarray(x[:, i, :])))
        return out

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
            directory, layers=self._spec.layers, probes=self._probes, metadata=self.metadata
        )
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
            art.probes, spec=art.spec, weights=art.weights, config=art.config, metadata=art.extra
        )


# ---------------------------------------------------------------------------------- fit helpers
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


def _check_summary(summary: Mapping[str, object] | None) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads(json.dumps(dict(summary or {})))
    except (TypeError, ValueError) as exc:
        msg = f"data_summary is not JSON-serialisable ({exc}); pass plain values"
        raise ConfigError(msg) from exc
    return out


def _split(n: int, config: ProbeConfig) -> tuple[torch.Tensor, torch.Tensor]:
    n_val = max(_MIN_VAL, round(n * config.val_fraction))
    if n - n_val < _MIN_TRAIN:
        raise DataError(
            f"{n} questions give {n - n_val} train / {n_val} validation; need at least "
            f"{_MIN_TRAIN} train and {_MIN_VAL} validation; label more questions "
            f"(>= {_MIN_TRAIN + _MIN_VAL}) or change val_fraction={config.val_fraction}"
        )
    perm = torch.from_numpy(np.random.default_rng(config.seed).permutation(n))
    return perm[n_val:], perm[:n_val]


def _loss(pred: torch.Tensor, y: torch.Tensor, config: ProbeConfig) -> torch.Tensor:
    if config.loss == "huber":
        return F.huber_loss(pred, y, delta=config.huber_delta)
    return F.mse_loss(pred, y)


def _train_probe(
    x_tr: torch.Tensor, y_tr: torch.Tensor, x_va: torch.Tensor, y_va: torch.Tensor, *,
    config: ProbeConfig,
) -> tuple[LayerProbe, int]:  # fmt: skip
    """Train on [T, d] -> [T], early-stop on [V, d] -> [V]; return the best probe and epoch."""
    torch.manual_seed(config.seed)
    probe = LayerProbe(x_tr.shape[1], config.probe_width(x_tr.shape[1]), dropout=config.dropout)
    probe.set_standardisation(x_tr)
    last = probe.net[-1]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():
        last.bias.fill_(float(y_tr.mean()))  # start at the training mean
    opt = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    order = torch.Generator().manual_seed(config.seed)
    best, best_epoch, best_state, stale = math.inf, 0, _copy_state(probe), 0
    for epoch in range(1, config.epochs + 1):
        probe.train()
        perm = torch.randperm(len(y_tr), generator=order)  # [T]
        for start in range(0, len(perm), config.batch_size):
            idx = perm[start : start + config.batch_size]  # [B]
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(_loss(probe(x_tr[idx]), y_tr[idx], config))
            opt.step()
        probe.eval()
        with torch.no_grad():
            val = float(_loss(probe(x_va), y_va, config))
        if val < best:
            best, best_epoch, best_state, stale = val, epoch, _copy_state(probe), 0
        elif (stale := stale + 1) >= config.patience:
            break
    probe.load_state_dict(best_state)
    return probe.eval(), best_epoch


def _copy_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _predict(probe: LayerProbe, x: torch.Tensor) -> FloatArray:
    with torch.no_grad():
        return np.asarray(probe.eval()(x).double().numpy(), dtype=np.float64)


def _layer_weights(val_preds: FloatArray, y_val: FloatArray, top_k: int | None) -> FloatArray:
    """``w_l ∝ 1 / mse_l`` over the ``top_k`` best layers (all if None), normalised to 1."""
    mse = np.maximum(((val_preds - y_val[:, None]) ** 2).mean(axis=0), _MSE_FLOOR)  # [L]
    keep = np.zeros(len(mse), dtype=bool)
    keep[np.argsort(mse, kind="stable")[: top_k or len(mse)]] = True
    w = np.where(keep, 1.0 / mse, 0.0)
    return np.asarray(w / w.sum(), dtype=np.float64)


def _errors(pred: FloatArray, y: FloatArray) -> tuple[float, float]:
    diff = pred - y
    return float(np.abs(diff).mean()), float((diff**2).mean())


def _report(
    spec: _Spec,
    val_preds: FloatArray,
    y: torch.Tensor,
    train: torch.Tensor,
    val: torch.Tensor,
    weights: FloatArray,
    epochs: Sequence[int],
    n_d: int | None,
) -> FitReport:
    y_va, y_tr = y[val].double().numpy(), y[train].double().numpy()
    per_layer = [_errors(val_preds[:, i], y_va) for i in range(val_preds.shape[1])]
    combined = val_preds @ weights  # [V]
    on_grid = np.log2(spec.to_grid(combined).astype(np.float64))
    mean_err = _errors(np.full_like(y_va, y_tr.mean()), y_va)
    nd_err = _errors(np.full_like(y_va, math.log2(n_d)), y_va) if n_d else (None, None)
    return FitReport(
        layers=spec.layers,
        layer_mae=tuple(e[0] for e in per_layer),
        layer_mse=tuple(e[1] for e in per_layer),
        weights=tuple(float(w) for w in weights),
        best_epochs=tuple(int(e) for e in epochs),
        combined_mae=_errors(combined, y_va)[0],
        combined_mse=_errors(combined, y_va)[1],
        mean_baseline_mae=mean_err[0],
        mean_baseline_mse=mean_err[1],
        train_mean_log2=float(y_tr.mean()),
        n_d=n_d,
        n_d_baseline_mae=nd_err[0],
        n_d_baseline_mse=nd_err[1],
        grid_exact=float(np.mean(np.abs(on_grid - y_va) < 1e-9)),
        grid_within_2x=float(np.mean(np.abs(on_grid - y_va) <= 1.0 + 1e-9)),
        n_train=len(train),
        n_val=len(val),
    )
