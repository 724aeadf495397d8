"""The parallel-thinking graph on the default engine with the best policy available.

What ``graphs/`` serves (``langgraph dev``) and what the agent examples think with: T2 from the
shipped estimator when there is one, else a fixed budget; nothing is loaded until the first run.

Example:
    >>> build_default_graph().name  # nothing is loaded yet
    'parallel_thinking'
"""

from __future__ import annotations

from pathlib import Path

from t2_agents.backends.base import Engine
from t2_agents.backends.lazy import shared_default_engine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.budget.shipped import choose_policy
from t2_agents.graph import ThinkingContext, ThinkingGraph, build_parallel_thinking_graph
from t2_agents.graph.settings import Fanout

__all__ = ["build_default_graph"]


def build_default_graph(
    engine: Engine | None = None,
    *,
    estimator: str | Path | None = None,
    n_max: int = 16,
    max_tokens: int = 48,
    fanout: Fanout = "batched",
) -> ThinkingGraph:
    """The parallel-thinking graph on the default engine with the best policy available.

    T2 (``estimator``, else the shipped estimator) when there is one, with budgets in
    ``[1, n_max]``; otherwise ``FixedPolicy(FALLBACK_N)`` with ``n_max = FALLBACK_N``. Nothing
    is loaded until the first run when ``engine`` is None (:func:`shared_default_engine`).

    Args:
        engine: The engine; None shares one lazily loaded default engine per process.
        estimator: T2 estimator folder; None uses the shipped one if it exists.
        n_max: Largest budget of the T2 policy.
        max_tokens: Largest completion per path.
        fanout: ``"batched"`` or ``"send"``.

    Returns:
        The compiled graph, named ``parallel_thinking``.

    Raises:
        ArtifactError: ``estimator`` is given but missing, or fits another model.

    Example:
        >>> graph = build_default_graph()  # nothing is loaded yet
        >>> graph.name, shared_default_engine().loaded
        ('parallel_thinking', False)
    """
    chosen = engine if engine is not None else shared_default_engine()
    policy = choose_policy(chosen, estimator)
    if isinstance(policy, FixedPolicy):
        n_max = policy.n
    context = ThinkingContext(n_min=1, n_max=n_max, max_tokens=max_tokens, fanout=fanout)
    return build_parallel_thinking_graph(engine=chosen, policy=policy, context=context)
