"""Budget-aware self-consistency as one step of a multi-step agent graph.

A small "worksheet" agent: ``plan -> solve -> review -> (solve | report)``.

- ``plan`` (deterministic) turns a list of questions into the worksheet and picks the first one;
- ``solve`` *is* the parallel-thinking graph, added as a subgraph node: it reads the parent's
  ``question`` and writes back ``answer``, ``n``, ``verdict`` and ``cost``; its budget policy
  (T2 when an estimator is available) chooses N for every question separately;
- ``review`` grades the answer, flags low agreement (winning vote share below ``--min-share``)
  and moves to the next question;
- ``report`` sums up accuracy and cost.

Run it (the model loads in about 15 s; a few minutes on 2 CPU cores)::

    python examples/budget_aware_self_consistency.py --questions 4 --estimator PATH

Without ``--estimator`` it uses the T2 estimator shipped for the default model, or, when there
is none yet, a fixed budget of ``--n-max`` paths (and says so).
"""

from __future__ import annotations

import argparse
import operator
from collections.abc import Sequence
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from rich.console import Console
from rich.table import Table
from typing_extensions import TypedDict

from t2_agents import (
    CostLedger,
    Engine,
    ThinkingContext,
    build_parallel_thinking_graph,
    choose_policy,
)
from t2_agents.agents import AGENT_TASKS
from t2_agents.evaluate.questions import heldout_questions
from t2_agents.graph import ThinkingGraph
from t2_agents.graph.ledger import StepRecord
from t2_agents.tasks import Question

__all__ = ["WorksheetState", "build_worksheet_agent", "main"]


class WorksheetState(TypedDict, total=False):
    """State of the worksheet agent."""

    items: list[dict[str, str]]
    """The worksheet: ``id``, ``task``, ``prompt`` and ``gold`` of every question."""
    index: int
    """The question being solved."""
    question: str
    """Its prompt (read by the ``solve`` subgraph)."""
    answer: str | None
    """The voted answer (written by ``solve``)."""
    n: int
    """The budget ``solve`` chose."""
    policy: str
    """The budget policy's name."""
    verdict: dict[str, Any] | None
    """The vote (written by ``solve``)."""
    cost: dict[str, Any] | None
    """The step's cost record (written by ``solve``)."""
    results: Annotated[list[dict[str, Any]], operator.add]
    """One reviewed row per solved question."""
    report: dict[str, Any]
    """The final summary."""


def build_worksheet_agent(
    thinking: ThinkingGraph, *, questions: Sequence[Question], min_share: float = 0.5
) -> CompiledStateGraph[WorksheetState, None, WorksheetState, WorksheetState]:
    """The ``plan -> solve -> review -> report`` agent with ``thinking`` as its solve step.

    Args:
        thinking: The parallel-thinking graph (added as the ``solve`` subgraph node).
        questions: Questions with gold answers, used by ``review`` to grade.
        min_share: Answers whose winning vote share is below this are flagged ``uncertain``.

    Returns:
        The compiled agent; invoke it with ``{"items": [...]}`` (see :func:`main`).

    Example:
        >>> from t2_agents.backends.fake import FakeEngine
        >>> qs = heldout_questions(2, tasks=("products",), seed=1)
        >>> agent = build_worksheet_agent(
        ...     build_parallel_thinking_graph(engine=FakeEngine(), n_max=2), questions=qs
        ... )
        >>> out = agent.invoke({"items": [{"id": q.id} for q in qs]})
        >>> [row["n"] for row in out["results"]]
        [2, 2]
    """
    by_id = {q.id: q for q in questions}

    def plan(state: WorksheetState) -> dict[str, Any]:
        items = [
            {"id": q.id, "task": q.task, "prompt": q.prompt, "gold": q.gold}
            for q in (by_id[item["id"]] for item in state["items"])
        ]
        return {"items": items, "index": 0, "question": items[0]["prompt"]}

    def review(state: WorksheetState) -> dict[str, Any]:
        item = state["items"][state["index"]]
        cost = state.get("cost") or {}
        verdict = state.get("verdict") or {}
        share = float(verdict.get("share", 0.0))
        row = {
            "id": item["id"],
            "task": item["task"],
            "gold": item["gold"],
            "answer": state.get("answer"),
            "correct": by_id[item["id"]].is_correct(state.get("answer")),
            "n": state.get("n"),
            "policy": state.get("policy"),
            "share": share,
            "uncertain": share < min_share,
            "samples": int(cost.get("samples", 0)),
            "completion_tokens": int(cost.get("completion_tokens", 0)),
            "seconds": float(cost.get("wall_seconds", 0.0)),
            "cost": dict(cost),
        }
        update: dict[str, Any] = {"results": [row], "index": state["index"] + 1}
        if state["index"] + 1 < len(state["items"]):
            update["question"] = state["items"][state["index"] + 1]["prompt"]
        return update

    def next_step(state: WorksheetState) -> str:
        return "solve" if state["index"] < len(state["items"]) else "report"

    def report(state: WorksheetState) -> dict[str, Any]:
        rows = state.get("results", [])
        ledger = CostLedger(StepRecord.from_dict(row["cost"]) for row in rows if row["cost"])
        summary = ledger.summary()
        return {
            "report": {
                "questions": len(rows),
                "correct": sum(row["correct"] for row in rows),
                "accuracy": sum(row["correct"] for row in rows) / len(rows) if rows else None,
                "uncertain": sum(row["uncertain"] for row in rows),
                "samples": summary["samples"],
                "mean_n": summary["mean_n"],
                "utilisation": summary["utilisation"],
                "completion_tokens": summary["completion_tokens"],
                "seconds": summary["wall_seconds"],
            }
        }

    builder = StateGraph(WorksheetState)
    builder.add_node("plan", plan)
    builder.add_node("solve", thinking)
    builder.add_node("review", review)
    builder.add_node("report", report)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "solve")
    builder.add_edge("solve", "review")
    builder.add_conditional_edges("review", next_step, ["solve", "report"])
    builder.add_edge("report", END)
    return builder.compile(name="worksheet_agent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=4, help="questions on the worksheet")
    parser.add_argument("--tasks", default=",".join(AGENT_TASKS), help="reasoning-gym tasks")
    parser.add_argument("--seed", type=int, default=2026, help="dataset and sampling seed")
    parser.add_argument("--n-max", type=int, default=8, help="largest budget per question")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per path")
    parser.add_argument("--min-share", type=float, default=0.5, help="flag answers below this")
    parser.add_argument("--estimator", default=None, help="T2 estimator folder")
    return parser


def main(argv: Sequence[str] | None = None, *, engine: Engine | None = None) -> dict[str, Any]:
    """Run the worksheet agent and print the reviewed rows and the report.

    Args:
        argv: Command-line arguments (see ``--help``); None reads ``sys.argv``.
        engine: An engine to reuse; None loads the default model.

    Returns:
        ``{"policy": name, "rows": [...], "report": {...}}``.
    """
    args = _parser().parse_args(argv)
    console = Console()
    if engine is None:
        from t2_agents import TransformersEngine

        engine = TransformersEngine()
    policy = choose_policy(
        engine,
        args.estimator,
        fallback_n=args.n_max,
        on_fallback=lambda text: console.print(f"[yellow]note:[/] {text}"),
    )
    questions = heldout_questions(args.questions, tasks=args.tasks.split(","), seed=args.seed)
    context = ThinkingContext(n_max=args.n_max, max_tokens=args.max_tokens, seed=args.seed)
    thinking = build_parallel_thinking_graph(engine=engine, policy=policy, context=context)
    agent = build_worksheet_agent(thinking, questions=questions, min_share=args.min_share)
    out = agent.invoke(
        {"items": [{"id": q.id} for q in questions]},
        {"recursion_limit": 3 * len(questions) + 10},
    )
    table = Table(title=f"Worksheet ({policy.name})")
    for column in ("id", "gold", "answer", "N", "share", "tokens", "seconds"):
        table.add_column(column)
    for row in out["results"]:
        mark = "[green]✓[/]" if row["correct"] else "[red]✗[/]"
        flag = " [yellow](uncertain)[/]" if row["uncertain"] else ""
        table.add_row(
            row["id"],
            row["gold"],
            f"{mark} {row['answer']}{flag}",
            str(row["n"]),
            f"{row['share']:.2f}",
            str(row["completion_tokens"]),
            f"{row['seconds']:.1f}",
        )
    console.print(table)
    console.print(out["report"])
    return {"policy": policy.name, "rows": out["results"], "report": out["report"]}


if __name__ == "__main__":
    main()
