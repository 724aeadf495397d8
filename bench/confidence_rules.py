"""Replay the vote rules side by side: majority vs confidence-weighted vs top-eta % filtered.

Issue 24's offline measurement. Given collection folders whose samples carry path confidences
(``t2 collect`` on an engine that returns them: the transformers engine, or vLLM with
``confidence_top_k`` set, the default), every question's pool is scored under each vote rule:

* majority: the exact ``A_x(N)`` (:func:`t2_agents.curves.exact.accuracy_curve`);
* weighted / filtered (for each ``--eta``): the seeded Monte-Carlo estimate
  (:func:`t2_agents.vote_rules.mc_accuracy_curve`, ``--draws`` permutations per pool; no exact
  form exists for them, see its docstring).

Then, at each fixed ``N`` of ``--n`` and, with ``--estimator``, at T2's per-question ``N``, it
reports each rule's accuracy and completion tokens and its difference from the majority on the
same questions with a paired bootstrap 95 % interval
(:func:`t2_agents.curves.compare.paired_difference`). With ``--estimator``, questions it was
trained on (by text or by instance) and repeated questions are dropped and counted. Questions
whose pool lacks confidences are scored by the majority under every rule (the rules'
fallback) and counted in ``fallback``. Nothing here samples: it only replays the pools, so it
runs in seconds.

    python bench/confidence_rules.py --data runs/heldout_conf/* \\
        --estimator t2_agents/artifacts/smollm2-135m-instruct \\
        --out bench/results/confidence_rules.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.calibrate.collect import Collection, load_collection
from t2_agents.curves.compare import paired_difference
from t2_agents.curves.exact import accuracy_curve
from t2_agents.errors import ConfigError, DataError
from t2_agents.evaluate.replay import ReplayPool
from t2_agents.vote_rules import VoteSettings, mc_accuracy_curve

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_N = (4, 8, 16)
"""Fixed budgets compared (each capped at the smallest pool)."""
DEFAULT_ETAS = (10.0, 50.0, 90.0)
"""Filter percentages: DeepConf's 10 and 90, and the library default 50."""


def rule_settings(etas: Sequence[float], statistic: str) -> dict[str, VoteSettings]:
    """The rules compared, by label: majority, weighted, and filtered at each eta.

    Example:
        >>> list(rule_settings([10.0, 90.0], "tail"))
        ['majority', 'weighted', 'filtered-10', 'filtered-90']
    """
    rules = {
        "majority": VoteSettings(),
        "weighted": VoteSettings(kind="weighted", statistic=statistic),  # type: ignore[arg-type]
    }
    for eta in etas:
        rules[f"filtered-{eta:g}"] = VoteSettings(
            kind="filtered",
            eta=eta,
            statistic=statistic,  # type: ignore[arg-type]
        )
    return rules


def rule_curves(
    pools: Sequence[ReplayPool], settings: VoteSettings, *, draws: int, seed: int
) -> tuple[FloatArray, float, int]:
    """``[Q, m_min]`` A(N) under one rule, the largest standard error, and the fallbacks."""
    m_min = min(p.size for p in pools)
    if settings.kind == "majority":
        curves = [accuracy_curve(p.pool, p.size)[:m_min] for p in pools]
        return np.array(curves), 0.0, 0
    rows, worst, fallbacks = [], 0.0, 0
    for q, pool in enumerate(pools):
        mc = mc_accuracy_curve(
            pool.answers,
            pool.confidences,
            pool.correct,
            settings,
            m_min,
            draws=draws,
            seed=seed * 1_000_003 + q,
        )
        rows.append(mc.mean)
        worst = max(worst, float(mc.stderr.max()))
        fallbacks += mc.fallback
    return np.array(rows), worst, fallbacks


def t2_budgets(estimator: Any, collections: Sequence[Collection], m_min: int) -> IntArray:
    """T2's N per question: ``estimator.predict`` on its layers of each collection's features.

    ``estimator`` is a folder (loaded with :meth:`T2Estimator.load`, checked against the
    collections' model) or a fitted estimator (``layers`` and ``predict``); budgets are clamped
    to ``1..m_min``.
    """
    if isinstance(estimator, str | Path):
        from t2_agents.estimator.estimator import T2Estimator

        first = collections[0]
        estimator = T2Estimator.load(
            estimator,
            expect_identity=first.config.model,
            expect_hidden_size=int(first.features.shape[2]),
        )
    budgets = []
    for collection in collections:
        missing = [x for x in estimator.layers if x not in collection.layers]
        if missing:
            raise ConfigError(
                f"the estimator reads layers {missing} that a collection did not store; "
                "recollect with those layers"
            )
        slots = [collection.layers.index(x) for x in estimator.layers]
        budgets.append(np.asarray(estimator.predict(collection.features[:, slots, :])))
    return np.clip(np.concatenate(budgets).astype(np.int64), 1, m_min)


def _unseen(
    collections: Sequence[Collection], estimator: Any
) -> tuple[npt.NDArray[np.bool_], dict[str, int]]:
    """Which records to keep: with a T2 estimator (a folder or a loaded one), those whose text
    and instance it never trained on, each question once
    (:func:`~t2_agents.calibrate.training_set.distinct_rows`); otherwise all."""
    from t2_agents.calibrate.training_set import distinct_rows
    from t2_agents.estimator.estimator import T2Estimator

    sizes = [len(c.records) for c in collections]
    if isinstance(estimator, str | Path):
        estimator = T2Estimator.load(estimator)
    if not isinstance(estimator, T2Estimator):
        return np.ones(sum(sizes), dtype=np.bool_), {}
    rows, dropped = distinct_rows(
        collections, estimator.training_keys, estimator.training_instance_keys
    )
    starts = np.cumsum([0, *sizes])
    keep = np.zeros(sum(sizes), dtype=np.bool_)
    keep[[starts[c] + i for c, i in rows]] = True
    return keep, dropped


def _compare(
    credit: dict[str, FloatArray], tokens: FloatArray, resamples: int, seed: int
) -> dict[str, Any]:
    base = credit["majority"]
    out: dict[str, Any] = {}
    for label, values in credit.items():
        row: dict[str, Any] = {
            "accuracy": float(values.mean()),
            "mean_completion_tokens": float(tokens.mean()),
        }
        if label != "majority":
            diff = paired_difference(values.tolist(), base.tolist(), resamples=resamples, seed=seed)
            row["vs_majority"] = diff["difference"]
            row["vs_majority_ci"] = diff["ci"]
        out[label] = row
    return out


def run(
    folders: Sequence[str | Path],
    *,
    fixed: Sequence[int] = DEFAULT_N,
    etas: Sequence[float] = DEFAULT_ETAS,
    statistic: str = "lowest_group",
    estimator: Any = None,
    draws: int = 1000,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score every rule at the fixed budgets (and T2's) on the folders' pools; JSON-ready.

    Raises:
        DataError: No folder or no question.
        ConfigError: Bad rule settings or budgets.
    """
    started = time.perf_counter()
    if not folders:
        raise DataError("pass at least one collection folder with --data")
    collections = [load_collection(folder) for folder in folders]
    keep, dropped = _unseen(collections, estimator)
    pools = [ReplayPool.from_record(r) for c in collections for r in c.records]
    pools = [p for p, k in zip(pools, keep, strict=True) if k]
    if not pools:
        raise DataError("the collections hold no question the estimator has not seen")
    m_min = min(p.size for p in pools)
    budgets = sorted({min(int(n), m_min) for n in fixed})
    if not budgets or budgets[0] < 1:
        raise ConfigError(f"--n {list(fixed)} must be whole numbers >= 1")
    mean_tokens = np.array([np.mean(p.tokens) for p in pools])
    rules = rule_settings(etas, statistic)
    curves: dict[str, FloatArray] = {}
    errors: dict[str, float] = {}
    fallbacks: dict[str, int] = {}
    for label, settings in rules.items():
        curves[label], errors[label], fallbacks[label] = rule_curves(
            pools, settings, draws=draws, seed=seed
        )
    rows = np.arange(len(pools))
    report: dict[str, Any] = {
        "folders": [str(f) for f in folders],
        "questions": len(pools),
        "dropped": dropped,
        "questions_with_confidence": sum(p.confidences is not None for p in pools),
        "pool_size_min": m_min,
        "statistic": statistic,
        "draws": draws,
        "resamples": resamples,
        "seed": seed,
        "rules": {label: {"kind": s.kind, "eta": s.eta} for label, s in rules.items()},
        "max_question_stderr": errors,
        "fallback_questions": fallbacks,
        "fixed": {
            str(n): _compare(
                {label: c[:, n - 1] for label, c in curves.items()},
                n * mean_tokens,
                resamples,
                seed,
            )
            for n in budgets
        },
    }
    if estimator is not None:
        chosen = t2_budgets(estimator, collections, m_min)[keep]
        report["t2"] = {
            "mean_n": float(chosen.mean()),
            **_compare(
                {label: c[rows, chosen - 1] for label, c in curves.items()},
                chosen * mean_tokens,
                resamples,
                seed,
            ),
        }
    report["seconds"] = time.perf_counter() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", nargs="+", required=True, help="collection folders")
    parser.add_argument("--n", nargs="+", type=int, default=list(DEFAULT_N), help="fixed N")
    parser.add_argument("--eta", nargs="+", type=float, default=list(DEFAULT_ETAS))
    parser.add_argument("--statistic", default="lowest_group", help="mean, lowest_group, tail")
    parser.add_argument("--estimator", default=None, help="T2 estimator folder (optional)")
    parser.add_argument("--draws", type=int, default=1000, help="Monte-Carlo draws per pool")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="JSON output file")
    args = parser.parse_args(argv)
    report = run(
        args.data,
        fixed=args.n,
        etas=args.eta,
        statistic=args.statistic,
        estimator=args.estimator,
        draws=args.draws,
        resamples=args.resamples,
        seed=args.seed,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['questions']} questions -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
