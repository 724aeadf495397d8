"""The budget node: render the prompt, read its features, choose N (and the hybrid's cap).

The first node of a step. It renders the question, encodes the final prompt token's hidden states
when the policy needs them (:func:`summarize_features` keeps a JSON-ready summary in the state),
asks the policy for ``N`` and clamps it to ``n_min..n_max``, and records whether the policy flags
the question as unlike its training questions (``out_of_distribution``). With a stop rule the first
wave is the rule's (the policy's ``N`` for the hybrid), and the hybrid's cap is the policy's
predicted saturation budget (``choose_cap``); with a run budget the run's account grants the step's
paths (:mod:`~t2_agents.graph.budgets`), by the policy's predicted curve when it has one. The policy
is completed once per step (:func:`~t2_agents.budget.protocols.as_budget_policy`: capabilities it
lacks get the defaults of :class:`~t2_agents.budget.protocols.BudgetPolicy`), so these are plain
method calls. It emits the ``budget`` event before any path is decoded, and resets the per-step
state.

Example:
    >>> summarize_features(np.zeros((1, 2), dtype=np.float32), [5])["l2_norm"]
    [0.0]
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from t2_agents.budget.policies import FixedPolicy, clamp_budget
from t2_agents.budget.protocols import BudgetPolicy, as_budget_policy
from t2_agents.budget.stop_rules import StopRule
from t2_agents.errors import PromptError
from t2_agents.graph.budgets import grant_step
from t2_agents.graph.state import FeatureSummary, ThinkingContext, ThinkingState, resolve_context

__all__ = ["budget_node", "summarize_features"]


def summarize_features(
    features: npt.NDArray[np.floating[Any]], layers: list[int]
) -> FeatureSummary:
    """Summarise one prompt's ``[L, d]`` features for the state: per-layer L2 norms.

    Example:
        >>> summarize_features(np.ones((2, 4), dtype=np.float32), [3, 7])["l2_norm"]
        [2.0, 2.0]
    """
    array = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(array, axis=-1).reshape(-1)
    return {
        "layers": list(layers),
        "shape": [int(size) for size in array.shape],
        "l2_norm": [float(value) for value in norms],
        "l2_norm_mean": float(norms.mean()) if norms.size else 0.0,
    }


def budget_node(
    state: ThinkingState,
    runtime: Runtime[Any],
    config: RunnableConfig,
    *,
    defaults: ThinkingContext,
) -> dict[str, Any]:
    """Choose the step's budget ``N``: render, encode (if the policy needs it), ask, clamp.

    Raises:
        PromptError: ``question`` is missing, not a string or blank.
        ArtifactError: A T2 policy's estimator does not match the engine.
    """
    started, clock = time.time(), time.perf_counter()
    ctx = resolve_context(defaults, runtime.context, config)
    question = _question(state)
    engine = ctx.require_engine()
    policy = FixedPolicy(ctx.n_max) if ctx.policy is None else as_budget_policy(ctx.policy)
    rule = ctx.stop if isinstance(ctx.stop, StopRule) else None
    if rule is not None and not rule.takes_first_wave:
        policy = FixedPolicy(rule.follow_up())  # adaptive/ESC ignore the policy's N
    policy.check_engine(engine)
    prompt = engine.render(question)
    features: npt.NDArray[np.float32] | None = None
    summary: FeatureSummary | None = None
    if policy.needs_features:
        layers = [int(layer) for layer in policy.layers]
        features = engine.encode([question], layers)[0]
        summary = summarize_features(features, layers)
    raw = policy.choose(features=features, question=question, n_min=ctx.n_min, n_max=ctx.n_max)
    unfamiliar = bool(policy.out_of_distribution(features))
    n, warning = clamp_budget(raw, n_min=ctx.n_min, n_max=ctx.n_max)
    n_cap = ctx.n_max
    if rule is not None:
        n = rule.wave_sizes(first=n, n_max=ctx.n_max)[0]
        n_cap = _hybrid_cap(rule, policy, features, first=n, ctx=ctx)
    name = policy.name if rule is None else _rule_name(rule, policy)
    budget: dict[str, Any] | None = None
    error: str | None = None
    if ctx.run_budget is not None:
        n, budget = grant_step(
            ctx.run_budget,
            config,
            wanted=n,
            curve=_curve(policy, features),
            n_min=ctx.n_min,
            n_max=n_cap,
            max_tokens=ctx.max_tokens,
        )
        warning = budget["warning"] or warning
        error = budget["warning"] if n == 0 else None
    seconds = time.perf_counter() - clock
    get_stream_writer()(
        {
            "event": "budget",
            "question": question,
            "n": n,
            "n_min": ctx.n_min,
            "n_max": ctx.n_max,
            "n_cap": n_cap,
            "policy": name,
            "warning": warning,
            "features": summary,
            "out_of_distribution": unfamiliar,
            "fanout": ctx.fanout,
            "stop_rule": None if rule is None else rule.name,
            "run_budget": budget,
            "seconds": seconds,
        }
    )
    return {
        "prompt": prompt,
        "n": n,
        "n_min": ctx.n_min,
        "n_max": ctx.n_max,
        "n_cap": n_cap,
        "policy": name,
        "budget_warning": warning,
        "features": summary,
        "out_of_distribution": unfamiliar,
        "fanout": ctx.fanout,
        "params": {
            "temperature": ctx.temperature,
            "top_p": ctx.top_p,
            "max_tokens": ctx.max_tokens,
        },
        "seeds": ctx.branch_seeds(n),
        "step_id": uuid.uuid4().hex,
        "wave_start": 0,
        "stop_rule": None if rule is None else {"name": rule.name, **_rule_dict(rule)},
        "waves": None,  # reset (see add_waves)
        "stopped": None,
        "run_budget": budget,
        "branches": None,  # reset (see add_branches)
        "answers": [],
        "verdict": None,
        "answer": None,
        "error": error,
        "cost": None,
        "started_at": started,
        "budget_seconds": seconds,
    }


def _hybrid_cap(
    rule: StopRule,
    policy: BudgetPolicy,
    features: npt.NDArray[np.float32] | None,
    *,
    first: int,
    ctx: ThinkingContext,
) -> int:
    """The step's cap: the hybrid's predicted saturation budget (at least its first wave)."""
    if not rule.criterion.caps or rule.cap_tolerance is None:
        return ctx.n_max
    cap = policy.choose_cap(
        features=features, tolerance=rule.cap_tolerance, n_min=ctx.n_min, n_max=ctx.n_max
    )
    return max(first, int(cap))


def _rule_name(rule: StopRule, policy: BudgetPolicy) -> str:
    return f"{rule.name}+{policy.name}" if rule.takes_first_wave else rule.name


def _rule_dict(rule: StopRule) -> dict[str, Any]:
    return {
        "kind": rule.kind,
        "threshold": rule.threshold,
        "window": rule.window,
        "decisive_share": rule.decisive_share,
        "min_votes": rule.min_votes,
        "cap_tolerance": rule.cap_tolerance,
        "wave": rule.follow_up(),
    }


def _curve(
    policy: BudgetPolicy, features: npt.NDArray[np.float32] | None
) -> npt.NDArray[np.float64] | None:
    curve = None if features is None else policy.predict_curve(features)
    return None if curve is None else np.asarray(curve, dtype=np.float64)


def _question(state: ThinkingState) -> str:
    question = state.get("question")
    if not isinstance(question, str):
        raise PromptError(
            f"the state's 'question' is {type(question).__name__}, not str; "
            'invoke with {"question": "..."}'
        )
    if not question.strip():
        raise PromptError(f"the question is empty or whitespace only ({question!r}); ask something")
    return question
