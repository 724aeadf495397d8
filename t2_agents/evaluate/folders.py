"""Policy evaluation on ``t2 collect`` folders: load, drop training questions, predict, replay.

:func:`evaluate_folders` is what ``t2 eval`` runs: it loads the collections (and the estimator),
keeps each question once and only if the estimator never saw it, by text
(:func:`~t2_agents.calibrate.training_set.record_key`) or by instance
(:func:`~t2_agents.calibrate.training_set.record_instance_key`: another phrasing or operand order
of a training question is a training question), never by seed; predicts T2's budget, the
hybrid's cap and ``alloc``'s curves from the stored features, and hands the pools to
:func:`~t2_agents.evaluate.offline.evaluate_pools`, which defines the policies and the metrics.

Example:
    >>> load_collections([])
    Traceback (most recent call last):
    ...
    t2_agents.errors.DataError: no evaluation folder given; pass --data DIR (made by t2 collect)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.curves.allocate import DifficultyCurves
from t2_agents.curves.exact import accuracy_curve
from t2_agents.errors import ArtifactError, ConfigError, DataError
from t2_agents.estimator.summary import FittedEstimator, TrainingSummary
from t2_agents.evaluate.offline import (
    NEED_ESTIMATOR,
    EvalConfig,
    EvalReport,
    evaluate_pools,
)
from t2_agents.evaluate.replay import ReplayPool

__all__ = ["evaluate_folders", "load_collections"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _check_fits(estimator: FittedEstimator, collection: Any, folder: str) -> None:
    """Refuse a collection of another model, width or without the estimator's layers."""
    model, width = collection.config.model, int(collection.features.shape[2])
    if estimator.model_identity != model or estimator.hidden_size != width:
        raise ArtifactError(
            f"the estimator was fitted on {estimator.model_identity!r} (hidden size "
            f"{estimator.hidden_size}) but {folder} holds {model!r} (width {width}); "
            "use an estimator trained on this model's collections"
        )
    missing = [x for x in estimator.layers if x not in collection.layers]
    if missing:
        raise ArtifactError(
            f"the estimator reads layers {missing} that {folder} did not store "
            f"({list(collection.layers)}); collect with those --layers or retrain"
        )


def _features_for(estimator: FittedEstimator, collection: Any, folder: str) -> np.ndarray:
    """The estimator's layers of a collection's features, after checking they fit it."""
    _check_fits(estimator, collection, folder)
    slots = [collection.layers.index(x) for x in estimator.layers]
    return np.asarray(collection.features[:, slots, :])


def load_collections(folders: Sequence[str | Path], what: str = "evaluation") -> list[Any]:
    """Load ``t2 collect`` folders, refusing none given or none holding a question.

    Args:
        folders: Collection folders.
        what: What they are for (``evaluation``, ``training``), for the messages.

    Raises:
        DataError: No folder, or no question in any of them.

    Example:
        >>> load_collections([])
        Traceback (most recent call last):
        ...
        t2_agents.errors.DataError: no evaluation folder given; pass --data DIR (made by t2 collect)
    """
    from t2_agents.calibrate.collect import load_collection

    if not folders:
        raise DataError(f"no {what} folder given; pass --data DIR (made by t2 collect)")
    loaded = [load_collection(f) for f in folders]
    if sum(len(c.records) for c in loaded) == 0:
        raise DataError(f"the {what} folders hold no questions; collect some first")
    return loaded


def evaluate_folders(
    data: Sequence[str | Path],
    *,
    estimator: str | Path | FittedEstimator | None = None,
    train_data: Sequence[str | Path] = (),
    config: EvalConfig | None = None,
    questions: Collection[str] | None = None,
) -> EvalReport:
    """Load collections (and the estimator) and run :func:`evaluate_pools` on them.

    ``N_D`` is ``config.n_d``, else the estimator's training ``N_D`` (its
    :class:`~t2_agents.estimator.summary.TrainingSummary`), else computed on the evaluated data
    (optimistic).
    For ``alloc``, ``train_data`` gives the curve model's training questions; their signal is
    the estimator's ``predict_log2`` on their features (:mod:`t2_agents.curves.allocate`).
    ``questions`` (question keys, :func:`~t2_agents.calibrate.training_set.record_key`) keeps only
    those questions, e.g. the ones a live run answered; ``extra["question_keys"]`` then lists the
    pools' keys in order. ``extra["dropped"]`` counts the questions left out:
    ``seen_in_training`` (``seen_by_text`` plus ``seen_by_instance``: a training question's
    instance in another phrasing or operand order), ``duplicates`` (a kept question's text) and
    ``same_instance`` (a kept question's instance).

    Raises:
        DataError: No folder, empty or corrupt collections.
        ArtifactError: An estimator fitted on another model, hidden size or layers.
        ConfigError: Unknown policies, a policy without its input, a pool smaller than an ``N``.

    Example:
        >>> evaluate_folders(["runs/heldout/lcm"], estimator="artifacts/t2")  # doctest: +SKIP
    """
    from t2_agents.calibrate.training_set import collection_identities

    cfg = config or EvalConfig()
    collections = load_collections(data, "evaluation")
    needs = [p for p in NEED_ESTIMATOR if p in cfg.policies]
    if needs and estimator is None:
        raise ConfigError(f"policies {needs} need --estimator PATH (a T2 estimator folder)")
    est = None if estimator is None else _as_estimator(estimator, collections[0])
    if est is not None:  # refuse an estimator of another model before reading anything else
        for c, f in zip(collections, data, strict=True):
            _check_fits(est, c, str(f))
    if "alloc" in cfg.policies and not train_data and not (est is not None and est.has_knob):
        raise ConfigError(
            "policy 'alloc' with an nstar-head estimator learns its curves on training "
            "collections; pass --train-data DIR (or use a curve-head estimator)"
        )
    identities = [collection_identities(c) for c in collections]
    keep, dropped = _unseen_rows(collections, identities, *_training_keys(est, train_data))
    keys = [k for k, _ in identities]
    if questions is not None:
        wanted = frozenset(questions)
        keep = [mask & np.array([key in wanted for key in k], dtype=bool)
                for mask, k in zip(keep, keys, strict=True)]  # fmt: skip
        if not any(mask.any() for mask in keep):
            raise DataError(
                f"none of the {len(wanted)} questions asked for is an unseen question of "
                f"{[str(f) for f in data]}; pass keys (record_key) of these folders' records"
            )
    if not any(mask.any() for mask in keep):
        raise DataError(
            f"every question in {[str(f) for f in data]} was seen in training "
            f"({dropped['seen_in_training']} questions, {dropped['seen_by_instance']} of them "
            "in another phrasing or operand order); evaluate on questions the estimator never "
            "saw (another seed or task settings)"
        )
    pools = [
        ReplayPool.from_record(r)
        for c, mask in zip(collections, keep, strict=True)
        for r, kept in zip(c.records, mask, strict=True)
        if kept
    ]
    t2 = caps = predicted = None
    model: DifficultyCurves | None = None
    n_d_source = "given"
    if est is not None:
        features = [
            _features_for(est, c, str(f))[mask]
            for c, f, mask in zip(collections, data, keep, strict=True)
        ]
        t2 = np.concatenate([est.predict(x) for x in features]).astype(np.int64)
        if "hybrid" in cfg.policies:
            caps = _hybrid_caps(est, features, cfg.cap_tolerance)
        training_n_d = TrainingSummary.from_metadata(est.metadata).n_d
        if cfg.n_d is None and training_n_d is not None:
            cfg = replace(cfg, n_d=training_n_d)
            n_d_source = "training set"
        if "alloc" in cfg.policies:
            predicted, model = _alloc_curves(est, features, train_data, cfg.bins)
    report = evaluate_pools(
        pools, config=cfg, t2=t2, t2_cap=caps, predicted_curves=predicted, n_d_source=n_d_source,
        budget_source="given" if cfg.budget is not None else None,
    )  # fmt: skip
    if model is not None:
        report.extra["alloc_curves"] = model.to_dict()
    report.extra["folders"] = [str(f) for f in data]
    report.extra["dropped"] = dropped
    if questions is not None:
        report.extra["question_keys"] = [
            key for k, mask in zip(keys, keep, strict=True)
            for key, kept in zip(k, mask, strict=True) if kept
        ]  # fmt: skip
    return report


def _hybrid_caps(
    est: FittedEstimator, features: Sequence[np.ndarray], tolerance: float | None
) -> IntArray | None:
    """The hybrid's cap per question: the curve head's budget at ``tolerance`` (None: none)."""
    if tolerance is None or not est.has_knob:
        return None
    return np.concatenate([est.predict(x, tolerance=tolerance) for x in features]).astype(np.int64)


def _training_keys(
    est: FittedEstimator | None, folders: Sequence[str | Path]
) -> tuple[frozenset[str], frozenset[str]]:
    """Text keys and instance keys of every question the estimator (or the folders) saw."""
    from t2_agents.calibrate.training_set import collection_identities

    keys: set[str] = set(est.training_keys if est is not None else ())
    instances: set[str] = set(est.training_instance_keys if est is not None else ())
    for collection in load_collections(folders, "training") if folders else []:
        texts, kinds = collection_identities(collection)
        keys.update(texts)
        instances.update(kinds)
    return frozenset(keys), frozenset(instances)


def _unseen_rows(
    collections: Sequence[Any],
    identities: Sequence[tuple[list[str], list[str]]],
    seen: frozenset[str],
    seen_instances: frozenset[str],
) -> tuple[list[npt.NDArray[np.bool_]], dict[str, int]]:
    """Per collection, a mask of first occurrences of questions not seen in training; counts."""
    from t2_agents.calibrate.training_set import distinct_rows

    rows, dropped = distinct_rows(collections, seen, seen_instances, identities=identities)
    masks = [np.zeros(len(c.records), dtype=bool) for c in collections]
    for c, i in rows:
        masks[c][i] = True
    by_text, by_instance = dropped["excluded"], dropped["excluded_by_instance"]
    return masks, {
        "seen_in_training": by_text + by_instance,
        "seen_by_text": by_text,
        "seen_by_instance": by_instance,
        "duplicates": dropped["duplicates"],
        "same_instance": dropped["same_instance"] + dropped["same_instance_other_task"],
    }


def _alloc_curves(
    est: FittedEstimator, features: Sequence[np.ndarray], train_data: Sequence[str | Path],
    bins: int,
) -> tuple[FloatArray, DifficultyCurves | None]:  # fmt: skip
    """Each question's predicted A(N): the curve head's own, else binned training curves."""
    if est.has_knob:
        curves = np.concatenate([est.predict_curve(x) for x in features])
        return np.asarray(curves, dtype=np.float64), None
    model = _curve_model(est, train_data, bins)
    signal = np.concatenate([est.predict_log2(x) for x in features])
    return model.predict(signal), model


def _curve_model(
    est: FittedEstimator, folders: Sequence[str | Path], bins: int
) -> DifficultyCurves:
    collections = load_collections(folders, "training")
    n = min(c.config.samples for c in collections)
    signal, curves = [], []
    for c, folder in zip(collections, folders, strict=True):
        signal.append(est.predict_log2(_features_for(est, c, str(folder))))
        curves += [accuracy_curve(p, n) for p in c.pools()]
    return DifficultyCurves.fit(np.concatenate(signal), np.stack(curves), bins=bins)


def _as_estimator(estimator: str | Path | FittedEstimator, collection: Any) -> FittedEstimator:
    if not isinstance(estimator, str | Path):
        return estimator
    from t2_agents.estimator.estimator import T2Estimator

    return T2Estimator.load(
        estimator,
        expect_identity=collection.config.model,
        expect_hidden_size=int(collection.features.shape[2]),
    )
