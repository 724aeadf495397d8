"""Held-out questions: task settings, draws that skip an estimator's training questions."""

from __future__ import annotations

import pytest
from conftest import TrainedOn, lcm_keys

from t2_agents.errors import ConfigError
from t2_agents.evaluate import questions as questions_module
from t2_agents.evaluate.questions import TASK_SETTINGS, heldout_questions, training_keys


def test_heldout_questions_take_tasks_in_turn() -> None:
    questions = heldout_questions(5, tasks=("products", "lcm"), seed=9)
    assert [q.task for q in questions] == ["products", "lcm", "products", "lcm", "products"]
    assert [q.id for q in questions][:2] == ["products-9-0", "lcm-9-0"]
    assert all(q.prompt.endswith("Give only the final answer.") for q in questions)
    assert set(TASK_SETTINGS) >= {"basic_arithmetic", "syllogism", "products", "lcm"}
    with pytest.raises(ConfigError):
        heldout_questions(0)
    with pytest.raises(ConfigError):
        heldout_questions(2, tasks=())


def test_training_keys_come_from_the_metadata() -> None:
    assert training_keys(TrainedOn(["a", "b"])) == {"a", "b"}
    assert training_keys(TrainedOn(None)) == frozenset()  # artifacts trained before the keys
    assert training_keys(object()) == frozenset()


def test_heldout_questions_skip_excluded_keys_in_order() -> None:
    plain = heldout_questions(6, tasks=("lcm", "products"), seed=2026)
    seen = {plain[0].key, plain[2].key, plain[3].key}
    held_out = heldout_questions(6, tasks=("lcm", "products"), seed=2026, exclude=seen)
    assert not {q.key for q in held_out} & seen
    assert [q.task for q in held_out] == ["lcm", "products"] * 3
    # the first unseen questions of each task, in their order
    lcm = [q for q in heldout_questions(20, tasks=("lcm",), seed=2026) if q.key not in seen]
    assert [q.id for q in held_out[::2]] == [q.id for q in lcm[:3]]
    assert heldout_questions(6, tasks=("lcm", "products"), seed=2026, exclude=()) == plain


def test_heldout_questions_when_training_saw_almost_every_question(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # lcm with max_value 12 has 12 x 12 questions; load_task finds 143 of them for this seed
    monkeypatch.setitem(questions_module.TASK_SETTINGS, "lcm", {"max_value": 12})
    every = lcm_keys(2026, 143)
    drawn = heldout_questions(3, tasks=("lcm",), seed=2026, exclude=every[3:])
    assert {q.key for q in drawn} == set(every[:3])
    with pytest.raises(ConfigError, match=r"too few questions the estimator did not train on"):
        heldout_questions(4, tasks=("lcm",), seed=2026, exclude=every[3:])
    with pytest.raises(ConfigError, match=r"wanted 1, found 0"):
        heldout_questions(1, tasks=("lcm",), seed=2026, exclude=every)
