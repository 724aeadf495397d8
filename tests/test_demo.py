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

from t2_agents.demo import (
    DEMO_TASKS,
    demo_questions,
    format_demo,
    load_t2_policy,
    resolve_estimator,
    run_demo,
)
from t2_agents.errors import ArtifactError, ConfigError


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
