"""Per-tool-call reasoning: an agent whose ``solve`` tool is the parallel-thinking graph.

The agent is LangChain's ``create_agent`` with one tool, ``solve(question)`` =
``as_tool(parallel-thinking graph)``. Every tool call is its own parallel-thinking step, so the
budget policy (T2 when an estimator is available) chooses a separate N for each call; the tool's
cost ledger collects what each call spent.

The 135M default model cannot call tools, so the agent's chat model is
:class:`t2_agents.agents.ScriptedToolCaller`, which deterministically calls ``solve`` once per
question (one call per turn, or all at once with ``--parallel``); the tool itself really samples
the default model.

Run it (the model loads in about 15 s; a few minutes on 2 CPU cores)::

    python examples/per_tool_call_reasoning.py --questions 4 --estimator PATH
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from t2_agents import (
    CostLedger,
    Engine,
    ThinkingContext,
    build_parallel_thinking_graph,
    choose_policy,
    make_agent,
)
from t2_agents.agents import AGENT_TASKS, run_agent
from t2_agents.evaluate.questions import heldout_questions

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=4, help="questions, one tool call each")
    parser.add_argument("--tasks", default=",".join(AGENT_TASKS), help="reasoning-gym tasks")
    parser.add_argument("--seed", type=int, default=2026, help="dataset and sampling seed")
    parser.add_argument("--n-max", type=int, default=8, help="largest budget per tool call")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per path")
    parser.add_argument("--estimator", default=None, help="T2 estimator folder")
    parser.add_argument("--parallel", action="store_true", help="issue all tool calls at once")
    return parser


def _note(console: Console) -> Callable[[str], None]:
    return lambda text: console.print(f"[yellow]note:[/] {text}")


def main(argv: Sequence[str] | None = None, *, engine: Engine | None = None) -> dict[str, Any]:
    """Run the agent on a few questions; print the N of every tool call and the ledger.

    Args:
        argv: Command-line arguments (see ``--help``); None reads ``sys.argv``.
        engine: An engine to reuse; None loads the default model.

    Returns:
        ``{"policy", "calls": [...], "final", "seconds", "accuracy", "ledger"}``: one row per
        tool call (``n``, ``answer``, ``correct``, ``samples``, tokens...), the agent's last
        message, wall time, and the ledger's summary.
    """
    args = _parser().parse_args(argv)
    console = Console()
    if engine is None:
        from t2_agents import TransformersEngine

        engine = TransformersEngine()
    policy = choose_policy(
        engine, args.estimator, fallback_n=args.n_max, on_fallback=_note(console)
    )
    questions = heldout_questions(args.questions, tasks=args.tasks.split(","), seed=args.seed)
    context = ThinkingContext(n_max=args.n_max, max_tokens=args.max_tokens, seed=args.seed)
    thinking = build_parallel_thinking_graph(engine=engine, policy=policy, context=context)
    ledger = CostLedger()
    agent = make_agent(thinking, ledger=ledger, tool_name="solve", parallel=args.parallel)
    out = run_agent(agent, questions)

    table = Table(title=f"One N per tool call ({policy.name}, n_max={args.n_max})")
    for column in ("call", "task", "gold", "N", "answer", "tokens", "seconds"):
        table.add_column(column)
    for call in out["calls"]:
        mark = "[green]✓[/]" if call["correct"] else "[red]✗[/]"
        table.add_row(
            str(call["index"] + 1),
            call["task"],
            call["gold"],
            str(call["n"]),
            f"{mark} {call['answer']}",
            str(call["completion_tokens"]),
            f"{call['seconds']:.1f}" if call["seconds"] is not None else "-",
        )
    console.print(table)
    summary = ledger.summary()
    console.print(
        f"ledger: {summary['steps']} calls, {summary['samples']} samples "
        f"(mean N {summary['mean_n']:.2f}, {summary['utilisation']:.0%} of n_max), "
        f"{summary['completion_tokens']} completion tokens, {summary['wall_seconds']:.1f} s"
    )
    console.print(f"agent's answer:\n{out['final']}")
    correct = sum(call["correct"] for call in out["calls"])
    return {
        "policy": policy.name,
        "calls": out["calls"],
        "final": out["final"],
        "seconds": out["seconds"],
        "accuracy": correct / len(out["calls"]),
        "ledger": summary,
    }


if __name__ == "__main__":
    main()
