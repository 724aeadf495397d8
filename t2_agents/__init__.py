"""t2-agents: budget-aware parallel thinking (T2) inside LangGraph agent graphs.

T2 reads a model's final-prompt-token hidden states, predicts how many reasoning paths a
question needs before decoding, samples that many in parallel and votes. This is the front
door: the graph and the tool, the budget policies, the engines and the agent harness, all from
one import. Every name loads on first use (module ``__getattr__``), so ``import t2_agents``
imports neither torch, transformers, vLLM nor LangGraph.

Example:
    >>> from t2_agents import FixedPolicy, build_parallel_thinking_graph, as_tool
    >>> graph = build_parallel_thinking_graph(policy=FixedPolicy(4), n_max=4)
    >>> as_tool(graph).name
    'parallel_thinking'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # the graph, as a graph, a subgraph or a tool
    "build_parallel_thinking_graph": "t2_agents.graph",
    "as_tool": "t2_agents.graph",
    "ThinkingContext": "t2_agents.graph",
    "ThinkingSettings": "t2_agents.graph",
    "ThinkingState": "t2_agents.graph",
    "RunBudget": "t2_agents.graph",
    "CostLedger": "t2_agents.graph",
    "StopRule": "t2_agents.budget.stop_rules",
    # budget policies and the shipped estimator
    "BudgetPolicy": "t2_agents.budget.policies",
    "FixedPolicy": "t2_agents.budget.policies",
    "T2Policy": "t2_agents.budget.policies",
    "load_t2_policy": "t2_agents.budget.shipped",
    "choose_policy": "t2_agents.budget.shipped",
    "T2Estimator": "t2_agents.estimator.estimator",
    # engines (heavy: each loads its library on first use)
    "Engine": "t2_agents.backends.base",
    "SamplingParams": "t2_agents.backends.base",
    "Completion": "t2_agents.backends.base",
    "load_engine": "t2_agents.backends.factory",
    "TransformersEngine": "t2_agents.backends.transformers",
    "VLLMEngine": "t2_agents.backends.vllm",
    "ServerEngine": "t2_agents.backends.server",
    "ChatModelEngine": "t2_agents.backends.chat_model",
    # one question; agents
    "ask_question": "t2_agents.ask",
    "make_agent": "t2_agents.agents",
    # answers and the vote
    "extract_answer": "t2_agents.answers",
    "Verdict": "t2_agents.voting",
    "vote": "t2_agents.voting",
    "T2Error": "t2_agents.errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from t2_agents.agents import make_agent
    from t2_agents.answers import extract_answer
    from t2_agents.ask import ask_question
    from t2_agents.backends.base import Completion, Engine, SamplingParams
    from t2_agents.backends.chat_model import ChatModelEngine
    from t2_agents.backends.factory import load_engine
    from t2_agents.backends.server import ServerEngine
    from t2_agents.backends.transformers import TransformersEngine
    from t2_agents.backends.vllm import VLLMEngine
    from t2_agents.budget.policies import BudgetPolicy, FixedPolicy, T2Policy
    from t2_agents.budget.shipped import choose_policy, load_t2_policy
    from t2_agents.budget.stop_rules import StopRule
    from t2_agents.errors import T2Error
    from t2_agents.estimator.estimator import T2Estimator
    from t2_agents.graph import (
        CostLedger,
        RunBudget,
        ThinkingContext,
        ThinkingSettings,
        ThinkingState,
        as_tool,
        build_parallel_thinking_graph,
    )
    from t2_agents.voting import Verdict, vote


def __getattr__(name: str) -> Any:
    """Import a front-door name from its module on first use (then it is a plain attribute)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 't2_agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
