"""Build the parallel-thinking graph and turn it into a LangChain tool.

The graph is ``START -> budget -> (sample | branch x N) -> aggregate -> END``:

- ``budget`` chooses N with the policy (encoding the prompt only if the policy needs features);
- a conditional edge sends the step to the batched ``sample`` node, or fans out one
  ``Send("branch", ...)`` per path (the mode can change per call, see
  :data:`~t2_agents.graph.settings.ThinkingSettings`);
- with a stop rule (``stop=``, :mod:`t2_agents.budget.stop_rules`), each wave goes to the ``wave``
  node, which votes, records the wave, streams a ``wave`` event and either stops or routes the
  next wave (one ``sample(n=wave)`` call, or one ``Send`` per path); finished waves are in the
  checkpointed state, so a resumed run never samples them again;
- ``aggregate`` extracts the answers, votes and writes ``verdict``, ``answer`` and ``cost``.

A run budget (``run_budget=``, :mod:`t2_agents.graph.budgets`) caps the paths of every step of
one agent run together.

The compiled graph is an ordinary LangGraph runnable: ``invoke``/``ainvoke``/``abatch``/
``stream(stream_mode="custom")`` (events ``budget``, ``branch`` x N, ``verdict``), a node of a
larger ``StateGraph`` whose state has a ``question`` key (it reads ``question`` and writes back
``answer``, ``verdict``, ``error``, ``cost`` ... where the parent has those keys), or a tool via
:func:`as_tool`. With a checkpointer (e.g. ``SqliteSaver``) a run that failed part-way is resumed
by invoking ``None`` on the same ``thread_id``; branches that already finished are not re-run.
After a process kill the same holds for the branches whose writes the checkpointer had
committed. LangGraph commits a finished task's writes on the thread pool that runs the tasks,
behind the tasks still queued, so in ``send`` mode with more branches than workers
(``max_concurrency``, LangGraph's default ``min(32, CPUs + 4)``) a finished branch may stay
uncommitted and run again. So with a checkpointer the builder sets ``max_concurrency`` to
``n_max + 2`` (a call's own ``max_concurrency`` wins; raise it with a per-call ``n_max``).

The live objects (engine, policy, sampler, extractor, ledger) are bound into the nodes when the
graph is built; the graph's ``context_schema`` is the JSON-only
:data:`~t2_agents.graph.settings.ThinkingSettings`, so the compiled graph can be served as is by
``langgraph dev`` (a run's ``context`` or ``configurable["t2"]`` overrides single settings).

Example:
    >>> graph = build_parallel_thinking_graph(engine=my_engine, n_max=8)  # doctest: +SKIP
    >>> graph.invoke({"question": "What is 17 * 3?"})["answer"]  # doctest: +SKIP
    '51'
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer, RetryPolicy
from pydantic import BaseModel, Field

from t2_agents.backends.base import Engine
from t2_agents.budget.protocols import BasicPolicy, as_budget_policy
from t2_agents.budget.stop_rules import StopKind, StopRule
from t2_agents.errors import T2Error, TransientEngineError
from t2_agents.graph.budget_node import budget_node
from t2_agents.graph.budgets import RunAccount, RunBudget
from t2_agents.graph.ledger import CostLedger
from t2_agents.graph.nodes import aggregate_node, branch_node, route_fanout, sample_node
from t2_agents.graph.settings import Fanout, SettingsOverrides, ThinkingSettings
from t2_agents.graph.state import (
    ThinkingContext,
    ThinkingInput,
    ThinkingState,
    with_overrides,
)
from t2_agents.graph.waves import route_after_fanout, route_after_wave, wave_node

__all__ = [
    "DEFAULT_RETRY",
    "ThinkingGraph",
    "ThinkingToolInput",
    "as_tool",
    "build_parallel_thinking_graph",
]

ThinkingGraph = CompiledStateGraph[
    ThinkingState, SettingsOverrides | ThinkingContext, ThinkingInput, ThinkingState
]
"""The type of a compiled parallel-thinking graph: its run context is a :class:`ThinkingSettings`
(the JSON ``context_schema``; a dict is turned into one) or, in Python, a
:class:`ThinkingContext`."""

DEFAULT_RETRY = RetryPolicy(
    initial_interval=0.5, backoff_factor=2.0, max_interval=8.0, max_attempts=3,
    retry_on=TransientEngineError,
)  # fmt: skip
"""Retry transient engine errors up to 3 attempts in all (0.5 s, then 1 s, with jitter)."""

_DESCRIPTION = (
    "Answer a self-contained question (arithmetic, logic, short reasoning) by sampling several "
    "reasoning paths and majority-voting their final answers. Input: the question as plain text."
)


def build_parallel_thinking_graph(
    *,
    engine: Engine | None = None,
    policy: BasicPolicy | None = None,
    fanout: Fanout | None = None,
    n_min: int | None = None,
    n_max: int | None = None,
    context: ThinkingContext | None = None,
    retry: RetryPolicy | None = DEFAULT_RETRY,
    checkpointer: Checkpointer = None,
    name: str = "parallel_thinking",
    stop: StopRule | StopKind | None = None,
    run_budget: RunBudget | RunAccount | None = None,
) -> ThinkingGraph:
    """Compile the parallel-thinking graph with default settings for every run.

    Args:
        engine: Renders, encodes and (unless ``context.sampler`` is set) samples; may be left
            out and given per call as ``context=ThinkingContext(engine=...)``.
        policy: Chooses N (a :class:`~t2_agents.budget.protocols.BudgetPolicy`, or any object
            that chooses); None means ``FixedPolicy(n_max)``. Its ``check_engine`` (T2: the
            estimator's model) runs against ``engine`` here and before every run.
        fanout: ``"batched"`` or ``"send"``; None keeps ``context``'s (default batched).
        n_min: Smallest budget; None keeps ``context``'s (default 1).
        n_max: Largest budget; None keeps ``context``'s (default 8).
        context: Every other default (temperature, max_tokens, seed, task, sampler, ledger...);
            the arguments above override its fields.
        retry: Retry policy of the budget, sample and branch nodes; None disables retries
            (a transient error then fails the branch at once).
        checkpointer: Any LangGraph checkpointer (``SqliteSaver``, ``InMemorySaver``...).
        name: The graph's name (shown in traces and as a subgraph).
        stop: Sample in waves and stop by this rule (e.g. ``StopRule(kind="hybrid")``: a
            first wave of the policy's N, then waves of 4 until the vote is decisive); None
            keeps ``context``'s (default: one wave of N).
        run_budget: A budget for every step of an agent run (one account per ``thread_id``);
            None keeps ``context``'s (default: none).

    Returns:
        The compiled graph; input ``{"question": str}``, output the :class:`ThinkingState`,
        context schema :class:`ThinkingSettings` (JSON fields only: it can be served).

    Raises:
        ConfigError: Invalid settings (``n_min > n_max``, unknown fan-out...).
        ArtifactError: ``policy`` does not fit ``engine``.

    Example:
        >>> graph = build_parallel_thinking_graph(n_max=4, fanout="send")
        >>> sorted(graph.get_graph().nodes)
        ['__end__', '__start__', 'aggregate', 'branch', 'budget', 'sample', 'wave']
    """
    explicit: dict[str, Any] = {
        "engine": engine,
        "policy": policy,
        "fanout": fanout,
        "n_min": n_min,
        "n_max": n_max,
        "stop": stop,
        "run_budget": run_budget,
    }
    defaults = replace(
        context or ThinkingContext(),
        **{key: value for key, value in explicit.items() if value is not None},
    )
    if defaults.engine is not None and defaults.policy is not None:
        as_budget_policy(defaults.policy).check_engine(defaults.engine)
    attempts = retry.max_attempts if retry is not None else 1
    graph: StateGraph[
        ThinkingState, SettingsOverrides | ThinkingContext, ThinkingInput, ThinkingState
    ] = StateGraph(
        ThinkingState,
        context_schema=ThinkingSettings,  # type: ignore[arg-type]  # a model derived at run time
        input_schema=ThinkingInput,
    )
    graph.add_node("budget", functools.partial(budget_node, defaults=defaults), retry_policy=retry)
    graph.add_node(
        "sample",
        functools.partial(sample_node, defaults=defaults, max_attempts=attempts),
        retry_policy=retry,
    )
    graph.add_node(
        "branch",
        functools.partial(branch_node, defaults=defaults, max_attempts=attempts),
        retry_policy=retry,
    )
    graph.add_node("wave", functools.partial(wave_node, defaults=defaults))
    graph.add_node("aggregate", functools.partial(aggregate_node, defaults=defaults))
    graph.add_edge(START, "budget")
    graph.add_conditional_edges("budget", route_fanout, ["sample", "branch", "aggregate"])
    graph.add_conditional_edges("sample", route_after_fanout, ["wave", "aggregate"])
    graph.add_conditional_edges("branch", route_after_fanout, ["wave", "aggregate"])
    graph.add_conditional_edges("wave", route_after_wave, ["sample", "branch", "aggregate"])
    graph.add_edge("aggregate", END)
    compiled = graph.compile(checkpointer=checkpointer, name=name)
    if checkpointer is None:
        return compiled
    # LangGraph commits a finished task's writes on the pool that runs the tasks, behind the
    # queued ones: with fewer workers than Send branches a finished branch stays uncommitted
    # (and is lost to a kill) until the queue drains. Room for every branch avoids that.
    return compiled.with_config({"max_concurrency": defaults.n_max + 2})


class ThinkingToolInput(BaseModel):
    """Arguments of the parallel-thinking tool."""

    question: str = Field(description="The question to answer, self-contained, as plain text.")
    task: str | None = Field(
        default=None,
        description=(
            "Optional kind of question, choosing how each path's final answer is read: "
            '"syllogism" for a yes/no answer, a numeric task such as "products", "lcm" or '
            '"basic_arithmetic" for a number. Leave it out to detect the answer automatically.'
        ),
    )


def as_tool(
    graph: ThinkingGraph,
    *,
    name: str = "parallel_thinking",
    description: str = _DESCRIPTION,
    context: ThinkingContext | None = None,
    ledger: CostLedger | None = None,
    run_budget: RunBudget | RunAccount | None = None,
) -> BaseTool:
    """Wrap a compiled graph as a LangChain tool taking a ``question`` (and an optional ``task``).

    The tool's content is the voted answer (or ``"no answer: <reason>"``); with a tool call as
    input it also returns the whole final state as the ``ToolMessage`` artifact
    (``response_format="content_and_artifact"``). Library errors (a blank question, a bad
    setting) become tool errors the calling model can read instead of exceptions. The caller's
    config (callbacks, ``configurable["t2"]`` overrides, a parent graph's checkpointer) is passed
    through. A ``task`` argument of the call (e.g. ``"syllogism"`` for yes/no answers) selects
    the answer extractor of that run: it is added to the ``configurable["t2"]`` overrides, so it
    wins over ``context`` and the caller's ``task``.

    Args:
        graph: A graph from :func:`build_parallel_thinking_graph`.
        name: Tool name shown to the model.
        description: Tool description shown to the model.
        context: Per-call context for every call of this tool (else the graph's defaults).
        ledger: Collects the cost record of every call (an agent run's roll-up).
        run_budget: One budget for all the calls of an agent run: a :class:`RunBudget` keeps
            one account per ``thread_id`` of the calling agent's config (concurrent calls of
            one run share it and never overspend); a ``RunAccount`` is one run's account.

    Returns:
        A ``StructuredTool`` with sync and async implementations.

    Example:
        >>> tool = as_tool(build_parallel_thinking_graph(n_max=4), name="think")
        >>> tool.name, list(tool.args)
        ('think', ['question', 'task'])
    """

    def _config(config: RunnableConfig, task: str | None) -> RunnableConfig:
        overrides: dict[str, Any] = {}
        if ledger is not None:
            overrides["ledger"] = ledger
        if run_budget is not None:
            overrides["run_budget"] = run_budget
        if task is not None:
            overrides["task"] = task
        return with_overrides(config, overrides)

    def _run(
        question: str, config: RunnableConfig, task: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        try:
            state = graph.invoke({"question": question}, _config(config, task), context=context)
        except T2Error as exc:
            raise ToolException(f"{type(exc).__name__}: {exc}") from exc
        return _content(state), dict(state)

    async def _arun(
        question: str, config: RunnableConfig, task: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        try:
            state = await graph.ainvoke(
                {"question": question}, _config(config, task), context=context
            )
        except T2Error as exc:
            raise ToolException(f"{type(exc).__name__}: {exc}") from exc
        return _content(state), dict(state)

    return StructuredTool.from_function(
        func=_run,
        coroutine=_arun,
        name=name,
        description=description,
        args_schema=ThinkingToolInput,
        response_format="content_and_artifact",
        handle_tool_error=True,
    )


def _content(state: ThinkingState | dict[str, Any]) -> str:
    answer = state.get("answer")
    if answer is not None:
        return str(answer)
    reason = state.get("error") or "no branch gave an extractable final answer"
    return f"no answer: {reason}"
