"""How T2's probes do on a phrasing they never trained on, measured inside the training set.

For each training template ``t`` of the agent families, the estimator is trained (as
``t2 train --head curve --probe mlp`` does) on every training row except the agent rows phrased
with ``t``, and replayed on those rows: T2's budgets (the probes alone, no guard) at its
calibrated default knob and at a sweep of tolerances, each against fixed N at equal cost and
fixed N_D (paired bootstrap 95 % intervals, pooled over the folds). No held-out folder is read:
this is validation on which agent-phrasing choices (the knob) can be made.

Each fold trains 30 probes (447 s for the four folds on an idle 2-core machine). Run after the
agent-phrased held-out figures of issue 19 were seen; no setting was changed by it.

Usage:
    python bench/phrasing_folds.py --data 'calibration/smollm2-135m-instruct/train/*' \\
        --data 'calibration/smollm2-135m-instruct/agent_train/*' \\
        --out bench/results/phrasing_folds.json
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

from t2_agents.calibrate.training_set import load_training_set
from t2_agents.curves.compare import equal_cost
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.estimator.probes import ProbeConfig

TOLERANCES = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="training folders (glob)")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    folders = sorted(f for pattern in args.data for f in glob.glob(pattern))
    started = time.time()
    data = load_training_set(folders)
    phrasing = np.asarray(data.phrasings)
    templates = sorted({p.split("#")[1] for p in phrasing if "#" in p})
    grid = list(range(1, data.n_max + 1))
    budgets: dict[str, list[np.ndarray]] = {}
    test_rows: list[np.ndarray] = []
    folds = []
    for t in templates:
        test = np.asarray([p.endswith(f"#{t}") for p in phrasing])
        train = ~test
        est, _report = T2Estimator.fit(
            data.features[train], data.labels[train], layers=data.layers, grid=grid,
            n_min=1, n_max=data.n_max, model_identity=data.model,
            hidden_size=int(data.features.shape[2]), config=ProbeConfig(head="curve"),
            n_d=data.n_d, curves=data.curves[train],
            groups=[k for k, keep in zip(data.keys, train, strict=True) if keep],
        )  # fmt: skip
        x = data.features[test]
        budgets.setdefault("default", []).append(est.predict(x, guard=False))
        for tol in TOLERANCES:
            budgets.setdefault(f"tolerance_{tol}", []).append(
                est.predict(x, tolerance=tol, guard=False)
            )
        test_rows.append(np.flatnonzero(test))
        knob = est.knob
        folds.append({"template": t, "questions": int(test.sum()),
                      "default_knob": None if knob is None else list(knob.default)})  # fmt: skip
        print(f"template {t}: {time.time() - started:.0f} s", file=sys.stderr)
    rows = np.concatenate(test_rows)
    curves = data.curves[rows]
    out: dict[str, Any] = {
        "command": "python bench/phrasing_folds.py " + " ".join(sys.argv[1:]),
        "folders": folders, "training_rows": len(phrasing), "n_d": data.n_d,
        "questions": len(rows), "folds": folds,
        "acc_at_1": float(curves[:, 0].mean()),
        "acc_at_n_d": float(curves[:, data.n_d - 1].mean()),
    }  # fmt: skip
    policies: dict[str, Any] = {}
    for name, parts in budgets.items():
        b = np.concatenate(parts).astype(np.int64)
        row = equal_cost(curves, b, n_d=data.n_d, resamples=args.resamples, seed=0).to_dict()
        policies[name] = row
        print(f"{name}: N {row['mean_n']:.1f} gain {row['gain']:+.3f} {row['gain_ci']} "
              f"vs N_D {row['vs_n_d']:+.3f} {row['vs_n_d_ci']}")  # fmt: skip
    oracle = np.asarray([int(np.argmax(c >= c.max())) + 1 for c in curves], dtype=np.int64)
    policies["oracle"] = equal_cost(curves, oracle, n_d=data.n_d, resamples=args.resamples,
                                    seed=0).to_dict()  # fmt: skip
    out["policies"] = policies
    out["seconds"] = time.time() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
