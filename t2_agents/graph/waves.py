"""Sequential sampling in waves: the ``wave`` node and the routes around it.

With a stop rule (:class:`~t2_agents.budget.stop_rules.StopRule`, ``ThinkingContext(stop=...)``) a
step
samples a first wave (the hybrid: the policy's N; adaptive: 1 path; ESC: a window), then after
every wave the ``wave`` node extracts the answers, votes, records a
:class:`~t2_agents.graph.state.WaveRecord` (size, tokens, seconds, the running vote, the Beta
probability of the leader, the decision), streams it as a ``wave`` event and either stops or
plans the next wave: one more ``sample(n=wave)`` call in batched mode, or one ``Send`` per path.
Branch ``i`` of the step keeps seed ``seed + i`` across waves, so the batched and the send
fan-out give the same paths on an engine with ``per_path_seeds``. Each wave is a superstep, so
a checkpointer commits it: a run resumed after a failure or a kill starts at the first
unfinished wave and never samples a finished one again. With a run budget each follow-up wave
is granted by the run's account (:func:`~t2_agents.graph.budgets.extend_step`); when it grants
nothing the rule stops with reason ``"run budget"``. In the ``send`` fan-out, a rule that can
decide on part of a wave cancels the wave's paths still in flight once it fires
(:mod:`~t2_agents.graph.inflight`).

Example:
    >>> route_after_fanout({"stop_rule": None})
    'aggregate'
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Send

from t2_agents.budget.stop_rules import StopRule
from t2_agents.errors import ConfigError
from t2_agents.graph.budgets import extend_step
from t2_agents.graph.inflight import drop_board
from t2_agents.graph.nodes import branch_answers, branch_span, route_fanout, vote_seed
from t2_agents.graph.state import ThinkingContext, ThinkingState, WaveRecord, resolve_context
from t2_agents.voting import vote

__all__ = ["route_after_fanout", "route_after_wave", "wave_node"]


def route_after_fanout(state: ThinkingState) -> str:
    """After a wave: the ``wave`` node when a stop rule is set, else ``aggregate``."""
    return "wave" if state.get("stop_rule") else "aggregate"


def route_after_wave(state: ThinkingState) -> list[Send] | str:
    """After the ``wave`` node: ``aggregate`` once the rule stopped, else the next wave."""
    if state.get("stopped"):
        return "aggregate"
    return route_fanout(state)


def wave_node(
    state: ThinkingState,
    runtime: Runtime[Any],
    config: RunnableConfig,
    *,
    defaults: ThinkingContext,
) -> dict[str, Any]:
    """Vote after a wave, record it, emit a ``wave`` event; stop or plan the next wave.

    The next wave has the rule's follow-up size, cut to the step's cap and to what the run
    budget grants; the rule stops at the cap (reason ``"n_max"``, or ``"cap"`` for the hybrid's
    predicted saturation budget below ``n_max``), or with reason ``"run budget"`` when nothing
    is granted.

    Raises:
        ConfigError: The step has no stop rule (the graph only routes here when it has one).
    """
    ctx = resolve_context(defaults, runtime.context, config)
    rule = ctx.stop
    if not isinstance(rule, StopRule):
        raise ConfigError("the wave node needs a stop rule; set ThinkingContext(stop=...)")
    branches = sorted(state.get("branches") or [], key=lambda branch: branch["index"])
    answers = branch_answers(branches, ctx)
    start = int(state.get("wave_start", 0))
    drop_board(f"{state.get('step_id', '')}:{start}")
    wave = [b for b in branches if b["index"] >= start]
    n_max = int(state.get("n_max", ctx.n_max))
    n_cap = min(n_max, int(state.get("n_cap", n_max)))
    decision = rule.decide(answers, wave=answers[len(branches) - len(wave) :], n_max=n_cap)
    valid = [a for a in answers if a is not None]
    verdict = vote(valid, seed=vote_seed(branches)) if valid else None
    reason = "cap" if decision.reason == "n_max" and n_cap < n_max else decision.reason
    size = 0
    if not decision.stop:
        wanted = min(rule.follow_up(), n_cap - len(branches))
        size = extend_step(ctx.run_budget, config, state.get("run_budget"), wanted)
        reason = "continue" if size else "run budget"
    record: WaveRecord = {
        "wave": len(state.get("waves") or []) + 1,
        "size": len(wave),
        "samples": len(branches),
        "prompt_tokens": sum(b["prompt_tokens"] for b in wave),
        "completion_tokens": sum(b["completion_tokens"] for b in wave),
        "seconds": branch_span(wave),
        "answer": None if verdict is None else verdict.answer,
        "share": 0.0 if verdict is None else float(verdict.share),
        "distribution": {} if verdict is None else dict(verdict.distribution),
        "leader_probability": decision.leader_probability,
        "stop": size == 0,
        "reason": reason,
        "cancelled": sum(1 for b in wave if b["finish_reason"] == "cancelled"),
    }
    get_stream_writer()({"event": "wave", **record})
    update: dict[str, Any] = {"waves": [record], "answers": answers}
    if size == 0:
        return {**update, "stopped": reason}
    base = ctx.seed
    seeds = [None if base is None else base + i for i in range(len(branches), len(branches) + size)]
    return {**update, "seeds": seeds, "wave_start": len(branches)}
