"""The shipped estimator and loading T2 policies (t2_agents.budget.shipped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from t2_agents.budget.shipped import (
    DEFAULT_ESTIMATOR,
    choose_policy,
    default_estimator_path,
    load_t2_policy,
    resolve_estimator,
)
from t2_agents.cli.demo import run_demo
from t2_agents.errors import ArtifactError
from t2_agents.evaluate.questions import heldout_questions


def test_shipped_estimator_path() -> None:
    assert default_estimator_path() in (DEFAULT_ESTIMATOR, None)


def test_choose_policy_falls_back_without_an_estimator(
    fake_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import t2_agents.budget.shipped as shipped

    notes: list[str] = []
    monkeypatch.setattr(shipped, "default_estimator_path", lambda: None)
    policy = choose_policy(fake_engine, on_fallback=notes.append)
    assert policy.name == "fixed-8" and "t2 train" in notes[0]


def test_missing_estimator_says_how_to_fix(tmp_path: Path, fake_engine: Any) -> None:
    with pytest.raises(ArtifactError, match=r"t2 train.*--estimator"):
        resolve_estimator(tmp_path / "nothing")
    with pytest.raises(ArtifactError, match="--estimator"):
        run_demo(fake_engine, questions=1, estimator=tmp_path / "nothing")


@pytest.mark.slow
def test_fixture_estimator_loads_for_the_engine(engine: Any, fixture_estimator: Path) -> None:
    policy = load_t2_policy(engine, fixture_estimator)
    assert tuple(policy.layers) == (4, 15, 24)  # conftest.FIXTURE_LAYERS
    question = heldout_questions(1, tasks=("products",), seed=5)[0]
    features = engine.encode([question.prompt], list(policy.layers))[0]
    assert policy.choose(features=features, question=question.prompt, n_min=1, n_max=8) in (
        1,
        2,
        4,
        8,
    )


def test_the_shipped_guard_passes_agent_phrased_arithmetic_and_flags_other_requests(
    engine: Any,
) -> None:
    """Issue 19: agent-phrased arithmetic and word problems are no longer flagged (the guard
    before it flagged "What is 7 * 8?" but not "Calculate 7 * 8."); requests unlike any
    training family still are."""
    from t2_agents.estimator.estimator import T2Estimator
    from t2_agents.tasks import DEFAULT_INSTRUCTION

    estimator = T2Estimator.load(default_estimator_path())
    asks = ["What is 7 * 8?", "Calculate 7 * 8.", "What's 17 + 25?",
            "A car drives at 45 km per hour for 3 hours. How many km does it travel?"]  # fmt: skip
    other = ["What is the capital of France?", "Write a haiku about autumn."]
    x = engine.encode([f"{q} {DEFAULT_INSTRUCTION}" for q in asks + other], estimator.layers)
    assert estimator.out_of_distribution(x).tolist() == [False] * len(asks) + [True] * len(other)
    assert estimator.guard is not None and estimator.guard.fallback_n == 21
