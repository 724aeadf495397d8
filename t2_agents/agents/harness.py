"""An agent harness: a LangChain agent whose one tool is the parallel-thinking graph.

:func:`make_agent` builds a ``create_agent`` agent whose tool is
:func:`~t2_agents.graph.as_tool` of a parallel-thinking graph (the chat model is a
:class:`~t2_agents.agents.scripted_model.ScriptedToolCaller`); :func:`run_agent` asks it several
questions in one message and grades each tool call. :data:`AGENT_TASKS`: the numeric tasks the
agent examples use by default.

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> from t2_agents.graph import build_parallel_thinking_graph
    >>> from t2_agents.evaluate.questions import heldout_questions
    >>> agent = make_agent(build_parallel_thinking_graph(engine=FakeEngine(), n_max=2))
    >>> out = run_agent(agent, heldout_questions(3, tasks=AGENT_TASKS))
    >>> [call["task"] for call in out["calls"]]
    ['basic_arithmetic', 'products', 'lcm']
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from typing_extensions import TypedDict

from t2_agents.agents.scripted_model import FinalAnswer, ScriptedToolCaller, message_text
from t2_agents.errors import ConfigError, DependencyError
from t2_agents.graph import CostLedger, ThinkingGraph, as_tool
from t2_agents.graph.budgets import RunAccount, RunBudget
from t2_agents.tasks import DEFAULT_INSTRUCTION, Question

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

__all__ = ["AGENT_TASKS", "AgentCall", "AgentRun", "make_agent", "run_agent"]

AGENT_TASKS: tuple[str, ...] = ("basic_arithmetic", "products", "lcm")
"""Default tasks of the agent examples: all numeric, because an agent's ``solve`` tool sees only
the question, not the task, so it extracts answers with the default (number-first) extractor."""


class AgentCall(TypedDict):
    """One graded tool call of :func:`run_agent` (cost fields None when the call failed)."""

    index: int
    id: str
    task: str
    gold: str
    n: int | None
    policy: str | None
    answer: str | None
    correct: bool
    samples: int | None
    completion_tokens: int | None
    prompt_tokens: int | None
    seconds: float | None


class AgentRun(TypedDict):
    """:func:`run_agent`'s result."""

    final: str
    """The agent's last message."""
    seconds: float
    """Wall time of the whole run."""
    calls: list[AgentCall]


def make_agent(
    graph: ThinkingGraph,
    *,
    ledger: CostLedger | None = None,
    tool_name: str = "solve",
    parallel: bool = False,
    instruction: str = DEFAULT_INSTRUCTION,
    name: str = "t2_agent",
    run_budget: RunBudget | RunAccount | None = None,
    final: FinalAnswer = "all",
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A ``create_agent`` agent whose one tool runs the parallel-thinking graph.

    The tool is ``as_tool(graph, name=tool_name, ledger=ledger)``: every call chooses its own
    budget N and records its cost in ``ledger``; its ``ToolMessage`` carries the whole thinking
    state as ``artifact``. The chat model is a :class:`ScriptedToolCaller`.

    Args:
        graph: A parallel-thinking graph (:func:`~t2_agents.graph.build_parallel_thinking_graph`).
        ledger: Collects each tool call's cost record.
        tool_name: The tool's name.
        parallel: Let the model issue all tool calls in one turn.
        instruction: Appended to each question by the model.
        name: The agent graph's name.
        run_budget: One budget shared by every tool call of an agent run
            (:class:`~t2_agents.graph.RunBudget`: one account per ``thread_id``, so invoke
            the agent with ``config={"configurable": {"thread_id": ...}}``; or a
            ``RunAccount`` for a single run).
        final: The model's last message: every result numbered (``all``), or the ``last`` one
            alone (a chained plan, whose questions use ``{previous}``, answers with its last).

    Returns:
        The compiled agent; invoke it with ``{"messages": [{"role": "user", "content": ...}]}``.

    Raises:
        DependencyError: ``langchain`` is not installed (``pip install 't2-agents[agents]'``).

    Example:
        >>> from t2_agents.backends.fake import FakeEngine
        >>> from t2_agents.graph import build_parallel_thinking_graph
        >>> agent = make_agent(build_parallel_thinking_graph(engine=FakeEngine(), n_max=2))
        >>> out = agent.invoke({"messages": [{"role": "user", "content": "What is 6*7?"}]})
        >>> out["messages"][-1].content
        '1. 42'
    """
    try:
        from langchain.agents import create_agent
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError(
            "make_agent needs langchain>=1.0; install it with pip install 't2-agents[agents]'"
        ) from exc
    tool = as_tool(graph, name=tool_name, ledger=ledger, run_budget=run_budget)
    model = ScriptedToolCaller(
        tool_name=tool_name, parallel=parallel, instruction=instruction, final=final
    )
    return create_agent(model, [tool], name=name)


def run_agent(
    agent: Runnable[Any, Any],
    questions: Sequence[Question],
    *,
    config: RunnableConfig | None = None,
) -> AgentRun:
    """Ask a :func:`make_agent` agent several questions in one user message and grade each call.

    The questions' prompts are joined with ``---`` lines, so the :class:`ScriptedToolCaller`
    makes one ``solve`` call per question, in order. Every tool call is graded against its
    question's gold answer from the thinking state the ``ToolMessage`` carries as artifact.

    Args:
        agent: An agent from :func:`make_agent` (or any agent with the same tool protocol).
        questions: The questions, e.g. from
            :func:`~t2_agents.evaluate.questions.heldout_questions`.
        config: Run config (callbacks, ``configurable["t2"]`` overrides...); the recursion
            limit is raised to fit one model turn and one tool turn per question.

    Returns:
        An :class:`AgentRun`: the final message, the wall time and one :class:`AgentCall` per
        question.

    Raises:
        ConfigError: No questions, or the agent made a different number of tool calls.

    Example:
        >>> from t2_agents.backends.fake import FakeEngine
        >>> from t2_agents.evaluate.questions import heldout_questions
        >>> from t2_agents.graph import build_parallel_thinking_graph
        >>> agent = make_agent(build_parallel_thinking_graph(engine=FakeEngine(), n_max=2))
        >>> out = run_agent(agent, heldout_questions(2, tasks=("products",), seed=1))
        >>> [call["n"] for call in out["calls"]]
        [2, 2]
    """
    if not questions:
        raise ConfigError("run_agent needs at least one question")
    message = "\n---\n".join(q.prompt for q in questions)
    run_config: RunnableConfig = {**(config or {})}
    run_config.setdefault("recursion_limit", 4 * len(questions) + 10)
    started = time.perf_counter()
    out = agent.invoke({"messages": [HumanMessage(message)]}, run_config)
    seconds = time.perf_counter() - started
    messages = list(out["messages"])
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if len(results) != len(questions):
        raise ConfigError(
            f"the agent made {len(results)} tool calls for {len(questions)} questions; "
            "use make_agent's ScriptedToolCaller or one call per question"
        )
    calls: list[AgentCall] = []
    for index, (question, result) in enumerate(zip(questions, results, strict=True)):
        state = result.artifact if isinstance(result.artifact, Mapping) else {}
        cost = state.get("cost") if isinstance(state.get("cost"), Mapping) else None
        answer = state.get("answer")
        calls.append(
            {
                "index": index,
                "id": question.id,
                "task": question.task,
                "gold": question.gold,
                "n": state.get("n"),
                "policy": state.get("policy"),
                "answer": answer,
                "correct": question.is_correct(answer),
                "samples": None if cost is None else int(cost["samples"]),
                "completion_tokens": None if cost is None else int(cost["completion_tokens"]),
                "prompt_tokens": None if cost is None else int(cost["prompt_tokens"]),
                "seconds": None if cost is None else float(cost["wall_seconds"]),
            }
        )
    return {"final": message_text(messages[-1]), "seconds": seconds, "calls": calls}
