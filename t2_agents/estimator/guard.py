"""The distribution guard: a safe budget for questions unlike anything the estimator saw.

A probe trained on arithmetic and logic puzzles extrapolates when it meets a new kind of
question, and on the held-out tasks it never saw in training the curve head predicted small
budgets for questions that needed many (``README.md``, "Held-out evidence"). The guard measures
how far a question's features lie from the training questions and, beyond a threshold fixed on
training data, raises its budget to a safe fixed ``N``.

**Distance.** One layer (the middle one of the estimator's layers) is standardised with training
statistics and projected on the top ``dims`` principal components of the training questions. A
question's distance is the Euclidean distance to its ``neighbours``-th nearest training question
in that space. The threshold is the ``quantile`` percentile of the training questions' own
distances (each one left out of its own neighbour list), so about 1 % of training-like
questions are flagged.

**Safe budget.** For each training task, the smallest fixed ``N`` whose mean accuracy on that
task is within ``fallback_target`` (2 points) of the task's fixed-``N_D`` accuracy; the safe
budget is the largest of these. A question unlike every training task is assumed to need as
many paths as the slowest-converging task we know. Without task names the pooled training curve
is used (a smaller, less cautious budget: easy tasks pull it down). That task's mean accuracy
curve is the *safe curve*: callers that spend by predicted curves (run budgets, batch
allocation) use it instead of the probes' curve for a flagged question.

Everything is fitted on training data only; the guard is stored in the estimator's artifact
(``guard.safetensors`` + the ``guard`` entry of ``metadata.json``).

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 16))
    >>> curves = np.tile(np.linspace(0.2, 0.4, 8), (200, 1))
    >>> guard = DistributionGuard.fit(x, layer=3, curves=curves, grid=range(1, 9), n_d=8,
    ...                               config=GuardConfig(dims=8))
    >>> guard.flags(np.vstack([x[:2], x[:1] + 50.0])).tolist()
    [False, False, True]
    >>> guard.apply(np.array([1, 1, 1]), np.vstack([x[:2], x[:1] + 50.0])).tolist()
    [1, 1, 8]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from t2_agents.errors import ArtifactError, ConfigError

__all__ = ["DistributionGuard", "GuardConfig"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
_TENSORS = ("mean", "std", "basis", "points")


@dataclass(frozen=True, kw_only=True)
class GuardConfig:
    """How the guard measures distance and what it falls back to.

    Example:
        >>> GuardConfig(quantile=95.0).neighbours
        5
    """

    neighbours: int = 5
    """The k of the k-th nearest training question (k >= 1)."""
    dims: int = 64
    """Principal components kept (at most the hidden size and the training questions - 1)."""
    quantile: float = 99.0
    """Percentile of the training questions' own distances used as the threshold, in (0, 100]."""
    fallback_target: float = 0.02
    """Accuracy (0..1) a flagged question may lose against fixed N_D, per training task."""

    def __post_init__(self) -> None:
        for name in ("neighbours", "dims"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"GuardConfig.{name}={value!r} must be an int >= 1")
        if not _number(self.quantile) or not 0.0 < self.quantile <= 100.0:
            raise ConfigError(
                f"GuardConfig.quantile={self.quantile!r} must be a percentile in (0, 100], "
                "e.g. 99.0 (flag questions farther than 99 % of training questions)"
            )
        if not _number(self.fallback_target) or not 0.0 <= self.fallback_target <= 1.0:
            raise ConfigError(
                f"GuardConfig.fallback_target={self.fallback_target!r} must be an accuracy in "
                "[0, 1], e.g. 0.01"
            )


class DistributionGuard:
    """k-NN distance to the training questions in a PCA of one layer, and a safe budget.

    Build one with :meth:`fit`; :class:`~t2_agents.estimator.estimator.T2Estimator` fits, stores and
    applies it (``predict(..., guard=False)`` turns it off).
    """

    def __init__(
        self,
        *,
        layer: int,
        mean: FloatArray,
        std: FloatArray,
        basis: FloatArray,
        points: FloatArray,
        threshold: float,
        fallback_n: int,
        safe_curve: FloatArray,
        config: GuardConfig,
    ) -> None:
        self.layer, self.threshold, self.fallback_n, self.config = (
            layer, threshold, fallback_n, config
        )  # fmt: skip
        self.safe_curve = np.asarray(safe_curve, dtype=np.float64)  # [G]
        self._mean, self._std = mean, std  # [d], [d]
        self._basis, self._points = basis, points  # [d, k], [n, k]

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        *,
        layer: int,
        curves: np.ndarray,
        grid: Sequence[int],
        n_d: int,
        tasks: Sequence[str] | None = None,
        config: GuardConfig | None = None,
    ) -> DistributionGuard:
        """Fit on the training questions' ``features`` [Q, d] of ``layer`` and their curves.

        Args:
            features: ``[Q, d]`` hidden states of one layer, one row per training question.
            layer: The layer id (stored; the estimator passes that layer's features).
            curves: ``[Q, G]`` exact accuracy curves at the budgets of ``grid``.
            grid: The budgets of the curves' columns (increasing).
            n_d: The default fixed budget the safe budget is measured against (in ``grid``).
            tasks: Each question's task; the safe budget is the largest per-task one.
                None: one pooled curve.
            config: Distance and fall-back settings.

        Raises:
            ConfigError: Too few questions for the neighbour count, or ``n_d`` off the curve.
        """
        config = config or GuardConfig()
        x = np.asarray(features, dtype=np.float64)
        acc = np.asarray(curves, dtype=np.float64)
        if x.ndim != 2 or len(x) <= config.neighbours + 1:
            raise ConfigError(
                f"the guard needs [Q, d] features with Q > neighbours + 1 = "
                f"{config.neighbours + 1}; got shape {list(x.shape)}: collect more questions "
                "or lower GuardConfig.neighbours"
            )
        budgets = [int(g) for g in grid]
        if acc.ndim != 2 or acc.shape != (len(x), len(budgets)) or n_d not in budgets:
            raise ConfigError(
                f"curves of shape {list(acc.shape)}, grid={budgets} and n_d={n_d} do not fit "
                f"{len(x)} questions: pass one curve per question on the grid, with n_d in it"
            )
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - mean) / std  # [Q, d]
        _, _, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
        basis = vt[: min(config.dims, len(vt))].T  # [d, k]
        points = z @ basis  # [Q, k]
        own = _kth_distance(points, points, config.neighbours, leave_out=True)
        threshold = float(np.percentile(own, config.quantile))
        names = np.asarray(["all"] * len(x) if tasks is None else list(tasks))
        if len(names) != len(x):
            raise ConfigError(
                f"tasks has {len(names)} entries for {len(x)} questions; give one task per question"
            )
        per_task = [acc[names == t].mean(axis=0) for t in np.unique(names)]  # [G] each
        safe = [_safe_budget(c, budgets, n_d, config.fallback_target) for c in per_task]
        slowest = int(np.argmax(safe))
        return cls(layer=int(layer), mean=mean, std=std, basis=basis, points=points,
                   threshold=threshold, fallback_n=safe[slowest], safe_curve=per_task[slowest],
                   config=config)  # fmt: skip

    def distance(self, features: np.ndarray) -> FloatArray:
        """Distance ``[Q]`` of each row of ``features`` [Q, d] to its k-th nearest training row."""
        z = (np.asarray(features, dtype=np.float64) - self._mean) / self._std
        return _kth_distance(z @ self._basis, self._points, self.config.neighbours)

    def flags(self, features: np.ndarray) -> BoolArray:
        """True where a question lies farther from training than the threshold."""
        return np.asarray(self.distance(features) > self.threshold, dtype=np.bool_)

    def apply(self, budgets: np.ndarray, features: np.ndarray) -> IntArray:
        """``budgets`` [Q] raised to at least the safe budget where the question is flagged."""
        b = np.asarray(budgets, dtype=np.int64)
        return np.where(self.flags(features), np.maximum(b, self.fallback_n), b)

    def apply_curves(self, curves: np.ndarray, features: np.ndarray) -> FloatArray:
        """Predicted ``curves`` [Q, G] with flagged questions' rows replaced by the safe curve."""
        c = np.asarray(curves, dtype=np.float64)
        return np.where(self.flags(features)[:, None], self.safe_curve[None, :], c)

    # ------------------------------------------------------------------------------ storage
    def metadata(self) -> dict[str, Any]:
        """The JSON part of the guard (the tensors are in :meth:`tensors`)."""
        return {"layer": self.layer, "threshold": self.threshold, "fallback_n": self.fallback_n,
                "safe_curve": self.safe_curve.tolist(), "points": len(self._points),
                "dims": int(self._basis.shape[1]), "config": asdict(self.config)}  # fmt: skip

    def tensors(self) -> dict[str, torch.Tensor]:
        """``mean`` [d], ``std`` [d], ``basis`` [d, k], ``points`` [n, k] as float32 tensors."""
        arrays = (self._mean, self._std, self._basis, self._points)
        return {
            name: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
            for name, a in zip(_TENSORS, arrays, strict=True)
        }

    @classmethod
    def expected_shapes(
        cls, meta: Mapping[str, Any], hidden_size: int
    ) -> dict[str, tuple[int, ...]]:
        """Tensor shapes the ``guard`` metadata implies (for checking a file before reading)."""
        n, k = int(meta["points"]), int(meta["dims"])
        return {"mean": (hidden_size,), "std": (hidden_size,), "basis": (hidden_size, k),
                "points": (n, k)}  # fmt: skip

    @classmethod
    def from_parts(
        cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], *, where: str
    ) -> DistributionGuard:
        """Rebuild a guard from :meth:`metadata` and :meth:`tensors`.

        Raises:
            ArtifactError: A field is missing or of the wrong type, or ``std`` is not positive.
        """
        try:
            config = GuardConfig(**dict(meta["config"]))
            layer, fallback = int(meta["layer"]), int(meta["fallback_n"])
            threshold = float(meta["threshold"])
            safe_curve = np.asarray([float(v) for v in meta["safe_curve"]], dtype=np.float64)
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ArtifactError(
                f"{where}: the guard entry is malformed ({exc}); train again"
            ) from exc
        mean, std, basis, points = (tensors[name].double().numpy() for name in _TENSORS)
        valid_curve = bool(((safe_curve >= 0) & (safe_curve <= 1)).all())
        if not (std > 0).all() or not math.isfinite(threshold) or fallback < 1 or not valid_curve:
            raise ArtifactError(
                f"{where}: the guard's std, threshold, fallback_n or safe_curve is invalid; "
                "train again"
            )
        return cls(layer=layer, mean=mean, std=std, basis=basis, points=points,
                   threshold=threshold, fallback_n=fallback, safe_curve=safe_curve,
                   config=config)  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"DistributionGuard(layer={self.layer}, points={len(self._points)}, "
            f"threshold={self.threshold:.3g}, fallback_n={self.fallback_n})"
        )


def _safe_budget(curve: FloatArray, grid: list[int], n_d: int, target: float) -> int:
    """The smallest grid budget whose mean accuracy is within ``target`` of ``n_d``'s."""
    good = curve >= curve[grid.index(n_d)] - target
    return grid[int(np.argmax(good))]


def _kth_distance(a: FloatArray, b: FloatArray, k: int, *, leave_out: bool = False) -> FloatArray:
    """Distance from each row of ``a`` [Q, k'] to its k-th nearest row of ``b`` [n, k']."""
    # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b keeps memory at [Q, n], not [Q, n, k'].
    d2 = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * (a @ b.T)  # [Q, n]
    if leave_out:
        np.fill_diagonal(d2, np.inf)
    kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
    return np.asarray(np.sqrt(np.maximum(kth, 0.0)), dtype=np.float64)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
