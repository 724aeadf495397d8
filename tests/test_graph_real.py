"""The graph on the real default model (SmolLM2-135M-Instruct), at tiny settings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from t2_agents.budget.policies import T2Policy
from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph

pytestmark = pytest.mark.slow

QUESTION = "What is 7 * 6? Give only the final answer."
# `engine` is the session-scoped real TransformersEngine fixture of tests/conftest.py.


class ProbeStub:
    """Stands in for a fitted estimator of the real model: checks the features, predicts 3."""

    def __init__(self, identity: str, hidden: int) -> None:
        self.layers = [4, 15]
        self.n_min, self.n_max = 1, 16
        self.model_identity = identity
        self.hidden_size = hidden

    def predict_one(self, features: np.ndarray) -> int:
        assert features.shape == (2, self.hidden_size) and np.isfinite(features).all()
        return 3


def test_greedy_modes_agree(engine: Any) -> None:
    """Both fan-out modes on the real engine: same state shape and, greedy, the same answers."""
    states = {}
    for fanout in ("batched", "send"):
        context = ThinkingContext(
            n_max=2, temperature=0.0, max_tokens=8, seed=0, task="products", fanout=fanout
        )  # type: ignore[arg-type]
        graph = build_parallel_thinking_graph(engine=engine, context=context)
        states[fanout] = graph.invoke({"question": QUESTION})
    batched, send = states["batched"], states["send"]
    assert set(batched) == set(send)
    assert len(batched["branches"]) == len(send["branches"]) == 2
    for a, b in zip(batched["branches"], send["branches"], strict=True):
        assert set(a) == set(b) and a["error"] is None and b["error"] is None
        assert a["text"] == b["text"] and a["completion_tokens"] > 0
    assert batched["answers"] == send["answers"]
    assert batched["verdict"] == send["verdict"]


def test_batched_sampling_with_t2_features(engine: Any) -> None:
    """One batched generate of 3 paths, N chosen by a T2 policy reading real hidden states."""
    policy = T2Policy(ProbeStub(engine.identity, engine.hidden_size), engine=engine)
    context = ThinkingContext(n_max=4, temperature=0.7, max_tokens=12, seed=1, task="products")
    graph = build_parallel_thinking_graph(engine=engine, policy=policy, context=context)
    events = list(graph.stream({"question": QUESTION}, stream_mode=["custom", "values"]))
    custom = [data for mode, data in events if mode == "custom"]
    state = [data for mode, data in events if mode == "values"][-1]
    assert [e["event"] for e in custom] == ["budget", "branch", "branch", "branch", "verdict"]
    assert state["n"] == 3 and state["policy"] == "t2"
    assert state["features"]["shape"] == [2, engine.hidden_size]
    assert all(norm > 0 for norm in state["features"]["l2_norm"])
    assert all(b["error"] is None and b["text"] is not None for b in state["branches"])
    cost = state["cost"]
    assert cost["samples"] == 3 and 0 < cost["completion_tokens"] <= 3 * 12
    assert cost["prompt_tokens"] > 0
    assert state["error"] is None and state["verdict"] is not None


def test_hybrid_waves_and_a_run_budget_on_the_real_model(engine: Any) -> None:
    """T2-shaped hybrid on the real engine: one sample call per wave, within the run budget."""
    from t2_agents.budget.stop_rules import StopRule
    from t2_agents.graph import CostLedger, RunBudget

    ledger = CostLedger()
    budget = RunBudget(total_samples=8, steps=2)
    graph = build_parallel_thinking_graph(
        engine=engine,
        policy=T2Policy(ProbeStub(engine.identity, engine.hidden_size), engine=engine),
        stop=StopRule(kind="hybrid", window=2),
        run_budget=budget,
        context=ThinkingContext(n_max=6, max_tokens=8, seed=0, task="products", ledger=ledger),
    )
    config = {"configurable": {"thread_id": "real"}}
    states = [graph.invoke({"question": QUESTION}, config) for _ in range(2)]
    for state in states:
        sizes = [wave["size"] for wave in state["waves"]]
        assert sizes[0] <= 3 and sum(sizes) == len(state["branches"]) <= 6
        assert state["cost"]["engine_calls"] == len(sizes)
        assert state["stopped"] in {"decisive", "n_max", "run budget"}
    assert ledger.summary()["samples"] <= 8
    assert budget.account_for("real").snapshot()["spent_samples"] == ledger.summary()["samples"]


def test_send_waves_cancel_queued_and_running_paths_on_the_real_model(engine: Any) -> None:
    """Greedy paths agree, so the hybrid fires after two; the other two never finish."""
    from t2_agents.budget.policies import FixedPolicy

    graph = build_parallel_thinking_graph(
        engine=engine,
        policy=FixedPolicy(4),
        stop="hybrid",
        context=ThinkingContext(
            n_max=4, temperature=0.0, max_tokens=24, seed=0, task="products", fanout="send"
        ),
    )
    state = graph.invoke({"question": QUESTION})
    cost = state["cost"]
    assert state["stopped"] == "decisive" and state["verdict"]["valid"] == 2
    assert (cost["samples"], cost["cancelled"], cost["failed"]) == (4, 2, 0)
    cut = [b for b in state["branches"] if b["finish_reason"] == "cancelled"]
    assert sum(b["completion_tokens"] for b in cut) < 24  # stopped at the next token, or never ran
    assert cost["completion_tokens"] == sum(b["completion_tokens"] for b in state["branches"])
