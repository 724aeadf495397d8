"""Graph overheads: batched vs Send fan-out, and the budget node's share of a step.

Same engine, same question, same N, measured alternately in one run (shared machines are noisy,
so read the ratios):

    python bench/fanout.py --ns 8,32 --repeats 2 --out bench/results/fanout.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from t2_agents.backends.transformers import TransformersEngine
from t2_agents.budget.policies import FixedPolicy, T2Policy
from t2_agents.budget.shipped import default_estimator_path
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.graph import build_parallel_thinking_graph
from t2_agents.tasks import load_task

_CONFIG = {"max_digits": 1, "max_terms": 3, "allow_parentheses": False}


def _step(graph: Any, question: str, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    state = graph.invoke({"question": question}, config={"configurable": {"t2": {"seed": seed}}})
    return {"wall": time.perf_counter() - started, "cost": state["cost"]}


def _fanout_rows(
    engine: TransformersEngine, question: str, ns: list[int], repeats: int
) -> list[dict[str, Any]]:
    rows = []
    for n in ns:
        graphs = {
            mode: build_parallel_thinking_graph(
                engine=engine, policy=FixedPolicy(n), fanout=mode, n_max=n
            )
            for mode in ("batched", "send")
        }
        walls: dict[str, list[float]] = {"batched": [], "send": []}
        for r in range(repeats):
            for mode, graph in graphs.items():
                walls[mode].append(_step(graph, question, seed=r)["wall"])
        batched, send = statistics.median(walls["batched"]), statistics.median(walls["send"])
        rows.append(
            {"n": n, "batched_s": batched, "send_s": send, "send_over_batched": send / batched}
        )
    return rows


def _budget_share(engine: TransformersEngine, question: str, repeats: int) -> dict[str, Any]:
    path = default_estimator_path()
    if path is None:
        return {"skipped": "no shipped estimator"}
    policy = T2Policy(T2Estimator.load(path), engine=engine)
    graph = build_parallel_thinking_graph(engine=engine, policy=policy, n_max=16)
    costs = [_step(graph, question, seed=r)["cost"] for r in range(repeats)]
    budget = statistics.median(c["node_seconds"]["budget"] for c in costs)
    wall = statistics.median(c["wall_seconds"] for c in costs)
    return {
        "budget_s": budget,
        "step_s": wall,
        "budget_share": budget / wall,
        "n_chosen": [c["n_chosen"] for c in costs],
        "layers": len(policy.layers),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ns", default="8,32")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    engine = TransformersEngine()
    question = load_task("basic_arithmetic", size=1, seed=11, config=_CONFIG)[0].prompt
    rows = _fanout_rows(engine, question, [int(x) for x in args.ns.split(",")], args.repeats)
    print("| N | batched (s) | send (s) | send / batched |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['n']} | {row['batched_s']:.1f} | {row['send_s']:.1f} | "
              f"{row['send_over_batched']:.2f} |")  # fmt: skip
    share = _budget_share(engine, question, args.repeats)
    print("budget node:", json.dumps(share))
    result = {"fanout": rows, "budget": share}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
