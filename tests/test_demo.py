"""The demo (T2 vs a fixed budget) on the real default model, with a tiny fixture estimator.

``fixture_estimator`` (``conftest.py``, shared with ``test_examples.py`` and ``test_graphs.py``)
is a small real T2 estimator: real hidden states of the real model at layers (4, 15, 24), labels
from a rule by task (basic_arithmetic -> 4, syllogism -> 8, products -> 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.table import Table

from t2_agents import demo
from t2_agents.data import load_task, question_key
from t2_agents.demo import (
    DEMO_TASKS,
    demo_questions,
    format_demo,
    load_t2_policy,
    resolve_estimator,
    run_demo,
    training_keys,
)
from t2_agents.errors import ArtifactError, ConfigError
from t2_agents.policies import T2Policy


def test_demo_questions_take_tasks_in_turn() -> None:
    questions = demo_questions(5, tasks=("products", "lcm"), seed=9)
    assert [q.task for q in questions] == ["products", "lcm", "products", "lcm", "products"]
    assert [q.id for q in questions][:2] == ["products-9-0", "lcm-9-0"]
    assert all(q.prompt.endswith("Give only the final answer.") for q in questions)
    assert set(DEMO_TASKS) >= {"basic_arithmetic", "syllogism", "products", "lcm"}
    with pytest.raises(ConfigError):
        demo_questions(0)
    with pytest.raises(ConfigError):
        demo_questions(2, tasks=())


# ------------------------------------------------------------ never a training question
class _TrainedOn:
    """A stand-in estimator whose metadata lists the questions it was trained on."""

    layers, n_min, n_max = (0, 3), 1, 4
    model_identity, hidden_size = "fake", 8

    def __init__(self, keys: list[str] | None) -> None:
        self.metadata: dict[str, Any] = {"format": "t2-estimator"}
        if keys is not None:
            self.metadata["training_data"] = {"question_keys": keys, "questions": len(keys)}

    def predict_one(self, features: Any) -> int:
        return 2


def _lcm_keys(seed: int, size: int) -> list[str]:
    return [q.key for q in load_task("lcm", size=size, seed=seed, config=DEMO_TASKS["lcm"])]


def test_training_keys_come_from_the_metadata() -> None:
    assert training_keys(_TrainedOn(["a", "b"])) == {"a", "b"}
    assert training_keys(_TrainedOn(None)) == frozenset()  # artifacts trained before the keys
    assert training_keys(object()) == frozenset()


def test_demo_questions_skip_excluded_keys_in_order() -> None:
    plain = demo_questions(6, tasks=("lcm", "products"), seed=2026)
    seen = {plain[0].key, plain[2].key, plain[3].key}
    held_out = demo_questions(6, tasks=("lcm", "products"), seed=2026, exclude=seen)
    assert not {q.key for q in held_out} & seen
    assert [q.task for q in held_out] == ["lcm", "products"] * 3
    # the first unseen questions of each task, in their order
    lcm = [q for q in demo_questions(20, tasks=("lcm",), seed=2026) if q.key not in seen]
    assert [q.id for q in held_out[::2]] == [q.id for q in lcm[:3]]
    assert demo_questions(6, tasks=("lcm", "products"), seed=2026, exclude=()) == plain


def test_demo_questions_when_training_saw_almost_every_question(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # lcm with max_value 12 has 12 x 12 questions; load_task finds 143 of them for this seed
    monkeypatch.setitem(demo.DEMO_TASKS, "lcm", {"max_value": 12})
    every = _lcm_keys(2026, 143)
    drawn = demo_questions(3, tasks=("lcm",), seed=2026, exclude=every[3:])
    assert {q.key for q in drawn} == set(every[:3])
    with pytest.raises(ConfigError, match=r"too few questions the estimator did not train on"):
        demo_questions(4, tasks=("lcm",), seed=2026, exclude=every[3:])
    with pytest.raises(ConfigError, match=r"wanted 1, found 0"):
        demo_questions(1, tasks=("lcm",), seed=2026, exclude=every)


@pytest.mark.parametrize("recorded", [True, False])
def test_run_demo_never_draws_a_training_question(
    tmp_path: Path, fake_engine: Any, monkeypatch: pytest.MonkeyPatch, recorded: bool
) -> None:
    # The old shipped set: 200 lcm items of seed 1, which repeat most of the demo's questions.
    monkeypatch.setitem(demo.DEMO_TASKS, "lcm", {"max_value": 12})
    trained = sorted(set(_lcm_keys(1, 100)) | set(_lcm_keys(7, 30)))
    estimator = _TrainedOn(trained if recorded else None)
    monkeypatch.setattr(demo, "resolve_estimator", lambda path=None: tmp_path)
    monkeypatch.setattr(
        demo, "load_t2_policy", lambda engine, path=None: T2Policy(estimator, engine=engine)
    )
    result = run_demo(fake_engine, questions=4, tasks=("lcm", "gcd"), n_max=4, max_tokens=8)
    rows = result["questions"]
    assert [row["task"] for row in rows] == ["lcm", "gcd", "lcm", "gcd"]
    assert all(row["t2"]["n"] == 2 and row["fixed"]["n"] == 4 for row in rows)
    keys = {question_key(row["question"]) for row in rows}
    if recorded:
        assert not keys & set(trained)
        assert result["settings"]["excluded_training_questions"] == len(trained)
    else:  # no keys in the artifact: today's draw, training questions included
        assert [row["id"] for row in rows[::2]] == ["lcm-2026-0", "lcm-2026-1"]
        assert keys & set(trained)
        assert result["settings"]["excluded_training_questions"] == 0


def test_missing_estimator_says_how_to_fix(tmp_path: Path, fake_engine: Any) -> None:
    with pytest.raises(ArtifactError, match=r"t2 train.*--estimator"):
        resolve_estimator(tmp_path / "nothing")
    with pytest.raises(ArtifactError, match="--estimator"):
        run_demo(fake_engine, questions=1, estimator=tmp_path / "nothing")


@pytest.mark.slow
def test_run_demo_on_the_real_model(engine: Any, fixture_estimator: Path) -> None:
    events: list[tuple[int, str, str]] = []
    result = run_demo(
        engine,
        questions=2,
        n_max=4,
        max_tokens=12,
        estimator=fixture_estimator,
        progress=lambda i, key, event: events.append((i, key, event["event"])),
    )
    rows, totals = result["questions"], result["totals"]
    assert result["settings"]["estimator"] == str(fixture_estimator)
    assert [row["task"] for row in rows] == ["basic_arithmetic", "syllogism"]
    for row in rows:
        assert row["gold"] and row["question"]
        assert row["fixed"]["n"] == row["fixed"]["samples"] == 4
        assert row["fixed"]["policy"] == "fixed-4" and row["t2"]["policy"] == "t2"
        assert 1 <= row["t2"]["n"] == row["t2"]["samples"] <= 4
        for key in ("t2", "fixed"):
            cell = row[key]
            assert isinstance(cell["correct"], bool) and cell["seconds"] > 0
            assert 0 < cell["completion_tokens"] <= 12 * cell["samples"]
    # the rule labels: basic_arithmetic -> 4; syllogism -> 8, clamped to n_max = 4
    assert rows[1]["t2"]["n"] == 4
    for key in ("t2", "fixed"):
        total = totals[key]
        assert total["samples"] == sum(row[key]["samples"] for row in rows)
        assert total["completion_tokens"] == sum(row[key]["completion_tokens"] for row in rows)
        assert total["prompt_tokens"] == sum(row[key]["prompt_tokens"] for row in rows)
        assert total["correct"] == sum(row[key]["correct"] for row in rows)
        assert total["accuracy"] == total["correct"] / 2
        assert total["seconds"] == pytest.approx(sum(row[key]["seconds"] for row in rows))
    assert totals["samples_ratio"] == pytest.approx(totals["t2"]["samples"] / 8)
    assert result["comparison"]["metrics"]["samples"]["fixed"] == 8
    # progress: for each question and policy, budget, one branch per path, verdict
    for index, row in enumerate(rows):
        for key in ("t2", "fixed"):
            kinds = [kind for i, k, kind in events if i == index and k == key]
            assert kinds == ["budget"] + ["branch"] * row[key]["samples"] + ["verdict"]
    tables = format_demo(result)
    assert all(isinstance(table, Table) for table in tables)
    assert tables[0].row_count == 2 and tables[1].row_count == 6


@pytest.mark.slow
def test_fixture_estimator_loads_for_the_engine(engine: Any, fixture_estimator: Path) -> None:
    policy = load_t2_policy(engine, fixture_estimator)
    assert tuple(policy.layers) == (4, 15, 24)  # conftest.FIXTURE_LAYERS
    question = demo_questions(1, tasks=("products",), seed=5)[0]
    features = engine.encode([question.prompt], list(policy.layers))[0]
    assert policy.choose(features=features, question=question.prompt, n_min=1, n_max=8) in (
        1,
        2,
        4,
        8,
    )
