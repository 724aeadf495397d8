"""How many labelled questions of new traffic T2 needs before it pays on it (issue 20).

The "new traffic" is the families of :mod:`t2_agents.families._traffic` that the shipped
estimator never saw, collected by ``bench/traffic_plan.json`` (32 samples each, the shipped
estimator's sampling settings). A question is dropped when its text or its instance is a
training question's of the shipped estimator. The rest is split once, by instance and within
each family, into a **test** set (``--test-share``) and a **label pool**; the pool is split again
into **adapt** and **validation** halves that choose the adaptation method before the test set
is read.

Methods (each starts from the shipped estimator):

* ``shipped``: no adaptation (the 0-label point);
* ``guard``: the new questions join the guard's reference points, probes unchanged;
* ``adapt``: :func:`t2_agents.estimator.adapt.adapt_estimator` (probes trained further on the
  new questions, layers re-weighted, guard extended): what ``t2 adapt`` runs;
* ``adapt_keep_weights``: the same without re-weighting the layers;
* ``adapt_knob``: ``adapt`` with the cost knob calibrated again on the new validation rows;
* ``adapt_lr1e-3``: ``adapt`` with a 3x larger learning rate;
* ``fresh_mlp``, ``fresh_ridge``: a new estimator fitted on the new questions alone (MLP or
  ridge probes, its own knob and guard);
* ``refit_union``: ``t2 train`` on the shipped training set plus the new questions (needs the
  calibration folders; one draw per point, it takes minutes).

Step 1 (validation): each method adapted on ``--select-labels`` questions of the adapt half,
scored on the validation half (equal-cost gain over fixed N); the best is chosen. Step 2 (test):
the chosen method (and ``shipped`` and ``guard`` for reference) at 0, 50, 100, 200, 500 and
1,000 labels (``--labels``; those above the pool's size are skipped), ``--repeats`` draws of the
labelled questions each, scored on the test set: T2's accuracy and mean N, fixed N at equal
cost (interpolated) and fixed N_D (the shipped estimator's), with paired bootstrap 95 %
intervals, and the guard's flag rate. With ``--old`` the adapted estimator is also replayed on
held-out questions of the shipped estimator's own traffic (does adapting cost it there?).

    python bench/adapt_curve.py --traffic 'calibration/smollm2-135m-instruct/traffic/*' \\
        --out bench/results/adapt_curve.json --plot docs/adapt_curve.png
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.calibrate.collect import load_collection
from t2_agents.calibrate.training_set import (
    TrainingSet,
    collection_identities,
    load_training_set,
)
from t2_agents.curves.compare import equal_cost
from t2_agents.curves.exact import AnswerPool, accuracy_curve, optimal_budget
from t2_agents.estimator.adapt import AdaptConfig, adapt_estimator
from t2_agents.estimator.estimator import T2Estimator

SHIPPED = "t2_agents/artifacts/smollm2-135m-instruct"
C = "calibration/smollm2-135m-instruct"
OLD = [f"{C}/agent_heldout/{f}" for f in ("agent_logic", "agent_compare", "agent_arithmetic",
       "agent_shopping", "agent_counting", "agent_word_problems")]  # fmt: skip
Method = Callable[[T2Estimator, TrainingSet], T2Estimator]


def _guard_only(est: T2Estimator, data: TrainingSet) -> T2Estimator:
    config = AdaptConfig(train_probes=False, reweight=False)
    return adapt_estimator(est, data, config=config)[0]


def _refit_union(est: T2Estimator, data: TrainingSet) -> T2Estimator:
    """``t2 train`` on the shipped training set plus the new rows (needs the calibration
    folders on disk; the shipped settings: curve head, MLP probes, guard)."""
    from t2_agents.estimator.guard import GuardConfig

    base = _shipped_training_set(est)
    both = [base, _at_layers(data, est)]
    refit, _ = T2Estimator.fit(
        np.concatenate([d.features for d in both]),
        np.concatenate([d.labels for d in both]),
        layers=est.layers, grid=list(est.grid), n_min=est.n_min, n_max=est.n_max,
        model_identity=est.model_identity, hidden_size=est.hidden_size, config=est.config,
        n_d=base.n_d, curves=np.concatenate([d.curves for d in both]),
        groups=[*base.keys, *data.keys], tasks=[*base.tasks, *data.tasks],
        phrasings=[*base.phrasings, *data.phrasings], guard=GuardConfig(),
        data_summary=base.summary,
    )  # fmt: skip
    return refit


def _fresh(kind: str) -> Method:
    """A new estimator fitted on the new questions alone (the shipped probe settings, or ridge
    probes; its own knob and guard from those questions)."""

    def fit(est: T2Estimator, data: TrainingSet) -> T2Estimator:
        from dataclasses import replace as copy_with

        from t2_agents.estimator.guard import GuardConfig

        rows = _at_layers(data, est)
        config = copy_with(est.config, kind=kind)  # type: ignore[arg-type]
        guard = GuardConfig(neighbours=min(20, max(2, len(rows.labels) // 5)))
        fresh, _ = T2Estimator.fit(
            rows.features, rows.labels, layers=est.layers, grid=list(est.grid),
            n_min=est.n_min, n_max=est.n_max, model_identity=est.model_identity,
            hidden_size=est.hidden_size, config=config, n_d=int(est.training.n_d or est.n_max),
            curves=rows.curves, groups=rows.keys, tasks=rows.tasks, phrasings=rows.phrasings,
            guard=guard, data_summary=rows.summary,
        )  # fmt: skip
        return fresh

    return fit


_BASE: dict[str, TrainingSet] = {}


def _shipped_training_set(est: T2Estimator) -> TrainingSet:
    if "base" not in _BASE:
        folders = [f for f in est.training.folders or () if Path(f).exists()]
        _BASE["base"] = _at_layers(load_training_set(folders), est)
    return _BASE["base"]


METHODS: dict[str, Method] = {
    "shipped": lambda est, data: est,
    "guard": _guard_only,
    "adapt": lambda est, data: adapt_estimator(est, data)[0],
    "adapt_keep_weights": lambda est, data: adapt_estimator(
        est, data, config=AdaptConfig(reweight=False)
    )[0],
    "adapt_knob": lambda est, data: adapt_estimator(
        est, data, config=AdaptConfig(recalibrate_knob=True)
    )[0],
    "adapt_lr1e-3": lambda est, data: adapt_estimator(est, data, config=AdaptConfig(lr=1e-3))[0],
    "fresh_mlp": _fresh("mlp"),
    "fresh_ridge": _fresh("ridge"),
    "refit_union": _refit_union,
}
LABEL_FREE = ("plurality", "share")
"""Label-free targets, measured with the chosen method: the pool's plurality answer counts as
right, or each answer counts with its pool share (the expected curve if the gold answer were
drawn from the pool)."""


def relabel(data: TrainingSet, pools: list[AnswerPool], kind: str) -> TrainingSet:
    """``data`` with curves and N* labels from label-free targets instead of the gold answers."""
    from dataclasses import replace

    n = data.curves.shape[1]
    curves = []
    for pool in pools:
        counts = {a: c for a, c in pool.counts.items() if c > 0}
        if not counts:
            curves.append(np.zeros(n))
            continue
        if kind == "plurality":
            top = max(counts.values())
            best = sorted(a for a, c in counts.items() if c == top)[0]
            curves.append(accuracy_curve(replace(pool, correct=frozenset({best})), n))
            continue
        total = sum(counts.values())
        curves.append(sum(c / total * accuracy_curve(replace(pool, correct=frozenset({a})), n)
                          for a, c in counts.items()))  # fmt: skip
    c = np.stack(curves)
    labels = np.array([optimal_budget(row) for row in c], dtype=np.int64)
    return replace(data, curves=c, labels=labels)


def pools_of(data: TrainingSet, folders: list[str]) -> list[AnswerPool]:
    """Each row's answer pool, found by its question key."""
    by_key: dict[str, AnswerPool] = {}
    for folder in folders:
        col = load_collection(folder)
        keys, _ = collection_identities(col)
        by_key.update(zip(keys, col.pools(), strict=True))
    return [by_key[k] for k in data.keys]


def split(data: TrainingSet, share: float, seed: int) -> tuple[list[int], list[int]]:
    """Rows of ``data`` into (first, second) with ``share`` of each task in ``first``."""
    rng = np.random.default_rng(seed)
    first: list[int] = []
    second: list[int] = []
    for task in sorted(set(data.tasks)):
        rows = np.flatnonzero(np.asarray(data.tasks) == task)
        rng.shuffle(rows)
        cut = round(len(rows) * share)
        first += rows[:cut].tolist()
        second += rows[cut:].tolist()
    return sorted(first), sorted(second)


def score(est: T2Estimator, data: TrainingSet, n_d: int, resamples: int) -> dict[str, Any]:
    """T2 (with its guard) on ``data``'s questions: equal-cost and N_D comparisons."""
    size = data.curves.shape[1]
    budgets = np.minimum(est.predict(data.features), size).astype(np.int64)
    row = equal_cost(data.curves, budgets, n_d=n_d, resamples=resamples, seed=0).to_dict()
    row["flagged_share"] = float(est.out_of_distribution(data.features).mean())
    return row


def _at_layers(data: TrainingSet, est: T2Estimator) -> TrainingSet:
    from dataclasses import replace

    slots = [data.layers.index(layer) for layer in est.layers]
    return replace(data, features=data.features[:, slots, :], layers=tuple(est.layers))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traffic", action="append", required=True, help="glob of folders")
    parser.add_argument("--estimator", default=SHIPPED)
    parser.add_argument("--labels", type=int, nargs="+", default=[0, 50, 100, 200, 500, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--test-share", type=float, default=0.3)
    parser.add_argument("--select-labels", type=int, default=200)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=[m for m in METHODS if m != "shipped"],
    )
    parser.add_argument(
        "--label-free",
        action="store_true",
        help="also the chosen method on label-free targets (plurality, share)",
    )
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--old", action="store_true", help="also replay on the old held-out")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    shipped = T2Estimator.load(args.estimator)
    n_d = int(shipped.training.n_d or shipped.n_max)
    folders = sorted({f for pattern in args.traffic for f in glob.glob(pattern)})
    data = load_training_set(
        folders,
        exclude=shipped.training_keys,
        exclude_instances=shipped.training_instance_keys,
    )
    test_rows, pool_rows = split(data, args.test_share, seed=1)
    test, pool = data.subset(test_rows), data.subset(pool_rows)
    adapt_rows, val_rows = split(pool, 0.5, seed=2)
    print(f"{len(data.labels)} new questions ({data.dropped}); test {len(test_rows)}, "
          f"label pool {len(pool_rows)} (adapt {len(adapt_rows)}, validation {len(val_rows)})",
          file=sys.stderr)  # fmt: skip

    # Step 1: choose the method on validation (the test set is not read).
    k = min(args.select_labels, len(adapt_rows))
    chosen_rows = np.random.default_rng(3).permutation(adapt_rows)[:k].tolist()
    selection = {}
    for name in args.methods:
        est = METHODS[name](shipped, pool.subset(chosen_rows))
        selection[name] = score(est, _at_layers(pool.subset(val_rows), est), n_d, args.resamples)
        print(f"validation {name}: gain {selection[name]['gain']:+.4f}", file=sys.stderr)
    best = max(selection, key=lambda m: selection[m]["gain"])

    # Step 2: the learning curve on the test set.
    curve: dict[str, list[dict[str, Any]]] = {}
    sources = {"gold": pool}
    if args.label_free:
        pool_pools = pools_of(pool, folders)
        sources |= {kind: relabel(pool, pool_pools, kind) for kind in LABEL_FREE}
    runs = [(m, "gold") for m in dict.fromkeys(["shipped", "guard", best])]
    runs += [(best, kind) for kind in LABEL_FREE if kind in sources]
    for name, source in runs:
        label = name if source == "gold" else f"{name}+{source}"
        repeats = 1 if name == "refit_union" else args.repeats
        points = []
        for labels in args.labels:
            if labels > len(pool_rows) or (name == "shipped" and labels > 0):
                continue
            draws = []
            for r in range(1 if labels == 0 else repeats):
                rows = np.random.default_rng(100 + r).permutation(len(pool_rows))[:labels]
                est = (
                    shipped if labels == 0 else METHODS[name](shipped, sources[source].subset(rows))
                )
                draws.append(score(est, _at_layers(test, est), n_d, args.resamples))
            points.append({"labels": labels, "draws": draws, **_mean(draws)})
            print(f"{label} @ {labels}: gain {points[-1]['gain']:+.4f} "
                  f"(mean N {points[-1]['mean_n']:.1f})", file=sys.stderr)  # fmt: skip
        curve[label] = points
    report: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "estimator": args.estimator,
        "traffic": folders,
        "questions": len(data.labels),
        "dropped": data.dropped,
        "tasks": dict(data.summary.tasks or {}),
        "test_questions": len(test_rows),
        "label_pool": len(pool_rows),
        "n_d": n_d,
        "fixed_curve_test": [float(v) for v in test.curves.mean(axis=0)],
        "ceilings": ceilings(test, n_d, args.resamples),
        "selection": {
            "labels": k,
            "validation_questions": len(val_rows),
            "scores": selection,
            "chosen": best,
        },
        "curve": curve,
    }
    if args.old:
        report["old_traffic"] = _old(shipped, pool, args, n_d, best)
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot is not None:
        plot(report, args.plot)
    return 0


def ceilings(test: TrainingSet, n_d: int, resamples: int) -> dict[str, Any]:
    """What the test set allows: the oracle (each question's own N*), and the best per-family
    budgets (one N per family, chosen on the test set itself over a price sweep): the most any
    correction of the curve level per family could gain."""
    c = test.curves
    oracle = np.array([optimal_budget(row) for row in c], dtype=np.int64)
    tasks = np.asarray(test.tasks)
    grid = np.arange(1, c.shape[1] + 1)
    best: dict[str, Any] = {"gain": -1.0}
    for price in (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016):
        budgets = np.zeros(len(c), dtype=np.int64)
        for task in np.unique(tasks):
            rows = tasks == task
            budgets[rows] = grid[np.argmax(c[rows].mean(axis=0) - price * grid)]
        row = equal_cost(c, budgets, n_d=n_d, resamples=resamples, seed=0).to_dict()
        if row["gain"] > best["gain"]:
            best = {**row, "price": price}
    return {
        "oracle": equal_cost(c, oracle, n_d=n_d, resamples=resamples, seed=0).to_dict(),
        "per_family_budgets": best,
    }


def _mean(draws: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean over draws of the point figures; the intervals of the first draw's data are kept
    per draw (``draws``) and summarised as the widest lower / upper bounds."""
    keys = ("accuracy", "mean_n", "fixed_at_equal_cost", "gain", "vs_n_d", "sample_share",
            "flagged_share", "n_d_accuracy")  # fmt: skip
    out: dict[str, Any] = {k: float(np.mean([d[k] for d in draws])) for k in keys}
    for name in ("gain_ci", "vs_n_d_ci"):
        out[f"{name}_range"] = [min(d[name][0] for d in draws), max(d[name][1] for d in draws)]
    return out


def _old(shipped: T2Estimator, pool: TrainingSet, args: argparse.Namespace, n_d: int,
         best: str) -> dict[str, Any]:  # fmt: skip
    """The shipped and the adapted estimator (largest label count) on the old held-out."""
    old = load_training_set(
        [f for f in OLD if Path(f).exists()],
        exclude=shipped.training_keys,
        exclude_instances=shipped.training_instance_keys,
    )
    labels = min(max(args.labels), len(pool.labels))
    rows = np.random.default_rng(100).permutation(len(pool.labels))[:labels]
    adapted = METHODS[best](shipped, pool.subset(rows))
    return {
        "folders": OLD,
        "questions": len(old.labels),
        "labels": labels,
        "shipped": score(shipped, _at_layers(old, shipped), n_d, args.resamples),
        "adapted": score(adapted, _at_layers(old, adapted), n_d, args.resamples),
    }


def plot(report: dict[str, Any], path: Path) -> None:
    """Left: equal-cost gain against labelled questions, per method, with the widest interval
    over draws. Right: accuracy against mean N on the test set, fixed N's curve beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    fixed = report["fixed_curve_test"]
    right.plot(range(1, len(fixed) + 1), fixed, color="grey", lw=1.2, label="fixed N")
    for k, (name, points) in enumerate(report["curve"].items()):
        if not points:
            continue
        x = [max(p["labels"], 10) * (1 + 0.03 * k) for p in points]  # jitter: bars overlap
        y = [100 * p["gain"] for p in points]
        lo = [100 * (p["gain"] - p["gain_ci_range"][0]) for p in points]
        hi = [100 * (p["gain_ci_range"][1] - p["gain"]) for p in points]
        left.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=name)
        right.plot([p["mean_n"] for p in points], [p["accuracy"] for p in points], marker="o",
                   ls="none", label=name)  # fmt: skip
    left.axhline(0, color="grey", lw=0.8)
    left.axhline(1.5, color="grey", lw=0.8, ls="--", label="target +1.5")
    left.set_xscale("log")
    left.set_xlabel("labelled questions of the new traffic (0 plotted at 10)")
    left.set_ylabel("gain over fixed N at equal cost (points)")
    left.legend(fontsize=7)
    right.set_xlabel("mean N (paths per question)")
    right.set_ylabel("accuracy on the test questions")
    right.legend(fontsize=7)
    fig.suptitle(f"Adapting T2 to new traffic ({report['test_questions']} test questions)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
