"""The graph on the in-process vLLM engine (runs in the vLLM venv: ``pytest -m vllm``).

A stop rule that fires on part of a ``send`` wave cancels the paths still in flight: on vLLM the
request is aborted (not decoded to the end), the cancelled paths do not vote, and the ledger
counts the tokens vLLM decoded before the abort (a cancellable call streams its progress).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from t2_agents.backends.base import Completion, SamplingParams
from t2_agents.budget.policies import FixedPolicy
from t2_agents.graph import CostLedger, ThinkingContext, build_parallel_thinking_graph

pytestmark = pytest.mark.vllm

QUESTION = "What is 6 * 7? Give only the final answer."
LONG = 1500
"""Tokens of the long paths: about a minute of decoding here, if they were not aborted."""


class _TwoShortTwoLong:
    """Samples with the real vLLM engine; paths with seed >= 2 get a long prompt (a story).

    The two short paths agree (greedy), so the hybrid rule fires while the two long paths are
    still decoding on vLLM.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.long_started = threading.Event()
        self.long_seconds: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        if params.seed is None or params.seed < 2:
            time.sleep(0.5)  # let the long requests reach vLLM first
            return self.engine.sample(prompts, n, params)  # type: ignore[no-any-return]
        self.long_started.set()
        started = time.perf_counter()
        try:
            story = ["Write a very long story about a dragon."]
            long = SamplingParams(temperature=0.0, max_tokens=LONG, seed=params.seed)
            return self.engine.sample(story, n, long)  # type: ignore[no-any-return]
        finally:
            self.long_seconds.append(time.perf_counter() - started)


def test_a_fired_rule_aborts_the_vllm_requests_still_in_flight(vllm_engine: Any) -> None:
    sampler = _TwoShortTwoLong(vllm_engine)
    ledger = CostLedger()
    context = ThinkingContext(
        n_max=4, temperature=0.0, max_tokens=16, seed=0, task="products", fanout="send",
        sampler=sampler, ledger=ledger,
    )  # fmt: skip
    graph = build_parallel_thinking_graph(
        engine=vllm_engine, policy=FixedPolicy(4), stop="hybrid", context=context
    )
    started = time.perf_counter()
    state = graph.invoke({"question": QUESTION})
    seconds = time.perf_counter() - started
    cost = state["cost"]
    assert sampler.long_started.is_set()
    assert state["stopped"] == "decisive" and state["verdict"]["valid"] == 2
    assert (cost["samples"], cost["cancelled"], cost["failed"]) == (4, 2, 0)
    assert seconds < 20 and max(sampler.long_seconds) < 15  # aborted, not decoded to 1500
    deadline = time.monotonic() + 10
    while vllm_engine._engine.get_num_unfinished_requests() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert vllm_engine._engine.get_num_unfinished_requests() == 0  # vLLM aborted both
    cut = [b for b in state["branches"] if b["finish_reason"] == "cancelled"]
    # vLLM streams a cancellable call, so the tokens decoded before the abort are counted
    assert len(cut) == 2 and all(0 < b["completion_tokens"] < LONG for b in cut)
    assert all(b["prompt_tokens"] > 0 for b in cut)
    voted = [b for b in state["branches"] if b["finish_reason"] != "cancelled"]
    assert all(0 < b["completion_tokens"] <= 16 for b in voted)
    assert cost["completion_tokens"] == sum(b["completion_tokens"] for b in state["branches"])
    assert ledger.summary()["completion_tokens"] == cost["completion_tokens"]
