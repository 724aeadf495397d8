"""The T2 estimator: layer-wise probes that predict a question's optimal budget ``N*_x``.

For each chosen layer ``l`` a small MLP (:class:`LayerProbe`) reads the final-prompt-token hidden
state ``h_l(x)`` (standardised with training-split statistics) and regresses ``log2 N*_x``. All
probes share one train/validation split. After training (early stopping on validation loss),
layer ``l`` gets the weight

    w_l = (1 / mse_l) / sum_{j in K} (1 / mse_j)   for l in K,   w_l = 0 otherwise,

where ``mse_l`` is the probe's validation mean squared error on the log2 scale and ``K`` is every
layer, or the ``top_k`` layers with the lowest ``mse_l`` when ``ProbeConfig.top_k`` is set. Inverse
MSE weighting is the minimum-variance combination of independent unbiased estimates; it needs no
temperature and leaves a layer that is pure noise (``mse_l`` near the label variance) with a
small but non-zero say. The estimate is ``sum_l w_l * probe_l(h_l(x))``, mapped to the grid value
nearest in log2 space among grid values inside ``[n_min, n_max]`` (which also clamps it).

The weights are chosen on the same validation split that the reported combined metrics use, so
those metrics are slightly optimistic; compare estimators on a held-out set.

Artifacts are a directory with ``probes.safetensors`` (keys ``layer{l}.net.0.weight``,
``layer{l}.mean``, ...) and ``metadata.json``; nothing is pickled.

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
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from t2_agents.errors import ArtifactError, ConfigError, DataError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "FitReport", "LayerProbe", "ProbeConfig", "T2Estimator"]

FORMAT_NAME = "t2-estimator"
FORMAT_VERSION = 1
_PROBES = "probes.safetensors"
_METADATA = "metadata.json"
_STD_FLOOR = 1e-6
_MSE_FLOOR = 1e-12
_MIN_TRAIN, _MIN_VAL = 8, 2
_FIX_MODEL = "train an estimator for this model with `t2 train`"
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """Hyper-parameters of the per-layer probes and of the layer weighting.

    Example:
        >>> ProbeConfig(hidden=32).probe_width(576), ProbeConfig().probe_width(576)
        (32, 72)
    """

    hidden: int | None = None
    """Probe hidden width; ``None`` means ``d // 8`` (the paper's width saturates around d/8)."""
    dropout: float = 0.1
    """Dropout after the GELU, in ``[0, 1)``; active only while training."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-2
    """AdamW decoupled weight decay."""
    epochs: int = 200
    """Maximum training epochs per layer (early stopping usually ends training sooner)."""
    patience: int = 20
    """Stop after this many epochs without a lower validation loss; the best epoch is kept."""
    batch_size: int = 64
    """Training mini-batch size."""
    val_fraction: float = 0.2
    """Share of questions held out for early stopping, layer weights and the report."""
    seed: int = 0
    """Seed of the split, the initialisation, dropout and batch order (fits are deterministic)."""
    target: Literal["log2"] = "log2"
    """Regression target. ``log2 N*``: budgets act multiplicatively, the grid is roughly
    geometric (1, 2, 4, ...), and being off by 2x matters as much at N=2 as at N=32, so errors are
    measured in doublings rather than in samples."""
    loss: Literal["huber", "mse"] = "huber"
    """Training loss on the log2 scale; Huber is robust to the occasional far-off label."""
    huber_delta: float = 1.0
    """Huber transition point in log2 units (1.0 = a factor of 2)."""
    top_k: int | None = None
    """Keep only the ``top_k`` layers with the lowest validation MSE (others get weight 0)."""

    def __post_init__(self) -> None:
        _check_int("hidden", self.hidden, 1, optional=True)
        _check_int("epochs", self.epochs, 1)
        _check_int("patience", self.patience, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("seed", self.seed, 0)
        _check_int("top_k", self.top_k, 1, optional=True)
        _check_number("dropout", self.dropout, lambda v: 0 <= v < 1, "in [0, 1)")
        _check_number("lr", self.lr, lambda v: v > 0, "> 0")
        _check_number("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0")
        _check_number("val_fraction", self.val_fraction, lambda v: 0 < v < 1, "in (0, 1)")
        _check_number("huber_delta", self.huber_delta, lambda v: v > 0, "> 0")
        if self.target != "log2":
            raise ConfigError(f"target={self.target!r} is not supported; pass target='log2'")
        if self.loss not in ("huber", "mse"):
            raise ConfigError(f"loss={self.loss!r} is not 'huber' or 'mse'")

    def probe_width(self, d: int) -> int:
        """Hidden width used for inputs of size ``d``."""
        return self.hidden if self.hidden is not None else max(1, d // 8)


def _check_int(name: str, value: object, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name}={value!r} is not an int >= {low}; pass {name} >= {low}")


def _check_number(name: str, value: object, ok: Callable[[float], bool], rule: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        value_ok = False
    else:
        value_ok = ok(float(value))
    if not value_ok:
        raise ConfigError(f"{name}={value!r} is not a finite number {rule}; pass {name} {rule}")


class LayerProbe(nn.Module):
    """Standardise, then ``Linear(d, h) -> GELU -> Dropout -> Linear(h, 1)``; predicts log2 N*.

    Example:
        >>> LayerProbe(8, 2)(torch.zeros(3, 8)).shape
        torch.Size([3])
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, d: int, hidden: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(d))  # [d]
        self.register_buffer("std", torch.ones(d))  # [d]
        self.net = nn.Sequential(
            nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def set_standardisation(self, x: torch.Tensor) -> None:
        """Store the mean and std (floored at 1e-6) of training inputs ``x`` [B, d]."""
        x64 = x.double()
        self.mean.copy_(x64.mean(dim=0).float())
        self.std.copy_(x64.std(dim=0, unbiased=False).clamp_min(_STD_FLOOR).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict log2 N* for ``x`` [B, d]; returns [B]."""
        z = (x - self.mean) / self.std  # [B, d]
        out: torch.Tensor = self.net(z)  # [B, 1]
        return out.squeeze(-1)  # [B]


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


@dataclass(frozen=True)
class _Spec:
    """Validated identity of an estimator: model, layers, grid and clamp range."""

    model_identity: str
    hidden_size: int
    layers: tuple[int, ...]
    grid: tuple[int, ...]
    n_min: int
    n_max: int

    def __post_init__(self) -> None:
        if not isinstance(self.model_identity, str) or not self.model_identity.strip():
            raise ConfigError(f"model_identity={self.model_identity!r} must be a non-empty str")
        _check_int("hidden_size", self.hidden_size, 1)
        for name, values, low in (("layers", self.layers, 0), ("grid", self.grid, 1)):
            if not values:
                raise ConfigError(f"{name} is empty; pass at least one value")
            for v in values:
                _check_int(f"{name} entry", v, low)
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"layers={list(self.layers)} has duplicates; list each layer once")
        if any(b <= a for a, b in zip(self.grid, self.grid[1:], strict=False)):
            raise ConfigError(f"grid={list(self.grid)} is not strictly increasing")
        _check_int("n_min", self.n_min, 1)
        _check_int("n_max", self.n_max, self.n_min)
        if not self.candidates.size:
            raise ConfigError(f"no grid value lies in [n_min={self.n_min}, n_max={self.n_max}]")

    @property
    def candidates(self) -> IntArray:
        """Grid values inside ``[n_min, n_max]``: the possible predictions."""
        return np.array([g for g in self.grid if self.n_min <= g <= self.n_max], dtype=np.int64)

    def to_grid(self, log2_pred: FloatArray) -> IntArray:
        """Nearest candidate in log2 space (ties go to the smaller budget)."""
        cand = self.candidates
        dist = np.abs(log2_pred[:, None] - np.log2(cand)[None, :])  # [Q, C]
        return np.asarray(cand[np.argmin(dist, axis=1)], dtype=np.int64)

    def check_features(self, features: object, *, batched: bool = True) -> npt.NDArray[np.float32]:
        """Return ``features`` as float32 [Q, L, d] after checking shape and finiteness."""
        x = np.asarray(features)
        want = "[Q, L, d]" if batched else "[L, d]"
        if x.ndim != (3 if batched else 2) or not np.issubdtype(x.dtype, np.number):
            raise DataError(f"features have shape {x.shape} ({x.dtype}); expected {want} floats")
        x = x.astype(np.float32, copy=False) if batched else x.astype(np.float32)[None]
        if x.shape[1:] != (len(self.layers), self.hidden_size):
            raise DataError(
                f"features have {x.shape[1]} layers of width {x.shape[2]}; this estimator needs "
                f"{len(self.layers)} layers {list(self.layers)} of width {self.hidden_size}; "
                "encode with the same model and layers"
            )
        if not np.isfinite(x).all():
            raise DataError("features contain NaN or inf; re-encode the questions")
        return x


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
        s, cfg = self._spec, self._config
        head: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "library_version": _library_version(),
            "model_identity": s.model_identity,
            "hidden_size": s.hidden_size,
            "layers": list(s.layers),
            "probe_hidden": cfg.probe_width(s.hidden_size),
            "probe_config": asdict(cfg),
            "grid": list(s.grid),
            "n_min": s.n_min,
            "n_max": s.n_max,
            "weights": self._weights.tolist(),
        }
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
        return cls(probes, spec=spec, weights=weights, config=config, metadata=extra), report

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
        target = Path(directory).absolute()
        _check_overwrite(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            tensors = {
                f"layer{layer}.{key}": t.detach().contiguous()
                for layer, probe in zip(self._spec.layers, self._probes, strict=True)
                for key, t in probe.state_dict().items()
            }
            save_file(tensors, str(tmp / _PROBES), metadata={"format": "pt"})
            text = json.dumps(self.metadata, indent=2) + "\n"
            (tmp / _METADATA).write_text(text, encoding="utf-8")
            os.chmod(tmp, 0o755)
            _swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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
        root = Path(directory)
        meta = _read_metadata(root)
        spec, config, weights = _parse_metadata(meta, root)
        if expect_hidden_size is not None and expect_hidden_size != spec.hidden_size:
            raise ArtifactError(
                f"{root} was trained on hidden size {spec.hidden_size}, but the model has "
                f"hidden size {expect_hidden_size}; {_FIX_MODEL}"
            )
        if expect_identity is not None and expect_identity != spec.model_identity:
            raise ArtifactError(
                f"{root} was trained for model {spec.model_identity!r}, not "
                f"{expect_identity!r}; {_FIX_MODEL}"
            )
        probes = _load_probes(root, spec, config.probe_width(spec.hidden_size))
        head = ("created", "training_data", "validation")
        extra = {k: meta[k] for k in head if k in meta}
        return cls(probes, spec=spec, weights=weights, config=config, metadata=extra)


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


# ---------------------------------------------------------------------------- artifact helpers
def _library_version() -> str:
    import t2_agents

    return str(getattr(t2_agents, "__version__", "0"))


def _check_overwrite(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{target} exists and is not a directory; pick another path")
    if target.is_dir():
        stray = sorted(p.name for p in target.iterdir() if p.name not in (_PROBES, _METADATA))
        if stray:
            raise ArtifactError(
                f"{target} holds {stray[:5]}, not only an estimator artifact; "
                "refusing to replace it; pick an empty or new directory"
            )


def _swap_in(tmp: Path, target: Path) -> None:
    if not target.exists():
        tmp.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _read_metadata(root: Path) -> dict[str, Any]:
    if not root.is_dir():
        raise ArtifactError(f"{root} is not a directory; pass the folder `t2 train` wrote")
    path = root / _METADATA
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; the artifact is incomplete, train it again")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path} is not valid JSON ({exc}); train the estimator again"
        raise ArtifactError(msg) from exc
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path} holds a {type(meta).__name__}, not a JSON object")
    fmt, version = meta.get("format"), meta.get("format_version")
    if fmt != FORMAT_NAME or version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format {fmt!r} version {version!r}; expected {FORMAT_NAME!r} "
            f"version {FORMAT_VERSION}; train the estimator again with this library"
        )
    return meta


def _get(meta: Mapping[str, Any], key: str, kind: type[_T], root: Path) -> _T:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        msg = f"{key}={value!r} is not of type {kind.__name__}; the file is corrupt"
        raise ArtifactError(f"{root / _METADATA}: {msg}")
    return value


def _get_list(
    meta: Mapping[str, Any], key: str, kind: type | tuple[type, ...], root: Path
) -> list[Any]:
    value = _get(meta, key, list, root)
    if any(isinstance(v, bool) or not isinstance(v, kind) for v in value):
        raise ArtifactError(f"{root / _METADATA}: {key}={value!r} has entries of the wrong type")
    return value


def _parse_metadata(meta: Mapping[str, Any], root: Path) -> tuple[_Spec, ProbeConfig, list[float]]:
    try:
        spec = _Spec(
            _get(meta, "model_identity", str, root),
            _get(meta, "hidden_size", int, root),
            tuple(_get_list(meta, "layers", int, root)),
            tuple(_get_list(meta, "grid", int, root)),
            _get(meta, "n_min", int, root),
            _get(meta, "n_max", int, root),
        )
        config = ProbeConfig(**_get(meta, "probe_config", dict, root))
        weights = [float(w) for w in _get_list(meta, "weights", (int, float), root)]
        if _get(meta, "probe_hidden", int, root) != config.probe_width(spec.hidden_size):
            raise ConfigError(f"probe_hidden={meta['probe_hidden']} disagrees with probe_config")
        if len(weights) != len(spec.layers) or min(weights) < 0 or abs(sum(weights) - 1) > 1e-6:
            raise ConfigError(f"weights={weights} are not {len(spec.layers)} values summing to 1")
    except (ConfigError, TypeError) as exc:
        raise ArtifactError(f"{root / _METADATA} is inconsistent: {exc}") from exc
    return spec, config, weights


def _load_probes(root: Path, spec: _Spec, hidden: int) -> list[LayerProbe]:
    path = root / _PROBES
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; the artifact is incomplete, train it again")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} is truncated or corrupt ({exc}); train it again") from exc
    probes = []
    for layer in spec.layers:
        prefix = f"layer{layer}."
        sub = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        probe = LayerProbe(spec.hidden_size, hidden)
        try:
            probe.load_state_dict(sub)
        except RuntimeError as exc:
            msg = f"{path}: layer {layer} tensors do not match {_METADATA} ({exc}); train it again"
            raise ArtifactError(msg) from exc
        probes.append(probe.eval())
    if len(tensors) != sum(len(p.state_dict()) for p in probes):
        raise ArtifactError(f"{path} has tensors of layers not in {_METADATA}; train it again")
    return probes
