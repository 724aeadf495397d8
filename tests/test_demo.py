"""The demo (T2 vs a fixed budget) on the real default model, with a tiny fixture estimator.

``fixture_estimator`` (``conftest.py``, shared with ``test_examples.py`` and ``test_graphs.py``)
is a small real T2 estimator: real hidden states of the real model at layers (4, 15, 24), labels
from a rule by task (basic_arithmetic -> 4, syllogism -> 8, products -> 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import TrainedOn, lcm_keys
from rich.table import Table

from t2_agents.budget.policies import T2Policy
from t2_agents.cli import demo
from t2_agents.cli.demo import format_demo, heldout_evidence, run_demo
from t2_agents.evaluate import questions as questions_module
from t2_agents.tasks import load_task, question_key


@pytest.mark.parametrize("recorded", [True, False])
def test_run_demo_never_draws_a_training_question(
    tmp_path: Path, fake_engine: Any, monkeypatch: pytest.MonkeyPatch, recorded: bool
) -> None:
    # The old shipped set: 200 lcm items of seed 1, which repeat most of the demo's questions.
    monkeypatch.setitem(questions_module.TASK_SETTINGS, "lcm", {"max_value": 12})
    trained = sorted(set(lcm_keys(1, 100)) | set(lcm_keys(7, 30)))
    small = {"max_value": 12}
    old = [
        q for s, n in ((1, 100), (7, 30)) for q in load_task("lcm", size=n, seed=s, config=small)
    ]
    instances = sorted({q.instance_key for q in old})
    estimator = TrainedOn(trained, instances) if recorded else TrainedOn(None)
    monkeypatch.setattr(demo, "resolve_estimator", lambda path=None: tmp_path)
    monkeypatch.setattr(
        demo, "load_t2_policy", lambda engine, path=None: T2Policy(estimator, engine=engine)
    )
    result = run_demo(fake_engine, questions=4, tasks=("lcm", "gcd"), n_max=4, max_tokens=8)
    rows = result["questions"]
    assert [row["task"] for row in rows] == ["lcm", "gcd", "lcm", "gcd"]
    assert all(row["t2"]["n"] == 2 and row["fixed"]["n"] == 4 for row in rows)
    keys = {question_key(row["question"]) for row in rows}
    if recorded:  # unseen by text and by instance ("2, 7" is a training question's "7, 2")
        assert not keys & set(trained)
        drawn = {q.id: q.instance_key for q in load_task("lcm", size=143, seed=2026, config=small)}
        assert not {drawn[row["id"]] for row in rows[::2]} & set(instances)
        assert result["settings"]["excluded_training_questions"] == len(trained)
        assert result["settings"]["excluded_training_instances"] == len(instances)
    else:  # no keys in the artifact: today's draw, training questions included
        assert [row["id"] for row in rows[::2]] == ["lcm-2026-0", "lcm-2026-1"]
        assert keys & set(trained)
        assert result["settings"]["excluded_training_questions"] == 0
        assert result["settings"]["excluded_training_instances"] == 0


def test_run_demo_runs_questions_concurrently(
    tmp_path: Path, fake_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    estimator = TrainedOn([])
    monkeypatch.setattr(demo, "resolve_estimator", lambda path=None: tmp_path)
    monkeypatch.setattr(
        demo, "load_t2_policy", lambda engine, path=None: T2Policy(estimator, engine=engine)
    )
    one = run_demo(fake_engine, questions=4, tasks=("lcm",), n_max=4, max_tokens=8)
    four = run_demo(fake_engine, questions=4, tasks=("lcm",), n_max=4, max_tokens=8, concurrency=4)
    assert [r["id"] for r in four["questions"]] == [r["id"] for r in one["questions"]]
    assert [r["fixed"]["answer"] for r in four["questions"]] == [
        r["fixed"]["answer"] for r in one["questions"]
    ]
    assert four["settings"]["concurrency"] == 4 and four["totals"]["fixed"]["samples"] == 16


def test_heldout_evidence_points_at_the_shipped_results() -> None:
    evidence = heldout_evidence(n_max=16)
    assert evidence is not None  # a source checkout holds docs/results/eval_heldout.json
    names = [row["name"] for row in evidence["rows"]]
    assert names[0] == "t2" and names[2] == "fixed N=16"
    assert evidence["figure"] == "docs/heldout_pareto.png"
    assert evidence["command"].startswith("t2 eval --data ")
    assert heldout_evidence(source=Path("/no/such.json")) is None


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


def test_t2_demo_command_shows_both_policies_and_the_evidence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``t2 demo`` end to end on a fake engine shaped like the default model (shipped estimator)."""
    import json

    from typer.testing import CliRunner

    from t2_agents.backends import factory
    from t2_agents.backends.fake import FakeEngine
    from t2_agents.budget.shipped import default_estimator_path
    from t2_agents.cli import app

    if default_estimator_path() is None:
        pytest.skip("no estimator is shipped")
    kinds: list[str] = []

    def default_shaped(*, kind: str, **kwargs: Any) -> FakeEngine:
        kinds.append(kind)
        return FakeEngine(identity="SmolLM2-135M-Instruct", num_layers=30, hidden_size=576)

    monkeypatch.setattr(factory, "load_engine", default_shaped)
    monkeypatch.setattr(factory, "preferred_local_kind", lambda: "vllm")
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--questions", "3", "--n-max", "4", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert kinds == ["vllm"] and payload["settings"]["concurrency"] == 3  # auto: vLLM, all at once
    assert payload["totals"]["fixed"]["samples"] == 12
    assert payload["timing"]["engine"] == "vllm"
    assert payload["evidence"]["figure"] == "docs/heldout_pareto.png"
    text = runner.invoke(app, ["demo", "--questions", "2", "--engine", "transformers"])
    assert text.exit_code == 0, text.output
    assert "Held-out evidence" in text.stdout and "t2 eval --data" in text.stdout
    assert kinds[-1] == "transformers"
