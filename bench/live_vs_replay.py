"""Every live policy through the real graph and replayed on the pools of the same questions.

Held-out questions the shipped estimator never saw (its stored training keys are skipped, as in
``t2 eval --live``), taken round-robin over the held-out folders, answered live by
:func:`t2_agents.evaluate.live.live_eval` (fixed N_D, per-call T2, Adaptive-Consistency, ESC,
the hybrid, and T2 under one run budget of the samples per-call T2 spent) and replayed on their
collected pools by :func:`t2_agents.evaluate.folders.evaluate_folders` restricted to the same
question keys (``t2 eval``'s replay: N_D, T2 and the budget allocation ``alloc`` at T2's total
are exact, the sequential rules averaged over random orders of each pool). Paired bootstrap
95 % intervals over the questions (:func:`t2_agents.curves.compare.paired_difference`) for the
issue's
three differences, and the targets met or not, in replay and live:

- the hybrid reaches N_D's accuracy within 1 point, with fewer samples than Adaptive-Consistency
  and in fewer rounds;
- the run budget at the same total samples is at least as accurate as per-call T2.

The same comparisons are also replayed on every held-out question the estimator never saw
(``replay_all``: about 600 questions, no live run), for narrower intervals than the live subset.

    python bench/live_vs_replay.py --questions 80 --engine vllm \\
        --out bench/results/live_vs_replay.json --plot docs/live_vs_replay.png

Run it in the vLLM virtual environment for ``--engine vllm`` (``.venv-vllm/bin/python``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import glob
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from t2_agents.backends.base import Engine
from t2_agents.curves.compare import paired_difference
from t2_agents.evaluate.folders import evaluate_folders
from t2_agents.evaluate.live import LiveResult, live_eval
from t2_agents.evaluate.offline import EvalConfig, EvalReport

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = "calibration/smollm2-135m-instruct/heldout/*"
ESTIMATOR = "t2_agents/artifacts/smollm2-135m-instruct"

POLICIES: dict[str, str] = {
    "fixed": "nd",
    "t2": "t2",
    "adaptive": "adaptive",
    "esc": "esc",
    "hybrid": "hybrid",
    "budget": "alloc",
}
"""Live policy key (:data:`~t2_agents.evaluate.live.LIVE_POLICIES`) -> its replay policy
(:data:`~t2_agents.evaluate.offline.POLICIES`)."""

NAMES: dict[str, str] = {
    "fixed": "fixed N_D",
    "t2": "T2 (per call)",
    "adaptive": "Adaptive-Consistency",
    "esc": "ESC",
    "hybrid": "hybrid (T2's N, then waves)",
    "budget": "T2 under a run budget",
}
"""Display names of the table rows."""

WITHIN = 0.01
"""The hybrid target: within 1 point of N_D's accuracy."""


def _replay(report: EvalReport, keys: Sequence[str] | None) -> dict[str, Any]:
    """Per live key: the replay row's totals and its per-question values in ``keys``' order
    (None: the report's order)."""
    if keys is None:
        order = list(range(report.questions))
    else:
        order = [report.extra["question_keys"].index(k) for k in keys]
    out: dict[str, Any] = {}
    for live_key, policy in POLICIES.items():
        row = next((r for r in report.results if r.policy == policy), None)
        if row is None or row.values is None:
            continue
        v = row.values
        out[live_key] = {
            "name": row.name,
            "accuracy": row.accuracy,
            "accuracy_std_over_replays": row.accuracy_std,
            "mean_samples": row.mean_samples,
            "mean_tokens": row.mean_tokens,
            "rounds": row.rounds,
            "exact": row.exact,
            "per_question": {
                "credit": [v.credit[i] for i in order],
                "samples": [v.samples[i] for i in order],
                "rounds": [v.rounds[i] for i in order],
            },
        }
    return out


def _live(result: LiveResult) -> dict[str, Any]:
    """Per live key: the totals and per-question correctness and samples (rows' order)."""
    out: dict[str, Any] = {}
    for key, totals in result["policies"].items():
        rows = result["rows"]
        out[key] = {
            "name": totals["policy"],
            "accuracy": totals["accuracy"],
            "mean_samples": totals["mean_n"],
            "mean_tokens": totals["mean_completion_tokens"],
            "rounds": totals["mean_rounds"],
            "engine_calls": totals["mean_engine_calls"],
            "samples": totals["samples"],
            "wall_seconds": totals["wall_seconds"],
            "step_seconds": totals["seconds"],
            "per_question": {
                "credit": [float(r[key]["correct"]) for r in rows],
                "samples": [float(r[key]["n"]) for r in rows],
            },
        }
    return out


def compare(mode: Mapping[str, Any], *, resamples: int, seed: int) -> dict[str, Any]:
    """The three paired differences and the targets for one mode (``replay`` or ``live``)."""

    def diff(policy: str, baseline: str, metric: str) -> dict[str, Any]:
        return paired_difference(
            mode[policy]["per_question"][metric],
            mode[baseline]["per_question"][metric],
            resamples=resamples,
            seed=seed,
        )

    hybrid_vs_nd = diff("hybrid", "fixed", "credit")
    samples = diff("hybrid", "adaptive", "samples")
    budget_vs_t2 = diff("budget", "t2", "credit")
    rounds = (mode["hybrid"]["rounds"], mode["adaptive"]["rounds"])
    targets = {
        "hybrid_within_1_point_of_nd": hybrid_vs_nd["difference"] >= -WITHIN,
        "hybrid_fewer_samples_than_adaptive": samples["difference"] < 0,
        "hybrid_fewer_rounds_than_adaptive": rounds[0] < rounds[1],
        "budget_at_least_as_accurate_as_t2": budget_vs_t2["difference"] >= 0,
    }
    return {
        "hybrid_minus_nd_accuracy": hybrid_vs_nd,
        "hybrid_minus_adaptive_samples": samples,
        "hybrid_and_adaptive_rounds": list(rounds),
        "budget_minus_t2_accuracy": budget_vs_t2,
        "budget_samples": mode["budget"]["mean_samples"],
        "t2_samples": mode["t2"]["mean_samples"],
        "targets": targets,
        "hybrid_target_met": all(v for k, v in targets.items() if k.startswith("hybrid")),
        "budget_target_met": targets["budget_at_least_as_accurate_as_t2"],
    }


def run(
    engine: Engine,
    *,
    folders: Sequence[str | Path],
    estimator: str | Path,
    questions: int,
    concurrency: int,
    replays: int = 200,
    resamples: int = 2000,
    seed: int = 0,
    n_d: int | None = None,
    train_data: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Live, then replay on the same questions; the paired comparisons (see the module docs).

    Args:
        engine: The engine of the collections' model.
        folders: Held-out collection folders.
        estimator: The T2 estimator folder.
        questions: Questions, round-robin over ``folders`` (training questions skipped).
        concurrency: Questions in flight at once in the live run.
        replays: Random orders per pool for the replayed sequential rules.
        resamples: Bootstrap resamples.
        seed: Sampling seed of the live run, replay orders and bootstrap.
        n_d: Fixed N_D; None: the estimator's training N_D.
        train_data: Training folders, for the replayed budget allocation of an estimator
            without a curve head (the shipped one has one).
    """
    from t2_agents.estimator.estimator import T2Estimator

    est = T2Estimator.load(
        estimator, expect_identity=engine.identity, expect_hidden_size=engine.hidden_size
    )
    if n_d is None:
        n_d = int(est.metadata["training_data"]["n_d"])

    def tick(done: int, total: int) -> None:
        if done % max(1, total // 20) == 0 or done == total:
            print(f"live: {done}/{total} runs, {time.perf_counter() - began:.0f} s", flush=True)

    config = EvalConfig(policies=tuple(POLICIES.values()), replays=replays, seed=seed, n_d=n_d)
    began = time.perf_counter()
    live = live_eval(
        engine, folders, est, n_d=n_d, questions=questions, seed=seed, concurrency=concurrency,
        progress=tick, stop=config.stop_rules,
    )  # fmt: skip
    live_seconds = time.perf_counter() - began
    keys = [row["key"] for row in live["rows"]]
    began = time.perf_counter()
    report = evaluate_folders(
        folders, estimator=est, config=config, questions=keys, train_data=train_data
    )
    replay_seconds = time.perf_counter() - began
    modes = {"replay": _replay(report, keys), "live": _live(live)}
    whole = evaluate_folders(folders, estimator=est, config=config, train_data=train_data)
    everything = _replay(whole, None)
    replay_all = {
        "questions": whole.questions,
        "dropped": whole.extra["dropped"],
        "alloc_budget": whole.budget,
        "comparisons": compare(everything, resamples=resamples, seed=seed),
        "modes": {
            k: {m: v for m, v in row.items() if m != "per_question"}
            for k, row in everything.items()
        },
    }
    return {
        "questions": len(keys),
        "question_keys": keys,
        "skipped_seen_in_training": live["skipped_seen_in_training"],
        "n_d": n_d,
        "live_run_budget": live["run_budget"],
        "replay_alloc_budget": report.budget,
        "model": engine.identity,
        "folders": [str(f) for f in folders],
        "estimator": {
            "path": str(estimator),
            "created": est.metadata.get("created"),
            "training_questions": len(est.training_keys),
        },
        "settings": {
            "concurrency": concurrency,
            "replays": replays,
            "bootstrap_resamples": resamples,
            "seed": seed,
            "stop_rules": dataclasses.asdict(config.stop_rules),  # live_eval's defaults too
        },
        "names": NAMES,
        "seconds": {"live": live_seconds, "replay": replay_seconds},
        "modes": modes,
        "comparisons": {m: compare(modes[m], resamples=resamples, seed=seed) for m in modes},
        "replay_all": replay_all,
        "live_rows": live["rows"],
    }


def plot(result: Mapping[str, Any], path: str | Path) -> Path:
    """Accuracy vs mean samples: each policy replayed (open) and live (filled), joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for k, key in enumerate(POLICIES):
        replay, live = result["modes"]["replay"].get(key), result["modes"]["live"].get(key)
        if replay is None or live is None:
            continue
        xs = [replay["mean_samples"], live["mean_samples"]]
        ys = [replay["accuracy"], live["accuracy"]]
        ax.plot(xs, ys, "-", color=f"C{k}", lw=1, alpha=0.6)
        ax.plot(xs[0], ys[0], "o", mfc="none", color=f"C{k}", ms=8)
        ax.plot(xs[1], ys[1], "o", color=f"C{k}", ms=8, label=NAMES[key])
    ax.set_xscale("log", base=2)
    ax.set(xlabel="mean samples per question (log2)", ylabel="accuracy")
    ax.set_title(
        f"{result['questions']} held-out questions: replay (open) and live (filled), "
        f"{result['engine']}"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _rel(path: str | Path) -> str:
    """``path`` relative to the repository when it is inside it (as given otherwise)."""
    try:
        return str(Path(path).absolute().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=sorted(glob.glob(str(ROOT / HELDOUT))))
    parser.add_argument("--estimator", default=str(ROOT / ESTIMATOR))
    parser.add_argument("--questions", type=int, default=80)
    parser.add_argument("--engine", default="auto", help="auto (vllm if installed), vllm, ...")
    parser.add_argument("--concurrency", type=int, default=None, help="default: all on vLLM")
    parser.add_argument("--replays", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    from t2_agents.backends.factory import load_engine, preferred_local_kind

    kind = preferred_local_kind() if args.engine == "auto" else args.engine
    started = dt.datetime.now(dt.UTC)
    began = time.perf_counter()
    engine = load_engine(kind=kind)
    load_seconds = time.perf_counter() - began
    concurrency = args.concurrency or (args.questions if kind == "vllm" else 1)
    try:
        result = run(
            engine, folders=args.data, estimator=args.estimator, questions=args.questions,
            concurrency=concurrency, replays=args.replays, resamples=args.resamples,
            seed=args.seed,
        )  # fmt: skip
    finally:
        getattr(engine, "close", lambda: None)()
    words = [_rel(sys.executable), _rel(__file__), *(sys.argv[1:] if argv is None else argv)]
    result = {
        "command": " ".join(words),
        "engine": kind,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **result,
    }
    result["seconds"]["engine_load"] = load_seconds
    result["folders"] = [_rel(f) for f in result["folders"]]
    result["estimator"]["path"] = _rel(args.estimator)
    if args.plot is not None:
        result["plot"] = str(plot(result, args.plot))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for mode in ("replay", "live"):
        print(mode, json.dumps(result["comparisons"][mode]["targets"]))
    print("replay, all held-out", json.dumps(result["replay_all"]["comparisons"]["targets"]))
    return result


if __name__ == "__main__":
    main()
