"""Calibration: collected pools -> per-task curse statistics -> labels and features for T2.

This module joins :mod:`t2_agents.calibrate.collect` (pools + features),
:mod:`t2_agents.curves.exact` (exact
A_x(N), N*_x) and :mod:`t2_agents.estimator.estimator` (the probes). ``t2 curse`` and ``t2 train``
call it.

A collected question has two identities: its text (:func:`record_key`) and its instance
(:func:`record_instance_key`: the operation and operands it asks about, the same in any
phrasing or operand order; "LCM of 22, 18" and "LCM of 18, 22" are one instance). A training
set keeps one question per instance (so two phrasings of one instance never straddle the
train/validation split), and held-out questions are left out when their text *or* their
instance is a training question's. Records collected before instances were stored get theirs
from the folder's configuration (:func:`collection_identities`).

Example:
    >>> reports = curse_by_task(["runs/train/lcm"])  # doctest: +SKIP
    >>> reports["lcm"].n_d  # doctest: +SKIP
    16
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from t2_agents.calibrate.collect import CollectConfig, Collection, load_collection, questions_for
from t2_agents.curves.exact import AnswerPool, CurseReport, budget_labels, curse_report
from t2_agents.errors import ConfigError, DataError
from t2_agents.estimator.summary import CollectionSource, TrainingSummary
from t2_agents.tasks import DEFAULT_INSTRUCTION, Question, question_key

__all__ = [
    "DROPPED",
    "SAMPLING_FIELDS",
    "TrainingSet",
    "check_settings",
    "collection_identities",
    "curse_by_task",
    "distinct_rows",
    "heldout_report",
    "load_training_set",
    "record_instance_key",
    "record_key",
    "record_phrasing",
]

SAMPLING_FIELDS = ("model", "samples", "temperature", "top_p", "max_tokens", "instruction")
"""Collections mixed in one training set must agree on these (held-out folders on all but
``samples``: a held-out pool may be larger or smaller)."""

DROPPED = ("duplicates", "same_instance", "same_instance_other_task", "excluded",
           "excluded_by_instance")  # fmt: skip
"""The keys of ``dropped``: why :func:`distinct_rows` leaves a record out. It checks, in turn,
``excluded`` (its text is a training question's), ``excluded_by_instance`` (its instance is, in
another phrasing or operand order), ``duplicates`` (its text is a kept question's),
``same_instance`` (another phrasing or operand order of a kept question of the same task) and
``same_instance_other_task`` (the instance of a kept question of another task, e.g. ``lcm`` and
``agent_gcd_lcm``: the question is counted once)."""


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


def record_instance_key(
    record: Mapping[str, object], questions: Mapping[str, Question] | None = None
) -> str:
    """A collected record's instance identity (what it asks, in any phrasing or order).

    The record's stored ``instance_key`` when it has one (``t2 collect`` stores it); else the
    :attr:`~t2_agents.question.Question.instance_key` of the question with the record's ``id``
    in ``questions`` (the folder's questions generated again from its configuration, see
    :func:`collection_identities`) if that question has the record's text; else the text key
    (:func:`record_key`): no instance is known (JSONL questions, tasks without one such as
    ``aiw``).

    Example:
        >>> from t2_agents.tasks import load_task
        >>> q = load_task("lcm", size=1, seed=1)[0]
        >>> old = {"id": q.id, "prompt": q.prompt}  # collected before instances were stored
        >>> record_instance_key(old) == record_key(old)  # no instance known
        True
        >>> record_instance_key(old, {q.id: q}) == q.instance_key != q.key
        True
    """
    stored = record.get("instance_key")
    if isinstance(stored, str) and stored:
        return stored
    key = record_key(dict(record))
    question = (questions or {}).get(str(record.get("id", "")))
    if question is not None and question.key == key:
        return question.instance_key
    return key


def record_phrasing(record: Mapping[str, object]) -> str:
    """A record's phrasing group: ``task#template`` when the record names its template, else
    its text key (a task with one format: each question is its own group).

    Example:
        >>> record_phrasing({"task": "agent_compare", "template": 2, "key": "ab"})
        'agent_compare#2'
        >>> record_phrasing({"task": "lcm", "key": "ab"})
        'ab'
    """
    template = record.get("template")
    if isinstance(template, int) and not isinstance(template, bool):
        return f"{record.get('task')}#{template}"
    return record_key(dict(record))


def collection_identities(collection: Collection) -> tuple[list[str], list[str]]:
    """Each record's text key (:func:`record_key`) and instance key (:func:`record_instance_key`).

    A folder whose records all store ``instance_key`` is read as is; otherwise its questions
    are generated again from ``config.json`` (reasoning-gym and the agent families are
    deterministic and fast) and matched by ``id``. A folder of a JSONL file, or one whose task
    cannot be generated here, keeps the text keys (no instance is known).

    Example:
        >>> keys, instances = collection_identities(load_collection("runs/lcm"))  # doctest: +SKIP
    """
    records = collection.records
    keys = [record_key(r) for r in records]
    missing = any(not (isinstance(r.get("instance_key"), str) and r["instance_key"])
                  for r in records)  # fmt: skip
    questions = _regenerated(collection.config) if missing else {}
    return keys, [record_instance_key(r, questions) for r in records]


def _regenerated(config: CollectConfig) -> dict[str, Question]:
    """A folder's questions by id, generated again from its configuration ({} if it cannot be)."""
    if config.task is None:
        return {}  # a JSONL file: its questions carry no instance
    try:
        return {q.id: q for q in questions_for(config)}
    except (ConfigError, DataError):
        return {}  # e.g. a task this reasoning-gym does not know: identity by text only


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
    """Question identity of each row (:func:`record_key`). The set holds one row per instance,
    so these are also the split's groups: two phrasings of one instance never straddle it."""
    instance_keys: tuple[str, ...]
    """Instance identity of each row (:func:`record_instance_key`), distinct."""
    phrasings: tuple[str, ...]
    """Phrasing group of each row (:func:`record_phrasing`): ``task#template`` for a question
    of an agent family (one of several templates), the row's own text key otherwise. The guard
    leaves a whole group out when it measures how far a new phrasing may lie."""
    dropped: dict[str, int]
    """Records left out, by reason (:data:`DROPPED`)."""
    settings: Mapping[str, Any]
    """The collections' shared sampling settings (:data:`SAMPLING_FIELDS`)."""

    def subset(self, rows: Sequence[int]) -> TrainingSet:
        """The set restricted to ``rows`` (in that order); ``n_d`` and the labels are kept,
        the summary's counts and keys follow the rows.

        Example:
            >>> first = training.subset(range(50))  # doctest: +SKIP
        """
        idx = [int(r) for r in rows]
        if not idx or min(idx) < 0 or max(idx) >= len(self.labels) or len(set(idx)) != len(idx):
            raise ConfigError(
                f"rows must be distinct indices in 0..{len(self.labels) - 1} (got {len(idx)} "
                "rows); pass e.g. range(50)"
            )
        tasks = tuple(self.tasks[i] for i in idx)
        keys = tuple(self.keys[i] for i in idx)
        instances = tuple(self.instance_keys[i] for i in idx)
        summary = replace(
            self.summary,
            questions=len(idx),
            tasks={t: tasks.count(t) for t in sorted(set(tasks))},
            question_keys=tuple(sorted(set(keys))),
            instance_keys=tuple(sorted(set(instances))),
        )
        return replace(
            self,
            features=self.features[idx],
            labels=self.labels[idx],
            tasks=tasks,
            summary=summary,
            curves=self.curves[idx],
            keys=keys,
            instance_keys=instances,
            phrasings=tuple(self.phrasings[i] for i in idx),
        )


def load_training_set(
    folders: Sequence[str | Path],
    *,
    layers: Sequence[int] | None = None,
    n_max: int | None = None,
    draw: str = "pool",
    eps: float = 0.0,
    exclude: frozenset[str] = frozenset(),
    exclude_instances: frozenset[str] = frozenset(),
) -> TrainingSet:
    """Load collections, compute labels N*_x and curves, and select feature layers.

    A question is kept once: a later record with the same text (:func:`record_key`) or the
    same instance (:func:`record_instance_key`: another phrasing or operand order, or the same
    instance under another task) is dropped. Questions whose text key is in ``exclude`` or
    whose instance key is in ``exclude_instances`` (the training set, when loading held-out
    data) are dropped too. Every drop is counted in :attr:`TrainingSet.dropped`.

    Raises:
        DataError: Folders of different models, sampling settings, pool sizes or layers (the
            message names the setting, both values and the fix), features not matching
            records, or nothing left after dropping.
        ConfigError: A requested layer was not collected.
    """
    if not folders:
        raise DataError("no collection folder given; pass --data DIR (made by t2 collect)")
    model = _check_draw(draw)
    collections = [load_collection(f) for f in folders]
    for collection, folder in zip(collections, folders, strict=True):
        unlabelled = sum("label" in r and r["label"] is None for r in collection.records)
        if unlabelled:
            raise DataError(
                f"{folder} holds {unlabelled} recorded questions without labels; label them "
                f"first (t2 label {folder} --out LABELLED --answers gold.jsonl, or --grader "
                "module:function) and train on the labelled folder"
            )
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
    identities = [collection_identities(c) for c in collections]
    rows, dropped = distinct_rows(collections, exclude, exclude_instances, identities=identities)
    if not rows:
        seen = dropped["excluded"] + dropped["excluded_by_instance"]
        raise DataError(
            f"nothing left in {[str(f) for f in folders]}: {seen} questions are in the excluded "
            f"(training) set ({dropped['excluded_by_instance']} of them by instance) and "
            f"{sum(dropped.values()) - seen} are repeats; collect questions the estimator "
            "never saw (another seed or task settings)"
        )
    every_pool = [c.pools() for c in collections]
    pools = [every_pool[c][i] for c, i in rows]
    labels = budget_labels(pools, n_max=limit, model=model, eps=eps)
    report = curse_report(pools, n_max=limit, model=model, eps=eps)
    features = np.stack([collections[c].features[i, slots, :] for c, i in rows])
    tasks = tuple(collections[c].tasks[i] for c, i in rows)
    keys = tuple(identities[c][0][i] for c, i in rows)
    instances = tuple(identities[c][1][i] for c, i in rows)
    phrasings = tuple(record_phrasing(collections[c].records[i]) for c, i in rows)
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
        instance_keys=tuple(sorted(set(instances))),
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
        instance_keys=instances,
        phrasings=phrasings,
        dropped=dropped,
        settings={name: getattr(first, name) for name in SAMPLING_FIELDS},
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
    if task is None:  # pools recorded from live requests (t2 serve --record)
        task = "recorded"
    return CollectionSource(
        folder=str(folder),
        task=task,
        task_config=dict(cfg.task_config),
        seed=cfg.seed,
        questions=len(collection.records),
        records_sha256=digest.hexdigest(),
    )


def distinct_rows(
    collections: Sequence[Collection],
    exclude: frozenset[str] = frozenset(),
    exclude_instances: frozenset[str] = frozenset(),
    *,
    identities: Sequence[tuple[Sequence[str], Sequence[str]]] | None = None,
) -> tuple[list[tuple[int, int]], dict[str, int]]:
    """(collection, record) positions of the first record of each question not excluded.

    A record is left out when its text key is in ``exclude`` or its instance key is in
    ``exclude_instances`` (e.g. the training questions), or when a kept record has its text
    or its instance. Also returns how many records were left out, by reason (every key of
    :data:`DROPPED`).

    Args:
        collections: Loaded collections, in order.
        exclude: Text keys (:func:`record_key`) to leave out.
        exclude_instances: Instance keys (:func:`record_instance_key`) to leave out.
        identities: Each collection's :func:`collection_identities`, if already computed.

    Example:
        >>> rows, dropped = distinct_rows(held, train_keys, train_instances)  # doctest: +SKIP
        >>> dropped["excluded"], dropped["excluded_by_instance"]  # doctest: +SKIP
        (74, 28)
    """
    found = identities or [collection_identities(c) for c in collections]
    seen_text: set[str] = set()
    task_of: dict[str, str] = {}  # kept instance -> its task
    rows: list[tuple[int, int]] = []
    dropped = dict.fromkeys(DROPPED, 0)
    for c, collection in enumerate(collections):
        keys, instances = found[c]
        for i, record in enumerate(collection.records):
            key, instance, task = keys[i], instances[i], str(record.get("task", ""))
            if key in exclude:
                dropped["excluded"] += 1
            elif instance in exclude_instances:
                dropped["excluded_by_instance"] += 1
            elif key in seen_text:
                dropped["duplicates"] += 1
            elif instance in task_of:
                same = task_of[instance] == task
                dropped["same_instance" if same else "same_instance_other_task"] += 1
            else:
                seen_text.add(key)
                task_of[instance] = task
                rows.append((c, i))
    return rows, dropped


def check_settings(
    settings: Mapping[str, Any],
    collections: Sequence[Collection],
    names: Sequence[str],
    *,
    reference: str,
    fields: Sequence[str] = SAMPLING_FIELDS,
) -> None:
    """Refuse a collection sampled with other settings than ``settings`` (those of ``reference``).

    Args:
        settings: The reference's values of ``fields``.
        collections: Collections to check.
        names: Their folders, for the message.
        reference: What ``settings`` belong to (a folder, "the training set"), for the message.
        fields: The settings that must agree (:data:`SAMPLING_FIELDS`).

    Raises:
        DataError: A collection differs; the message names the setting, both values and the fix.

    Example:
        >>> check_settings({"temperature": 0.7}, [hot], ["runs/hot"], reference="runs/lcm",
        ...                fields=("temperature",))  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        t2_agents.errors.DataError: runs/hot was collected with temperature=1.0 but ...
    """
    for collection, name in zip(collections, names, strict=True):
        for field in fields:
            mine, theirs = settings[field], getattr(collection.config, field)
            if mine != theirs:
                raise DataError(
                    f"{name} was collected with {field}={theirs!r} but {reference} with "
                    f"{field}={mine!r}; an estimator's labels belong to one model and one "
                    f"sampling setting: leave {name} out, or collect it again with "
                    f"{field}={mine!r} (all collections of one run need the same settings)"
                )


def _check_same(collections: Sequence[Collection], names: Sequence[str]) -> None:
    first = collections[0]
    settings = {field: getattr(first.config, field) for field in SAMPLING_FIELDS}
    check_settings(settings, collections[1:], names[1:], reference=names[0])
    for other, name in zip(collections[1:], names[1:], strict=True):
        width, theirs = first.features.shape[2], other.features.shape[2]
        if other.layers != first.layers or theirs != width:
            raise DataError(
                f"{name} stores layers {list(other.layers)} of width {theirs} but {names[0]} "
                f"stores layers {list(first.layers)} of width {width}; collect them with the "
                "same model and --layers (or leave one out)"
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
    exclude_instances: frozenset[str] = frozenset(),
) -> dict[str, dict[str, dict[str, float]]]:
    """Compare fixed N_D, T2 and the oracle on held-out pools, exactly (via A_x(N)).

    Per task (and ``"all"``): accuracy, mean N, utilisation (mean of min(N*_x, N)/N: the share
    of the spent samples that were needed) and redundancy, for fixed ``n_d`` (chosen on the
    training set), T2's per-question N, the oracle N*_x, and fixed N at T2's mean cost
    (accuracy interpolated between the neighbouring budgets, see :mod:`t2_agents.curves.compare`).
    Questions whose text key is in ``exclude`` or whose instance key is in
    ``exclude_instances`` (the training set) are dropped and counted under ``"questions"``
    (``dropped_excluded``: by text, ``dropped_excluded_by_instance``: by instance only), and so
    are repeats (:data:`DROPPED`).

    Args:
        predict: Maps features ``[Q, L, d]`` to per-question N (e.g. ``T2Estimator.predict``).
        folders: Held-out collection folders.
        layers: The estimator's layers (selected from the collected ones).
        n_d: The training set's dataset-optimal budget.
        draw: Label model, as in training.
        eps: Label tolerance, as in training.
        exclude: Text keys of questions seen in training.
        exclude_instances: Instance keys of questions seen in training.
    """
    from t2_agents.curves.compare import fixed_accuracy

    held = load_training_set(folders, layers=layers, draw=draw, eps=eps, exclude=exclude,
                             exclude_instances=exclude_instances)  # fmt: skip
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
