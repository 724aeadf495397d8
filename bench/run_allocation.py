"""Which allocation of a run's samples maximises the run's success? (issue 21, item 2, replay)

A run of ``--steps`` steps succeeds only if every step does, so its success is the product of
its steps' accuracies. This replays three ways of spending one run's samples on held-out pools
(the questions of ``bench/agent_eval.py``'s trained groups: reasoning-gym tasks and agent
families in the held-out phrasing; every question the estimator trained on, by text or by
instance, dropped):

* ``per_call``: T2's own N for each step (the run's total is their sum);
* ``sum_rule``: the same total spread by predicted accuracy gain per sample
  (:func:`t2_agents.curves.allocate.allocate_budget` on T2's predicted curves; what the graph's
  run budget does today);
* ``log_rule``: the same total spread by predicted gain in *log* accuracy per sample (the log of
  the run's predicted success is the sum of its steps' logs; curves floored at 0.01);
* ``fixed``: every step the run's mean N (rounded; its total may differ by a step or two).

The questions are split once into disjoint runs (seeded), so runs are independent: each
difference is a paired bootstrap over runs. The steps of a run do not depend on each other
here (a step's text does not hold the previous answer): this measures the allocation rule, not
an agent.

    python bench/run_allocation.py --out bench/results/run_allocation.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.calibrate.training_set import load_training_set
from t2_agents.curves.allocate import allocate_budget
from t2_agents.curves.compare import paired_difference
from t2_agents.estimator.estimator import T2Estimator

SHIPPED = "t2_agents/artifacts/smollm2-135m-instruct"
C = "calibration/smollm2-135m-instruct"
FOLDERS = [f"{C}/heldout/{t}" for t in ("aiw", "basic_arithmetic", "gcd", "lcm", "leg_counting",
           "number_format", "products", "syllogism")] + [
    f"{C}/agent_heldout/{f}" for f in ("agent_logic", "agent_compare", "agent_arithmetic",
                                       "agent_shopping", "agent_counting", "agent_word_problems")
]  # fmt: skip
FLOOR = 0.01


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", default=SHIPPED)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    est = T2Estimator.load(args.estimator)
    data = load_training_set(
        [f for f in FOLDERS if Path(f).exists()],
        exclude=est.training_keys,
        exclude_instances=est.training_instance_keys,
    )
    slots = [data.layers.index(layer) for layer in est.layers]
    x = data.features[:, slots, :]
    truth = data.curves  # [Q, M]
    size = truth.shape[1]
    predicted = est.predict_curve(x)[:, :size]  # [Q, G], flagged rows get the safe curve
    t2 = np.minimum(est.predict(x), size).astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(len(truth))
    runs = order[: len(order) // args.steps * args.steps].reshape(-1, args.steps)
    success: dict[str, list[float]] = {"per_call": [], "sum_rule": [], "log_rule": [], "fixed": []}
    samples: dict[str, list[int]] = {k: [] for k in success}
    for run in runs:
        total = int(t2[run].sum())
        budgets = {
            "per_call": t2[run],
            "sum_rule": allocate_budget(predicted[run], total),
            "log_rule": allocate_budget(np.log(np.clip(predicted[run], FLOOR, 1.0)), total),
            "fixed": np.full(len(run), max(1, round(total / len(run))), dtype=np.int64),
        }
        for name, b in budgets.items():
            success[name].append(float(np.prod(truth[run, b - 1])))
            samples[name].append(int(b.sum()))
    report: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "estimator": args.estimator,
        "questions": len(truth),
        "dropped": data.dropped,
        "runs": len(runs),
        "steps": args.steps,
        "policies": {
            name: {
                "run_success": float(np.mean(values)),
                "samples_per_run": float(np.mean(samples[name])),
            }
            for name, values in success.items()
        },
        "vs_per_call": {
            name: paired_difference(
                success[name], success["per_call"], resamples=args.resamples, seed=0
            )
            for name in ("sum_rule", "log_rule", "fixed")
        },
        "log_vs_sum": paired_difference(
            success["log_rule"], success["sum_rule"], resamples=args.resamples, seed=0
        ),
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("runs", "policies", "vs_per_call", "log_vs_sum")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
