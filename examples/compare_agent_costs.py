"""Compare an agent's cost with a fixed budget and with T2 on the same questions.

The agent is the one of ``per_tool_call_reasoning.py`` (``create_agent`` with the
parallel-thinking graph as its ``solve`` tool, one call per question). It runs twice on the same
held-out questions: every tool call with ``FixedPolicy(n_max)`` (plain self-consistency), then
with T2 choosing N per call in ``[1, n_max]``. The script prints accuracy, samples, tokens and
wall time side by side (from the two cost ledgers, :func:`t2_agents.graph.compare_ledgers`) and
writes a PNG bar chart to ``--plot``.

T2 needs an estimator: ``--estimator PATH``, or the one shipped for the default model.

Run it (the model loads in about 15 s; a few minutes on 2 CPU cores)::

    python examples/compare_agent_costs.py --questions 6 --estimator PATH --plot costs.png
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from t2_agents.agents import AGENT_TASKS, make_agent, run_agent
from t2_agents.backends.base import Engine
from t2_agents.data import Question
from t2_agents.demo import demo_questions, load_t2_policy
from t2_agents.graph import (
    CostLedger,
    ThinkingContext,
    build_parallel_thinking_graph,
    compare_ledgers,
)
from t2_agents.policies import BudgetPolicy, FixedPolicy

__all__ = ["main", "plot_costs", "run_policy"]

_METRICS = (
    ("accuracy", "accuracy"),
    ("samples", "samples"),
    ("mean N", "mean_n"),
    ("completion tokens", "completion_tokens"),
    ("total tokens", "total_tokens"),
    ("wall seconds", "seconds"),
)


def run_policy(
    engine: Engine,
    policy: BudgetPolicy,
    questions: Sequence[Question],
    *,
    n_max: int,
    max_tokens: int,
    seed: int,
) -> tuple[dict[str, Any], CostLedger]:
    """Run the agent once with ``policy`` on ``questions``.

    Returns:
        ``(totals, ledger)``: ``totals`` holds ``policy``, ``accuracy``, ``samples``,
        ``mean_n``, ``completion_tokens``, ``total_tokens``, ``seconds`` (the agent's wall
        time) and ``calls`` (see :func:`t2_agents.agents.run_agent`); ``ledger`` the cost records.

    Example:
        >>> from t2_agents.graph.testing import FakeEngine
        >>> qs = demo_questions(2, tasks=("products",), seed=1)
        >>> totals, _ = run_policy(FakeEngine(), FixedPolicy(3), qs, n_max=3, max_tokens=8, seed=0)
        >>> totals["samples"], totals["policy"]
        (6, 'fixed-3')
    """
    context = ThinkingContext(n_max=n_max, max_tokens=max_tokens, seed=seed)
    thinking = build_parallel_thinking_graph(engine=engine, policy=policy, context=context)
    ledger = CostLedger()
    out = run_agent(make_agent(thinking, ledger=ledger), questions)
    summary = ledger.summary()
    correct = sum(call["correct"] for call in out["calls"])
    totals = {
        "policy": policy.name,
        "accuracy": correct / len(questions),
        "correct": correct,
        "samples": summary["samples"],
        "mean_n": summary["mean_n"],
        "completion_tokens": summary["completion_tokens"],
        "total_tokens": summary["total_tokens"],
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
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (title, key) in zip(axes, panels, strict=True):
        values = [float(runs[label][key]) for label in labels]
        bars = ax.bar(labels, values, color=["#8c8c8c", "#2b7bba"][: len(labels)])
        ax.bar_label(bars, fmt="%.3g")
        ax.set_title(title)
        if key == "accuracy":
            ax.set_ylim(0.0, 1.1)
        else:
            ax.margins(y=0.15)
    fig.suptitle("Agent cost: fixed budget vs T2 (same questions)")
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
    return parser


def main(argv: Sequence[str] | None = None, *, engine: Engine | None = None) -> dict[str, Any]:
    """Run the agent with a fixed budget and with T2; print the table and write the plot.

    Args:
        argv: Command-line arguments (see ``--help``); None reads ``sys.argv``.
        engine: An engine to reuse; None loads the default model.

    Returns:
        ``{"fixed": totals, "t2": totals, "comparison": compare_ledgers(...), "plot": path}``.

    Raises:
        ArtifactError: No estimator given or shipped (train one with ``t2 train`` or pass
            ``--estimator``), or it fits another model.
    """
    args = _parser().parse_args(argv)
    console = Console()
    if engine is None:
        from t2_agents.backends.transformers import TransformersEngine

        engine = TransformersEngine()
    t2 = load_t2_policy(engine, args.estimator)
    fixed = FixedPolicy(args.n_max)
    questions = demo_questions(args.questions, tasks=args.tasks.split(","), seed=args.seed)
    settings = {"n_max": args.n_max, "max_tokens": args.max_tokens, "seed": args.seed}
    fixed_totals, fixed_ledger = run_policy(engine, fixed, questions, **settings)
    t2_totals, t2_ledger = run_policy(engine, t2, questions, **settings)
    comparison = compare_ledgers(fixed_ledger, t2_ledger, labels=(fixed.name, t2.name))

    table = Table(title=f"The same agent on {len(questions)} questions")
    table.add_column("metric")
    table.add_column(fixed.name, justify="right")
    table.add_column(t2.name, justify="right")
    table.add_column("t2 / fixed", justify="right")
    for label, key in _METRICS:
        a, b = fixed_totals[key], t2_totals[key]
        ratio = f"{b / a:.2f}" if a else "-"
        table.add_row(label, f"{a:.3g}", f"{b:.3g}", ratio)
    console.print(table)
    console.print("N per call: " + ", ".join(str(call["n"]) for call in t2_totals["calls"]))
    plot = plot_costs({fixed.name: fixed_totals, t2.name: t2_totals}, args.plot)
    console.print(f"plot written to {plot}")
    return {"fixed": fixed_totals, "t2": t2_totals, "comparison": comparison, "plot": str(plot)}


if __name__ == "__main__":
    main()
