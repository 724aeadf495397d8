"""Calibration: collected pools -> per-task curse statistics -> labels and features for T2.

This module joins :mod:`t2_agents.calibrate.collect` (pools + features),
:mod:`t2_agents.curves.exact` (exact
A_x(N), N*_x) and :mod:`t2_agents.estimator.estimator` (the probes). ``t2 curse`` and ``t2 train``
call it.

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

from t2_agents.calibrate.collect import Collection, load_collection
from t2_agents.curves.exact import AnswerPool, CurseReport, budget_labels, curse_report
from t2_agents.errors import ConfigError, DataError
from t2_agents.estimator.summary import CollectionSource, TrainingSummary
from t2_agents.tasks import DEFAULT_INSTRUCTION, question_key

__all__ = [
    "TrainingSet",
    "curse_by_task",
    "distinct_rows",
    "heldout_report",
    "load_training_set",
    "record_key",
]

_SAMPLING_FIELDS = ("model", "samples", "temperature", "top_p", "max_tokens", "instruction")
"""Collections mixed in one training or evaluation set must agree on these."""


def record_key(record: dict[str, object]) -> str:
    """A collected record's question identity (``key``; computed for older records).

    Example:
        >>> record_key({"prompt": "What is 2+2? Give only the final answer.", "key": "ab"})
        'ab'
    """
    key = record.get("key")
    if isinstance(key, str) and key:
        return key
    prompt = str(record.get("prompt", ""))
    return question_key(prompt.removesuffix(DEFAULT_INSTRUCTION))


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
    summary: TrainingSummary
    """What the set is made of (the artifact's ``training_data``)."""
    curves: npt.NDArray[np.float64]
    """``[Q, n_max]`` exact accuracy curves A_x(N), N = 1..n_max."""
    keys: tuple[str, ...]
    """Question identity of each row (:func:`record_key`)."""
    dropped: dict[str, int]
    """Rows left out: ``duplicates`` (a question already in the set) and ``excluded``."""


def load_training_set(
    folders: Sequence[str | Path],
    *,
    layers: Sequence[int] | None = None,
    n_max: int | None = None,
    draw: str = "pool",
    eps: float = 0.0,
    exclude: frozenset[str] = frozenset(),
) -> TrainingSet:
    """Load collections, compute labels N*_x and curves, and select feature layers.

    A question that appears twice (same :func:`record_key`, e.g. in two folders) is kept once;
    questions whose key is in ``exclude`` (e.g. the training set, when loading held-out data)
    are dropped. Both are counted in :attr:`TrainingSet.dropped`.

    Raises:
        DataError: Folders of different models, sampling settings, pool sizes or layers,
            features not matching records, or nothing left after dropping.
        ConfigError: A requested layer was not collected.
    """
    if not folders:
        raise DataError("no collection folder given; pass --data DIR (made by t2 collect)")
    model = _check_draw(draw)
    collections = [load_collection(f) for f in folders]
    _check_same(collections, [str(f) for f in folders])
    limit = _n_max(collections, n_max, model)
    stored = collections[0].layers
    wanted = tuple(stored) if layers is None else tuple(int(x) for x in layers)
    missing = [x for x in wanted if x not in stored]
    if missing:
        raise ConfigError(
            f"layers {missing} were not collected (collected: {list(stored)}); pick from those"
        )
    slots = [stored.index(x) for x in wanted]
    rows, dropped = distinct_rows(collections, exclude)
    if not rows:
        raise DataError(
            f"nothing left in {[str(f) for f in folders]}: {dropped['excluded']} questions are "
            f"in the excluded (training) set and {dropped['duplicates']} are repeats; collect "
            "questions the estimator never saw (another seed or task settings)"
        )
    every_pool = [c.pools() for c in collections]
    pools = [every_pool[c][i] for c, i in rows]
    labels = budget_labels(pools, n_max=limit, model=model, eps=eps)
    report = curse_report(pools, n_max=limit, model=model, eps=eps)
    features = np.stack([collections[c].features[i, slots, :] for c, i in rows])
    tasks = tuple(collections[c].tasks[i] for c, i in rows)
    keys = tuple(record_key(collections[c].records[i]) for c, i in rows)
    first = collections[0].config
    summary = TrainingSummary(
        folders=tuple(str(f) for f in folders),
        collections=tuple(_provenance(c, f) for c, f in zip(collections, folders, strict=True)),
        questions=len(tasks),
        tasks={t: tasks.count(t) for t in sorted(set(tasks))},
        samples_per_question=tuple(c.config.samples for c in collections),
        dropped=dropped,
        draw=model,
        eps=eps,
        n_d=report.n_d,
        mean_optimal=report.mean_optimal,
        max_tokens=first.max_tokens,
        temperature=first.temperature,
        instruction=first.instruction,
        question_keys=tuple(sorted(set(keys))),
    )
    return TrainingSet(
        features=features.astype(np.float32),
        labels=np.asarray(labels, dtype=np.int64),
        layers=wanted,
        n_max=limit,
        n_d=report.n_d,
        tasks=tasks,
        model=first.model,
        summary=summary,
        curves=_curves_of(pools, limit, model),
        keys=keys,
        dropped=dropped,
    )


def _provenance(collection: Collection, folder: str | Path) -> CollectionSource:
    """What one folder holds and how it was made (for the artifact's metadata)."""
    import hashlib
    import json

    digest = hashlib.sha256()
    for record in collection.records:  # the records, without completion texts, in order
        light = {**record, "samples": [{k: v for k, v in s.items() if k != "text"}
                                       for s in record["samples"]]}  # fmt: skip
        digest.update(json.dumps(light, sort_keys=True).encode())
    cfg = collection.config
    task = cfg.task if cfg.task is not None else cfg.data
    assert task is not None  # CollectConfig holds exactly one of them
    return CollectionSource(
        folder=str(folder),
        task=task,
        task_config=dict(cfg.task_config),
        seed=cfg.seed,
        questions=len(collection.records),
        records_sha256=digest.hexdigest(),
    )


def distinct_rows(
    collections: Sequence[Collection], exclude: frozenset[str] = frozenset()
) -> tuple[list[tuple[int, int]], dict[str, int]]:
    """(collection, record) positions of first occurrences of questions not in ``exclude``.

    Also returns how many records were dropped as ``duplicates`` (a question already kept) and
    as ``excluded`` (its key is in ``exclude``, e.g. the training questions).

    Example:
        >>> rows, dropped = distinct_rows(collections, exclude=training_keys)  # doctest: +SKIP
        >>> dropped  # doctest: +SKIP
        {'duplicates': 0, 'excluded': 74}
    """
    seen: set[str] = set()
    rows: list[tuple[int, int]] = []
    dropped = {"duplicates": 0, "excluded": 0}
    for c, collection in enumerate(collections):
        for i, record in enumerate(collection.records):
            key = record_key(record)
            if key in exclude:
                dropped["excluded"] += 1
            elif key in seen:
                dropped["duplicates"] += 1
            else:
                seen.add(key)
                rows.append((c, i))
    return rows, dropped


def _check_same(collections: Sequence[Collection], names: Sequence[str]) -> None:
    first = collections[0]
    for other, name in zip(collections[1:], names[1:], strict=True):
        for field in _SAMPLING_FIELDS:
            mine, theirs = getattr(first.config, field), getattr(other.config, field)
            if mine != theirs:
                raise DataError(
                    f"{name} was collected with {field}={theirs!r} but {names[0]} with "
                    f"{field}={mine!r}; an estimator's labels belong to one model and one "
                    "sampling setting: use collections made with the same settings"
                )
        if other.layers != first.layers or other.features.shape[2] != first.features.shape[2]:
            raise DataError(
                "collections store different layers or widths; collect them with the same --layers"
            )


def _curves_of(pools: Sequence[AnswerPool], n_max: int, draw: Draw) -> npt.NDArray[np.float64]:
    from t2_agents.curves.exact import accuracy_curve

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
    exclude: frozenset[str] = frozenset(),
) -> dict[str, dict[str, dict[str, float]]]:
    """Compare fixed N_D, T2 and the oracle on held-out pools, exactly (via A_x(N)).

    Per task (and ``"all"``): accuracy, mean N, utilisation (mean of min(N*_x, N)/N: the share
    of the spent samples that were needed) and redundancy, for fixed ``n_d`` (chosen on the
    training set), T2's per-question N, the oracle N*_x, and fixed N at T2's mean cost
    (accuracy interpolated between the neighbouring budgets, see :mod:`t2_agents.curves.compare`).
    Questions whose key is in ``exclude`` (the training set) are dropped and counted under
    ``"questions"``.

    Args:
        predict: Maps features ``[Q, L, d]`` to per-question N (e.g. ``T2Estimator.predict``).
        folders: Held-out collection folders.
        layers: The estimator's layers (selected from the collected ones).
        n_d: The training set's dataset-optimal budget.
        draw: Label model, as in training.
        eps: Label tolerance, as in training.
        exclude: Keys of questions seen in training.
    """
    from t2_agents.curves.compare import fixed_accuracy

    held = load_training_set(folders, layers=layers, draw=draw, eps=eps, exclude=exclude)
    limit = held.n_max
    if n_d > limit:
        raise ConfigError(f"n_d={n_d} exceeds the held-out pool size {limit}; collect more samples")
    curves = held.curves
    t2 = np.clip(np.asarray(predict(held.features), dtype=np.int64), 1, limit)
    tasks = np.asarray(held.tasks)
    report: dict[str, dict[str, dict[str, float]]] = {}
    names = sorted(set(held.tasks))
    for task in [*names, "all"] if len(names) > 1 else names:
        mask = np.full(len(tasks), task == "all") | (tasks == task)
        policies = {
            f"fixed N_D={n_d}": np.full(mask.sum(), n_d),
            "t2": t2[mask],
            "oracle": held.labels[mask],
        }
        report[task] = {
            name: _policy_row(curves[mask], budgets.astype(np.int64), held.labels[mask])
            for name, budgets in policies.items()
        }
        mean_n = float(t2[mask].mean())
        report[task]["fixed N at T2's mean (interpolated)"] = {
            "accuracy": fixed_accuracy(curves[mask], mean_n),
            "mean_n": mean_n,
        }
        report[task]["questions"] = {"count": float(mask.sum())}
    report["all" if "all" in report else names[0]]["questions"].update(
        {f"dropped_{k}": float(v) for k, v in held.dropped.items()}
    )
    return report
