"""Choose the distribution guard's settings on validation folds of the training set (issue 19).

The guard must let through a known family asked in a new phrasing and flag a family it never
saw. Both are simulated inside the training folders, never on the held-out ones:

* **phrasing folds**: for each agent family and each of its training templates, the guard is
  fitted on every other training row and measured on that (family, template)'s rows, a known
  family in a phrasing the guard has not seen (target: at most 10 % flagged);
* **family folds**: for each training task or family, the guard is fitted without it and
  measured on its rows, a family never seen (as many flagged as possible).

Settings tried: the layer, the PCA dimensions, the neighbour ``k`` and the threshold rule:
``row`` (the shipped rule: a percentile of each training row's k-th neighbour distance with the
row left out) or ``template`` (the same with the row's whole phrasing template left out, for
rows whose family has several templates; a reasoning-gym row leaves out only itself). The
choice: the most unseen-family rows flagged (mean over family folds) among the settings whose
phrasing flag rate (mean over phrasing folds) is at most ``--max-phrasing`` (default 5 %: half
the issue's 10 % target, a margin for a held-out template unlike the four trained ones; the
rate varies a lot between folds).

It also compares the flagged questions' safe budget (on the family folds: every row of the
left-out family treated as flagged): the global one (the slowest training task's) against one
taken from the nearest training rows' tasks.

Usage:
    python bench/guard_select.py --data 'calibration/smollm2-135m-instruct/train/*' \\
        --data 'calibration/smollm2-135m-instruct/agent_train/*' \\
        --out bench/results/guard_select.json
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

SPACES = ((15, 64), (15, 16), (5, 64), (20, 64), (25, 64), (25, 128), (29, 64))  # (layer, dims)
KS = (1, 5, 20)
QUANTILES = {
    "row": (99.0, 99.9, 100.0),
    "template": (90.0, 95.0, 99.0, 100.0),
    "family": (90.0, 95.0, 99.0, 100.0),
}


def _space(x: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    _, _, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    return mean, std, vt[:dims].T


def _d2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances [Q, n] between the rows of a and b (float32: memory and speed)."""
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    return (a32**2).sum(1)[:, None] + (b32**2).sum(1)[None, :] - 2.0 * (a32 @ b32.T)


def _smallest(d2: np.ndarray, upto: int) -> np.ndarray:
    """The ``upto`` smallest distances of each row, increasing [Q, upto]."""
    part = np.partition(d2, upto - 1, axis=1)[:, :upto]
    return np.sqrt(np.maximum(np.sort(part, axis=1), 0.0))


Limits = dict[tuple[str, int, float], np.ndarray]


def _thresholds(train_pts: np.ndarray, groups: np.ndarray, tasks: np.ndarray) -> Limits:
    """Threshold per (rule, k, quantile) from the training rows themselves.

    ``row`` and ``template`` give one number (shape [1]); ``family`` one per training row: the
    quantile of its own task's template-left-out distances, looked up by the test question's
    nearest training row.
    """
    d2 = _d2(train_pts, train_pts)
    np.fill_diagonal(d2, np.inf)
    out: Limits = {}
    row = _smallest(d2, max(KS))
    d2[groups[:, None] == groups[None, :]] = np.inf
    template = _smallest(d2, max(KS))
    for k in KS:
        for q in QUANTILES["row"]:
            out[("row", k, q)] = np.asarray([np.percentile(row[:, k - 1], q)])
        for q in QUANTILES["template"]:
            out[("template", k, q)] = np.asarray([np.percentile(template[:, k - 1], q)])
        for q in QUANTILES["family"]:
            per_task = {t: np.percentile(template[tasks == t, k - 1], q) for t in np.unique(tasks)}
            out[("family", k, q)] = np.asarray([per_task[t] for t in tasks])
    return out


def _fold(x: np.ndarray, train: np.ndarray, test: np.ndarray, groups: np.ndarray,
          tasks: np.ndarray, dims: int) -> dict[tuple[str, int, float], float]:  # fmt: skip
    """Share of test rows flagged per (rule, k, quantile) with the guard fitted on train."""
    mean, std, basis = _space(x[train], dims)
    pts = ((x - mean) / std) @ basis
    limits = _thresholds(pts[train], groups[train], tasks[train])
    d2 = _d2(pts[test], pts[train])
    nearest = np.argmin(d2, axis=1)
    d = _smallest(d2, max(KS))
    out = {}
    for key, t in limits.items():
        limit = t if len(t) == 1 else t[nearest]
        out[key] = float((d[:, key[1] - 1] > limit).mean())
    return out


def _safe(curve: np.ndarray, n_d: int, target: float) -> int:
    good = curve >= curve[n_d - 1] - target
    return int(np.argmax(good)) + 1


def _budget_folds(x: np.ndarray, curves: np.ndarray, tasks: np.ndarray, n_d: int,
                  target: float) -> dict[str, Any]:  # fmt: skip
    """Safe budget of a never-seen family: global vs from the nearest training rows' tasks."""
    rows: dict[str, Any] = {}
    for fam in np.unique(tasks):
        test, train = tasks == fam, tasks != fam
        per_task = {t: _safe(curves[tasks == t].mean(0), n_d, target)
                    for t in np.unique(tasks[train])}  # fmt: skip
        mean, std, basis = _space(x[train], 64)
        pts = ((x - mean) / std) @ basis
        d2 = ((pts[test] ** 2).sum(1)[:, None] + (pts[train] ** 2).sum(1)[None, :]
              - 2.0 * pts[test] @ pts[train].T)  # fmt: skip
        order = np.argsort(d2, axis=1)[:, :20]
        train_tasks = tasks[train]
        c = curves[test]
        acc_nd = float(c[:, n_d - 1].mean())
        res: dict[str, Any] = {"questions": int(test.sum()), "acc_n_d": acc_nd}
        glob_n = max(per_task.values())
        res["global"] = {"mean_n": float(glob_n), "accuracy": float(c[:, glob_n - 1].mean())}
        for k in (5, 20):
            near = train_tasks[order[:, :k]]  # [Q, k]
            budgets = np.asarray([max(per_task[t] for t in set(r)) for r in near])
            pooled = np.asarray([_safe(curves[train][order[i, :k]].mean(0), n_d, target)
                                 for i in range(len(order))])  # fmt: skip
            for name, b in ((f"nearest_tasks_{k}", budgets), (f"nearest_rows_{k}", pooled)):
                res[name] = {"mean_n": float(b.mean()),
                             "accuracy": float(c[np.arange(len(c)), b - 1].mean())}  # fmt: skip
        rows[str(fam)] = res
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="append", required=True, help="training folders (glob)")
    parser.add_argument("--max-phrasing", type=float, default=0.05)
    parser.add_argument("--fallback-target", type=float, default=0.02)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    folders = sorted(f for pattern in args.data for f in glob.glob(pattern))
    started = time.time()
    data = load_training_set(folders)
    tasks = np.asarray(data.tasks)
    groups = np.asarray(data.phrasings)  # task#template, or the question's own text key
    phrasing = sorted({(t, g) for t, g in zip(tasks, groups, strict=True) if "#" in g})
    families = sorted(set(tasks.tolist()))
    print(f"{len(tasks)} rows, {len(phrasing)} phrasing folds, {len(families)} family folds",
          file=sys.stderr)  # fmt: skip
    results: list[dict[str, Any]] = []
    for layer, dims in SPACES:
        slot = data.layers.index(layer)
        x = data.features[:, slot, :].astype(np.float64)
        ph: dict[tuple[str, int, float], list[float]] = {}
        fam: dict[tuple[str, int, float], dict[str, float]] = {}
        for _, group in phrasing:
            test = groups == group
            for key, v in _fold(x, ~test, test, groups, tasks, dims).items():
                ph.setdefault(key, []).append(v)
        for f in families:
            test = tasks == f
            for key, v in _fold(x, ~test, test, groups, tasks, dims).items():
                fam.setdefault(key, {})[f] = v
        for key in ph:
            agent = [v for f, v in fam[key].items() if f.startswith("agent_")]
            rg = [v for f, v in fam[key].items() if not f.startswith("agent_")]
            results.append({
                "layer": layer, "dims": dims, "rule": key[0], "neighbours": key[1],
                "quantile": key[2], "phrasing_flagged": float(np.mean(ph[key])),
                "phrasing_flagged_max": float(np.max(ph[key])),
                "unseen_flagged": float(np.mean(list(fam[key].values()))),
                "unseen_agent_flagged": float(np.mean(agent)),
                "unseen_rg_flagged": float(np.mean(rg)),
                "per_family": fam[key],
            })  # fmt: skip
        print(f"layer {layer} dims {dims}: {time.time() - started:.0f} s", file=sys.stderr)
    ok = [r for r in results if r["phrasing_flagged"] <= args.max_phrasing]
    best = max(ok, key=lambda r: (r["unseen_flagged"], -r["phrasing_flagged"])) if ok else None
    shipped = next(r for r in results if (r["layer"], r["dims"], r["rule"], r["neighbours"],
                                          r["quantile"]) == (15, 64, "row", 5, 99.0))  # fmt: skip
    best_layer = best["layer"] if best else 15
    x = data.features[:, data.layers.index(best_layer), :].astype(np.float64)
    budgets = _budget_folds(x, data.curves, tasks, data.n_d, args.fallback_target)
    out = {
        "command": "python bench/guard_select.py " + " ".join(sys.argv[1:]),
        "folders": folders, "rows": len(tasks), "n_d": data.n_d,
        "phrasing_folds": len(phrasing), "family_folds": len(families),
        "max_phrasing": args.max_phrasing, "chosen": best, "shipped_setting": shipped,
        "safe_budget_folds": budgets, "seconds": time.time() - started, "settings": results,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    for r in sorted(ok, key=lambda r: -r["unseen_flagged"])[:10]:
        print({k: r[k] for k in r if k != "per_family"})
    print("shipped:", {k: shipped[k] for k in shipped if k != "per_family"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
