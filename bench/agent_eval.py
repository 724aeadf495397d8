"""T2 on agent-phrased questions: held-out groups, equal-cost gains, guard flag rates (issue 19).

Replays an estimator on collected held-out pools, grouped:

* ``rg_seen``: reasoning-gym held-out questions of the 8 training tasks;
* ``rg_unseen``: reasoning-gym tasks never trained on (chain_sum, number_sequence);
* ``agent_phrasings``: agent-phrased families that are trained on, in a phrasing template held
  out of training (template 4) and on instances drawn with another seed;
* ``agent_unseen``: agent-phrased families never trained on.

A held-out question is dropped (and counted) when its text key **or** its instance key (the
operation and operands, any phrasing or order; :attr:`t2_agents.question.Question.instance_key`)
is a training question's. Per group: N_D (of the training set, as the estimator stored it),
T2's exact accuracy and mean N, fixed N at equal cost (interpolated) and fixed N_D, each with a
paired bootstrap 95 % interval (:func:`t2_agents.curves.compare.equal_cost`), the same for T2
without its guard and for the oracle, and the share of questions the guard flags (per family
too). Writes JSON (and a Pareto plot with ``--plot``).

Usage:
    python bench/agent_eval.py --estimator t2_agents/artifacts/smollm2-135m-instruct \\
        --train 'calibration/smollm2-135m-instruct/train/*' \\
        --train 'calibration/smollm2-135m-instruct/agent_train/*' \\
        --out bench/results/agent_eval.json --plot docs/agent_pareto.png
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.calibrate.collect import load_collection
from t2_agents.calibrate.training_set import collection_identities
from t2_agents.curves.compare import equal_cost, paired_difference
from t2_agents.curves.exact import accuracy_curve, optimal_budget
from t2_agents.estimator.estimator import T2Estimator

C = "calibration/smollm2-135m-instruct"
RG_SEEN = ("aiw", "basic_arithmetic", "gcd", "lcm", "leg_counting", "number_format", "products",
           "syllogism")  # fmt: skip
RG_UNSEEN = ("chain_sum", "number_sequence")
AGENT_TRAINED = ("agent_logic", "agent_compare", "agent_arithmetic", "agent_shopping",
                 "agent_counting", "agent_word_problems")  # fmt: skip
AGENT_UNSEEN = ("agent_remainders", "agent_rates", "agent_weekdays")
GROUPS: dict[str, list[str]] = {
    "rg_seen": [f"{C}/heldout/{t}" for t in RG_SEEN],
    "rg_unseen": [f"{C}/heldout/{t}" for t in RG_UNSEEN],
    "agent_phrasings": [f"{C}/agent_heldout/{f}" for f in AGENT_TRAINED],
    "agent_unseen": [f"{C}/agent_heldout/{f}" for f in AGENT_UNSEEN],
}


def training_identities(folders: list[str]) -> tuple[set[str], set[str]]:
    """Every training question's text key and instance key."""
    texts: set[str] = set()
    instances: set[str] = set()
    for folder in folders:
        keys, inst = collection_identities(load_collection(folder))
        texts.update(keys)
        instances.update(inst)
    return texts, instances


def _row(
    curves: np.ndarray, budgets: np.ndarray, n_d: int, resamples: int, seed: int
) -> dict[str, Any]:
    row = equal_cost(curves, budgets.astype(np.int64), n_d=n_d, resamples=resamples, seed=seed)
    out = row.to_dict()
    out["saving_vs_n_d"] = 1.0 - float(budgets.mean()) / n_d
    return out


def evaluate_group(
    est: T2Estimator,
    folders: list[str],
    seen: tuple[set[str], set[str]],
    *,
    n_d: int,
    resamples: int,
    seed: int,
    baseline: T2Estimator | None = None,
) -> dict[str, Any]:
    """One group's table row and its per-family breakdown (and the baseline on the same rows)."""
    curves, feats, fams, sources = [], [], [], []
    dropped_text = dropped_instance = duplicates = 0
    kept: set[str] = set()
    for folder in folders:
        if not Path(folder).exists():
            continue
        col = load_collection(folder)
        keys, inst = collection_identities(col)
        pools = col.pools()
        for i, record in enumerate(col.records):
            if keys[i] in seen[0]:
                dropped_text += 1
                continue
            if inst[i] in seen[1]:
                dropped_instance += 1
                continue
            if inst[i] in kept:
                duplicates += 1
                continue
            kept.add(inst[i])
            pool = pools[i]
            curves.append(accuracy_curve(pool, pool.size))
            feats.append(col.features[i])
            fams.append(str(record["task"]))
            sources.append(folder)
    if not curves:
        return {"questions": 0, "folders": folders}
    size = min(len(c) for c in curves)
    c = np.stack([x[:size] for x in curves])  # [Q, M]
    x = np.stack(feats)  # [Q, L, d]
    t2 = np.minimum(est.predict(x), size)
    raw = np.minimum(est.predict(x, guard=False), size)
    flagged = est.out_of_distribution(x)
    oracle = np.array([optimal_budget(row) for row in c], dtype=np.int64)
    families: dict[str, Any] = {}
    for fam in sorted(set(fams)):
        rows = np.array([f == fam for f in fams])
        families[fam] = {
            "questions": int(rows.sum()),
            "acc_at_1": float(c[rows, 0].mean()),
            "acc_at_n_d": float(c[rows, n_d - 1].mean()),
            "t2_accuracy": float(c[rows, t2[rows] - 1].mean()),
            "t2_mean_n": float(t2[rows].mean()),
            "flagged_share": float(flagged[rows].mean()),
            "oracle_mean_n": float(oracle[rows].mean()),
        }
    against = {} if baseline is None else {"baseline": _paired(c, t2, baseline, x, size,
                                                                resamples, seed)}  # fmt: skip
    return against | {
        "questions": len(c),
        "folders": sorted(set(sources)),
        "dropped": {
            "seen_by_text": dropped_text,
            "seen_by_instance_only": dropped_instance,
            "repeated_instance": duplicates,
        },
        "n_d": n_d,
        "acc_at_1": float(c[:, 0].mean()),
        "acc_at_n_d": float(c[:, n_d - 1].mean()),
        "flagged_share": float(flagged.mean()),
        "t2": _row(c, t2, n_d, resamples, seed),
        "t2_without_guard": _row(c, raw, n_d, resamples, seed),
        "oracle": _row(c, oracle, n_d, resamples, seed),
        "fixed_curve": [float(v) for v in c.mean(axis=0)],
        "families": families,
    }


def _paired(
    c: np.ndarray,
    t2: np.ndarray,
    baseline: T2Estimator,
    x: np.ndarray,
    size: int,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """The baseline estimator's budgets on the same questions, and T2 minus the baseline
    (accuracy, paired bootstrap 95 % interval over questions)."""
    base = np.minimum(baseline.predict(x), size)
    rows = np.arange(len(c))
    diff = paired_difference(c[rows, t2 - 1], c[rows, base - 1], resamples=resamples, seed=seed)
    return {
        "accuracy": float(c[rows, base - 1].mean()),
        "mean_n": float(base.mean()),
        "flagged_share": float(baseline.out_of_distribution(x).mean()),
        "t2_minus_baseline": diff["difference"],
        "t2_minus_baseline_ci": diff["ci"],
    }


def plot(report: dict[str, Any], path: str) -> None:
    """One panel per group: fixed N's accuracy curve, T2, T2 without guard, oracle, N_D."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(g, r) for g, r in report["groups"].items() if r.get("questions")]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, (name, row) in zip(axes[0], groups, strict=True):
        curve = row["fixed_curve"]
        ax.plot(range(1, len(curve) + 1), curve, color="0.4", label="fixed N")
        for key, marker, label in (
            ("t2", "o", "T2"),
            ("t2_without_guard", "^", "T2, no guard"),
            ("oracle", "*", "oracle N*"),
        ):
            ax.scatter(row[key]["mean_n"], row[key]["accuracy"], marker=marker, s=60, label=label)
        if "baseline" in row:
            b = row["baseline"]
            ax.scatter(b["mean_n"], b["accuracy"], marker="x", s=60, color="0.2",
                       label="previous estimator")  # fmt: skip
        ax.scatter(row["n_d"], row["acc_at_n_d"], marker="s", color="k", label=f"N_D={row['n_d']}")
        ax.set_title(f"{name} ({row['questions']} q)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("samples per question")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (exact, held-out)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--estimator", required=True)
    parser.add_argument("--train", action="append", required=True, help="glob of train folders")
    parser.add_argument("--out", required=True)
    parser.add_argument("--plot")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--baseline", help="another estimator, replayed on the same questions")
    args = parser.parse_args(argv)
    started = time.time()
    est = T2Estimator.load(args.estimator)
    baseline = T2Estimator.load(args.baseline) if args.baseline else None
    train = sorted(f for pattern in args.train for f in glob.glob(pattern))
    seen = training_identities(train)
    n_d = est.training.n_d
    if n_d is None:
        print("the estimator stores no training N_D; retrain it with t2 train", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "estimator": args.estimator,
        "baseline": args.baseline,
        "train_folders": train,
        "training_questions": {"by_text": len(seen[0]), "by_instance": len(seen[1])},
        "n_d": n_d,
        "resamples": args.resamples,
        "groups": {},
    }
    for name in args.groups.split(","):
        print(f"{name} ...", file=sys.stderr)
        report["groups"][name] = evaluate_group(
            est, GROUPS[name], seen, n_d=n_d, resamples=args.resamples, seed=args.seed,
            baseline=baseline,
        )  # fmt: skip
    report["seconds"] = round(time.time() - started, 1)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, args.plot)
    for name, row in report["groups"].items():
        if row.get("questions"):
            t2 = row["t2"]
            print(
                f"{name:16s} q={row['questions']:4d} flagged={row['flagged_share']:.2f} "
                f"T2 acc={t2['accuracy']:.3f} N={t2['mean_n']:.1f} "
                f"gain={t2['gain']:+.3f} [{t2['gain_ci'][0]:+.3f},{t2['gain_ci'][1]:+.3f}] "
                f"vsND={t2['vs_n_d']:+.3f} [{t2['vs_n_d_ci'][0]:+.3f},{t2['vs_n_d_ci'][1]:+.3f}]",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
