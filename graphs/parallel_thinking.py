"""The parallel-thinking graph, ready to serve with ``langgraph dev`` (see ``langgraph.json``).

``graph`` is the compiled parallel-thinking graph on the default model (SmolLM2-135M-Instruct):
the T2 budget (N in [1, 16]) when the estimator shipped for that model exists, else a fixed
budget of 8 paths; at most 48 tokens per path. Importing this module is cheap: the model loads
on the first run (about 15 s).

It is served as is. Its context schema is :class:`~t2_agents.graph.ThinkingSettings` (plain
JSON fields), so the server shows it in ``/assistants/{id}/schemas`` and builds it from a run's
``context``; the engine and the policy stay the ones bound here. A run overrides single settings
(every other one keeps the defaults above) with either

- ``{"context": {"n_max": 4, "max_tokens": 32, "task": "products"}}``, or
- ``{"config": {"configurable": {"t2": {"n_max": 4, "max_tokens": 32, "task": "products"}}}}``.

Input ``{"question": "..."}`` (append "Give only the final answer." for a short answer); output
the thinking state: the ``answer``, the budget ``n``, the ``verdict``, the ``branches`` and the
``cost`` record. ``stream_mode="custom"`` streams the ``budget``, ``branch`` and ``verdict``
events.

Example:
    >>> from parallel_thinking import graph  # doctest: +SKIP
    >>> state = graph.invoke({"question": "6 * 7? Give only the final answer."})  # doctest: +SKIP
    >>> state["n"], state["answer"]  # doctest: +SKIP
    (8, '42')
"""

from __future__ import annotations

from t2_agents.agents import build_default_graph

__all__ = ["graph"]

graph = build_default_graph()
"""The graph ``langgraph.json`` serves as ``parallel_thinking``."""
