"""LangGraph integration: budget-aware parallel thinking as a graph, a subgraph or a tool.

One agent step ("think about this question") becomes ``budget -> N branches -> aggregate``: a
budget policy (fixed, oracle, T2...) chooses N from the question and, for T2, the prompt's hidden
states; N reasoning paths are sampled (one batched engine call, or one ``Send`` task per path);
their final answers are extracted and majority-voted; a cost record tracks what the step spent.

Modules: :mod:`~t2_agents.graph.settings` (the run settings, declared once),
:mod:`~t2_agents.graph.state` (state, reducers and the run context),
:mod:`~t2_agents.graph.budgets` (a budget for a whole agent run),
:mod:`~t2_agents.graph.waves` (sequential waves and stop rules),
:mod:`~t2_agents.graph.inflight` (cancelling a wave's paths in flight),
:mod:`~t2_agents.graph.ledger` (cost records and roll-ups), :mod:`~t2_agents.graph.budget_node`
(N before decoding), :mod:`~t2_agents.graph.nodes` (the fan-out modes and the vote),
:mod:`~t2_agents.graph.builder` (the compiled graph and the tool).
The package exports what a user composes with; the nodes, reducers and routing functions stay in
their modules. The graph never imports an engine class: engines come in through the context.

Example:
    >>> from t2_agents.graph import build_parallel_thinking_graph, as_tool
    >>> graph = build_parallel_thinking_graph(n_max=4)
    >>> as_tool(graph).name
    'parallel_thinking'
"""

from __future__ import annotations

from t2_agents.graph.budgets import RunBudget
from t2_agents.graph.builder import ThinkingGraph, as_tool, build_parallel_thinking_graph
from t2_agents.graph.ledger import CostLedger, compare_ledgers
from t2_agents.graph.settings import ThinkingSettings
from t2_agents.graph.state import CONFIG_KEY, ThinkingContext, ThinkingInput, ThinkingState

__all__ = [
    "CONFIG_KEY",
    "CostLedger",
    "RunBudget",
    "ThinkingContext",
    "ThinkingGraph",
    "ThinkingInput",
    "ThinkingSettings",
    "ThinkingState",
    "as_tool",
    "build_parallel_thinking_graph",
    "compare_ledgers",
]
