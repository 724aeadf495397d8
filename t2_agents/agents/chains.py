"""A multi-step agent run as a LangGraph workflow: one thinking step per plan step, in order.

The default model cannot plan, so the plan is the task's (a
:class:`~t2_agents.families.Chain`, or any list of :class:`PlanStep`); the thinking is real.
:func:`build_chain_graph` compiles a workflow whose one node, ``step``, asks the parallel-thinking
graph the next step's question, with the previous step's voted answer written into it where the
step's text holds ``{previous}``, and loops until the plan is done. A step that finds no answer
ends the run there (it has failed; no later step is paid for). Every thinking step records its
cost in the ledger and draws on the run budget of the run's ``thread_id`` (as tool calls do).

:func:`run_chain` runs one :class:`~t2_agents.families.Chain` and grades it: the run succeeds
only if every step's answer is its gold-chained step's gold (a lucky final "yes" after a wrong
sum is a failure).

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> from t2_agents.families import generate_chains
    >>> from t2_agents.graph import CostLedger, build_parallel_thinking_graph
    >>> chain = generate_chains(size=1, seed=0)[0]
    >>> thinking = build_parallel_thinking_graph(engine=FakeEngine(), n_max=2)
    >>> run = run_chain(build_chain_graph(thinking), chain, ledger=CostLedger())
    >>> len(run.questions) >= 1, run.samples >= 1
    (True, True)
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from t2_agents.errors import ConfigError
from t2_agents.families import PREVIOUS, Chain
from t2_agents.graph import CostLedger, ThinkingGraph
from t2_agents.graph.budgets import RunAccount, RunBudget
from t2_agents.graph.state import CONFIG_KEY, with_overrides
from t2_agents.tasks import DEFAULT_INSTRUCTION

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

__all__ = ["ChainRun", "ChainState", "PlanStep", "build_chain_graph", "plan_of", "run_chain"]


@dataclass(frozen=True)
class PlanStep:
    """One step of a fixed plan."""

    text: str
    """The step's question; ``{previous}`` marks where the previous step's answer goes."""
    task: str | None = None
    """Task whose answer extractor reads this step's paths (None: the graph's default)."""


class ChainState(TypedDict, total=False):
    """State of the chain workflow: the plan in, one entry per step asked out."""

    plan: list[PlanStep]
    """The steps, in order (input)."""
    questions: Annotated[list[str], operator.add]
    """The question text each step asked (``{previous}`` filled in)."""
    answers: Annotated[list[str | None], operator.add]
    """Each step's voted answer (None: no answer)."""
    stopped: str | None
    """Why the run ended before its last step, if it did."""


def plan_of(chain: Chain) -> list[PlanStep]:
    """A chain's steps as a plan: each step's template and its family (the extractor).

    Example:
        >>> from t2_agents.families import generate_chains
        >>> [s.task for s in plan_of(generate_chains(size=1, seed=0)[0])]
        ['agent_arithmetic', 'agent_logic']
    """
    return [PlanStep(chain.template(k), step.family) for k, step in enumerate(chain.steps)]


def build_chain_graph(
    thinking: ThinkingGraph,
    *,
    instruction: str = DEFAULT_INSTRUCTION,
    name: str = "chain_agent",
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the chain workflow around a parallel-thinking graph (see the module docs).

    Args:
        thinking: A graph from :func:`~t2_agents.graph.build_parallel_thinking_graph`.
        instruction: Appended to every step's question (the calibration instruction).
        name: The workflow's name.

    Returns:
        A graph invoked with ``{"plan": [PlanStep, ...]}``; put the ledger and the run budget
        in ``configurable["t2"]`` (``ledger``, ``run_budget``) or use :func:`run_chain`.
    """

    def step(state: ChainState, config: RunnableConfig) -> dict[str, Any]:
        plan, answers = state["plan"], state.get("answers") or []
        entry = plan[len(answers)]
        text = entry.text
        if PREVIOUS in text:
            previous = answers[-1] if answers else None
            if previous is None:
                return {"stopped": f"step {len(answers) + 1} needs the previous answer: none"}
            text = text.replace(PREVIOUS, previous)
        question = f"{text.rstrip()} {instruction}".strip()
        overrides: dict[str, Any] = {} if entry.task is None else {"task": entry.task}
        out = thinking.invoke({"question": question}, with_overrides(config, overrides))
        return {"questions": [text], "answers": [out.get("answer")]}

    def route(state: ChainState) -> str:
        done = len(state.get("answers") or []) >= len(state["plan"])
        return END if done or state.get("stopped") else "step"

    graph = StateGraph(ChainState)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", route, ["step", END])
    return graph.compile(name=name)


@dataclass(frozen=True)
class ChainRun:
    """One graded run of a chain."""

    chain: str
    """The chain's id."""
    success: bool
    """Every step's answer equals its gold-chained gold."""
    right_steps: int
    """Steps right before the first wrong one."""
    questions: tuple[str, ...]
    """What each step asked."""
    answers: tuple[str | None, ...]
    """Each step's voted answer."""
    samples: int
    """Paths sampled over the run."""
    completion_tokens: int
    """Completion tokens over the run."""
    rounds: int
    """Sequential sampling rounds (waves) over the run."""
    seconds: float
    """Wall time of the run."""


def run_chain(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    chain: Chain,
    *,
    ledger: CostLedger,
    run_budget: RunBudget | RunAccount | None = None,
    thread_id: str | None = None,
) -> ChainRun:
    """Run ``chain`` through a :func:`build_chain_graph` workflow and grade it.

    Args:
        graph: The compiled chain workflow.
        chain: The run's plan and golds.
        ledger: Receives every thinking step's cost record (the run's rows are read from it).
        run_budget: One budget for the run's steps (per ``thread_id``).
        thread_id: The run's thread (default: the chain's id).

    Raises:
        ConfigError: The run asked more steps than the chain has (a graph built for another plan).
    """
    before = len(ledger.steps)
    overrides: dict[str, Any] = {"ledger": ledger}
    if run_budget is not None:
        overrides["run_budget"] = run_budget
    # No recursion_limit here: the config reaches each step's thinking graph, whose waves need
    # LangGraph's default.
    config: RunnableConfig = {
        "configurable": {"thread_id": thread_id or chain.id, CONFIG_KEY: overrides}
    }
    started = time.perf_counter()
    state = graph.invoke({"plan": plan_of(chain)}, config)
    seconds = time.perf_counter() - started
    answers: Sequence[str | None] = state.get("answers") or []
    if len(answers) > len(chain.steps):
        raise ConfigError(
            f"the run of chain {chain.id!r} answered {len(answers)} steps but it has "
            f"{len(chain.steps)}; build the graph with build_chain_graph"
        )
    golds = [q.gold for q in chain.gold_questions()]
    right = 0
    for k, answer in enumerate(answers):
        question = chain.question(k, answers[k - 1] if k else None)
        if question is None or answer is None or not question.is_correct(answer):
            break
        if question.gold != golds[k]:
            break
        right += 1
    steps = ledger.steps[before:]
    return ChainRun(
        chain=chain.id,
        success=right == len(chain.steps),
        right_steps=right,
        questions=tuple(state.get("questions") or ()),
        answers=tuple(answers),
        samples=sum(s.samples for s in steps),
        completion_tokens=sum(s.completion_tokens for s in steps),
        rounds=sum(max(1, len(s.waves)) for s in steps),
        seconds=seconds,
    )
