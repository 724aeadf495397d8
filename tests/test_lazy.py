"""Tests of t2_agents.backends.lazy: the default engine, loaded on first use."""

from __future__ import annotations

from t2_agents.backends.fake import FakeEngine
from t2_agents.backends.lazy import LazyEngine, shared_default_engine


def test_lazy_engine_builds_once_on_first_use() -> None:
    built: list[FakeEngine] = []

    def factory() -> FakeEngine:
        built.append(FakeEngine(hidden_size=4))
        return built[-1]

    engine = LazyEngine(factory)
    assert not engine.loaded and repr(engine) == "LazyEngine(loaded=False)"
    assert engine.hidden_size == 4 and engine.identity == "fake-engine"
    assert engine.encode(["q"], [0, 1]).shape == (1, 2, 4)
    assert engine.loaded and len(built) == 1


def test_shared_default_engine_is_one_per_process() -> None:
    assert shared_default_engine() is shared_default_engine()
