"""The distribution guard: a safe budget for questions unlike anything the estimator saw.

A probe trained on arithmetic and logic puzzles extrapolates when it meets a new kind of
question, and on the held-out tasks it never saw in training the curve head predicted small
budgets for questions that needed many (``README.md``, "Held-out evidence"). The guard measures
how far a question's features lie from the training questions and, beyond a threshold fixed on
training data, raises its budget to a safe fixed ``N``.

**Distance.** One layer (at ``depth`` among the estimator's layers) is standardised with
training statistics and projected on the top ``dims`` principal components of the training
questions. A question's distance is the Euclidean distance to its ``neighbours``-th nearest
training question in that space.

**Threshold.** Each training question's own distance is measured with its whole *phrasing
group* left out (an agent family's template: ``TrainingSet.phrasings``; a question of a task
with one format leaves out only itself), so the threshold measures how far a known family may
lie when it is asked in a phrasing the guard has not seen. With ``per_task`` each training task
gets its own threshold (the ``quantile`` percentile of its questions' distances) and a new
question is judged by the threshold of its nearest training question's task; without, one
percentile of all of them. The settings were chosen on validation folds of the training set
(``bench/guard_select.py``: a known family in a held-back phrasing vs a family held back
entirely); before issue 19 the guard left out only the question itself and used one threshold,
so every agent phrasing it had not seen was flagged.

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
    ...                               config=GuardConfig(dims=8, neighbours=5))
    >>> guard.flags(np.vstack([x[:2], x[:1] + 50.0])).tolist()  # far from every task
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
_LIMITS = "limits"  # [n] the threshold of each training point's task (since issue 19)
_BEFORE_19: dict[str, Any] = {
    "per_task": False,
    "depth": 0.5,
}  # what a guard stored without these fields did


@dataclass(frozen=True, kw_only=True)
class GuardConfig:
    """How the guard measures distance and what it falls back to.

    The defaults were chosen on validation folds of the training set (``bench/guard_select.py``,
    ``bench/results/guard_select.json``).

    Example:
        >>> GuardConfig(quantile=99.0).neighbours
        20
    """

    neighbours: int = 20
    """The k of the k-th nearest training question (k >= 1)."""
    dims: int = 128
    """Principal components kept (at most the hidden size and the training questions - 1)."""
    quantile: float = 99.0
    """Percentile of the training questions' own distances used as the threshold, in (0, 100]."""
    per_task: bool = True
    """One threshold per training task, applied through a question's nearest training question;
    False: one threshold for all questions."""
    depth: float = 0.85
    """Which of the estimator's layers the guard reads, as a fraction of their number: layer
    ``layers[min(int(depth * L), L - 1)]`` (0.5: the middle; 0.85: layer 25 of SmolLM2's 30)."""
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
        if not isinstance(self.per_task, bool):
            raise ConfigError(f"GuardConfig.per_task={self.per_task!r} must be True or False")
        if not _number(self.depth) or not 0.0 <= self.depth <= 1.0:
            raise ConfigError(
                f"GuardConfig.depth={self.depth!r} must be a fraction in [0, 1] of the "
                "estimator's layers, e.g. 0.5 for the middle one"
            )
        if not _number(self.fallback_target) or not 0.0 <= self.fallback_target <= 1.0:
            raise ConfigError(
                f"GuardConfig.fallback_target={self.fallback_target!r} must be an accuracy in "
                "[0, 1], e.g. 0.01"
            )

    def layer_slot(self, layers: int) -> int:
        """The index, among ``layers`` estimator layers, of the one the guard reads.

        Example:
            >>> GuardConfig().layer_slot(30), GuardConfig(depth=0.5).layer_slot(30)
            (25, 15)
        """
        return min(int(self.depth * layers), layers - 1)


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
        limits: FloatArray | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.layer, self.threshold, self.fallback_n, self.config = (
            layer, threshold, fallback_n, config
        )  # fmt: skip
        self.safe_curve = np.asarray(safe_curve, dtype=np.float64)  # [G]
        self.thresholds = dict(thresholds or {})
        """Each training task's threshold (empty: one threshold for all)."""
        self._mean, self._std = mean, std  # [d], [d]
        self._basis, self._points = basis, points  # [d, k], [n, k]
        # [n] the threshold a question is held to when training point i is its nearest
        self._limits = np.full(len(points), threshold) if limits is None else limits

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
        phrasings: Sequence[str] | None = None,
        config: GuardConfig | None = None,
    ) -> DistributionGuard:
        """Fit on the training questions' ``features`` [Q, d] of ``layer`` and their curves.

        Args:
            features: ``[Q, d]`` hidden states of one layer, one row per training question.
            layer: The layer id (stored; the estimator passes that layer's features).
            curves: ``[Q, G]`` exact accuracy curves at the budgets of ``grid``.
            grid: The budgets of the curves' columns (increasing).
            n_d: The default fixed budget the safe budget is measured against (in ``grid``).
            tasks: Each question's task; the safe budget is the largest per-task one, and
                with ``config.per_task`` each task gets its own threshold. None: one task.
            phrasings: Each question's phrasing group (``TrainingSet.phrasings``), left out
                whole when that question's own distance is measured. None: each question is
                its own group.
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
                f"{config.neighbours + 1}; got shape {list(x.shape)}: collect more questions, "
                "lower GuardConfig.neighbours, or train without a guard (t2 train --no-guard)"
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
        names = np.asarray(["all"] * len(x) if tasks is None else list(tasks))
        groups = np.arange(len(x)) if phrasings is None else np.asarray(list(phrasings))
        for what, given in (("tasks", names), ("phrasings", groups)):
            if len(given) != len(x):
                raise ConfigError(
                    f"{what} has {len(given)} entries for {len(x)} questions; give one per question"
                )
        own, _ = _neighbour(points, points, config.neighbours, groups=groups)
        if not np.isfinite(own).all():
            raise ConfigError(
                f"fewer than neighbours={config.neighbours} training questions lie outside some "
                "question's phrasing group: collect more phrasings or lower "
                "GuardConfig.neighbours"
            )
        threshold = float(np.percentile(own, config.quantile))
        thresholds = {str(t): float(np.percentile(own[names == t], config.quantile))
                      for t in np.unique(names)} if config.per_task else {}  # fmt: skip
        limits = np.asarray([thresholds[str(t)] for t in names]) if thresholds else None
        per_task = [acc[names == t].mean(axis=0) for t in np.unique(names)]  # [G] each
        safe = [_safe_budget(c, budgets, n_d, config.fallback_target) for c in per_task]
        slowest = int(np.argmax(safe))
        return cls(layer=int(layer), mean=mean, std=std, basis=basis, points=points,
                   threshold=threshold, fallback_n=safe[slowest], safe_curve=per_task[slowest],
                   config=config, limits=limits, thresholds=thresholds)  # fmt: skip

    def distance(self, features: np.ndarray) -> FloatArray:
        """Distance ``[Q]`` of each row of ``features`` [Q, d] to its k-th nearest training row."""
        return self._measure(features)[0]

    def limit(self, features: np.ndarray) -> FloatArray:
        """The threshold ``[Q]`` each row of ``features`` [Q, d] is held to (its nearest
        training question's task's, or the one threshold)."""
        return self._measure(features)[1]

    def flags(self, features: np.ndarray) -> BoolArray:
        """True where a question lies farther from training than its threshold."""
        distance, limit = self._measure(features)
        return np.asarray(distance > limit, dtype=np.bool_)

    def _measure(self, features: np.ndarray) -> tuple[FloatArray, FloatArray]:
        z = (np.asarray(features, dtype=np.float64) - self._mean) / self._std
        distance, nearest = _neighbour(z @ self._basis, self._points, self.config.neighbours)
        return distance, np.asarray(self._limits[nearest], dtype=np.float64)

    def apply(self, budgets: np.ndarray, features: np.ndarray) -> IntArray:
        """``budgets`` [Q] raised to at least the safe budget where the question is flagged."""
        b = np.asarray(budgets, dtype=np.int64)
        return np.where(self.flags(features), np.maximum(b, self.fallback_n), b)

    def apply_curves(self, curves: np.ndarray, features: np.ndarray) -> FloatArray:
        """Predicted ``curves`` [Q, G] with flagged questions' rows replaced by the safe curve."""
        c = np.asarray(curves, dtype=np.float64)
        return np.where(self.flags(features)[:, None], self.safe_curve[None, :], c)

    def extend(
        self, features: np.ndarray, *, tasks: Sequence[str], phrasings: Sequence[str] | None = None
    ) -> DistributionGuard:
        """A guard that also knows the questions ``features`` [Q, d] (of :attr:`layer`).

        Their points join the reference set (in the same PCA space: the basis is kept), and
        each of their tasks gets a threshold, the :attr:`GuardConfig.quantile` of its rows'
        distances to every reference point, each measured with its own phrasing group left
        out (as :meth:`fit` does). A task the guard already knew keeps the larger threshold.
        The safe budget is unchanged. This is how
        :func:`~t2_agents.estimator.adapt.adapt_estimator` teaches the guard new traffic
        without the original training features.

        Raises:
            ConfigError: ``tasks`` or ``phrasings`` not one per row, or too few rows outside a
                row's phrasing group for the neighbour count.

        Example:
            >>> wider = guard.extend(new_features, tasks=["agent_parity"] * 40)  # doctest: +SKIP
        """
        x = np.asarray(features, dtype=np.float64)
        names = np.asarray(list(tasks))
        groups = np.arange(len(x)) if phrasings is None else np.asarray(list(phrasings))
        if x.ndim != 2 or len(names) != len(x) or len(groups) != len(x):
            raise ConfigError(
                f"extend() needs [Q, d] features and one task (and phrasing) per row; got "
                f"{list(x.shape)} features, {len(names)} tasks, {len(groups)} phrasings"
            )
        new = ((x - self._mean) / self._std) @ self._basis  # [Q, k]
        points = np.concatenate([self._points, new])  # [n + Q, k]
        mine = groups.astype(object)  # None (the old points' group) never equals a new group
        everyone = np.concatenate([np.full(len(self._points), None, dtype=object), mine])
        k = self.config.neighbours
        own, _ = _neighbour(new, points, k, groups=mine, b_groups=everyone)  # [Q]
        if not np.isfinite(own).all():
            raise ConfigError(
                f"fewer than neighbours={k} reference points lie outside some new question's "
                "phrasing group; label more questions"
            )
        thresholds = dict(self.thresholds)
        for task in np.unique(names):
            found = float(np.percentile(own[names == task], self.config.quantile))
            thresholds[str(task)] = max(found, thresholds.get(str(task), found))
        limits = np.concatenate([self._limits, [thresholds[str(t)] for t in names]])
        return DistributionGuard(
            layer=self.layer, mean=self._mean, std=self._std, basis=self._basis, points=points,
            threshold=self.threshold, fallback_n=self.fallback_n, safe_curve=self.safe_curve,
            config=self.config, limits=limits, thresholds=thresholds,
        )  # fmt: skip

    # ------------------------------------------------------------------------------ storage
    def metadata(self) -> dict[str, Any]:
        """The JSON part of the guard (the tensors are in :meth:`tensors`). ``thresholds`` only
        when each task has its own (a guard with one threshold is stored as before issue 19)."""
        meta = {"layer": self.layer, "threshold": self.threshold, "fallback_n": self.fallback_n,
                "safe_curve": self.safe_curve.tolist(), "points": len(self._points),
                "dims": int(self._basis.shape[1]), "config": asdict(self.config)}  # fmt: skip
        return meta | ({"thresholds": self.thresholds} if self.thresholds else {})

    def tensors(self) -> dict[str, torch.Tensor]:
        """``mean`` [d], ``std`` [d], ``basis`` [d, k], ``points`` [n, k] and, with per-task
        thresholds, ``limits`` [n] (each training point's threshold) as float32 tensors."""
        arrays = [self._mean, self._std, self._basis, self._points]
        names = list(_TENSORS) + ([_LIMITS] if self.thresholds else [])
        arrays += [self._limits] if self.thresholds else []
        return {
            name: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
            for name, a in zip(names, arrays, strict=True)
        }

    @classmethod
    def expected_shapes(
        cls, meta: Mapping[str, Any], hidden_size: int
    ) -> dict[str, tuple[int, ...]]:
        """Tensor shapes the ``guard`` metadata implies (for checking a file before reading)."""
        n, k = int(meta["points"]), int(meta["dims"])
        shapes = {"mean": (hidden_size,), "std": (hidden_size,), "basis": (hidden_size, k),
                  "points": (n, k)}  # fmt: skip
        # A guard with one threshold (all of them before issue 19) stores no per-point ones.
        return shapes | ({_LIMITS: (n,)} if "thresholds" in meta else {})

    @classmethod
    def from_parts(
        cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], *, where: str
    ) -> DistributionGuard:
        """Rebuild a guard from :meth:`metadata` and :meth:`tensors`.

        Raises:
            ArtifactError: A field is missing or of the wrong type, or ``std`` is not positive.
        """
        try:
            config = GuardConfig(**(_BEFORE_19 | dict(meta["config"])))
            layer, fallback = int(meta["layer"]), int(meta["fallback_n"])
            threshold = float(meta["threshold"])
            thresholds = {str(t): float(v) for t, v in dict(meta.get("thresholds", {})).items()}
            safe_curve = np.asarray([float(v) for v in meta["safe_curve"]], dtype=np.float64)
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ArtifactError(
                f"{where}: the guard entry is malformed ({exc}); train again"
            ) from exc
        mean, std, basis, points = (tensors[name].double().numpy() for name in _TENSORS)
        limits = tensors[_LIMITS].double().numpy() if _LIMITS in tensors else None
        valid_curve = bool(((safe_curve >= 0) & (safe_curve <= 1)).all())
        valid_limits = limits is None or bool(np.isfinite(limits).all())
        if (not (std > 0).all() or not math.isfinite(threshold) or fallback < 1
                or not valid_curve or not valid_limits):  # fmt: skip
            raise ArtifactError(
                f"{where}: the guard's std, threshold, fallback_n or safe_curve is invalid; "
                "train again"
            )
        return cls(layer=layer, mean=mean, std=std, basis=basis, points=points,
                   threshold=threshold, fallback_n=fallback, safe_curve=safe_curve,
                   config=config, limits=limits, thresholds=thresholds)  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"DistributionGuard(layer={self.layer}, points={len(self._points)}, "
            f"threshold={self.threshold:.3g}, fallback_n={self.fallback_n})"
        )


def _safe_budget(curve: FloatArray, grid: list[int], n_d: int, target: float) -> int:
    """The smallest grid budget whose mean accuracy is within ``target`` of ``n_d``'s."""
    good = curve >= curve[grid.index(n_d)] - target
    return grid[int(np.argmax(good))]


def _neighbour(
    a: FloatArray,
    b: FloatArray,
    k: int,
    *,
    groups: np.ndarray | None = None,
    b_groups: np.ndarray | None = None,
) -> tuple[FloatArray, IntArray]:
    """Distance from each row of ``a`` [Q, k'] to its k-th nearest row of ``b`` [n, k'], and
    the index of its nearest row. ``groups`` [Q] and ``b_groups`` [n] (default ``groups``, for
    a is b): rows of ``b`` in a row's own group, itself included, are left out (distance inf
    when fewer than k rows are left)."""
    # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b keeps memory at [Q, n], not [Q, n, k'].
    d2 = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * (a @ b.T)  # [Q, n]
    if groups is not None:
        others = groups if b_groups is None else b_groups
        d2[groups[:, None] == others[None, :]] = np.inf
    kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
    nearest = np.argmin(d2, axis=1).astype(np.int64)
    return np.asarray(np.sqrt(np.maximum(kth, 0.0)), dtype=np.float64), nearest


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
