"""Compare an agent's cost under four budget policies on the same questions (``t2 compare``).

The agent is the one of ``per_tool_call_reasoning.py`` (``create_agent`` with the
parallel-thinking graph as its ``solve`` tool). Every held-out question is one agent run, under
each policy of :func:`t2_agents.evaluate.agent_compare.compare_agent`:

- ``fixed``: every tool call samples ``n_max`` paths (plain self-consistency);
- ``t2``: T2 chooses N per call in ``[1, n_max]``;
- ``budget``: T2 under one :class:`~t2_agents.graph.RunBudget` per run (``--run-budget``
  samples; default: what per-call T2 spent per run, so both cost about the same);
- ``hybrid``: a first wave of T2's N, then waves of ``--window`` paths until the vote is
  decisive or ``n_max``.

It prints accuracy, samples, tokens, engine calls, rounds and wall time per run side by side
(with paired intervals against ``fixed``), writes a PNG bar chart to ``--plot`` and, with
``--json``, the results to a file. The same as
``t2 compare --tasks FILE.jsonl --policies fixed,t2,budget,hybrid`` on your own tasks.

T2 needs an estimator: ``--estimator PATH``, or the one shipped for the default model.

Run it (the model loads in about 15 s; a few minutes on 2 CPU cores)::

    python examples/compare_agent_costs.py --questions 6 --estimator PATH --plot costs.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from t2_agents import BudgetPolicy, Engine, load_t2_policy
from t2_agents.agents import AGENT_TASKS
from t2_agents.evaluate.agent_compare import CompareConfig, compare_agent, plot_comparison
from t2_agents.evaluate.questions import heldout_questions

__all__ = ["RUNS", "main"]

RUNS = ("fixed", "t2", "budget", "hybrid")
"""The four policies, in order."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=6, help="questions (agent runs)")
    parser.add_argument("--tasks", default=",".join(AGENT_TASKS), help="reasoning-gym tasks")
    parser.add_argument("--seed", type=int, default=2026, help="dataset and sampling seed")
    parser.add_argument("--n-max", type=int, default=8, help="fixed budget = T2's largest N")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per path")
    parser.add_argument("--estimator", default=None, help="T2 estimator folder")
    parser.add_argument("--plot", default="compare_agent_costs.png", help="PNG file to write")
    parser.add_argument(
        "--run-budget", type=int, default=None, help="samples per run (default: T2's)"
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
        :meth:`~t2_agents.evaluate.agent_compare.AgentComparison.to_dict` plus ``plot``.

    Raises:
        ArtifactError: No estimator given or shipped (train one with ``t2 train`` or pass
            ``--estimator``), or it fits another model.
        ConfigError: ``--run-budget`` below one sample, ``--window`` above ``--n-max``.
    """
    args = _parser().parse_args(argv)
    config = CompareConfig(
        policies=RUNS, n_max=args.n_max, max_tokens=args.max_tokens, seed=args.seed,
        window=args.window, run_budget=args.run_budget,
    )  # fmt: skip
    if engine is None:
        from t2_agents import TransformersEngine

        engine = TransformersEngine()
    t2 = policy if policy is not None else load_t2_policy(engine, args.estimator)
    questions = heldout_questions(args.questions, tasks=args.tasks.split(","), seed=args.seed)
    result = compare_agent(questions, engine=engine, t2_policy=t2, config=config)
    header, rows = result.table()
    table = Table(title=f"The same agent on {result.tasks} questions, means per run")
    for column in header:
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    out = result.to_dict() | {"plot": str(plot_comparison(result, args.plot))}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n", "utf-8")
    return out


if __name__ == "__main__":
    main()
