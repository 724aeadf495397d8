"""Tests of the parallel-thinking graph on the deterministic FakeEngine: modes, events, errors."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pytest
from langgraph.types import RetryPolicy, Send
from pydantic import ValidationError

from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import CallablePolicy, FixedPolicy, OraclePolicy, T2Policy
from t2_agents.errors import (
    ArtifactError,
    ConfigError,
    EngineError,
    PromptError,
    TransientEngineError,
)
from t2_agents.graph import (
    CostLedger,
    ThinkingContext,
    ThinkingSettings,
    build_parallel_thinking_graph,
)
from t2_agents.graph.budget_node import summarize_features
from t2_agents.graph.nodes import route_fanout
from t2_agents.graph.state import add_branches, resolve_context

Q = "What is 6 * 7?"
FAST_RETRY = RetryPolicy(
    initial_interval=0.01, max_interval=0.02, max_attempts=3, jitter=False,
    retry_on=TransientEngineError,
)  # fmt: skip
STATE_KEYS = {
    "question", "prompt", "n", "n_min", "n_max", "n_cap", "policy", "budget_warning", "features",
    "out_of_distribution",
    "fanout", "params", "seeds", "branches", "answers", "verdict", "answer", "error", "cost",
    "started_at", "budget_seconds", "wave_start", "stop_rule", "waves", "stopped", "run_budget",
    "step_id",
}  # fmt: skip
BRANCH_KEYS = {
    "index", "seed", "text", "prompt_tokens", "completion_tokens", "finish_reason", "error",
    "attempts", "started", "finished", "seconds", "confidence",
}  # fmt: skip


class StubEstimator:
    layers = (0, 2)
    n_min, n_max = 1, 16
    model_identity = "fake-engine"
    hidden_size = 8

    def predict_one(self, features: np.ndarray) -> int:
        assert features.shape == (2, 8)
        return 3


def _run(engine: FakeEngine, fanout: str, **settings: Any) -> dict[str, Any]:
    graph = build_parallel_thinking_graph(
        engine=engine,
        fanout=fanout,
        retry=FAST_RETRY,
        context=ThinkingContext(**settings),  # type: ignore[arg-type]
    )
    return dict(graph.invoke({"question": settings.pop("question", Q)}))


def _shape(state: dict[str, Any]) -> tuple[Any, ...]:
    return (
        set(state),
        len(state["branches"]),
        [set(b) for b in state["branches"]],
        sorted(b["index"] for b in state["branches"]),
        [b["seed"] for b in sorted(state["branches"], key=lambda b: b["index"])],
        set(state["cost"]),
        set(state["verdict"]),
    )


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_state_shape(fanout: str) -> None:
    state = _run(FakeEngine(), fanout, n_max=5, seed=10)
    assert set(state) == STATE_KEYS
    assert state["n"] == 5 and state["policy"] == "fixed-5" and state["fanout"] == fanout
    assert state["seeds"] == [10, 11, 12, 13, 14]
    assert all(set(branch) == BRANCH_KEYS for branch in state["branches"])
    assert len(state["answers"]) == 5
    assert state["answer"] == state["verdict"]["answer"] in {"41", "42"}
    assert state["error"] is None
    cost = state["cost"]
    assert (cost["n_chosen"], cost["n_max"], cost["samples"], cost["failed"]) == (5, 5, 5, 0)
    assert cost["completion_tokens"] > 0 and cost["prompt_tokens"] > 0
    assert set(cost["node_seconds"]) == {"budget", "fanout", "aggregate"}
    assert cost["fanout"] == fanout


def test_modes_equal_for_the_same_seed() -> None:
    engine = FakeEngine()
    for seed in (0, 7, 123):
        batched = _run(engine, "batched", n_max=8, seed=seed)
        send = _run(engine, "send", n_max=8, seed=seed)
        assert _shape(batched) == _shape(send)
        assert batched["answers"] == send["answers"]
        assert batched["verdict"] == send["verdict"]
        expected = [engine.answer_for(Q, seed + i) for i in range(8)]
        assert send["answers"] == expected


def test_modes_draw_the_same_distribution() -> None:
    """Over many seeds both modes give the same answer frequencies (here: exactly)."""
    engine = FakeEngine()
    counts: dict[str, Counter[str | None]] = {"batched": Counter(), "send": Counter()}
    for mode in counts:
        graph = build_parallel_thinking_graph(engine=engine, fanout=mode, n_max=4)  # type: ignore[arg-type]
        for seed in range(0, 200, 4):
            state = graph.invoke({"question": Q}, context=ThinkingContext(n_max=4, seed=seed))
            counts[mode].update(state["answers"])
    assert counts["batched"] == counts["send"]
    total = sum(counts["send"].values())
    assert counts["send"]["42"] / total == pytest.approx(0.55, abs=0.1)


def test_engine_without_per_path_seeds() -> None:
    """A batched engine seeding one generator: same shape, different draws; exact_seeds fixes it."""
    engine = FakeEngine(per_path_seeds=False)
    batched = _run(engine, "batched", n_max=6, seed=3)
    send = _run(engine, "send", n_max=6, seed=3)
    assert _shape(batched) == _shape(send)
    calls_before = len(engine.sample_calls)
    exact = _run(engine, "batched", n_max=6, seed=3, exact_seeds=True)
    assert exact["answers"] == send["answers"]
    assert [call[1:] for call in engine.sample_calls[calls_before:]] == [
        (1, s) for s in range(3, 9)
    ]


def test_greedy_batched_is_one_call() -> None:
    """Greedy paths are all the same: one sample(n=N) call (engines decode the path once)."""
    engine = FakeEngine(per_path_seeds=False)
    state = _run(engine, "batched", n_max=3, seed=0, temperature=0.0)
    assert [call[1] for call in engine.sample_calls] == [3]
    assert len(state["branches"]) == 3


def test_seed_none_gives_fresh_randomness() -> None:
    state = _run(FakeEngine(), "send", n_max=4, seed=None)
    assert state["seeds"] == [None] * 4
    assert len(state["branches"]) == 4


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_stream_events_in_order(fanout: str) -> None:
    graph = build_parallel_thinking_graph(engine=FakeEngine(), fanout=fanout, n_max=4)  # type: ignore[arg-type]
    events = list(graph.stream({"question": Q}, stream_mode="custom"))
    kinds = [event["event"] for event in events]
    assert kinds == ["budget", "branch", "branch", "branch", "branch", "verdict"]
    assert events[0]["n"] == 4 and events[0]["policy"] == "fixed-4"
    assert sorted(event["index"] for event in events[1:5]) == [0, 1, 2, 3]
    assert events[-1]["answer"] == "42" and events[-1]["cost"]["samples"] == 4


def test_policy_output_is_clamped_and_recorded() -> None:
    policy = CallablePolicy(lambda **_: 12.4, name="greedy-guess")
    graph = build_parallel_thinking_graph(engine=FakeEngine(), policy=policy, n_min=2, n_max=6)
    events = list(graph.stream({"question": Q}, stream_mode=["custom", "values"]))
    state = [data for mode, data in events if mode == "values"][-1]
    assert state["n"] == 6 and len(state["branches"]) == 6
    assert (
        state["budget_warning"] == "policy returned 12.4, rounded to 12 and clamped to [2, 6] -> 6"
    )
    assert state["cost"]["warning"] == state["budget_warning"]
    budget = next(data for mode, data in events if mode == "custom" and data["event"] == "budget")
    assert budget["warning"] == state["budget_warning"]
    low = build_parallel_thinking_graph(engine=FakeEngine(), policy=FixedPolicy(1), n_min=2)
    assert low.invoke({"question": Q})["n"] == 2


def test_t2_policy_encodes_features() -> None:
    engine = FakeEngine()
    graph = build_parallel_thinking_graph(engine=engine, policy=T2Policy(StubEstimator()), n_max=8)
    state = graph.invoke({"question": Q})
    assert state["n"] == 3 and state["policy"] == "t2"
    assert engine.encode_calls == [(Q,)]
    expected = summarize_features(engine.encode([Q], [0, 2])[0], [0, 2])
    assert state["features"] == expected
    assert state["features"]["shape"] == [2, 8] and len(state["features"]["l2_norm"]) == 2
    fixed_engine = FakeEngine()
    build_parallel_thinking_graph(engine=fixed_engine, n_max=2).invoke({"question": Q})
    assert fixed_engine.encode_calls == []  # no features needed, none computed


def test_t2_policy_wrong_engine() -> None:
    policy = T2Policy(StubEstimator())
    with pytest.raises(ArtifactError):
        build_parallel_thinking_graph(engine=FakeEngine(identity="other"), policy=policy)
    graph = build_parallel_thinking_graph(policy=policy)
    with pytest.raises(ArtifactError):
        graph.invoke({"question": Q}, context=ThinkingContext(engine=FakeEngine(hidden_size=4)))


@pytest.mark.parametrize("question", ["", "   \n", None, 3])
def test_bad_question_raises(question: object) -> None:
    graph = build_parallel_thinking_graph(engine=FakeEngine())
    with pytest.raises(PromptError):
        graph.invoke({"question": question})  # type: ignore[typeddict-item]


def test_missing_engine_raises() -> None:
    with pytest.raises(ConfigError, match="no engine"):
        build_parallel_thinking_graph().invoke({"question": Q})


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_all_branches_failed_is_an_error_state(fanout: str) -> None:
    errors = {s: [EngineError(f"engine down {s}")] for s in range(4)}
    state = _run(FakeEngine(errors=errors), fanout, n_max=4, seed=0)  # type: ignore[arg-type]
    assert state["error"] is not None and state["error"].startswith("all 4 branches failed")
    assert state["verdict"] is None and state["answer"] is None
    assert all(b["error"] and b["text"] is None for b in state["branches"])
    assert state["cost"]["failed"] == 4 and state["cost"]["answer"] is None


def test_failed_branch_is_recorded_and_others_vote() -> None:
    engine = FakeEngine(errors={2: [RuntimeError("CUDA fell over")]})
    state = _run(engine, "send", n_max=5, seed=0)
    failed = [b for b in state["branches"] if b["error"]]
    assert [b["index"] for b in failed] == [2]
    assert failed[0]["error"] == "RuntimeError: CUDA fell over"
    assert state["answers"][2] is None
    assert state["verdict"]["valid"] + state["verdict"]["invalid"] == 4
    assert state["error"] is None and state["answer"] == "42"
    assert state["cost"]["failed"] == 1 and state["cost"]["samples"] == 5


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_transient_errors_are_retried(fanout: str) -> None:
    flaky = [TransientEngineError("timeout"), TransientEngineError("timeout")]
    engine = FakeEngine(errors={0: flaky})
    state = _run(engine, fanout, n_max=3, seed=0)
    assert state["error"] is None
    branch0 = next(b for b in state["branches"] if b["index"] == 0)
    assert branch0["error"] is None and branch0["attempts"] == 3
    calls_with_seed0 = [call for call in engine.sample_calls if call[2] == 0]
    assert len(calls_with_seed0) == 3


def test_transient_errors_after_last_attempt_are_recorded() -> None:
    engine = FakeEngine(errors={1: [TransientEngineError("503")] * 5})
    state = _run(engine, "send", n_max=3, seed=0)
    branch1 = next(b for b in state["branches"] if b["index"] == 1)
    assert branch1["error"] == "TransientEngineError: 503" and branch1["attempts"] == 3
    assert state["answer"] is not None
    no_retry = build_parallel_thinking_graph(
        engine=FakeEngine(errors={1: [TransientEngineError("503")]}), fanout="send", retry=None
    )
    assert no_retry.invoke({"question": Q})["cost"]["failed"] == 1


def test_branch_errors_raise() -> None:
    engine = FakeEngine(errors={1: [EngineError("boom")]})
    with pytest.raises(EngineError, match="boom"):
        _run(engine, "send", n_max=3, seed=0, branch_errors="raise")


def test_config_errors_propagate() -> None:
    engine = FakeEngine(max_n=2)
    with pytest.raises(ConfigError, match="above the configured maximum"):
        _run(engine, "batched", n_max=4)


def test_per_call_overrides() -> None:
    engine = FakeEngine()
    ledger = CostLedger()
    graph = build_parallel_thinking_graph(engine=engine, n_max=6, fanout="batched")
    state = graph.invoke(
        {"question": Q}, context=ThinkingContext(n_max=3, fanout="send", seed=50, ledger=ledger)
    )
    assert (state["n"], state["fanout"], state["seeds"][0]) == (3, "send", 50)
    assert engine.sample_calls[-1][1:] == (1, 52)  # the engine was inherited, send mode ran
    state = graph.invoke(
        {"question": Q}, {"configurable": {"t2": {"n_max": 2, "temperature": 0.3, "task": "gcd"}}}
    )
    assert state["n"] == 2 and state["params"]["temperature"] == 0.3
    assert len(ledger) == 1
    with pytest.raises(ConfigError, match="unknown ThinkingContext"):
        graph.invoke({"question": Q}, {"configurable": {"t2": {"n_maximum": 2}}})
    with pytest.raises(ConfigError, match="n_min=4 is above n_max=2"):
        graph.invoke({"question": Q}, {"configurable": {"t2": {"n_min": 4, "n_max": 2}}})


def test_settings_context_overrides_only_what_it_sets() -> None:
    graph = build_parallel_thinking_graph(
        engine=FakeEngine(), n_max=6, context=ThinkingContext(max_tokens=16, seed=5)
    )
    assert graph.context_schema is ThinkingSettings
    for context in ({"n_max": 2}, ThinkingSettings(n_max=2)):
        state = graph.invoke({"question": Q}, context=context)
        assert (state["n"], state["params"]["max_tokens"], state["seeds"]) == (2, 16, [5, 6])
    state = graph.invoke({"question": Q}, context={"seed": None, "fanout": "send", "n_min": None})
    assert state["seeds"] == [None] * 6 and state["fanout"] == "send" and state["n_min"] == 1
    state = graph.invoke(
        {"question": Q}, {"configurable": {"t2": {"n_max": 1}}}, context={"n_max": 3}
    )
    assert state["n"] == 1  # configurable["t2"] wins over the context
    with pytest.raises(ValidationError, match="n_maximum"):
        graph.invoke({"question": Q}, context={"n_maximum": 2})
    with pytest.raises(ConfigError, match="n_min=4 is above n_max=2"):
        graph.invoke({"question": Q}, context={"n_min": 4, "n_max": 2})


def test_graph_schemas_are_json() -> None:
    graph = build_parallel_thinking_graph(engine=FakeEngine(), policy=FixedPolicy(2))
    context = graph.get_context_jsonschema()
    assert context is not None
    assert set(context["properties"]) == {
        "n_min", "n_max", "temperature", "top_p", "max_tokens", "seed", "fanout", "task",
        "exact_seeds", "branch_errors", "stop", "vote", "vote_eta", "vote_statistic",
        "early_stop_floor", "early_stop_warmup", "early_stop_keep",
    }  # fmt: skip
    assert context["properties"]["fanout"]["anyOf"][0]["enum"] == ["batched", "send"]
    assert "description" in context["properties"]["n_max"]
    assert list(graph.get_input_jsonschema()["properties"]) == ["question"]
    output = graph.get_output_jsonschema()
    assert set(output["properties"]) == STATE_KEYS | {"weak_floor"}  # set only with early stop
    json.dumps([context, output])


def test_extractor_from_task_and_override() -> None:
    engine = FakeEngine(answers={"yes": 1.0})
    state = _run(engine, "batched", n_max=2, task="syllogism")
    assert state["answer"] == "yes"
    state = _run(engine, "batched", n_max=2, extractor=lambda text: "const")
    assert state["answers"] == ["const", "const"]


def test_no_extractable_answer_is_not_an_error() -> None:
    state = _run(FakeEngine(answers={None: 1.0}), "send", n_max=3)
    assert state["error"] is None
    assert state["answer"] is None and state["verdict"]["invalid"] == 3


def test_oracle_policy_in_graph() -> None:
    graph = build_parallel_thinking_graph(
        engine=FakeEngine(), policy=OraclePolicy({Q: 2}, default=7), n_max=8
    )
    assert graph.invoke({"question": Q})["n"] == 2
    assert graph.invoke({"question": "other"})["n"] == 7


def test_context_validation() -> None:
    for bad in ({"n_min": 0}, {"fanout": "parallel"}, {"branch_errors": "ignore"},
                {"temperature": -1.0}, {"max_tokens": 0}, {"seed": "1"}):  # fmt: skip
        with pytest.raises(ConfigError):
            ThinkingContext(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be a dict"):
        resolve_context(ThinkingContext(), None, {"configurable": {"t2": 3}})


def test_resolve_context_precedence() -> None:
    engine, other = FakeEngine(), FakeEngine(identity="other")
    defaults = ThinkingContext(engine=engine, n_max=6, temperature=0.5)
    assert resolve_context(defaults, None, None) is defaults
    assert resolve_context(defaults, object(), None) is defaults  # a parent's own context type
    run = resolve_context(defaults, ThinkingContext(n_max=2), None)
    assert (run.engine, run.n_max, run.temperature) == (engine, 2, 0.7)
    run = resolve_context(
        defaults, ThinkingContext(engine=other), {"configurable": {"t2": {"n_max": 3}}}
    )
    assert (run.engine, run.n_max) == (other, 3)
    assert resolve_context(defaults, ThinkingSettings(), None) is defaults
    run = resolve_context(defaults, ThinkingSettings(n_max=2, task="gcd"), None)
    assert (run.engine, run.n_max, run.temperature, run.task) == (engine, 2, 0.5, "gcd")
    run = resolve_context(
        defaults, ThinkingSettings(n_max=2), {"configurable": {"t2": {"n_max": 3}}}
    )
    assert run.n_max == 3
    assert resolve_context(defaults, {"n_max": 2}, None) is defaults  # a parent's dict context


def test_reducer_and_router() -> None:
    first = [{"index": 0}]
    assert add_branches(None, first) == first  # type: ignore[arg-type]
    assert add_branches(first, [{"index": 1}]) == [{"index": 0}, {"index": 1}]  # type: ignore[list-item]
    assert add_branches(first, None) == []  # type: ignore[arg-type]
    state = {"question": Q, "fanout": "send", "seeds": [4, 5], "params": {"temperature": 0.7}}
    sends = route_fanout(state)  # type: ignore[arg-type]
    assert isinstance(sends, list) and all(isinstance(send, Send) for send in sends)
    assert [send.arg["seed"] for send in sends] == [4, 5]
    assert route_fanout({**state, "fanout": "batched"}) == "sample"  # type: ignore[typeddict-item]


def test_fitted_t2_estimator_in_graph() -> None:
    """A real (tiny) T2Estimator fitted on FakeEngine features drives the budget node."""
    estimator_module = pytest.importorskip("t2_agents.estimator.estimator")
    probes_module = pytest.importorskip("t2_agents.estimator.probes")
    engine = FakeEngine()
    questions = [f"What is {i} * {i + 1}?" for i in range(40)]
    x = engine.encode(questions, [0, 2])
    y = np.where(x[:, 0, 0] > 0, 8, 2)
    estimator, _ = estimator_module.T2Estimator.fit(
        x, y, layers=[0, 2], grid=[1, 2, 4, 8], n_min=1, n_max=8,
        model_identity=engine.identity, hidden_size=engine.hidden_size,
        config=probes_module.ProbeConfig(epochs=5),
    )  # fmt: skip
    policy = T2Policy(estimator, engine=engine)
    graph = build_parallel_thinking_graph(engine=engine, policy=policy, n_max=8)
    state = graph.invoke({"question": questions[0]})
    assert state["n"] == estimator.predict_one(x[0]) and state["n"] in (1, 2, 4, 8)
    assert len(state["branches"]) == state["n"]


def test_chat_engine_retries_transient_failures_with_tenacity() -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from t2_agents.backends.base import SamplingParams
    from t2_agents.backends.chat_model import ChatModelEngine
    from t2_agents.errors import TransientEngineError

    class Flaky(FakeListChatModel):
        failures: int = 2
        calls: int = 0

        def invoke(self, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls <= self.failures:
                raise TimeoutError("upstream timed out")
            return super().invoke(*args, **kwargs)

    model = Flaky(responses=["Answer: 4"])
    engine = ChatModelEngine(model, retries=3, backoff=0.0)
    paths = engine.sample(["2 + 2?"], 1, SamplingParams(max_tokens=8))
    assert paths[0][0].text == "Answer: 4" and model.calls == 3
    hopeless = Flaky(responses=["x"], failures=10)
    with pytest.raises(TransientEngineError, match="timed out"):
        ChatModelEngine(hopeless, retries=2, backoff=0.0).sample(["q"], 1, SamplingParams())
    assert hopeless.calls == 2
