"""``t2 compare``: a user's agent under several budget policies on the same tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from t2_agents.backends import factory as engine_factory
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.cli.app import app
from t2_agents.errors import ConfigError
from t2_agents.evaluate.agent_compare import (
    CompareConfig,
    compare_agent,
    load_agent_factory,
    plot_comparison,
)
from t2_agents.tasks import Question

runner = CliRunner()
TASKS = [Question(f"q{i}", "products", f"What is {i} * 6?", str(6 * i)) for i in (7, 8, 9)]


def test_every_policy_runs_every_task_and_the_costs_come_from_the_ledger() -> None:
    engine = FakeEngine(answers={"42": 1.0})  # right on the first task only
    config = CompareConfig(policies=("fixed", "t2", "budget", "hybrid", "one"), n_max=4,
                           resamples=200)  # fmt: skip
    result = compare_agent(TASKS, engine=engine, t2_policy=FixedPolicy(3), config=config)
    runs = {p.policy: p for p in result.policies}
    assert [p.policy for p in result.policies] == list(config.policies)
    assert runs["fixed"].samples == [4, 4, 4] and runs["one"].samples == [1, 1, 1]
    assert runs["t2"].samples == [3, 3, 3] and runs["t2"].label == "fixed-3"
    assert result.settings["run_budget_used"] == 3  # t2's mean samples per run
    assert runs["budget"].samples == [3, 3, 3]
    for runs_ in result.policies:
        assert runs_.correct == [True, False, False]
        assert runs_.steps == [1, 1, 1] and all(t > 0 for t in runs_.completion_tokens)
    assert runs["hybrid"].rounds[0] >= 1 and runs["fixed"].rounds == [1, 1, 1]
    diff = result.differences["one"]["samples"]
    assert diff["difference"] == pytest.approx(-3.0) and diff["ci"] == [-3.0, -3.0]
    header, rows = result.table()
    assert header[0] == "metric" and rows[0][0] == "accuracy"
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["policies"]["fixed"]["mean_samples"] == 4.0


def test_a_grader_decides_and_must_return_a_bool() -> None:
    engine = FakeEngine(answers={"1": 1.0})
    config = CompareConfig(policies=("one",), resamples=200)
    result = compare_agent(TASKS, engine=engine, t2_policy=None, config=config,
                           grader=lambda q, text: "1" in text)  # fmt: skip
    assert result.policies[0].correct == [True, True, True]
    with pytest.raises(ConfigError, match="the grader returned 'yes'"):
        compare_agent(TASKS, engine=engine, t2_policy=None, config=config,
                      grader=lambda q, text: "yes")  # type: ignore[arg-type,return-value]  # fmt: skip


def test_a_custom_agent_factory_gets_the_thinking_graph(tmp_path: Path) -> None:
    seen: list[Any] = []

    def factory(thinking: Any, *, ledger: Any, run_budget: Any) -> Any:
        from t2_agents.agents.harness import make_agent

        seen.append(run_budget)
        return make_agent(thinking, ledger=ledger, run_budget=run_budget)

    config = CompareConfig(policies=("fixed", "budget"), n_max=2, run_budget=2, resamples=200)
    compare_agent(TASKS[:1], engine=FakeEngine(), t2_policy=FixedPolicy(1), config=config,
                  factory=factory)  # fmt: skip
    assert seen[0] is None and seen[1].total_samples == 2
    assert plot_comparison(compare_agent(
        TASKS[:1], engine=FakeEngine(), t2_policy=None, config=CompareConfig(policies=("one",),
        resamples=200)), tmp_path / "c.png").stat().st_size > 0  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"policies": ("fixed", "greedy")}, "policy 'greedy' is not one of"),
        ({"policies": ("t2", "t2")}, "repeats a policy"),
        ({"policies": ()}, "policies is empty"),
        ({"run_budget": 0}, "run_budget=0"),
        ({"policies": ("hybrid",), "n_max": 2, "window": 4}, "window"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        CompareConfig(**kwargs)
    assert fragment in str(info.value)


def test_missing_pieces_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="need T2: pass --estimator"):
        compare_agent(TASKS, engine=FakeEngine(), t2_policy=None, config=CompareConfig())
    with pytest.raises(ConfigError, match="no tasks"):
        compare_agent([], engine=FakeEngine(), t2_policy=None,
                      config=CompareConfig(policies=("one",)))  # fmt: skip
    with pytest.raises(ConfigError, match="agent='nope' must be module:function"):
        load_agent_factory("nope")
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_agent_factory("no_such_module_here:build")
    with pytest.raises(ConfigError, match="has no callable 'build'"):
        load_agent_factory("math:build")

    def silent(thinking: Any, *, ledger: Any, run_budget: Any) -> Any:
        class Agent:
            def invoke(self, *args: Any) -> dict[str, Any]:
                return {}

        return Agent()

    with pytest.raises(ConfigError, match="the agent returned no messages"):
        compare_agent(TASKS, engine=FakeEngine(), t2_policy=None,
                      config=CompareConfig(policies=("one",)), factory=silent)  # fmt: skip


def test_the_command_prints_the_table_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"question": q.text, "answer": q.gold, "task": q.task})
                             + "\n" for q in TASKS))  # fmt: skip
    monkeypatch.setattr(engine_factory, "load_engine", lambda **_: FakeEngine(answers={"48": 1}))
    out = tmp_path / "out.json"
    args = ["compare", "--tasks", str(tasks), "--policies", "fixed,one", "--n-max", "3",
            "--out", str(out), "--plot", str(tmp_path / "c.png")]  # fmt: skip
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "accuracy" in shown.output and "fixed" in shown.output
    saved = json.loads(out.read_text())
    assert saved["policies"]["fixed"]["correct"] == [False, True, False]
    assert saved["policies"]["one"]["mean_samples"] == 1.0
    as_json = runner.invoke(app, [*args[:-4], "--json", "--limit", "1"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["tasks"] == 1
    bad = runner.invoke(app, ["compare", "--tasks", str(tasks), "--policies", "fast", "--json"])
    assert bad.exit_code == 2 and "not one of" in json.loads(bad.stdout)["error"]["message"]


def test_the_default_agent_on_the_real_model_under_fixed_and_t2(engine: Any) -> None:
    """The default model and the shipped estimator: two tasks, two policies, costs add up."""
    from t2_agents.budget.shipped import load_t2_policy

    config = CompareConfig(policies=("fixed", "t2"), n_max=2, max_tokens=8, resamples=200)
    result = compare_agent(TASKS[:2], engine=engine, t2_policy=load_t2_policy(engine),
                           config=config)  # fmt: skip
    fixed, t2 = result.policies
    assert fixed.samples == [2, 2] and fixed.steps == [1, 1]
    assert all(1 <= n <= 2 for n in t2.samples) and t2.label.startswith("t2")
    assert all(0 < tokens <= 2 * 8 for tokens in fixed.completion_tokens)
    assert all(s > 0 for s in fixed.seconds + t2.seconds)
