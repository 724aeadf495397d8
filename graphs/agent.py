"""An agent whose tool is the parallel-thinking graph, ready to serve with ``langgraph dev``.

``graph`` is a LangChain ``create_agent`` agent with one tool, ``solve(question)``, which runs
the parallel-thinking graph on the default model (T2 budget when the shipped estimator exists,
else 8 paths), so every tool call chooses its own number of reasoning paths. The chat model is
:class:`t2_agents.agents.ScriptedToolCaller`: the 135M default model cannot call tools, so the
agent calls ``solve`` once per question of the user's message (questions separated by lines
holding only ``---``) and then lists the answers. Each ``ToolMessage`` carries the thinking state
(budget ``n``, votes, cost) as its ``artifact``.

Example:
    >>> from agent import graph  # doctest: +SKIP
    >>> out = graph.invoke({"messages": [{"role": "user", "content": "6 * 7?"}]})  # doctest: +SKIP
    >>> out["messages"][-1].content  # doctest: +SKIP
    '1. 42'
"""

from __future__ import annotations

from t2_agents.agents import build_default_graph, make_agent

__all__ = ["graph"]

graph = make_agent(build_default_graph(), tool_name="solve", name="t2_agent")
"""The served agent (``langgraph.json``: ``agent``)."""
