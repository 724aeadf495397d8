"""LangGraph integration: budget-aware parallel thinking as a graph, a subgraph or a tool.

One agent step ("think about this question") becomes ``budget -> N branches -> aggregate``: a
budget policy (fixed, oracle, T2...) chooses N from the question and, for T2, the prompt's hidden
states; N reasoning paths are sampled (one batched engine call, or one ``Send`` task per path);
their final answers are extracted and majority-voted; a cost record tracks what the step spent.

Modules: :mod:`~t2_agents.graph.state` (state, reducers, run settings and context),
:mod:`~t2_agents.graph.budgets` (a budget for a whole agent run),
:mod:`~t2_agents.graph.waves` (sequential waves and stop rules),
:mod:`~t2_agents.graph.inflight` (cancelling a wave's paths in flight),
:mod:`~t2_agents.graph.ledger` (cost records and roll-ups), :mod:`~t2_agents.graph.nodes` (the
nodes and the fan-out modes), :mod:`~t2_agents.graph.builder` (the compiled graph and the tool),
:mod:`~t2_agents.graph.chat` (branches served by any LangChain chat model).

Example:
    >>> from t2_agents.graph import build_parallel_thinking_graph, as_tool
    >>> graph = build_parallel_thinking_graph(n_max=4)
    >>> as_tool(graph).name
    'parallel_thinking'
"""

from __future__ import annotations

from t2_agents.graph.budgets import (
    ExhaustedAction,
    Grant,
    RunAccount,
    RunBudget,
    extend_step,
    grant_step,
    resolve_account,
    run_account,
    settle_step,
)
from t2_agents.graph.builder import (
    DEFAULT_RETRY,
    ThinkingGraph,
    ThinkingToolInput,
    as_tool,
    build_parallel_thinking_graph,
)
from t2_agents.graph.chat import ChatModelEngine, default_call_kwargs
from t2_agents.graph.ledger import CostLedger, StepRecord, compare_ledgers, format_comparison
from t2_agents.graph.nodes import (
    aggregate_node,
    branch_answers,
    branch_node,
    branch_span,
    budget_node,
    route_fanout,
    sample_node,
    summarize_features,
    vote_seed,
)
from t2_agents.graph.state import (
    CONFIG_KEY,
    BranchErrors,
    BranchResult,
    BranchTask,
    Fanout,
    FeatureSummary,
    ThinkingContext,
    ThinkingInput,
    ThinkingSettings,
    ThinkingState,
    WaveRecord,
    WaveTask,
    add_branches,
    add_waves,
    resolve_context,
)
from t2_agents.graph.waves import route_after_fanout, route_after_wave, wave_node

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_RETRY",
    "BranchErrors",
    "BranchResult",
    "BranchTask",
    "ChatModelEngine",
    "CostLedger",
    "ExhaustedAction",
    "Fanout",
    "FeatureSummary",
    "Grant",
    "RunAccount",
    "RunBudget",
    "StepRecord",
    "ThinkingContext",
    "ThinkingGraph",
    "ThinkingInput",
    "ThinkingSettings",
    "ThinkingState",
    "ThinkingToolInput",
    "WaveRecord",
    "WaveTask",
    "add_branches",
    "add_waves",
    "aggregate_node",
    "as_tool",
    "branch_answers",
    "branch_node",
    "branch_span",
    "budget_node",
    "build_parallel_thinking_graph",
    "compare_ledgers",
    "default_call_kwargs",
    "extend_step",
    "format_comparison",
    "grant_step",
    "resolve_account",
    "resolve_context",
    "route_after_fanout",
    "route_after_wave",
    "route_fanout",
    "run_account",
    "sample_node",
    "settle_step",
    "summarize_features",
    "vote_seed",
    "wave_node",
]
