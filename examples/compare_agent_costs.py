"""Compare an agent's cost under four budget policies on the same questions.

The agent is the one of ``per_tool_call_reasoning.py`` (``create_agent`` with the
parallel-thinking graph as its ``solve`` tool, one call per question). It runs four times on the
same held-out questions:

- ``fixed``: every tool call samples ``FixedPolicy(n_max)`` paths (plain self-consistency);
- ``t2``: T2 chooses N per call in ``[1, n_max]``;
- ``t2+run budget``: T2 under one :class:`~t2_agents.graph.RunBudget` for the whole agent run
  (``--run-budget`` samples; default: what per-call T2 spent, so both cost the same);
- ``hybrid``: a first wave of T2's N, then waves of ``--window`` paths until the vote is
  decisive or ``n_max`` (:class:`~t2_agents.budget.stop_rules.StopRule`).

It prints accuracy, samples, tokens, wall time and engine calls side by side (from the cost
ledgers), writes a PNG bar chart to ``--plot`` and, with ``--json``, the results to a file.

T2 needs an estimator: ``--estimator PATH``, or the one shipped for the default model.

Run it (the model loads in about 15 s; a few minutes on 2 CPU cores)::

    python examples/compare_agent_costs.py --questions 6 --estimator PATH --plot costs.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from t2_agents import (
    BudgetPolicy,
    CostLedger,
    Engine,
    FixedPolicy,
    RunBudget,
    StopRule,
    ThinkingContext,
    build_parallel_thinking_graph,
    load_t2_policy,
    make_agent,
)
from t2_agents.agents import AGENT_TASKS, run_agent
from t2_agents.evaluate.questions import heldout_questions
from t2_agents.graph import compare_ledgers
from t2_agents.tasks import Question

__all__ = ["RUNS", "main", "plot_costs", "run_policy"]

RUNS = ("fixed", "t2", "t2+run budget", "hybrid")
"""The four runs, in order."""

_METRICS = (
    ("accuracy", "accuracy"),
    ("samples", "samples"),
    ("mean N", "mean_n"),
    ("completion tokens", "completion_tokens"),
    ("total tokens", "total_tokens"),
    ("wall seconds", "seconds"),
    ("engine calls", "engine_calls"),
)
_COLORS = ["#8c8c8c", "#2b7bba", "#e08a1e", "#3a9a4a"]


def run_policy(
    engine: Engine,
    policy: BudgetPolicy,
    questions: Sequence[Question],
    *,
    n_max: int,
    max_tokens: int,
    seed: int,
    stop: StopRule | None = None,
    run_budget: RunBudget | None = None,
) -> tuple[dict[str, Any], CostLedger]:
    """Run the agent once with ``policy`` on ``questions``.

    Args:
        engine: The engine.
        policy: Chooses N per tool call.
        questions: One tool call each.
        n_max: Largest N per call.
        max_tokens: Tokens per path.
        seed: Sampling seed.
        stop: Sample in waves by this rule (the hybrid).
        run_budget: One budget for the whole agent run (one ``thread_id``).

    Returns:
        ``(totals, ledger)``: ``totals`` holds ``policy``, ``accuracy``, ``samples``,
        ``mean_n``, ``completion_tokens``, ``total_tokens``, ``engine_calls``, ``seconds``
        (the agent's wall time) and ``calls`` (see :func:`t2_agents.agents.run_agent`);
        ``ledger`` the cost records.

    Example:
        >>> from t2_agents.backends.fake import FakeEngine
        >>> qs = heldout_questions(2, tasks=("products",), seed=1)
        >>> totals, _ = run_policy(FakeEngine(), FixedPolicy(3), qs, n_max=3, max_tokens=8, seed=0)
        >>> totals["samples"], totals["policy"]
        (6, 'fixed-3')
    """
    context = ThinkingContext(n_max=n_max, max_tokens=max_tokens, seed=seed, stop=stop)
    thinking = build_parallel_thinking_graph(engine=engine, policy=policy, context=context)
    ledger = CostLedger()
    agent = make_agent(thinking, ledger=ledger, run_budget=run_budget)
    out = run_agent(agent, questions, config={"configurable": {"thread_id": "compare"}})
    summary = ledger.summary()
    correct = sum(call["correct"] for call in out["calls"])
    totals = {
        "policy": ledger.steps[0].policy if ledger.steps else policy.name,
        "accuracy": correct / len(questions),
        "correct": correct,
        "samples": summary["samples"],
        "mean_n": summary["mean_n"],
        "completion_tokens": summary["completion_tokens"],
        "total_tokens": summary["total_tokens"],
        "engine_calls": summary["engine_calls"],
        "over_budget": summary["over_budget"],
        "seconds": out["seconds"],
        "calls": out["calls"],
    }
    return totals, ledger


def plot_costs(runs: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Write a bar chart (accuracy, samples, tokens, wall time per policy) to a PNG file.

    Args:
        runs: Policy label -> totals from :func:`run_policy`.
        path: The PNG file to write (its folder is created).

    Returns:
        The path written.

    Example:
        >>> runs = {"fixed-8": {"accuracy": 0.5, "samples": 16, "completion_tokens": 400,
        ...                     "seconds": 9.0}, "t2": {"accuracy": 0.5, "samples": 6,
        ...                     "completion_tokens": 150, "seconds": 4.0}}
        >>> plot_costs(runs, "/tmp/costs.png").suffix  # doctest: +SKIP
        '.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(runs)
    panels = (
        ("accuracy", "accuracy"),
        ("samples", "samples"),
        ("completion tokens", "completion_tokens"),
        ("wall seconds", "seconds"),
        ("engine calls", "engine_calls"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (title, key) in zip(axes, panels, strict=True):
        values = [float(runs[label].get(key) or 0.0) for label in labels]
        bars = ax.bar(labels, values, color=_COLORS[: len(labels)])
        ax.tick_params(axis="x", labelrotation=30)
        ax.bar_label(bars, fmt="%.3g")
        ax.set_title(title)
        if key == "accuracy":
            ax.set_ylim(0.0, 1.1)
        else:
            ax.margins(y=0.15)
    fig.suptitle("Agent cost by budget policy (same questions)")
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=6, help="questions (tool calls)")
    parser.add_argument("--tasks", default=",".join(AGENT_TASKS), help="reasoning-gym tasks")
    parser.add_argument("--seed", type=int, default=2026, help="dataset and sampling seed")
    parser.add_argument("--n-max", type=int, default=8, help="fixed budget = T2's largest N")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per path")
    parser.add_argument("--estimator", default=None, help="T2 estimator folder")
    parser.add_argument("--plot", default="compare_agent_costs.png", help="PNG file to write")
    parser.add_argument(
        "--run-budget", type=int, default=None, help="samples for the whole run (default: T2's)"
    )
    parser.add_argument("--window", type=int, default=4, help="hybrid follow-up wave size")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    engine: Engine | None = None,
    policy: BudgetPolicy | None = None,
) -> dict[str, Any]:
    """Run the agent under the four policies of :data:`RUNS`; print the table, write the plot.

    Args:
        argv: Command-line arguments (see ``--help``); None reads ``sys.argv``.
        engine: An engine to reuse; None loads the default model.
        policy: The T2 policy to use instead of loading ``--estimator`` (tests).

    Returns:
        ``{"runs": {name: totals}, "fixed"/"t2": totals, "run_budget": samples,
        "comparison": compare_ledgers(fixed, t2), "settings": ..., "plot": path}``.

    Raises:
        ArtifactError: No estimator given or shipped (train one with ``t2 train`` or pass
            ``--estimator``), or it fits another model.
        ConfigError: ``--run-budget`` below one sample per question, ``--window`` above
            ``--n-max``.
    """
    args = _parser().parse_args(argv)
    console = Console()
    if engine is None:
        from t2_agents import TransformersEngine

        engine = TransformersEngine()
    t2 = policy if policy is not None else load_t2_policy(engine, args.estimator)
    hybrid = StopRule(kind="hybrid", window=args.window)
    hybrid.check_cap(args.n_max)
    questions = heldout_questions(args.questions, tasks=args.tasks.split(","), seed=args.seed)
    settings = {"n_max": args.n_max, "max_tokens": args.max_tokens, "seed": args.seed}
    runs: dict[str, dict[str, Any]] = {}
    ledgers: dict[str, CostLedger] = {}
    runs["fixed"], ledgers["fixed"] = run_policy(
        engine, FixedPolicy(args.n_max), questions, **settings
    )
    runs["t2"], ledgers["t2"] = run_policy(engine, t2, questions, **settings)
    total = args.run_budget if args.run_budget is not None else runs["t2"]["samples"]
    budget = RunBudget(total_samples=total, steps=len(questions))
    runs["t2+run budget"], ledgers["t2+run budget"] = run_policy(
        engine, t2, questions, run_budget=budget, **settings
    )
    runs["hybrid"], ledgers["hybrid"] = run_policy(engine, t2, questions, stop=hybrid, **settings)
    labels = (runs["fixed"]["policy"], runs["t2"]["policy"])
    comparison = compare_ledgers(ledgers["fixed"], ledgers["t2"], labels=labels)
    _print_table(console, runs, len(questions), total)
    plot = plot_costs(runs, args.plot)
    console.print(f"plot written to {plot}")
    out = {
        "runs": runs,
        "fixed": runs["fixed"],
        "t2": runs["t2"],
        "run_budget": total,
        "comparison": comparison,
        "settings": {**settings, "questions": len(questions), "window": args.window},
        "plot": str(plot),
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n", "utf-8")
    return out


def _print_table(
    console: Console, runs: Mapping[str, Mapping[str, Any]], questions: int, total: int
) -> None:
    table = Table(title=f"The same agent on {questions} questions (run budget {total} samples)")
    table.add_column("metric")
    for name in runs:
        table.add_column(name, justify="right")
    for label, key in _METRICS:
        table.add_row(label, *(f"{float(run[key] or 0):.3g}" for run in runs.values()))
    console.print(table)
    for name, run in runs.items():
        console.print(f"N per call, {name}: " + ", ".join(str(c["samples"]) for c in run["calls"]))


if __name__ == "__main__":
    main()
