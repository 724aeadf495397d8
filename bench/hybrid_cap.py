"""Choose the hybrid's cap on validation: ``cap_tolerance`` swept on training-task questions.

The hybrid samples T2's N, then waves of 4 until the vote is decisive or it reaches its cap, the
smallest N whose predicted accuracy is within ``cap_tolerance`` of the curve head's predicted best
(:class:`~t2_agents.budget.stop_rules.StopRule`). This script checks the default (0, the predicted
peak)
without the held-out set: it splits the training questions by identity (80 / 20, seeded), fits
the shipped recipe (``t2 train --head curve --probe mlp``, guard on) on the 80 %, and replays on
the other 20 % (never seen by that fit): fixed N_D, per-call T2, Adaptive-Consistency and the
hybrid at every cap in :data:`CAPS` (``None``: no cap below the pool size), 200 random orders
per pool, with the paired bootstrap interval of hybrid minus N_D accuracy and hybrid minus
Adaptive-Consistency samples.

    python bench/hybrid_cap.py --train calibration/smollm2-135m-instruct/train/* \\
        --out docs/results/hybrid_cap_validation.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.calibrate.collect import load_collection
from t2_agents.calibrate.training_set import TrainingSet, load_training_set, record_key
from t2_agents.curves.compare import paired_difference
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.estimator.guard import GuardConfig
from t2_agents.estimator.probes import ProbeConfig
from t2_agents.evaluate.offline import EvalConfig, evaluate_pools
from t2_agents.evaluate.replay import ReplayPool

CAPS: tuple[float | None, ...] = (None, 0.0, 0.005, 0.01, 0.02, 0.05)
"""The hybrid caps swept (``cap_tolerance``)."""
VAL_FRACTION = 0.2
"""Share of the distinct training questions kept for validation."""


def split(keys: Sequence[str], *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the fit and validation parts; one question's rows stay together.

    Example:
        >>> fit, val = split(["a", "b", "c", "d", "e"], seed=0)
        >>> sorted([*fit.tolist(), *val.tolist()]), len(val)
        ([0, 1, 2, 3, 4], 1)
    """
    unique = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(unique))
    held = {unique[i] for i in order[: max(1, round(len(unique) * VAL_FRACTION))]}
    in_val = np.array([k in held for k in keys])
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def _subset(data: TrainingSet, rows: np.ndarray) -> TrainingSet:
    from dataclasses import replace

    return replace(
        data,
        features=data.features[rows],
        labels=data.labels[rows],
        tasks=tuple(data.tasks[i] for i in rows),
        curves=data.curves[rows],
        keys=tuple(data.keys[i] for i in rows),
    )


def fit(data: TrainingSet) -> T2Estimator:
    """The shipped recipe (``t2 train --head curve --probe mlp``) on ``data``."""
    estimator, _ = T2Estimator.fit(
        data.features, data.labels, layers=data.layers, grid=list(range(1, data.n_max + 1)),
        n_min=1, n_max=data.n_max, model_identity=data.model,
        hidden_size=int(data.features.shape[2]), config=ProbeConfig(head="curve", kind="mlp"),
        n_d=data.n_d, curves=data.curves, groups=data.keys, tasks=data.tasks,
        phrasings=data.phrasings, guard=GuardConfig(), data_summary=data.summary,
    )  # fmt: skip
    return estimator


def pools_for(folders: Sequence[Path], keys: Sequence[str]) -> list[ReplayPool]:
    """The collected pool of every question in ``keys``, in that order."""
    records: dict[str, Any] = {}
    for folder in folders:
        for record in load_collection(folder).records:
            records.setdefault(record_key(record), record)
    return [ReplayPool.from_record(records[k]) for k in keys]


def _mean_cap(caps: np.ndarray, t2: np.ndarray, sizes: np.ndarray) -> float:
    """The hybrid's mean cap: at least its first wave (T2's N), at most the pool size."""
    return float(np.minimum(np.maximum(caps, t2), sizes).mean())


def sweep(
    estimator: T2Estimator, data: TrainingSet, pools: list[ReplayPool], *, seed: int
) -> dict[str, Any]:
    """Every cap of :data:`CAPS` replayed on ``pools`` (``data``'s rows, same order)."""
    t2 = estimator.predict(data.features)
    sizes = np.array([pool.size for pool in pools])  # the hybrid's cap is in t2..M
    out: dict[str, Any] = {"rows": []}
    base = EvalConfig(policies=("nd", "t2", "adaptive"), n_d=data.n_d, seed=seed)
    report = evaluate_pools(pools, config=base, t2=t2, n_d_source="training fit")
    for name in ("nd", "t2", "adaptive"):
        row = next(r for r in report.results if r.policy == name)
        out[name] = {"accuracy": row.accuracy, "mean_samples": row.mean_samples,
                     "rounds": row.rounds}  # fmt: skip
    nd, ac = (next(r for r in report.results if r.policy == p).values for p in ("nd", "adaptive"))
    assert nd is not None and ac is not None
    for cap in CAPS:
        config = EvalConfig(policies=("hybrid",), n_d=data.n_d, seed=seed, cap_tolerance=cap)
        caps = None if cap is None else estimator.predict(data.features, tolerance=cap)
        row = evaluate_pools(pools, config=config, t2=t2, t2_cap=caps).result("hybrid")
        assert row.values is not None
        out["rows"].append({
            "cap_tolerance": cap, "accuracy": row.accuracy, "mean_samples": row.mean_samples,
            "rounds": row.rounds,
            "mean_cap": None if caps is None else _mean_cap(caps, t2, sizes),
            "minus_nd_accuracy": paired_difference(row.values.credit, nd.credit, seed=seed),
            "minus_adaptive_samples": paired_difference(row.values.samples, ac.samples, seed=seed),
        })  # fmt: skip
        r = out["rows"][-1]
        print(
            f"cap {cap}: acc {r['accuracy']:.3f} at {r['mean_samples']:.2f} samples, "
            f"{r['rounds']:.2f} rounds; vs N_D {r['minus_nd_accuracy']['difference']:+.4f}, "
            f"vs AC samples {r['minus_adaptive_samples']['difference']:+.2f}",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", nargs="+", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = load_training_set(sorted(args.train))
    fit_rows, val_rows = split(data.keys, seed=args.seed)
    estimator = fit(_subset(data, fit_rows))
    val = _subset(data, val_rows)
    pools = pools_for(sorted(args.train), val.keys)
    result = {
        "command": "python bench/hybrid_cap.py --train "
        + " ".join(str(p) for p in sorted(args.train)),
        "fit_questions": len(fit_rows),
        "validation_questions": len(val_rows),
        "n_d": data.n_d,
        "seed": args.seed,
        **sweep(estimator, val, pools, seed=args.seed),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
