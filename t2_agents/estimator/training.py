"""Training the per-layer probes of a T2 estimator: the split, ridge or MLP fits, layer weights.

:meth:`~t2_agents.estimator.estimator.T2Estimator.fit` calls these in order: :func:`split_rows` (one
train/validation split for every layer, grouped by question identity), :func:`fit_probe` per
layer (closed-form ridge, or an MLP trained with AdamW and early-stopped on validation loss),
:func:`predict_probe` on the validation rows, then :func:`layer_weights` (inverse validation MSE
of the predictions as the head measures them). The head (:mod:`t2_agents.estimator.heads`)
gives the probe's outputs and loss. Everything runs inside :func:`one_thread` so a fit is
reproducible bit for bit.

Example:
    >>> train, val = split_rows(20, ProbeConfig(val_fraction=0.2))
    >>> len(train), len(val)
    (16, 4)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from t2_agents.errors import DataError
from t2_agents.estimator.probes import LayerProbe, ProbeConfig, make_probe

__all__ = [
    "fit_probe",
    "layer_weights",
    "one_thread",
    "predict_probe",
    "split_rows",
    "train_epochs",
]

FloatArray = npt.NDArray[np.float64]

_MSE_FLOOR = 1e-12


_MIN_TRAIN, _MIN_VAL = 8, 2


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Fit on one torch thread: `t2 train` must rebuild the shipped artifact bit for bit, and
    multi-threaded float reductions need not be."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split_rows(
    n: int, config: ProbeConfig, groups: Sequence[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random train/validation rows; all rows of one group land on the same side."""
    names = [str(i) for i in range(n)] if groups is None else [str(g) for g in groups]
    if len(names) != n:
        raise DataError(f"groups has {len(names)} entries for {n} questions; pass one per row")
    unique = names if groups is None else sorted(set(names))
    n_val_groups = max(_MIN_VAL, round(len(unique) * config.val_fraction))
    order = np.random.default_rng(config.seed).permutation(len(unique))
    val_groups = {unique[i] for i in order[:n_val_groups]}
    in_val = np.array([g in val_groups for g in names])
    n_val = int(in_val.sum())
    if n - n_val < _MIN_TRAIN or n_val < _MIN_VAL:
        raise DataError(
            f"{n} questions ({len(unique)} distinct) give {n - n_val} train / {n_val} validation; "
            f"need at least {_MIN_TRAIN} train and {_MIN_VAL} validation; label more questions "
            f"(>= {_MIN_TRAIN + _MIN_VAL}) or change val_fraction={config.val_fraction}"
        )
    rows = np.arange(n)
    # Validation rows in the permuted order keep the old (ungrouped) split when groups is None.
    rank = {g: k for k, g in enumerate(unique[i] for i in order)}
    val = sorted(rows[in_val], key=lambda r: rank[names[r]])
    train = sorted(rows[~in_val], key=lambda r: rank[names[r]])
    return torch.tensor(train, dtype=torch.long), torch.tensor(val, dtype=torch.long)


def _loss(pred: torch.Tensor, y: torch.Tensor, config: ProbeConfig) -> torch.Tensor:
    return config.head_object.loss(pred, y, kind=config.loss, huber_delta=config.huber_delta)


def fit_probe(
    x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, val: torch.Tensor,
    config: ProbeConfig, grid_size: int,
) -> tuple[LayerProbe, int]:  # fmt: skip
    """One layer's probe for ``x`` [Q, d] and targets ``y`` [Q] or [Q, G]; (probe, epoch)."""
    probe = make_probe(x.shape[1], config, grid_size)
    probe.set_standardisation(x[train])
    if config.kind == "ridge":
        return _fit_ridge(probe, x[train], y[train], x[val], y[val], config.ridge_alphas), 0
    return _train_mlp(probe, x[train], y[train], x[val], y[val], config=config)


def _fit_ridge(
    probe: LayerProbe, x_tr: torch.Tensor, y_tr: torch.Tensor, x_va: torch.Tensor,
    y_va: torch.Tensor, alphas: Sequence[float],
) -> LayerProbe:  # fmt: skip
    """Closed-form ridge on standardised features; the alpha with the lowest val MSE wins."""
    with torch.no_grad():
        z = probe.standardise(x_tr).double()  # [T, d]
        zv = probe.standardise(x_va).double()  # [V, d]
        yt = y_tr.double().reshape(len(y_tr), -1)  # [T, k]
        yv = y_va.double().reshape(len(y_va), -1)  # [V, k]
        bias = yt.mean(dim=0)  # [k]
        evals, evecs = torch.linalg.eigh(z.T @ z)  # [d], [d, d]
        proj = evecs.T @ (z.T @ (yt - bias))  # [d, k]
        best, best_w = math.inf, torch.zeros_like(proj)
        for alpha in alphas:
            w = evecs @ (proj / (evals.clamp_min(0) + alpha)[:, None])  # [d, k]
            err = float(((zv @ w + bias - yv) ** 2).mean())
            if err < best:
                best, best_w = err, w
        linear = probe.net[0]
        assert isinstance(linear, nn.Linear)
        linear.weight.copy_(best_w.T.float())  # [k, d]
        linear.bias.copy_(bias.float())
    return probe.eval()


def _train_mlp(
    probe: LayerProbe, x_tr: torch.Tensor, y_tr: torch.Tensor, x_va: torch.Tensor,
    y_va: torch.Tensor, *, config: ProbeConfig,
) -> tuple[LayerProbe, int]:  # fmt: skip
    """Train on [T, d] -> y, early-stop on [V, d] -> y; return the best probe and epoch."""
    torch.manual_seed(config.seed)
    fresh = make_probe(x_tr.shape[1], config, probe.outputs)  # seeded initialisation
    fresh.mean.copy_(probe.mean)
    fresh.std.copy_(probe.std)
    probe = fresh
    last = probe.net[-1]
    assert isinstance(last, nn.Linear)
    with torch.no_grad():  # start at the training mean (through the sigmoid when bounded)
        mean = y_tr.mean(dim=0)
        last.bias.copy_(torch.logit(mean.clamp(0.02, 0.98)) if probe.bounded else mean)
    return train_epochs(probe, x_tr, y_tr, x_va, y_va, config=config, lr=config.lr,
                        weight_decay=config.weight_decay, epochs=config.epochs,
                        patience=config.patience, batch_size=config.batch_size)  # fmt: skip


def train_epochs(
    probe: LayerProbe,
    x_tr: torch.Tensor,
    y_tr: torch.Tensor,
    x_va: torch.Tensor,
    y_va: torch.Tensor,
    *,
    config: ProbeConfig,
    lr: float,
    weight_decay: float,
    epochs: int,
    patience: int,
    batch_size: int,
    keep_start: bool = False,
) -> tuple[LayerProbe, int]:
    """AdamW on [T, d] -> y with the head's loss (``config``), early-stopped on [V, d] -> y;
    the best probe and its epoch. ``keep_start``: the probe as given competes as epoch 0 (a
    probe trained further never ends worse on validation than it started)."""
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    order = torch.Generator().manual_seed(config.seed)
    best, best_epoch, best_state, stale = math.inf, 0, _copy_state(probe), 0
    if keep_start:
        probe.eval()
        with torch.no_grad():
            best = float(_loss(probe(x_va), y_va, config))
    for epoch in range(1, epochs + 1):
        probe.train()
        perm = torch.randperm(len(y_tr), generator=order)  # [T]
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]  # [B]
            opt.zero_grad(set_to_none=True)
            torch.autograd.backward(_loss(probe(x_tr[idx]), y_tr[idx], config))
            opt.step()
        probe.eval()
        with torch.no_grad():
            val = float(_loss(probe(x_va), y_va, config))
        if val < best:
            best, best_epoch, best_state, stale = val, epoch, _copy_state(probe), 0
        elif (stale := stale + 1) >= patience:
            break
    probe.load_state_dict(best_state)
    return probe.eval(), best_epoch


def _copy_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def predict_probe(probe: LayerProbe, x: torch.Tensor) -> FloatArray:
    """The probe's predictions for ``x`` [Q, d] in eval mode, as float64 ([Q] or [Q, G])."""
    with torch.no_grad():
        return np.asarray(probe.eval()(x).double().numpy(), dtype=np.float64)


def layer_weights(val_preds: FloatArray, y_val: FloatArray, top_k: int | None) -> FloatArray:
    """``w_l ∝ 1 / mse_l`` over the ``top_k`` best layers (all if None), normalised to 1.

    ``val_preds`` is [V, L] (log2) or [V, L, G] (curves), as the head measures them
    (``Head.clip``); ``y_val`` is [V] or [V, G].

    Example:
        >>> layer_weights(np.array([[1.0, 2.0], [3.0, 3.0]]), np.array([1.0, 2.0]), None).round(3)
        array([0.667, 0.333])
    """
    diff = val_preds - y_val[:, None]
    mse = np.maximum((diff**2).reshape(diff.shape[0], diff.shape[1], -1).mean(axis=(0, 2)),
                     _MSE_FLOOR)  # [L]  # fmt: skip
    keep = np.zeros(len(mse), dtype=bool)
    keep[np.argsort(mse, kind="stable")[: top_k or len(mse)]] = True
    w = np.where(keep, 1.0 / mse, 0.0)
    return np.asarray(w / w.sum(), dtype=np.float64)
