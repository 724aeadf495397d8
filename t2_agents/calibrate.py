"""Calibration: collected pools -> per-task curse statistics -> labels and features for T2.

This module joins :mod:`t2_agents.collect` (pools + features), :mod:`t2_agents.curse` (exact
A_x(N), N*_x) and :mod:`t2_agents.estimator` (the probes). ``t2 curse`` and ``t2 train`` call it.

Example:
    >>> reports = curse_by_task(["runs/train/lcm"])  # doctest: +SKIP
    >>> reports["lcm"].n_d  # doctest: +SKIP
    16
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from t2_agents.collect import Collection, load_collection
from t2_agents.curse import AnswerPool, CurseReport, budget_labels, curse_report
from t2_agents.errors import ConfigError, DataError

__all__ = ["TrainingSet", "curse_by_task", "heldout_report", "load_training_set"]

Draw = Literal["pool", "iid"]


def _check_draw(draw: str) -> Draw:
    if draw not in ("pool", "iid"):
        raise ConfigError(f"draw={draw!r} is not a draw model; use 'pool' or 'iid'")
    return "pool" if draw == "pool" else "iid"


def _n_max(collections: Sequence[Collection], n_max: int | None, draw: Draw) -> int:
    smallest = min(c.config.samples for c in collections)
    if n_max is None:
        return smallest
    if draw == "pool" and n_max > smallest:
        raise ConfigError(
            f"n_max={n_max} is above the smallest pool size M={smallest}; without replacement "
            "N cannot exceed M: lower --n-max, use --draw iid (with --eps > 0), or collect more"
        )
    return n_max


def curse_by_task(
    folders: Sequence[str | Path],
    *,
    n_max: int | None = None,
    draw: str = "pool",
    eps: float = 0.0,
) -> dict[str, CurseReport]:
    """Curse statistics per task over one or more collection folders (plus ``"all"``).

    Raises:
        DataError: No folder given, or a folder is not a collection.
        ConfigError: ``n_max`` above a pool size under the pool model.
    """
    if not folders:
        raise DataError("no collection folder given; pass --data DIR (made by t2 collect)")
    model = _check_draw(draw)
    collections = [load_collection(f) for f in folders]
    limit = _n_max(collections, n_max, model)
    by_task: dict[str, list[AnswerPool]] = defaultdict(list)
    for collection in collections:
        for task, pool in zip(collection.tasks, collection.pools(), strict=True):
            by_task[task].append(pool)
    reports = {t: curse_report(p, n_max=limit, model=model, eps=eps) for t, p in by_task.items()}
    if len(reports) > 1:
        every = [pool for pools in by_task.values() for pool in pools]
        reports["all"] = curse_report(every, n_max=limit, model=model, eps=eps)
    return reports


@dataclass(frozen=True)
class TrainingSet:
    """Features, labels and bookkeeping for fitting a T2 estimator."""

    features: npt.NDArray[np.float32]
    """``[Q, L, d]`` float32."""
    labels: npt.NDArray[np.int64]
    """N*_x per question."""
    layers: tuple[int, ...]
    """Layer id of each feature slot."""
    n_max: int
    """Largest N in the label grid."""
    n_d: int
    """Dataset-optimal budget of the whole set."""
    tasks: tuple[str, ...]
    """Task of each question."""
    model: str
    """Model identity of the features."""
    summary: dict[str, object]
    """What the set is made of (for the artifact's metadata)."""


def load_training_set(
    folders: Sequence[str | Path],
    *,
    layers: Sequence[int] | None = None,
    n_max: int | None = None,
    draw: str = "pool",
    eps: float = 0.0,
) -> TrainingSet:
    """Load collections, compute labels N*_x and select feature layers.

    Raises:
        DataError: Folders of different models or layers, or features not matching records.
        ConfigError: A requested layer was not collected.
    """
    if not folders:
        raise DataError("no collection folder given; pass --data DIR (made by t2 collect)")
    model = _check_draw(draw)
    collections = [load_collection(f) for f in folders]
    _check_same(collections)
    limit = _n_max(collections, n_max, model)
    pools = [p for c in collections for p in c.pools()]
    labels = budget_labels(pools, n_max=limit, model=model, eps=eps)
    report = curse_report(pools, n_max=limit, model=model, eps=eps)
    stored = collections[0].layers
    wanted = tuple(stored) if layers is None else tuple(int(x) for x in layers)
    missing = [x for x in wanted if x not in stored]
    if missing:
        raise ConfigError(
            f"layers {missing} were not collected (collected: {list(stored)}); pick from those"
        )
    slots = [stored.index(x) for x in wanted]
    features = np.concatenate([c.features[:, slots, :] for c in collections], axis=0)
    tasks = tuple(t for c in collections for t in c.tasks)
    summary: dict[str, object] = {
        "folders": [str(f) for f in folders],
        "questions": len(tasks),
        "tasks": {t: tasks.count(t) for t in sorted(set(tasks))},
        "samples_per_question": [c.config.samples for c in collections],
        "draw": model,
        "eps": eps,
        "n_d": report.n_d,
        "mean_optimal": report.mean_optimal,
        "max_tokens": collections[0].config.max_tokens,
        "temperature": collections[0].config.temperature,
        "instruction": collections[0].config.instruction,
    }
    return TrainingSet(
        features=features.astype(np.float32),
        labels=np.asarray(labels, dtype=np.int64),
        layers=wanted,
        n_max=limit,
        n_d=report.n_d,
        tasks=tasks,
        model=collections[0].config.model,
        summary=summary,
    )


def _check_same(collections: Sequence[Collection]) -> None:
    first = collections[0]
    for other in collections[1:]:
        if other.config.model != first.config.model:
            raise DataError(
                f"collections of different models ({first.config.model!r} and "
                f"{other.config.model!r}); train on one model's collections at a time"
            )
        if other.layers != first.layers or other.features.shape[2] != first.features.shape[2]:
            raise DataError(
                "collections store different layers or widths; collect them with the same --layers"
            )


def _curves_of(pools: Sequence[AnswerPool], n_max: int, draw: Draw) -> npt.NDArray[np.float64]:
    from t2_agents.curse import accuracy_curve

    return np.stack([accuracy_curve(p, n_max, model=draw) for p in pools])


def _policy_row(curves: npt.NDArray[np.float64], budgets: npt.NDArray[np.int64],
                optimal: npt.NDArray[np.int64]) -> dict[str, float]:  # fmt: skip
    rows = np.arange(len(curves))
    used = np.minimum(optimal, budgets) / budgets
    return {
        "accuracy": float(curves[rows, budgets - 1].mean()),
        "mean_n": float(budgets.mean()),
        "utilisation": float(used.mean()),
        "redundancy": float(1 - used.mean()),
    }


def heldout_report(
    predict: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.int64]],
    folders: Sequence[str | Path],
    *,
    layers: Sequence[int],
    n_d: int,
    draw: str = "pool",
    eps: float = 0.0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Compare fixed N_D, T2 and the oracle on held-out pools, exactly (via A_x(N)).

    Per task (and ``"all"``): accuracy, mean N, utilisation (mean of min(N*_x, N)/N: the share
    of the spent samples that were needed) and redundancy, for fixed ``n_d`` (chosen on the
    training set), T2's per-question N, the oracle N*_x, and a fixed N equal to T2's mean N
    rounded (same cost as T2).

    Args:
        predict: Maps features ``[Q, L, d]`` to per-question N (e.g. ``T2Estimator.predict``).
        folders: Held-out collection folders.
        layers: The estimator's layers (selected from the collected ones).
        n_d: The training set's dataset-optimal budget.
        draw: Label model, as in training.
        eps: Label tolerance, as in training.
    """
    held = load_training_set(folders, layers=layers, draw=draw, eps=eps)
    limit = held.n_max
    if n_d > limit:
        raise ConfigError(f"n_d={n_d} exceeds the held-out pool size {limit}; collect more samples")
    pools = [p for f in folders for p in load_collection(f).pools()]
    curves = _curves_of(pools, limit, _check_draw(draw))
    t2 = np.clip(np.asarray(predict(held.features), dtype=np.int64), 1, limit)
    tasks = np.asarray(held.tasks)
    report: dict[str, dict[str, dict[str, float]]] = {}
    names = sorted(set(held.tasks))
    for task in [*names, "all"] if len(names) > 1 else names:
        mask = np.full(len(tasks), task == "all") | (tasks == task)
        same_cost = int(np.clip(round(float(t2[mask].mean())), 1, limit))
        policies = {
            f"fixed N_D={n_d}": np.full(mask.sum(), n_d),
            "t2": t2[mask],
            f"fixed N={same_cost} (T2's mean)": np.full(mask.sum(), same_cost),
            "oracle": held.labels[mask],
        }
        report[task] = {
            name: _policy_row(curves[mask], budgets.astype(np.int64), held.labels[mask])
            for name, budgets in policies.items()
        }
        report[task]["questions"] = {"count": float(mask.sum())}
    return report
