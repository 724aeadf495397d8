"""One question, N paths, one vote: the library's smallest complete job.

:func:`ask_question` picks N (given, or by the T2 estimator shipped for the default model),
samples N paths in one engine call, extracts and votes. The ``t2 ask`` command prints its result.

Example:
    >>> from t2_agents import TransformersEngine  # doctest: +SKIP
    >>> result = ask_question(TransformersEngine(), "What is 6 * 7?", n=4)  # doctest: +SKIP
    >>> result["verdict"]["answer"]  # doctest: +SKIP
    '42'
"""

from __future__ import annotations

import time

from typing_extensions import TypedDict

from t2_agents.answers import get_extractor
from t2_agents.backends.base import Engine, SamplingParams, check_prompts
from t2_agents.budget.shipped import choose_policy
from t2_agents.tasks import DEFAULT_INSTRUCTION
from t2_agents.voting import VerdictDict, vote

__all__ = ["AskResult", "PathResult", "ask_question"]


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
    """``fixed`` (``n`` was given) or the policy that chose ``n`` (``t2``)."""
    out_of_distribution: bool
    """T2's distribution guard found the question unlike its training questions and gave it at
    least the safe budget (always False for a given ``n``)."""
    verdict: VerdictDict
    paths: list[PathResult]
    completion_tokens: int
    prompt_tokens: int
    seconds: dict[str, float]
    """``budget`` (choosing N) and ``total``."""


def _choose_n(
    engine: Engine,
    prompt: str,
    n: int | None,
    estimator: str | None,
    knobs: dict[str, float | None],
) -> tuple[int, str, bool]:
    if n is not None:
        return n, "fixed", False
    policy = choose_policy(
        engine, estimator, tolerance=knobs.get("tolerance"), price=knobs.get("price")
    )
    features = engine.encode([prompt], list(policy.layers))[0] if policy.needs_features else None
    # No cap here: the engine checks n against its own max_n with a clear error.
    chosen = policy.choose(features=features, question=prompt, n_min=1, n_max=1 << 16)
    flagged = getattr(policy, "out_of_distribution", None)
    return chosen, policy.name, bool(flagged(features)) if flagged is not None else False


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
        n: Paths to sample; None lets the T2 estimator choose.
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
    knobs = {"tolerance": tolerance, "price": price}
    chosen, policy, unfamiliar = _choose_n(engine, prompt, n, estimator, knobs)
    decided = time.perf_counter()
    params = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    paths = engine.sample([prompt], chosen, params)[0]
    extract = get_extractor(task)
    answers = [extract(p.text) for p in paths]
    verdict = vote(answers, seed=seed)
    return {
        "question": question,
        "n": chosen,
        "policy": policy,
        "out_of_distribution": unfamiliar,
        "verdict": verdict.to_dict(),
        "paths": [
            {"answer": a, "text": p.text, "tokens": p.completion_tokens, "finish": p.finish_reason}
            for p, a in zip(paths, answers, strict=True)
        ],
        "completion_tokens": sum(p.completion_tokens for p in paths),
        "prompt_tokens": paths[0].prompt_tokens if paths else 0,
        "seconds": {"budget": decided - started, "total": time.perf_counter() - started},
    }
