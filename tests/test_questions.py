"""Held-out questions: task settings, draws that skip an estimator's training questions."""

from __future__ import annotations

import pytest
from conftest import TrainedOn, lcm_keys

from t2_agents.budget.protocols import as_budget_estimator
from t2_agents.errors import ConfigError
from t2_agents.evaluate import questions as questions_module
from t2_agents.evaluate.questions import TASK_SETTINGS, heldout_questions
from t2_agents.tasks import load_task


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


def test_an_estimator_s_training_keys_are_read_without_probing() -> None:
    known = as_budget_estimator(TrainedOn(["a", "b"], ["i"]))
    assert (known.training_keys, known.training_instance_keys) == ({"a", "b"}, {"i"})
    older = as_budget_estimator(TrainedOn(["a"]))  # trained before instances were recorded
    assert (older.training_keys, older.training_instance_keys) == ({"a"}, frozenset())
    bare = as_budget_estimator(_Bare())  # an estimator that says nothing of its training
    assert (bare.training_keys, bare.training_instance_keys) == (frozenset(), frozenset())


class _Bare:
    layers, model_identity, hidden_size = (0,), "fake", 8

    def predict_one(self, features: object) -> int:
        return 1


def test_heldout_questions_skip_training_questions_in_another_operand_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(questions_module.TASK_SETTINGS, "lcm", {"max_value": 12})
    trained = load_task("lcm", size=8, seed=1, config={"max_value": 12})  # asks "4, 12"
    keys, instances = {q.key for q in trained}, {q.instance_key for q in trained}
    plain = heldout_questions(8, tasks=("lcm",), seed=30, exclude=keys)
    swapped = [q for q in plain if q.instance_key in instances]
    assert [q.text[-7:] for q in swapped] == [": 12, 4"]  # not a training text, but its instance
    held = heldout_questions(8, tasks=("lcm",), seed=30, exclude=keys, exclude_instances=instances)
    assert not {q.instance_key for q in held} & instances and len(held) == 8
    assert [q.id for q in held][:7] == [q.id for q in plain if q not in swapped]


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
