"""Agents around the parallel-thinking graph: the served default graph and an agent harness.

- :mod:`~t2_agents.agents.default_graph`: :func:`build_default_graph`, the graph on the default
  engine with the best policy available (what ``graphs/`` serves);
- :mod:`~t2_agents.agents.scripted_model`: :class:`ScriptedToolCaller`, a deterministic
  tool-calling chat model (the default model cannot call tools);
- :mod:`~t2_agents.agents.harness`: :func:`make_agent` (a LangChain agent whose tool is the
  graph) and :func:`run_agent` (ask it several questions, grade each tool call);
- :mod:`~t2_agents.agents.chains`: :func:`build_chain_graph` and :func:`run_chain`, a multi-step
  run whose steps use the previous step's answer (a fixed plan, real thinking).

Example:
    >>> from t2_agents.agents import build_default_graph, make_agent
    >>> agent = make_agent(build_default_graph())  # nothing is loaded yet
"""

from __future__ import annotations

from t2_agents.agents.chains import ChainRun, PlanStep, build_chain_graph, plan_of, run_chain
from t2_agents.agents.default_graph import build_default_graph
from t2_agents.agents.harness import AGENT_TASKS, AgentCall, AgentRun, make_agent, run_agent
from t2_agents.agents.scripted_model import ScriptedToolCaller

__all__ = [
    "AGENT_TASKS",
    "AgentCall",
    "AgentRun",
    "ChainRun",
    "PlanStep",
    "ScriptedToolCaller",
    "build_chain_graph",
    "build_default_graph",
    "make_agent",
    "plan_of",
    "run_agent",
    "run_chain",
]
