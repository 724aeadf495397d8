"""Held-out comparison: the T2 MLP probes against per-layer ridge regression (DESIGN.md pilot).

Both read the same features and labels, use the same train/validation split (seed 0, 20 %),
weight layers by inverse validation MSE on log2 N*, and are scored exactly on held-out pools:

    python bench/estimator_vs_ridge.py --data runs/train/* --heldout runs/heldout/* \
        --estimator t2_agents/artifacts/smollm2-135m-instruct --out bench/results/ridge.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.calibrate.training_set import heldout_report, load_training_set
from t2_agents.estimator.estimator import T2Estimator


class RidgeT2:
    """Per-layer ridge on standardised features; layers weighted by 1 / validation MSE."""

    def __init__(self, features: npt.NDArray[np.float32], labels: npt.NDArray[np.int64],
                 *, n_max: int, alpha: float = 10.0, seed: int = 0) -> None:  # fmt: skip
        y = np.log2(labels.astype(np.float64))
        perm = np.random.default_rng(seed).permutation(len(y))
        n_val = max(2, round(len(y) * 0.2))
        val, train = perm[:n_val], perm[n_val:]
        self.n_max = n_max
        self.params: list[tuple[Any, ...]] = []
        errors = []
        for layer in range(features.shape[1]):
            x = features[:, layer, :].astype(np.float64)
            mean, std = x[train].mean(0), x[train].std(0) + 1e-6
            xs = (x - mean) / std
            a = xs[train]
            w = np.linalg.solve(a.T @ a + alpha * len(train) * np.eye(a.shape[1]),
                                a.T @ (y[train] - y[train].mean()))  # fmt: skip
            bias = y[train].mean()
            errors.append(float(np.mean((xs[val] @ w + bias - y[val]) ** 2)))
            self.params.append((mean, std, w, bias))
        inverse = 1 / np.asarray(errors)
        self.weights = inverse / inverse.sum()
        self.val_mse = errors

    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        total = np.zeros(len(features))
        for layer, (mean, std, w, bias) in enumerate(self.params):
            x = (features[:, layer, :].astype(np.float64) - mean) / std
            total += self.weights[layer] * (x @ w + bias)
        return np.clip(np.rint(2**total), 1, self.n_max).astype(np.int64)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--heldout", nargs="+", required=True)
    parser.add_argument("--estimator", required=True)
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    estimator = T2Estimator.load(args.estimator)
    train = load_training_set(args.data, layers=estimator.layers)
    ridge = RidgeT2(train.features, train.labels, n_max=train.n_max, alpha=args.alpha)
    common = {"layers": estimator.layers, "n_d": train.n_d}
    result = {
        "t2_mlp": heldout_report(estimator.predict, args.heldout, **common),
        "ridge": heldout_report(ridge.predict, args.heldout, **common),
        "ridge_val_mse": ridge.val_mse,
    }
    print("| task | policy | MLP acc | MLP mean N | ridge acc | ridge mean N |")
    print("|---|---|---|---|---|---|")
    for task, rows in result["t2_mlp"].items():
        mlp, lin = rows["t2"], result["ridge"][task]["t2"]
        print(f"| {task} | t2 | {mlp['accuracy']:.3f} | {mlp['mean_n']:.2f} | "
              f"{lin['accuracy']:.3f} | {lin['mean_n']:.2f} |")  # fmt: skip
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
