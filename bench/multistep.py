"""Multi-step agent runs where sub-answers compound (issue 21): plan, replay, live, plot.

Runs are :class:`~t2_agents.families.Chain` s of 2-4 dependent steps (a sum, then "is it above
37?"; a maximum, then add 12 to it; ...), drawn so that no step is a question the shipped
estimator trained on, by text or by instance, and no two steps of the benchmark are the same
question. A run succeeds only if every step does, and a step after a right answer is exactly its
gold-chained question, so the gold-chained steps are collected as ordinary 32-path pools and a
run's expected success under a policy is the product of its steps' expected credits (exact for
fixed N, :func:`t2_agents.curves.exact.accuracy_curve`; replayed over random orders for the
stop rules).

    python bench/multistep.py plan --out bench/multistep_steps.jsonl
    VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 .venv-vllm/bin/t2 collect \\
        --engine vllm --data bench/multistep_steps.jsonl --questions 1100 --samples 32 \\
        --seed 21001 --out calibration/smollm2-135m-instruct/multistep
    python bench/multistep.py replay --out bench/results/multistep.json
    .venv-vllm/bin/python bench/multistep.py live --runs 40 --out bench/results/multistep_live.json
    python bench/multistep.py plot
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.budget.policies import T2Policy
from t2_agents.budget.stop_rules import StopRule
from t2_agents.calibrate.collect import load_collection
from t2_agents.calibrate.training_set import TrainingSummary
from t2_agents.curves.compare import equal_cost, paired_difference
from t2_agents.curves.exact import accuracy_curve
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.evaluate.offline import EvalConfig, evaluate_pools
from t2_agents.evaluate.replay import ReplayPool
from t2_agents.families import Chain, generate_chains
from t2_agents.graph.budgets import RunBudget

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SHIPPED = "t2_agents/artifacts/smollm2-135m-instruct"
C = "calibration/smollm2-135m-instruct"
DATA = f"{C}/multistep"
CHAINS = 320
SEED = 21001
M = 32
"""Pool size, N_D's grid top and every policy's n_max."""
MAX_TOKENS = 48
PRICES = (0.0005, 0.001, 0.002, 0.004441, 0.008, 0.016, 0.03)
"""T2's knob (price per path) swept; 0.004441 is the shipped default."""
PER_STEP = (2, 4, 8, 16)
"""Run budget totals, in samples per step of the run."""
FIXED = (1, 2, 4, 8, 16, 32)


def chains(est: T2Estimator, *, size: int = CHAINS, seed: int = SEED) -> list[Chain]:
    """The benchmark's runs: unseen by the estimator, every step a distinct question."""
    return generate_chains(
        size=size,
        seed=seed,
        exclude=est.training_keys,
        exclude_instances=est.training_instance_keys,
    )


def _plan(args: argparse.Namespace) -> int:
    rows = []
    est = T2Estimator.load(args.estimator)
    for chain in chains(est, size=args.chains, seed=args.seed):
        for question in chain.gold_questions():
            rows.append(
                {
                    "id": question.id,
                    "task": question.task,
                    "question": question.text,
                    "answer": question.gold,
                    "instance": question.instance,
                    "template": question.template,
                }
            )
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"{args.chains} chains, {len(rows)} step questions -> {args.out}")
    return 0


@dataclass
class _Steps:
    """Per step question (the collection's rows of the kept chains, in chain order)."""

    chain_of: IntArray
    curves: FloatArray  # [S, M] exact A(N)
    mean_tokens: FloatArray  # [S]
    t2: IntArray  # [S] T2's N at the default knob
    predicted: FloatArray  # [S, M] T2's predicted A(N) (safe curve when flagged)
    caps: IntArray  # [S] the hybrid's cap
    flagged: npt.NDArray[np.bool_]
    features: npt.NDArray[np.float32]  # [S, L, d]
    pools: list[ReplayPool]
    tasks: list[str]
    kinds: list[str]


def _load(args: argparse.Namespace, est: T2Estimator) -> tuple[list[Chain], _Steps, dict[str, Any]]:
    every = chains(est, size=args.chains, seed=args.seed)
    collection = load_collection(args.data)
    index = {str(r["id"]): i for i, r in enumerate(collection.records)}
    kept = [c for c in every if all(f"{c.id}-s{k}" in index for k in range(len(c.steps)))]
    rows, chain_of = [], []
    for number, chain in enumerate(kept):
        for k, question in enumerate(chain.gold_questions()):
            row = index[f"{chain.id}-s{k}"]
            if collection.records[row]["prompt"] != question.prompt:
                raise SystemExit(f"{chain.id} step {k}: the collected prompt is another question")
            rows.append(row)
            chain_of.append(number)
    records = [collection.records[r] for r in rows]
    seen = sum(
        r["key"] in est.training_keys or r["instance_key"] in est.training_instance_keys
        for r in records
    )
    slots = [collection.layers.index(layer) for layer in est.layers]
    x = np.asarray(collection.features[rows][:, slots, :])
    policy = T2Policy(est)
    hybrid = StopRule(kind="hybrid")
    assert hybrid.cap_tolerance is not None
    t2 = [policy.choose(features=f, question="", n_min=1, n_max=M) for f in x]
    caps = [
        max(n, policy.choose_cap(features=f, tolerance=hybrid.cap_tolerance, n_min=1, n_max=M))
        for f, n in zip(x, t2, strict=True)
    ]
    predicted = np.stack([np.asarray(policy.predict_curve(f))[:M] for f in x])
    pools = [ReplayPool.from_record(r) for r in records]
    steps = _Steps(
        chain_of=np.asarray(chain_of, dtype=np.int64),
        curves=np.stack([accuracy_curve(p.pool, M) for p in pools]),
        mean_tokens=np.array([np.mean(p.tokens) for p in pools]),
        t2=np.minimum(np.asarray(t2, dtype=np.int64), M),
        predicted=predicted,
        caps=np.minimum(np.asarray(caps, dtype=np.int64), M),
        flagged=np.asarray(est.out_of_distribution(x), dtype=bool),
        features=x,
        pools=pools,
        tasks=[str(r["task"]) for r in records],
        kinds=[kept[c].kind for c in chain_of],
    )
    info = {
        "chains_planned": len(every),
        "chains": len(kept),
        "steps": len(rows),
        "steps_seen_in_training": int(seen),
        "distinct_texts": len({r["key"] for r in records}),
        "distinct_instances": len({r["instance_key"] for r in records}),
        "n_d": TrainingSummary.from_metadata(est.metadata).n_d,
    }
    return kept, steps, info


@dataclass
class _Runs:
    """One policy's per-run values (paired over the same runs)."""

    success: FloatArray
    samples: FloatArray
    tokens: FloatArray
    rounds: FloatArray

    def summary(self) -> dict[str, float]:
        return {
            "run_success": float(self.success.mean()),
            "samples_per_run": float(self.samples.mean()),
            "tokens_per_run": float(self.tokens.mean()),
            "rounds_per_run": float(self.rounds.mean()),
        }


def _per_run(
    steps: _Steps, credit: FloatArray, samples: FloatArray, tokens: FloatArray, rounds: FloatArray
) -> _Runs:
    runs = int(steps.chain_of.max()) + 1
    success = np.ones(runs)
    np.multiply.at(success, steps.chain_of, credit)  # steps are independent given gold chaining
    out = [
        np.bincount(steps.chain_of, weights=a, minlength=runs) for a in (samples, tokens, rounds)
    ]
    return _Runs(success, *out)


def _fixed_budgets(steps: _Steps, budgets: IntArray) -> _Runs:
    credit = steps.curves[np.arange(len(budgets)), budgets - 1]
    ones = np.ones(len(budgets))
    return _per_run(steps, credit, budgets.astype(float), budgets * steps.mean_tokens, ones)


def _run_budget(steps: _Steps, totals: IntArray, objective: str) -> _Runs:
    """The graph's run budget replayed step by step (:meth:`RunAccount.request`, online)."""
    budgets = np.zeros(len(steps.t2), dtype=np.int64)
    for run, total in enumerate(totals):
        account = RunBudget(
            total_samples=int(total),
            steps=int((steps.chain_of == run).sum()),
            objective=objective,  # type: ignore[arg-type]
        ).open()
        for q in np.flatnonzero(steps.chain_of == run):
            grant = account.request(
                wanted=int(steps.t2[q]),
                n_min=1,
                n_max=M,
                curve=steps.predicted[q],
                max_tokens=MAX_TOKENS,
            )
            budgets[q] = grant.n
            account.settle(
                grant.step,
                samples=grant.n,
                completion_tokens=round(grant.n * steps.mean_tokens[q]),
            )
    return _fixed_budgets(steps, budgets)


def _hybrid(steps: _Steps, replays: int) -> tuple[_Runs, FloatArray]:
    """The hybrid (T2's N, then waves to a decisive vote or the cap), replayed per step."""
    config = EvalConfig(policies=("hybrid",), replays=replays)
    row = evaluate_pools(steps.pools, config=config, t2=steps.t2, t2_cap=steps.caps)
    values = row.result("hybrid").values
    arrays = [np.asarray(a, dtype=float) for a in
              (values.credit, values.samples, values.tokens, values.rounds)]  # fmt: skip
    return _per_run(steps, *arrays), arrays[0]


def _fixed_at(steps: _Steps, samples_per_run: float) -> FloatArray:
    """Per-run success of fixed N per step at ``samples_per_run`` on average (interpolated)."""
    runs = int(steps.chain_of.max()) + 1
    n = samples_per_run / (len(steps.t2) / runs)
    low = int(np.clip(np.floor(n), 1, M))
    high = min(low + 1, M)
    w = float(np.clip(n - low, 0.0, 1.0))
    at = [
        _fixed_budgets(steps, np.full(len(steps.t2), k, dtype=np.int64)).success
        for k in (low, high)
    ]
    return (1 - w) * at[0] + w * at[1]


def _diff(a: FloatArray, b: FloatArray, resamples: int) -> dict[str, Any]:
    d = paired_difference(list(a), list(b), resamples=resamples, seed=0)
    return {"points": 100 * d["difference"], "ci": [100 * v for v in d["ci"]]}


def _step_gain(
    curves: FloatArray, budgets: IntArray, n_d: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Per step question: T2 against fixed N at its own mean N (points, paired interval)."""
    row = equal_cost(curves, budgets, n_d=n_d, resamples=args.resamples, seed=0)
    return {"points": 100 * row.gain, "ci": [100 * v for v in row.gain_ci], "mean_n": row.mean_n}


def _replay(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    est = T2Estimator.load(args.estimator)
    kept, steps, info = _load(args, est)
    n_steps = np.bincount(steps.chain_of)
    fixed = {n: _fixed_budgets(steps, np.full(len(steps.t2), n, dtype=np.int64))
             for n in range(1, M + 1)}  # fmt: skip
    policies: dict[str, _Runs] = {f"fixed N={n}": fixed[n] for n in FIXED}
    n_d = int(info["n_d"] or M)
    policies["N_D"] = fixed[n_d]
    policies["t2"] = _fixed_budgets(steps, steps.t2)
    sweep = {}
    for price in PRICES:
        budgets = np.minimum(est.predict(steps.features, price=price), M).astype(np.int64)
        sweep[price] = _fixed_budgets(steps, budgets)
    policies["hybrid"], _ = _hybrid(steps, args.replays)
    matched = np.bincount(steps.chain_of, weights=steps.t2).astype(np.int64)
    totals = {"same total as t2": matched} | {
        f"{b} per step": (b * n_steps).astype(np.int64) for b in PER_STEP
    }
    budget_rows: dict[str, dict[str, Any]] = {}
    for label, total in totals.items():
        by = {obj: _run_budget(steps, total, obj) for obj in ("sum", "success")}
        policies[f"budget sum ({label})"] = by["sum"]
        policies[f"budget success ({label})"] = by["success"]
        budget_rows[label] = {
            "sum": by["sum"].summary(),
            "success": by["success"].summary(),
            "success_minus_sum": _diff(by["success"].success, by["sum"].success, args.resamples),
            "success_minus_t2": _diff(
                by["success"].success, policies["t2"].success, args.resamples
            ),
            "success_minus_fixed_equal_samples": _diff(
                by["success"].success,
                _fixed_at(steps, by["success"].samples.mean()),
                args.resamples,
            ),
        }
    t2 = policies["t2"]
    hybrid = policies["hybrid"]
    targets = {
        "t2_minus_fixed_equal_samples": _diff(
            t2.success, _fixed_at(steps, t2.samples.mean()), args.resamples
        ),
        "success_budget_minus_t2_same_total": budget_rows["same total as t2"]["success_minus_t2"],
        "hybrid_minus_n_d": _diff(hybrid.success, policies["N_D"].success, args.resamples),
        "hybrid_samples_share_of_n_d": float(
            hybrid.samples.mean() / policies["N_D"].samples.mean()
        ),
        "hybrid_minus_fixed_equal_samples": _diff(
            hybrid.success, _fixed_at(steps, hybrid.samples.mean()), args.resamples
        ),
    }
    by_kind = {}
    for kind in sorted({c.kind for c in kept}):
        mask = np.array([c.kind == kind for c in kept])
        by_kind[kind] = {
            "runs": int(mask.sum()),
            "steps": int(n_steps[mask][0]),
            **{
                name: float(policies[name].success[mask].mean())
                for name in ("fixed N=1", "fixed N=8", "N_D", "t2", "hybrid")
            },
            "t2_samples_per_run": float(t2.samples[mask].mean()),
        }
    step_table = {}
    for task in sorted(set(steps.tasks)):
        mask = np.array([t == task for t in steps.tasks])
        step_table[task] = {
            "steps": int(mask.sum()),
            "acc@1": float(steps.curves[mask, 0].mean()),
            f"acc@{n_d}": float(steps.curves[mask, n_d - 1].mean()),
            "t2_mean_n": float(steps.t2[mask].mean()),
            "flagged": float(steps.flagged[mask].mean()),
            "t2_vs_fixed_equal_cost": _step_gain(steps.curves[mask], steps.t2[mask], n_d, args),
        }
    step_table["all"] = {
        "steps": len(steps.t2),
        "acc@1": float(steps.curves[:, 0].mean()),
        f"acc@{n_d}": float(steps.curves[:, n_d - 1].mean()),
        "t2_mean_n": float(steps.t2.mean()),
        "flagged": float(steps.flagged.mean()),
        "t2_vs_fixed_equal_cost": _step_gain(steps.curves, steps.t2, n_d, args),
    }
    report = {
        "command": "python " + " ".join(sys.argv),
        "estimator": args.estimator,
        "data": args.data,
        **info,
        "runs_by_steps": {str(k): int(v) for k, v in sorted(Counter(n_steps.tolist()).items())},
        "flagged_steps": float(steps.flagged.mean()),
        "policies": {name: runs.summary() for name, runs in policies.items()},
        "t2_sweep": {str(price): runs.summary() for price, runs in sweep.items()},
        "fixed_curve": {str(n): runs.summary() for n, runs in fixed.items()},
        "run_budget": budget_rows,
        "targets": targets,
        "by_chain_kind": by_kind,
        "steps_by_family": step_table,
        "replays": args.replays,
        "resamples": args.resamples,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("chains", "steps", "targets")}, indent=1))
    return 0


POLICIES_LIVE = ("t2", "fixed8", "hybrid")


def _thinking(name: str, engine: Any, est: T2Estimator, seed: int) -> Any:
    from t2_agents.budget.policies import FixedPolicy
    from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph

    policy = FixedPolicy(8) if name == "fixed8" else T2Policy(est, engine=engine)
    context = ThinkingContext(
        n_max=M,
        max_tokens=MAX_TOKENS,
        temperature=0.7,
        seed=seed,
        stop=StopRule(kind="hybrid") if name == "hybrid" else None,
    )
    return build_parallel_thinking_graph(engine=engine, policy=policy, context=context)


def _live(args: argparse.Namespace) -> int:
    """Run the first ``--runs`` chains live through the chain workflow; resumable (JSONL)."""
    from t2_agents.agents.chains import build_chain_graph, run_chain
    from t2_agents.backends.factory import load_engine
    from t2_agents.graph import CostLedger

    est = T2Estimator.load(args.estimator)
    kept, steps, _ = _load(args, est)
    subset = kept[: args.runs]
    done: set[tuple[str, str]] = set()
    if args.log.exists():
        for line in args.log.read_text().splitlines():
            row = json.loads(line)
            done.add((row["policy"], row["chain"]))
    todo = [(p, c) for p in args.policies for c in subset if (p, c.id) not in done]
    print(f"{len(done)} runs logged, {len(todo)} to go", flush=True)
    if todo:
        began = time.perf_counter()
        engine = load_engine(kind=args.engine)
        print(f"engine loaded in {time.perf_counter() - began:.0f} s", flush=True)
        graphs = {
            p: build_chain_graph(_thinking(p, engine, est, args.live_seed)) for p in args.policies
        }
        ledger = CostLedger()
        args.log.parent.mkdir(parents=True, exist_ok=True)
        with args.log.open("a") as log:
            for number, (name, chain) in enumerate(todo, start=1):
                run = run_chain(graphs[name], chain, ledger=ledger, thread_id=f"{name}-{chain.id}")
                records = ledger.steps[-len(run.answers) :] if run.answers else []
                row = {
                    "policy": name,
                    **dataclasses.asdict(run),
                    "n_chosen": [s.n_chosen for s in records],
                }
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(
                    f"[{number}/{len(todo)}] {name} {chain.id} success={run.success} "
                    f"samples={run.samples} {run.seconds:.1f}s",
                    flush=True,
                )
        getattr(engine, "close", lambda: None)()
    return _live_report(args, kept, steps, subset)


def _live_report(
    args: argparse.Namespace, kept: list[Chain], steps: _Steps, subset: list[Chain]
) -> int:
    position = {c.id: i for i, c in enumerate(kept)}
    rows = [json.loads(line) for line in args.log.read_text().splitlines()]
    replayed = {
        "t2": _fixed_budgets(steps, steps.t2),
        "fixed8": _fixed_budgets(steps, np.full(len(steps.t2), 8, dtype=np.int64)),
    }
    replayed["hybrid"], hybrid_credit = _hybrid(steps, args.replays)
    golds = {c.id: [q.prompt for q in c.gold_questions()] for c in subset}
    report: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "policies": {}}
    for name in args.policies:
        mine = [r for r in rows if r["policy"] == name and r["chain"] in golds]
        if not mine:
            continue
        index = np.array([position[r["chain"]] for r in mine])
        replay = replayed[name]
        # Steps asked exactly as gold-chained (every earlier step right): T2's N live vs replay.
        same_n, asked, right_live, right_replay = 0, 0, [], []
        for r in mine:
            chain_steps = np.flatnonzero(steps.chain_of == position[r["chain"]])
            for k in range(len(r["questions"])):
                if k >= r["right_steps"] + 1:
                    break
                q_index = int(chain_steps[k])
                asked += 1
                n_live = r["n_chosen"][k] if k < len(r["n_chosen"]) else None
                if name == "t2":
                    same_n += int(n_live == int(steps.t2[q_index]))
                right_live.append(float(k < r["right_steps"]))
                right_replay.append(
                    float(
                        steps.curves[q_index, (n_live or 1) - 1]
                        if name != "hybrid"
                        else hybrid_credit[q_index]
                    )
                )
        report["policies"][name] = {
            "runs": len(mine),
            "live": {
                "run_success": float(np.mean([r["success"] for r in mine])),
                "samples_per_run": float(np.mean([r["samples"] for r in mine])),
                "tokens_per_run": float(np.mean([r["completion_tokens"] for r in mine])),
                "rounds_per_run": float(np.mean([r["rounds"] for r in mine])),
                "seconds_per_run": float(np.mean([r["seconds"] for r in mine])),
            },
            "replay": {
                "run_success": float(replay.success[index].mean()),
                "samples_per_run": float(replay.samples[index].mean()),
                "tokens_per_run": float(replay.tokens[index].mean()),
                "rounds_per_run": float(replay.rounds[index].mean()),
            },
            "live_minus_replay_run_success": _diff(
                np.array([float(r["success"]) for r in mine]),
                replay.success[index],
                args.resamples,
            ),
            "gold_chained_steps": {
                "asked": asked,
                "live_accuracy": float(np.mean(right_live)),
                "replay_accuracy": float(np.mean(right_replay)),
                "t2_same_n": None if name != "t2" else same_n / max(1, asked),
            },
        }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["policies"], indent=1))
    return 0


def _plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(args.results.read_text())

    def xy(rows: dict[str, Any]) -> tuple[list[float], list[float]]:
        pts = sorted((r["samples_per_run"], 100 * r["run_success"]) for r in rows.values())
        return [x for x, _ in pts], [y for _, y in pts]

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.plot(*xy(data["fixed_curve"]), "-", color="0.5", label="fixed N per step (N = 1..32)")
    ax.plot(*xy(data["t2_sweep"]), "o-", color="C0", ms=4, label="T2 per call, knob swept")
    budgets = data["run_budget"]
    for objective, color in (("sum", "C2"), ("success", "C3")):
        rows = {k: v[objective] for k, v in budgets.items() if k != "same total as t2"}
        ax.plot(*xy(rows), "s--", color=color, ms=4, label=f"run budget, objective={objective}")
    pol = data["policies"]
    marks = (("t2", "C0", "*", "T2 (default knob)"), ("hybrid", "C1", "D", "hybrid"),
             ("N_D", "k", "^", f"fixed N_D = {data['n_d']}"))  # fmt: skip
    for name, color, marker, label in marks:
        r = pol[name]
        ax.plot(r["samples_per_run"], 100 * r["run_success"], marker, color=color, ms=10,
                label=label, linestyle="none")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("samples per run (log scale)")
    ax.set_ylabel("run success, % (every step right)")
    ax.set_title(f"{data['chains']} held-out runs of 2-4 dependent steps (replay, gold-chained)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="write the gold-chained step questions as JSONL")
    replay = sub.add_parser("replay", help="replay every policy on the collected pools")
    for p in (plan, replay):
        p.add_argument("--estimator", default=SHIPPED)
        p.add_argument("--chains", type=int, default=CHAINS)
        p.add_argument("--seed", type=int, default=SEED)
        p.add_argument("--out", type=Path, required=True)
    live = sub.add_parser("live", help="run a subset live through the chain workflow")
    for p in (replay, live):
        p.add_argument("--data", default=DATA)
        p.add_argument("--replays", type=int, default=200)
        p.add_argument("--resamples", type=int, default=2000)
    live.add_argument("--estimator", default=SHIPPED)
    live.add_argument("--chains", type=int, default=CHAINS)
    live.add_argument("--seed", type=int, default=SEED)
    live.add_argument("--out", type=Path, required=True)
    live.add_argument("--runs", type=int, default=60)
    live.add_argument("--engine", default="vllm")
    live.add_argument("--live-seed", type=int, default=7)
    live.add_argument("--policies", type=lambda t: tuple(t.split(",")), default=POLICIES_LIVE)
    live.add_argument("--log", type=Path, default=Path("runs/multistep/live.jsonl"))
    plot = sub.add_parser("plot", help="the Pareto plot of run success vs samples per run")
    plot.add_argument("--results", type=Path, default=Path("bench/results/multistep.json"))
    plot.add_argument("--out", type=Path, default=Path("docs/multistep_pareto.png"))
    args = parser.parse_args(argv)
    commands = {"plan": _plan, "replay": _replay, "live": _live, "plot": _plot}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
