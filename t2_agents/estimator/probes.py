"""The building blocks of a T2 estimator: probe settings, the per-layer probe and the spec.

- :class:`ProbeConfig`: hyper-parameters of the per-layer probes and of the layer weighting;
- :class:`LayerProbe`: one layer's probe on standardised final-prompt-token hidden states: an MLP
  or a linear (ridge) map with as many outputs as its head asks for (one ``log2 N*`` for the
  ``nstar`` head, the whole accuracy curve on the grid for the ``curve`` head; see
  :mod:`t2_agents.estimator.heads`);
- :func:`make_probe`: the probe a configuration and spec describe (training and loading agree);
- :class:`EstimatorSpec`: the validated identity of an estimator (model, hidden size, layers,
  grid and clamp range), with the grid mapping and the feature checks;

:mod:`t2_agents.estimator.estimator` combines the probes into a
:class:`~t2_agents.estimator.estimator.T2Estimator`; :mod:`t2_agents.estimator.artifact` stores
them.

Example:
    >>> ProbeConfig(hidden=32).probe_width(576)
    32
    >>> LayerProbe(8, 2)(torch.zeros(3, 8)).shape
    torch.Size([3])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from t2_agents.checks import check_int, check_optional_int
from t2_agents.errors import ConfigError, DataError
from t2_agents.estimator.heads import Head, head_named

__all__ = [
    "PROBE_KINDS",
    "EstimatorSpec",
    "LayerProbe",
    "ProbeConfig",
    "make_probe",
]

PROBE_KINDS = ("mlp", "ridge")
"""How a probe maps features to its target: a small MLP, or a closed-form ridge regression."""

_STD_FLOOR = 1e-6
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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
    head: str = "nstar"
    """The name of a head in :data:`~t2_agents.estimator.heads.HEADS` (:attr:`head_object`).
    ``nstar``: regress ``log2 N*`` (the paper). ``curve``: predict the question's exact accuracy
    curve ``A_x(N)`` at every grid budget (bounded in [0, 1], MSE on the curve values); the
    budget then follows a calibrated cost knob (tolerance or price)."""
    kind: Literal["mlp", "ridge"] = "mlp"
    """``mlp``: the width-``hidden`` MLP trained with AdamW. ``ridge``: a linear map fitted in
    closed form (the linear baseline on the same features, split and rounding)."""
    ridge_alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)
    """Ridge penalties tried per layer (on standardised features); validation picks one."""

    def __post_init__(self) -> None:
        check_optional_int("hidden", self.hidden, low=1)
        check_int("epochs", self.epochs, low=1)
        check_int("patience", self.patience, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_int("seed", self.seed, low=0)
        check_optional_int("top_k", self.top_k, low=1)
        _check_number("dropout", self.dropout, lambda v: 0 <= v < 1, "in [0, 1)")
        _check_number("lr", self.lr, lambda v: v > 0, "> 0")
        _check_number("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0")
        _check_number("val_fraction", self.val_fraction, lambda v: 0 < v < 1, "in (0, 1)")
        _check_number("huber_delta", self.huber_delta, lambda v: v > 0, "> 0")
        if self.target != "log2":
            raise ConfigError(f"target={self.target!r} is not supported; pass target='log2'")
        head_named(self.head)
        if self.kind not in PROBE_KINDS:
            raise ConfigError(f"kind={self.kind!r} is not one of {PROBE_KINDS}; pick one of them")
        alphas = tuple(self.ridge_alphas)
        object.__setattr__(self, "ridge_alphas", alphas)
        if not alphas:
            raise ConfigError("ridge_alphas is empty; pass at least one penalty, e.g. (10.0,)")
        for alpha in alphas:
            _check_number("ridge_alphas entry", alpha, lambda v: v > 0, "> 0")
        if self.loss not in ("huber", "mse"):
            raise ConfigError(f"loss={self.loss!r} is not 'huber' or 'mse'")

    def probe_width(self, d: int) -> int:
        """Hidden width used for inputs of size ``d``."""
        return self.hidden if self.hidden is not None else max(1, d // 8)

    @property
    def head_object(self) -> Head:
        """The head :attr:`head` names (what the probes predict, and how budgets follow)."""
        return head_named(self.head)


def _check_number(name: str, value: object, ok: Callable[[float], bool], rule: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        value_ok = False
    else:
        value_ok = ok(float(value))
    if not value_ok:
        raise ConfigError(f"{name}={value!r} is not a finite number {rule}; pass {name} {rule}")


class LayerProbe(nn.Module):
    """Standardise, then an MLP ``Linear(d, h) -> GELU -> Dropout -> Linear(h, k)`` or, with
    ``linear=True``, one ``Linear(d, k)``; ``k = outputs``. ``bounded`` squashes the outputs
    into (0, 1) with a sigmoid (accuracies).

    Example:
        >>> LayerProbe(8, 2)(torch.zeros(3, 8)).shape
        torch.Size([3])
        >>> LayerProbe(8, 2, outputs=4, bounded=True)(torch.zeros(3, 8)).shape
        torch.Size([3, 4])
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        d: int,
        hidden: int,
        *,
        dropout: float = 0.0,
        outputs: int = 1,
        linear: bool = False,
        bounded: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(d))  # [d]
        self.register_buffer("std", torch.ones(d))  # [d]
        self.outputs, self.bounded = outputs, bounded
        layers: list[nn.Module] = (
            [nn.Linear(d, outputs)]
            if linear
            else [nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, outputs)]
        )
        self.net = nn.Sequential(*layers)

    def set_standardisation(self, x: torch.Tensor) -> None:
        """Store the mean and std (floored at 1e-6) of training inputs ``x`` [B, d]."""
        x64 = x.double()
        self.mean.copy_(x64.mean(dim=0).float())
        self.std.copy_(x64.std(dim=0, unbiased=False).clamp_min(_STD_FLOOR).float())

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` for ``x`` [B, d]."""
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict for ``x`` [B, d]: [B] when ``outputs == 1``, else [B, outputs]."""
        out: torch.Tensor = self.net(self.standardise(x))  # [B, k]
        if self.bounded:
            out = torch.sigmoid(out)
        return out.squeeze(-1) if self.outputs == 1 else out


def make_probe(d: int, config: ProbeConfig, grid_size: int) -> LayerProbe:
    """The (untrained) probe that ``config`` describes for features of width ``d``.

    The head decides the outputs (one per grid budget for ``curve``) and whether an MLP ends in
    a sigmoid (``curve``); a ridge probe is linear and unbounded (its curve is clipped to [0, 1]
    when combined).

    Example:
        >>> make_probe(8, ProbeConfig(head="curve", kind="ridge"), 4).net[0].weight.shape
        torch.Size([4, 8])
    """
    head = config.head_object
    return LayerProbe(
        d,
        config.probe_width(d),
        dropout=config.dropout,
        outputs=head.outputs(grid_size),
        linear=config.kind == "ridge",
        bounded=head.bounded(config.kind),
    )


@dataclass(frozen=True)
class EstimatorSpec:
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
        check_int("hidden_size", self.hidden_size, low=1)
        for name, values, low in (("layers", self.layers, 0), ("grid", self.grid, 1)):
            if not values:
                raise ConfigError(f"{name} is empty; pass at least one value")
            for v in values:
                check_int(f"{name} entry", v, low=low)
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"layers={list(self.layers)} has duplicates; list each layer once")
        if any(b <= a for a, b in zip(self.grid, self.grid[1:], strict=False)):
            raise ConfigError(f"grid={list(self.grid)} is not strictly increasing")
        check_int("n_min", self.n_min, low=1)
        check_int("n_max", self.n_max, low=self.n_min)
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
