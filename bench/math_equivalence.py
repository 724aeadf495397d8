"""What merging mathematically equal answers does to the vote (issue 24, item 4).

Every held-out pool is scored twice with the exact ``A_x(N)``: as collected (answers equal when
their normalised text is: the library's default) and with equal answers merged by their
``math-verify`` key (:func:`t2_agents.answers.math_answer_key`: ``0.5``, ``1/2``, ``50%`` and
``\\frac{1}{2}`` are one answer; what a task declared with ``declare_math_answers`` gets). A merged
answer is right when one of its answers was graded right as collected, so only the vote
changes (the accuracy at N = 1 is the same). Questions the estimator trained on (by
text or by instance) and repeated questions are dropped and counted
(:func:`t2_agents.calibrate.training_set.distinct_rows`). Per fixed N: both
accuracies and the paired bootstrap 95 % interval of the difference; also how many pools had
an answer merged at all.

    python bench/math_equivalence.py --data calibration/smollm2-135m-instruct/heldout_conf/* \\
        --out bench/results/math_equivalence.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.answers import math_answer_key
from t2_agents.calibrate.collect import load_collection
from t2_agents.calibrate.training_set import distinct_rows
from t2_agents.curves.compare import paired_difference
from t2_agents.curves.exact import AnswerPool, accuracy_curve
from t2_agents.estimator.estimator import T2Estimator

SHIPPED = "t2_agents/artifacts/smollm2-135m-instruct"


def merged(pool: AnswerPool) -> tuple[AnswerPool, bool]:
    """``pool`` with answers of equal math key merged; a merged answer is right when one of its
    answers was graded right as collected (so only the vote changes, not the grading). Also
    whether any two answers were merged."""
    counts: Counter[str] = Counter()
    for answer, count in pool.counts.items():
        counts[math_answer_key(answer)] += count
    right = frozenset(math_answer_key(a) for a in pool.correct if a in pool.counts)
    return AnswerPool(dict(counts), right, invalid=pool.invalid), len(counts) < len(pool.counts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="collection folders")
    parser.add_argument("--estimator", default=SHIPPED, help="its training questions are dropped")
    parser.add_argument("--n", nargs="+", type=int, default=[1, 4, 8, 16, 32])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    est = T2Estimator.load(args.estimator)
    collections = [load_collection(folder) for folder in args.data]
    rows, dropped = distinct_rows(collections, est.training_keys, est.training_instance_keys)
    pools = [c.pools() for c in collections]
    before, after, changed = [], [], 0
    for c, i in rows:
        pool = pools[c][i]
        merged_pool, merged_any = merged(pool)
        changed += merged_any
        before.append(accuracy_curve(pool, pool.size))
        after.append(accuracy_curve(merged_pool, merged_pool.size))
    size = min(len(c) for c in before)
    b = np.stack([c[:size] for c in before])
    a = np.stack([c[:size] for c in after])
    rows = {}
    for n in sorted({min(n, size) for n in args.n}):
        diff = paired_difference(a[:, n - 1].tolist(), b[:, n - 1].tolist(),
                                 resamples=args.resamples, seed=0)  # fmt: skip
        rows[str(n)] = {
            "as_collected": float(b[:, n - 1].mean()),
            "math_merged": float(a[:, n - 1].mean()),
            "difference": diff["difference"],
            "ci": diff["ci"],
        }
    report: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "folders": list(args.data),
        "questions": len(b),
        "dropped": dropped,
        "pools_with_a_merge": changed,
        "fixed": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("questions", "pools_with_a_merge", "fixed")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
