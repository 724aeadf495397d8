"""The parallel-thinking graph, ready to serve with ``langgraph dev`` (see ``langgraph.json``).

``graph`` is the compiled parallel-thinking graph on the default model (SmolLM2-135M-Instruct):
the T2 budget (N in [1, 16]) when the estimator shipped for that model exists, else a fixed
budget of 8 paths. Importing this module is cheap: the model loads on the first run (about 15 s).

``served`` (what ``langgraph.json`` serves) runs ``graph`` as its one node, for two reasons:

- the LangGraph server turns a run's ``context`` (or, without one, its ``configurable``) into the
  graph's context schema, :class:`~t2_agents.graph.ThinkingContext`, which replaces every
  default of ``graph``, and ``configurable={"t2": {...}}`` fails there with a ``TypeError``;
  ``served`` has no context schema, so the library's documented per-run overrides work:
  ``config={"configurable": {"t2": {"n_max": 4, "max_tokens": 32, "task": "products"}}}``;
- ``ThinkingContext`` holds live objects (engine, policy...) with no JSON schema, so the server's
  ``/assistants/{id}/schemas`` (LangGraph Studio's graph view) fails on ``graph``; ``served``
  has plain JSON input and output schemas.

Input ``{"question": "..."}`` (append "Give only the final answer." for a short answer); output
the answer, the budget ``n``, the votes, the branches and the ``cost`` record. ``served`` passes
the thinking graph's ``budget``, ``branch`` and ``verdict`` events on to
``stream_mode="custom"``.

Example:
    >>> from parallel_thinking import served  # doctest: +SKIP
    >>> state = served.invoke({"question": "6 * 7? Give only the final answer."})  # doctest: +SKIP
    >>> state["n"], state["answer"]  # doctest: +SKIP
    (8, '42')
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from t2_agents.demo import build_default_graph
from t2_agents.graph import ThinkingGraph

__all__ = ["ServedInput", "ServedState", "graph", "make_served", "served"]


class ServedInput(TypedDict):
    """Input of the served graph."""

    question: str


class ServedState(TypedDict, total=False):
    """Output of the served graph: the thinking state's JSON-ready result fields."""

    question: str
    answer: str | None
    n: int
    n_max: int
    policy: str
    budget_warning: str | None
    answers: list[str | None]
    verdict: dict[str, Any] | None
    error: str | None
    cost: dict[str, Any] | None
    branches: list[dict[str, Any]]


_KEYS = tuple(ServedState.__annotations__)


def make_served(
    thinking: ThinkingGraph, *, name: str = "parallel_thinking"
) -> CompiledStateGraph[ServedState, None, ServedInput, ServedState]:
    """Wrap a parallel-thinking graph for the LangGraph server (see the module docs).

    Args:
        thinking: The compiled parallel-thinking graph to run.
        name: The served graph's name.

    Returns:
        A one-node graph: input :class:`ServedInput`, output :class:`ServedState`.

    Example:
        >>> from t2_agents.graph import build_parallel_thinking_graph
        >>> from t2_agents.graph.testing import FakeEngine
        >>> wrapped = make_served(build_parallel_thinking_graph(engine=FakeEngine(), n_max=2))
        >>> wrapped.invoke({"question": "What is 6 * 7?"})["n"]
        2
    """

    def think(state: ServedInput, config: RunnableConfig) -> dict[str, Any]:
        writer = get_stream_writer()
        final: dict[str, Any] = {}
        for mode, data in thinking.stream(
            {"question": state["question"]}, config, stream_mode=["custom", "values"]
        ):
            if mode == "custom":
                writer(data)
            elif isinstance(data, dict):
                final = data
        return {key: final[key] for key in _KEYS if key in final}

    builder = StateGraph(ServedState, input_schema=ServedInput, output_schema=ServedState)
    builder.add_node("think", think)
    builder.add_edge(START, "think")
    builder.add_edge("think", END)
    return builder.compile(name=name)


graph = build_default_graph()
"""The compiled parallel-thinking graph on the (lazily loaded) default engine."""

served = make_served(graph)
"""The graph ``langgraph.json`` serves as ``parallel_thinking``."""
