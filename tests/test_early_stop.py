"""Online early stop of weak paths: the floor, the monitor, the graph, and the real engines."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2_agents.backends.base import SamplingParams, StopsWeakPaths
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.early_stop import (
    LOW_CONFIDENCE,
    EarlyStop,
    WindowMonitor,
    calibrated_floor,
    stop_position,
    warmup_floor,
)
from t2_agents.errors import ConfigError, DataError
from t2_agents.graph import CostLedger, ThinkingContext, build_parallel_thinking_graph

# -- the test itself -----------------------------------------------------------------------


def test_a_path_stops_at_the_first_window_below_the_floor() -> None:
    assert stop_position([5.0, 5.0, 1.0, 5.0], floor=4.0, window=2) == 3
    assert stop_position([5.0, 5.0, 9.0, 1.0], floor=4.0, window=2) is None  # means 5, 7, 5
    assert stop_position([1.0, 1.0], floor=4.0, window=3) is None  # shorter than a window
    assert stop_position([], floor=4.0, window=1) is None


def test_non_finite_confidences_are_skipped_but_counted_as_tokens() -> None:
    monitor = WindowMonitor(floor=4.0, window=2)
    pushed = [monitor.push(c) for c in (5.0, math.nan, -math.inf, 1.0)]
    assert pushed == [False, False, False, True] and monitor.tokens == 4


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 20.0), max_size=60),
    st.floats(0.0, 20.0),
    st.integers(1, 20),
)
def test_the_stop_matches_the_lowest_group_confidence_of_the_full_path(
    trace: list[float], floor: float, window: int
) -> None:
    """A path stops iff one of its full windows has a mean below the floor (the replay's
    premise), and it keeps exactly the tokens up to the end of the first such window."""
    position = stop_position(trace, floor=floor, window=window)
    c = np.asarray(trace)
    ends = range(window, len(c) + 1)
    means = {t: float(c[t - window : t].mean()) for t in ends}
    eps = 1e-9  # a window whose mean sits on the floor may go either way by rounding
    if position is None:
        assert all(m >= floor - eps for m in means.values())
    else:
        assert means[position] < floor + eps
        assert all(means[t] >= floor - eps for t in ends if t < position)


def test_the_warm_up_floor_is_a_percentile_of_the_warm_up_paths() -> None:
    assert warmup_floor([3.0, 1.0, 2.0], keep=100.0) == 1.0
    assert warmup_floor([1.0, 2.0, 3.0, 4.0, 5.0], keep=10.0) == pytest.approx(4.6)
    assert warmup_floor([2.0, math.nan, math.inf], keep=90.0) == 2.0  # non-finite left out
    assert calibrated_floor(iter([1.0, 2.0, 3.0]), keep=50.0) == 2.0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "needs a floor=... or warmup >= 1"),
        ({"floor": 4.0, "warmup": 2}, "exactly one"),
        ({"floor": math.nan}, "floor=nan must be a finite number"),
        ({"floor": True}, "floor=True"),
        ({"warmup": -1}, "warmup"),
        ({"warmup": 2, "keep": 0.0}, "keep=0.0 must be a percentage in (0, 100]"),
        ({"warmup": 2, "keep": 101}, "keep=101"),
    ],
)
def test_bad_settings_name_the_value_and_the_fix(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        EarlyStop(**kwargs)
    assert fragment in str(info.value)


def test_a_warm_up_without_confidences_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="no warm-up path has a confidence"):
        warmup_floor([math.nan], keep=90.0)
    with pytest.raises(ConfigError, match="window"):
        WindowMonitor(floor=1.0, window=0)


# -- the graph (fake engine: its weak paths stop half way) ----------------------------------

_ENGINE_ANSWERS = {"42": 0.5, "41": 0.5}
_CONFIDENCE: dict[str | None, float] = {"42": 8.0, "41": 2.0}


def _run(**settings_: Any) -> tuple[dict[str, Any], CostLedger]:
    engine = FakeEngine(answers=_ENGINE_ANSWERS, confidence=_CONFIDENCE)
    ledger = CostLedger()
    graph = build_parallel_thinking_graph(engine=engine, policy=FixedPolicy(8))
    context = ThinkingContext(n_max=8, seed=1, ledger=ledger, **settings_)
    return dict(graph.invoke({"question": "What is 6 * 7?"}, context=context)), ledger


def test_weak_paths_stop_do_not_vote_and_their_tokens_are_counted() -> None:
    _, plain_ledger = _run()
    early, ledger = _run(early_stop_floor=5.0)
    branches = early["branches"]
    weak = [b for b in branches if b["finish_reason"] == LOW_CONFIDENCE]
    assert weak and len(weak) < len(branches)
    # only the unstopped (confident) paths vote: every vote is for 42
    assert early["answer"] == "42" and early["verdict"]["distribution"] == {
        "42": float(len(branches) - len(weak))
    }
    record = ledger.steps[0]
    assert record.weak_stopped == len(weak) and record.weak_floor == 5.0
    assert record.completion_tokens == sum(b["completion_tokens"] for b in branches)
    assert record.completion_tokens < plain_ledger.steps[0].completion_tokens
    assert plain_ledger.steps[0].weak_stopped == 0 and plain_ledger.steps[0].weak_floor is None


def test_when_every_path_stops_their_partial_answers_still_vote() -> None:
    state, ledger = _run(early_stop_floor=100.0)
    assert all(b["finish_reason"] == LOW_CONFIDENCE for b in state["branches"])
    assert ledger.steps[0].weak_stopped == 8 and state["error"] is None


def test_the_warm_up_paths_run_to_the_end_and_set_the_floor() -> None:
    state, ledger = _run(early_stop_warmup=4, early_stop_keep=50.0)
    branches = state["branches"]
    assert all(b["finish_reason"] != LOW_CONFIDENCE for b in branches[:4])
    lowest = [b["confidence"]["lowest_group"] for b in branches[:4]]
    assert ledger.steps[0].weak_floor == pytest.approx(float(np.percentile(lowest, 50.0)))
    assert [b["seed"] for b in branches] == list(range(1, 9))


def test_send_mode_holds_every_branch_to_the_fixed_floor() -> None:
    state, ledger = _run(early_stop_floor=5.0, fanout="send")
    assert ledger.steps[0].weak_stopped == sum(
        b["finish_reason"] == LOW_CONFIDENCE for b in state["branches"]
    )
    assert ledger.steps[0].weak_stopped > 0 and ledger.steps[0].weak_floor == 5.0


def test_a_warm_up_needs_the_batched_fan_out() -> None:
    with pytest.raises(ConfigError, match="early_stop_warmup=2 needs fanout='batched'"):
        ThinkingContext(early_stop_warmup=2, fanout="send")


def test_a_sampler_that_cannot_stop_paths_is_named() -> None:
    engine = FakeEngine(answers=_ENGINE_ANSWERS)  # no confidences
    assert isinstance(engine, StopsWeakPaths)
    graph = build_parallel_thinking_graph(engine=engine, policy=FixedPolicy(4))
    with pytest.raises(ConfigError, match="build FakeEngine\\(confidence="):
        graph.invoke({"question": "q"}, context=ThinkingContext(n_max=4, early_stop_floor=1.0))


# -- the real engines ------------------------------------------------------------------------

QUESTIONS = ["What is 17 * 23? Give only the final answer.", "Is 91 prime? Answer yes or no."]


def test_the_transformers_engine_stops_exactly_the_paths_the_replay_predicts(engine: Any) -> None:
    """Same seed with and without the floor: a path that never has a window below the floor
    is unchanged, a stopped one is a prefix of its full self, cut where a window falls below
    (the full path's lowest group confidence is below the floor)."""
    params = SamplingParams(temperature=0.9, max_tokens=32, seed=11)
    full = engine.sample(QUESTIONS, 6, params)
    window = engine.config.confidence_window
    long_paths = [c for row in full for c in row if c.completion_tokens >= window]
    floor = float(np.median([c.confidence.lowest_group for c in long_paths]))
    weak = engine.sample_stopping_weak(QUESTIONS, 6, params, floor=floor)
    stopped = 0
    for row_full, row_weak in zip(full, weak, strict=True):
        for f, w in zip(row_full, row_weak, strict=True):
            if f.completion_tokens < window or f.confidence.lowest_group >= floor + 1e-6:
                assert (w.text, w.finish_reason) == (f.text, f.finish_reason)
            elif f.confidence.lowest_group < floor - 1e-6:
                stopped += 1
                assert w.finish_reason == LOW_CONFIDENCE
                assert window <= w.completion_tokens <= f.completion_tokens
                assert f.text.startswith(w.text)
    assert stopped > 0


def test_the_transformers_engine_refuses_a_bad_floor(engine: Any) -> None:
    with pytest.raises(ConfigError, match="floor=inf must be a finite number"):
        engine.sample_stopping_weak(QUESTIONS[:1], 2, SamplingParams(), floor=math.inf)


def test_a_sampler_without_the_capability_is_refused_with_the_fix() -> None:
    from t2_agents.backends.fake import FaultyEngine

    engine = FaultyEngine(FakeEngine(answers=_ENGINE_ANSWERS), rate=0.0)
    assert not isinstance(engine, StopsWeakPaths)
    graph = build_parallel_thinking_graph(engine=engine, policy=FixedPolicy(4))
    with pytest.raises(ConfigError, match="FaultyEngine cannot: drop early_stop_floor"):
        graph.invoke({"question": "q"}, context=ThinkingContext(n_max=4, early_stop_floor=1.0))


def test_a_warm_up_does_not_combine_with_per_seed_sampling() -> None:
    engine = FakeEngine(answers=_ENGINE_ANSWERS, confidence=_CONFIDENCE, per_path_seeds=False)
    graph = build_parallel_thinking_graph(engine=engine, policy=FixedPolicy(4))
    context = ThinkingContext(n_max=4, seed=1, exact_seeds=True, early_stop_warmup=2)
    with pytest.raises(ConfigError, match="drop exact_seeds or pass early_stop_floor"):
        graph.invoke({"question": "q"}, context=context)
