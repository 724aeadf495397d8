"""T2 heads on held-out questions: equal-cost evidence with bootstrap intervals and a Pareto plot.

Fits four estimators on the same training collections, split and grid — per-layer MLP or ridge
probes, predicting ``log2 N*`` (the paper's ``nstar`` head) or the whole accuracy curve (the
``curve`` head, with the tolerance knob) — chooses between them **on validation only** (the
largest validation gain over fixed N at equal cost), then reports every head on the held-out
collections, after dropping (and counting) held-out questions that appear in training:

- a knob sweep per head (curve: tolerance; nstar: a shift of the predicted log2 N*) as
  (mean N, accuracy) points, with fixed N = 1..n_max and the oracle N*_x;
- at each head's default knob: accuracy, mean N, fixed N at the same mean cost (interpolated),
  the gain and its paired-bootstrap 95 % interval, the difference to fixed N_D and its interval,
  for all held-out questions, the tasks seen in training and the tasks never seen.

Heads are compared on their probes' own budgets (``predict(..., guard=False)``); the chosen head
is then reported as shipped, with its distribution guard (:mod:`t2_agents.estimator.guard`):
questions far
from the training set get the safe budget (``chosen_with_ood_fallback``, its own sweep).

    python bench/heads.py --train runs/cal/train/* --heldout runs/cal/heldout/* \\
        --out docs/results/heldout_heads.json --plot docs/heldout_pareto.png

The fits are deterministic (seed 0); ``t2 train --head H --probe K`` with the same folders
builds the same estimator.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.calibrate.training_set import TrainingSet, load_training_set
from t2_agents.curves.compare import equal_cost, fixed_accuracy, pareto
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.estimator.guard import GuardConfig
from t2_agents.estimator.heads import HEADS as HEAD_REGISTRY
from t2_agents.estimator.heads import KNOB_SWEEPS
from t2_agents.estimator.probes import PROBE_KINDS, ProbeConfig

HEADS = tuple((head, kind) for head in HEAD_REGISTRY for kind in PROBE_KINDS)
"""(head, probe kind) pairs fitted: every registered head with an MLP and a ridge probe."""
KNOBS: dict[str, tuple[float, ...]] = {
    "tolerance": (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2),
    "price": (0.0, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.006, 0.008, 0.012, 0.016, 0.03),
    "log2 shift": (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0),
}


def fit_head(data: TrainingSet, head: str, kind: str) -> tuple[T2Estimator, dict[str, Any]]:
    """Fit one head exactly as ``t2 train --head head --probe kind`` does."""
    started = time.perf_counter()
    estimator, report = T2Estimator.fit(
        data.features,
        data.labels,
        layers=data.layers,
        grid=list(range(1, data.n_max + 1)),
        n_min=1,
        n_max=data.n_max,
        model_identity=data.model,
        hidden_size=int(data.features.shape[2]),
        config=ProbeConfig(head=head, kind=kind),  # type: ignore[arg-type]  # kind: a Literal
        n_d=data.n_d,
        curves=data.curves,
        groups=data.keys,
        tasks=data.tasks,
        phrasings=data.phrasings,
        guard=GuardConfig(),
        data_summary=data.summary,
    )
    info = report.to_dict()
    info["seconds"] = round(time.perf_counter() - started, 1)
    return estimator, info


def _shifted(estimator: T2Estimator, features: np.ndarray, shift: float) -> np.ndarray:
    """nstar head with its log2 prediction shifted, mapped to the nearest budget in log2."""
    log2 = np.log2(estimator.predict(features, guard=False).astype(np.float64)) + shift
    grid = np.arange(estimator.n_min, estimator.n_max + 1)
    nearest = np.argmin(np.abs(log2[:, None] - np.log2(grid)[None, :]), axis=1)
    return np.asarray(grid[nearest], dtype=np.int64)


def sweep(
    estimator: T2Estimator, features: np.ndarray, *, guard: bool
) -> list[tuple[str, float, np.ndarray]]:
    """(knob, value, budgets) along each of the head's knobs."""
    if not estimator.has_knob:
        points = [(v, _shifted(estimator, features, v)) for v in KNOBS["log2 shift"]]
        if guard and estimator.guard is not None:
            slot = estimator.layers.index(estimator.guard.layer)
            points = [(v, estimator.guard.apply(b, features[:, slot])) for v, b in points]
        return [("log2 shift", v, b) for v, b in points]
    defaults = {"tolerance": estimator.default_tolerance, "price": estimator.default_price}
    return [
        (rule, v, estimator.predict(features, **{rule: v}, guard=guard))
        for rule in KNOB_SWEEPS
        for v in sorted({*KNOBS[rule], defaults[rule]})
    ]


def report_head(
    estimator: T2Estimator, held: TrainingSet, unseen: set[str], n_d: int, *, guard: bool = False
) -> dict[str, Any]:
    """Knob sweep and default-knob comparisons on the held-out set (with or without the guard)."""
    budgets = estimator.predict(held.features, guard=guard)
    tasks = np.asarray(held.tasks)
    groups = {
        "all": np.ones(len(tasks), dtype=bool),
        "seen tasks": ~np.isin(tasks, sorted(unseen)),
        "unseen tasks": np.isin(tasks, sorted(unseen)),
    }
    default = {
        name: equal_cost(held.curves[mask], budgets[mask], n_d=n_d).to_dict()
        for name, mask in groups.items()
        if mask.any()
    }
    points = sweep(estimator, held.features, guard=guard)
    xy = pareto(held.curves, [b for _, _, b in points])
    rule = estimator.default_rule if estimator.has_knob else "log2 shift"
    value = {"tolerance": estimator.default_tolerance, "price": estimator.default_price}
    return {
        "knob": rule,
        "default_knob": value.get(rule, 0.0),
        "default": default,
        "sweep": [
            {"knob": k, "value": v, "mean_n": n, "accuracy": a}
            for (k, v, _), (n, a) in zip(points, xy, strict=True)
        ],
        "budget_histogram": np.bincount(budgets, minlength=held.n_max + 1)[1:].tolist(),
    }


def report_guard(
    estimator: T2Estimator, held: TrainingSet, unseen: set[str], n_d: int
) -> dict[str, Any]:
    """The head as shipped: budgets raised to the safe N for questions the guard flags."""
    if estimator.guard is None:
        raise SystemExit("the chosen estimator has no guard")
    flags = estimator.out_of_distribution(held.features)
    tasks = np.asarray(held.tasks)
    is_unseen = np.isin(tasks, sorted(unseen))
    groups = {"all": np.ones(len(tasks), dtype=bool), "seen tasks": ~is_unseen,
              "unseen tasks": is_unseen}  # fmt: skip
    return {
        "detector": estimator.guard.metadata(),
        "fallback_n": estimator.guard.fallback_n,
        "flagged": {g: float(flags[m].mean()) for g, m in groups.items() if m.any()},
        **report_head(estimator, held, unseen, n_d, guard=True),
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    fixed = results["fixed"]
    ax.plot(range(1, len(fixed) + 1), fixed, "k.-", lw=1, label="fixed N")
    for k, (name, head) in enumerate(results["heads"].items()):
        for rule, style in (("tolerance", "o-"), ("price", "s--"), ("log2 shift", "o-")):
            pts = sorted((p["mean_n"], p["accuracy"]) for p in head["sweep"] if p["knob"] == rule)
            if pts:
                ax.plot(*zip(*pts, strict=True), style, ms=3, color=f"C{k}", lw=1,
                        label=f"{name}: {rule} sweep")  # fmt: skip
        d = head["default"]["all"]
        ax.plot(d["mean_n"], d["accuracy"], "*", ms=13, color=f"C{k}", mec="k")
    shipped = results["chosen_with_ood_fallback"]
    pts = sorted(
        (p["mean_n"], p["accuracy"]) for p in shipped["sweep"] if p["knob"] == shipped["knob"]
    )
    ax.plot(
        *zip(*pts, strict=True),
        "D-",
        ms=3,
        color="k",
        lw=1.5,
        label=f"{results['chosen_on_validation']} + guard (shipped): {shipped['knob']} sweep",
    )
    d = shipped["default"]["all"]
    ax.plot(d["mean_n"], d["accuracy"], "*", ms=15, color="k")
    o = results["oracle"]
    ax.plot(o["mean_n"], o["accuracy"], "rX", ms=10, label="oracle N*_x")
    ax.axhline(fixed[results["n_d"] - 1], color="grey", ls=":", lw=1, label=f"N_D={results['n_d']}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("mean paths per question (log scale)")
    ax.set_ylabel("exact majority-vote accuracy")
    q = results["heldout"]["questions"]
    ax.set_title(f"Held-out ({q} questions never seen in training); * = default knob")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", nargs="+", type=Path, required=True)
    parser.add_argument("--heldout", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/results/heldout_heads.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/heldout_pareto.png"))
    args = parser.parse_args()
    train = load_training_set(args.train)  # in the order given, as t2 train reads --data
    held = load_training_set(
        sorted(args.heldout),
        exclude=frozenset(train.keys),
        exclude_instances=frozenset(train.instance_keys),
    )
    unseen = set(held.tasks) - set(train.tasks)
    oracle = pareto(held.curves, [held.labels])[0]
    results: dict[str, Any] = {
        "command": "python bench/heads.py --train "
        + " ".join(map(str, args.train))
        + " --heldout "
        + " ".join(map(str, sorted(args.heldout))),
        "train": {
            "questions": len(train.keys),
            "tasks": dict(train.summary.tasks or {}),
            "dropped": train.dropped,
            "n_d": train.n_d,
        },
        "heldout": {
            "questions": len(held.keys),
            "tasks": dict(held.summary.tasks or {}),
            "dropped": held.dropped,
            "unseen_tasks": sorted(unseen),
        },
        "n_d": train.n_d,
        "fixed": held.curves.mean(axis=0).tolist(),
        "oracle": dict(zip(("mean_n", "accuracy"), oracle, strict=True)),
        "heads": {},
        "validation": {},
    }
    fitted: dict[str, T2Estimator] = {}
    for head, kind in HEADS:
        name = f"{kind} {head}"
        estimator, info = fit_head(train, head, kind)
        fitted[name] = estimator
        results["validation"][name] = {
            "equal_cost": info["equal_cost"], "combined_mse": info["combined_mse"],
            "mean_baseline_mse": info["mean_baseline_mse"], "seconds": info["seconds"],
            "default_rule": estimator.default_rule if estimator.has_knob else None,
            "default_tolerance": estimator.default_tolerance,
            "default_price": estimator.default_price,
        }  # fmt: skip
        results["heads"][name] = report_head(estimator, held, unseen, train.n_d)
        d = results["heads"][name]["default"]["all"]
        val_gain = info["equal_cost"].get("gain", math.nan)
        print(
            f"{name}: val gain {val_gain:+.4f}; held-out acc {d['accuracy']:.3f} at N "
            f"{d['mean_n']:.2f} (fixed {d['fixed_at_equal_cost']:.3f}, gain {d['gain']:+.3f} "
            f"{d['gain_ci']}, vs N_D {d['vs_n_d']:+.3f})",
            flush=True,
        )
    validation = results["validation"]
    chosen = max(validation, key=lambda k: validation[k]["equal_cost"]["gain"])
    results["chosen_on_validation"] = chosen
    results["chosen_with_ood_fallback"] = report_guard(fitted[chosen], held, unseen, train.n_d)
    print("with the OOD fall-back:", json.dumps(results["chosen_with_ood_fallback"]["flagged"]))
    results["fixed_at_n_d"] = fixed_accuracy(held.curves, float(train.n_d))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.plot)
    print(f"chosen on validation: {chosen}; wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
