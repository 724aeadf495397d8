"""One question, N paths, one vote: the parallel-thinking graph run once, for ``t2 ask``.

:func:`ask_question` builds the graph (:func:`~t2_agents.graph.build_parallel_thinking_graph`)
with a fixed N (given) or the T2 estimator shipped for the default model, invokes it once and
reads its typed result (:class:`~t2_agents.graph.result.ThinkingResult`): the same budget
clamping, retries and cost record as a graph node in an agent.

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> result = ask_question(FakeEngine(answers={"42": 1.0}), "What is 6 * 7?", n=4)
    >>> result["verdict"]["answer"], result["n"], result["policy"]
    ('42', 4, 'fixed-4')
"""

from __future__ import annotations

import time

from typing_extensions import TypedDict

from t2_agents.backends.base import Engine, check_prompts
from t2_agents.budget.policies import BudgetPolicy, FixedPolicy
from t2_agents.budget.shipped import choose_policy
from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph
from t2_agents.graph.result import ThinkingResult
from t2_agents.tasks import DEFAULT_INSTRUCTION
from t2_agents.voting import VerdictDict

__all__ = ["T2_CEILING", "AskResult", "PathResult", "ask_question"]

T2_CEILING = 64
"""Largest N T2 may choose for ``t2 ask`` (the shipped estimator predicts at most 32)."""


class PathResult(TypedDict):
    """One sampled path of :func:`ask_question`."""

    answer: str | None
    """The extracted final answer (None: none found)."""
    text: str
    tokens: int
    """Completion tokens."""
    finish: str
    """``stop`` or ``length``."""


class AskResult(TypedDict):
    """:func:`ask_question`'s JSON-ready result (``t2 ask --json`` prints it)."""

    question: str
    n: int
    """Paths sampled."""
    policy: str
    """The policy that chose ``n``: ``fixed-N`` (``n`` was given) or ``t2``."""
    out_of_distribution: bool
    """T2's distribution guard found the question unlike its training questions and gave it at
    least the safe budget (always False for a given ``n``)."""
    verdict: VerdictDict
    paths: list[PathResult]
    completion_tokens: int
    prompt_tokens: int
    seconds: dict[str, float]
    """``budget`` (choosing N) and ``total``."""


def ask_question(
    engine: Engine,
    question: str,
    *,
    n: int | None = None,
    estimator: str | None = None,
    temperature: float = 0.7,
    max_tokens: int = 48,
    seed: int = 0,
    task: str | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
    tolerance: float | None = None,
    price: float | None = None,
) -> AskResult:
    """Answer one question by self-consistency with an adaptive (or given) number of paths.

    Args:
        engine: Any engine.
        question: The question; the instruction is appended.
        n: Paths to sample; None lets the T2 estimator choose (at most :data:`T2_CEILING`).
        estimator: Estimator folder; None uses the one shipped for the default model.
        temperature: Sampling temperature.
        max_tokens: Cap on tokens per path.
        seed: Sampling and tie-break seed.
        task: Extractor name (see :func:`t2_agents.answers.get_extractor`).
        instruction: Appended to the question.
        tolerance: T2's cost knob (curve-head estimators): accuracy you accept to lose against
            the best predicted budget; None uses the estimator's calibrated default.
        price: T2's other knob: the accuracy one more path must buy (give at most one knob).

    Returns:
        An :class:`AskResult`.
    """
    check_prompts([question])
    prompt = f"{question.rstrip()} {instruction}".strip()
    started = time.perf_counter()
    policy: BudgetPolicy = (
        FixedPolicy(n)
        if n is not None
        else choose_policy(engine, estimator, tolerance=tolerance, price=price)
    )
    graph = build_parallel_thinking_graph(
        engine=engine,
        policy=policy,
        n_min=1,
        n_max=n if n is not None else T2_CEILING,
        context=ThinkingContext(
            temperature=temperature, max_tokens=max_tokens, seed=seed, task=task
        ),
        name="t2_ask",
    )
    result = ThinkingResult.from_state(graph.invoke({"question": prompt}))
    return {
        "question": question,
        "n": result.n,
        "policy": result.policy,
        "out_of_distribution": result.out_of_distribution,
        "verdict": result.verdict.to_dict(),
        "paths": [
            {
                "answer": p.answer,
                "text": p.text or "",
                "tokens": p.completion_tokens,
                "finish": p.finish_reason,
            }
            for p in result.paths
        ],
        "completion_tokens": result.completion_tokens,
        "prompt_tokens": result.prompt_tokens,
        "seconds": {
            "budget": float(result.node_seconds.get("budget", 0.0)),
            "total": time.perf_counter() - started,
        },
    }
