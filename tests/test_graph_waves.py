"""Live sequential sampling in the graph: waves, stop rules, wave events, checkpoint resume."""

from __future__ import annotations

import time
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from t2_agents.backends.base import cancel_requested
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.budget.stop_rules import StopRule
from t2_agents.errors import ConfigError, EngineError
from t2_agents.graph import ThinkingContext, ThinkingSettings, build_parallel_thinking_graph

Q = "What is 6 * 7?"
SPLIT = {"1": 0.34, "2": 0.33, "3": 0.33}


def _run(engine: FakeEngine, **kwargs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    graph = build_parallel_thinking_graph(engine=engine, retry=None, **kwargs)
    events: list[dict[str, Any]] = []
    state: dict[str, Any] = {}
    for mode, chunk in graph.stream({"question": Q}, stream_mode=["custom", "values"]):
        if mode == "custom":
            events.append(chunk)
        else:
            state = chunk
    return state, events


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_hybrid_stops_after_the_first_wave_when_it_is_decisive(fanout: str) -> None:
    engine = FakeEngine(answers={"7": 1.0})
    state, events = _run(
        engine, policy=FixedPolicy(3), n_max=16, fanout=fanout, stop=StopRule(kind="hybrid")
    )
    assert state["answer"] == "7" and state["stopped"] == "decisive"
    assert [w["size"] for w in state["waves"]] == [3]
    assert state["policy"] == "hybrid+fixed-3"
    cost = state["cost"]
    assert cost["samples"] == 3 and cost["stopped"] == "decisive"
    assert cost["engine_calls"] == (1 if fanout == "batched" else 3)
    waves = [e for e in events if e["event"] == "wave"]
    assert len(waves) == 1 and waves[0]["answer"] == "7" and waves[0]["stop"] is True


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_hybrid_samples_follow_up_waves_up_to_n_max(fanout: str) -> None:
    engine = FakeEngine(answers=SPLIT)
    state, events = _run(
        engine, policy=FixedPolicy(3), n_max=9, fanout=fanout, stop=StopRule(kind="hybrid")
    )
    sizes = [w["size"] for w in state["waves"]]
    assert sum(sizes) == state["cost"]["samples"] == len(state["branches"])
    assert sizes[0] == 3 and all(size <= 4 for size in sizes[1:])
    assert sorted(b["index"] for b in state["branches"]) == list(range(sum(sizes)))
    assert [b["seed"] for b in sorted(state["branches"], key=lambda b: b["index"])] == list(
        range(sum(sizes))
    )
    if state["stopped"] == "n_max":
        assert sum(sizes) == 9
    if fanout == "batched":  # one engine call per wave, of the wave's size
        assert [n for _, n, _ in engine.sample_calls] == sizes
    running = [e for e in events if e["event"] == "wave"]
    assert [e["samples"] for e in running] == [w["samples"] for w in state["waves"]]
    assert all(set(e["distribution"]) <= {"1", "2", "3"} for e in running)
    assert [e["wave"] for e in state["cost"]["waves"]] == list(range(1, len(sizes) + 1))


def test_send_and_batched_waves_agree_path_by_path() -> None:
    out = []
    for fanout in ("batched", "send"):
        state, _ = _run(
            FakeEngine(answers=SPLIT), policy=FixedPolicy(2), n_max=10, fanout=fanout, stop="hybrid"
        )
        out.append((state["answers"], [w["size"] for w in state["waves"]], state["answer"]))
    assert out[0] == out[1]


def test_esc_stops_on_a_unanimous_window() -> None:
    engine = FakeEngine(answers={"5": 1.0})
    state, _ = _run(engine, n_max=16, stop=StopRule(kind="esc", window=4))
    assert state["stopped"] == "esc" and state["cost"]["samples"] == 4
    assert [n for _, n, _ in engine.sample_calls] == [4]
    assert state["policy"] == "esc-4"


def test_adaptive_samples_one_path_per_wave_until_the_beta_rule_fires() -> None:
    engine = FakeEngine(answers={"5": 1.0})
    state, _ = _run(engine, n_max=16, stop=StopRule(kind="adaptive"))
    assert state["stopped"] == "adaptive" and state["cost"]["samples"] == 4
    assert [n for _, n, _ in engine.sample_calls] == [1, 1, 1, 1]
    assert [round(w["leader_probability"], 4) for w in state["waves"]] == [
        0.75,
        0.875,
        0.9375,
        0.9688,
    ]


def test_the_rule_can_be_chosen_per_run_from_json_settings() -> None:
    graph = build_parallel_thinking_graph(engine=FakeEngine(answers={"5": 1.0}), n_max=8)
    state = graph.invoke({"question": Q}, context=ThinkingSettings(stop="esc"))
    assert state["stopped"] == "esc" and len(state["branches"]) == 4
    plain = graph.invoke({"question": Q})
    assert plain["stopped"] is None and plain["waves"] == [] and len(plain["branches"]) == 8


def test_finished_waves_survive_a_failure_and_are_not_resampled() -> None:
    # wave 1 = seeds 0..1, wave 2 = 2..5, wave 3 starts at seed 6 and fails once
    engine = FakeEngine(answers=SPLIT, errors={6: [EngineError("killed")]})
    graph = build_parallel_thinking_graph(
        engine=engine,
        policy=FixedPolicy(2),
        n_max=10,
        retry=None,
        checkpointer=InMemorySaver(),
        context=ThinkingContext(branch_errors="raise", stop=StopRule(kind="hybrid")),
    )
    config = {"configurable": {"thread_id": "waves"}}
    with pytest.raises(EngineError, match="killed"):
        graph.invoke({"question": Q}, config)
    assert [seed for _, _, seed in engine.sample_calls] == [0, 2, 6]
    state = graph.invoke(None, config)
    seeds = [seed for _, _, seed in engine.sample_calls]
    assert seeds[:4] == [0, 2, 6, 6]  # resumed at wave 3: waves 1 and 2 were not re-sampled
    assert seeds.count(0) == seeds.count(2) == 1
    assert state["cost"]["samples"] == sum(w["size"] for w in state["waves"])


def test_waves_larger_than_n_max_are_refused() -> None:
    with pytest.raises(ConfigError, match="exceed n_max=4"):
        build_parallel_thinking_graph(engine=FakeEngine(), n_max=4, stop=StopRule(window=6))
    with pytest.raises(ConfigError, match="stop='beta' is not one of"):
        ThinkingContext(stop="beta")  # type: ignore[arg-type]


class CancellableEngine(FakeEngine):
    """A fake engine that polls the cancel signal while it 'generates' (like the real ones)."""

    def sample(self, prompts: Any, n: int, params: Any) -> Any:
        delay = self.delay.get(params.seed, 0.0) if isinstance(self.delay, dict) else 0.0
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if cancel_requested():
                raise EngineError("the caller cancelled this call")
            time.sleep(0.005)
        return FakeEngine(answers={"7": 1.0}).sample(prompts, n, params)


SLOW = {0: 0.0, 1: 0.0, 2: 2.0, 3: 2.0, 4: 2.0, 5: 2.0}


def test_send_waves_cancel_the_paths_still_in_flight_when_the_rule_fires() -> None:
    engine = CancellableEngine(answers={"7": 1.0}, delay=SLOW)
    started = time.monotonic()
    state, events = _run(engine, policy=FixedPolicy(6), n_max=6, fanout="send", stop="hybrid")
    assert time.monotonic() - started < 1.5  # the 2 s paths were cancelled, not waited for
    cost = state["cost"]
    assert state["answer"] == "7" and state["stopped"] == "decisive"
    assert (cost["samples"], cost["cancelled"], cost["failed"]) == (6, 4, 0)
    finished = [b for b in state["branches"] if b["finish_reason"] != "cancelled"]
    assert cost["completion_tokens"] == sum(b["completion_tokens"] for b in finished)
    assert state["waves"][0]["cancelled"] == 4
    assert sum(1 for e in events if e["event"] == "branch") == 6


def test_paths_returning_after_the_rule_fired_do_not_vote_but_count_their_tokens() -> None:
    engine = FakeEngine(answers={"7": 1.0}, delay={0: 0.0, 1: 0.0, 2: 0.3, 3: 0.3})
    state, _ = _run(engine, policy=FixedPolicy(4), n_max=4, fanout="send", stop="hybrid")
    cost = state["cost"]
    assert cost["cancelled"] == 2 and state["verdict"]["valid"] == 2
    assert cost["completion_tokens"] == sum(b["completion_tokens"] for b in state["branches"])


def test_esc_windows_are_never_cut_short() -> None:
    engine = FakeEngine(answers={"7": 1.0}, delay={0: 0.0, 1: 0.0, 2: 0.1, 3: 0.1})
    state, _ = _run(engine, n_max=8, fanout="send", stop="esc")
    assert state["cost"]["cancelled"] == 0 and state["stopped"] == "esc"


class _CappedPolicy:
    """A policy that predicts where its accuracy saturates (like a curve-head T2Policy)."""

    name, needs_features, layers = "capped", False, ()

    def __init__(self, first: int, cap: int) -> None:
        self.first, self.cap = first, cap
        self.tolerances: list[float] = []

    def choose(self, *, features: Any, question: str, n_min: int, n_max: int) -> int:
        return self.first

    def choose_cap(self, *, features: Any, tolerance: float, n_min: int, n_max: int) -> int:
        self.tolerances.append(tolerance)
        return self.cap


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_hybrid_stops_at_the_policy_s_predicted_saturation_budget(fanout: str) -> None:
    policy = _CappedPolicy(first=3, cap=6)
    rule = StopRule(kind="hybrid", cap_tolerance=0.01)
    state, events = _run(FakeEngine(answers=SPLIT), policy=policy, n_max=16, fanout=fanout,
                         stop=rule)  # fmt: skip
    assert policy.tolerances == [0.01]
    budget = next(e for e in events if e["event"] == "budget")
    assert budget["n_cap"] == state["n_cap"] == 6 and budget["n_max"] == 16
    sizes = [w["size"] for w in state["waves"]]
    assert sizes[0] == 3 and sum(sizes) <= 6  # 3, then a wave cut from 4 to 3
    if state["stopped"] == "cap":
        assert sizes == [3, 3] and state["cost"]["samples"] == 6
    assert state["stopped"] in {"cap", "decisive"}
    assert state["stop_rule"]["cap_tolerance"] == 0.01


def test_the_hybrid_cap_is_n_max_without_a_cap_rule_and_never_below_the_first_wave() -> None:
    policy = _CappedPolicy(first=3, cap=6)
    no_cap = StopRule(kind="hybrid", cap_tolerance=None)
    state, _ = _run(FakeEngine(answers=SPLIT), policy=policy, n_max=9, stop=no_cap)
    assert state["n_cap"] == 9 and policy.tolerances == []
    assert state["stopped"] != "cap"
    low = _CappedPolicy(first=5, cap=2)  # a cap under the first wave: the first wave stands
    state, _ = _run(FakeEngine(answers=SPLIT), policy=low, n_max=9, stop="hybrid")
    assert state["n_cap"] == 5 and [w["size"] for w in state["waves"]] == [5]
    assert state["stopped"] in {"cap", "decisive"}
    fixed, _ = _run(FakeEngine(answers=SPLIT), policy=FixedPolicy(3), n_max=9, stop="hybrid")
    assert fixed["n_cap"] == 9  # nothing predicts a saturation budget: n_max
