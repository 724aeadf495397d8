"""The example scripts: each ``main([...])`` at tiny settings on the real default model."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import CallablePolicy
from t2_agents.errors import ArtifactError, ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = ("budget_aware_self_consistency", "per_tool_call_reasoning", "compare_agent_costs")
TINY = ["--n-max", "4", "--max-tokens", "12"]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # typing.get_type_hints needs the module (graph schemas)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_have_a_command_line(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for option in ("--questions", "--n-max", "--max-tokens", "--estimator"):
        assert option in done.stdout


def test_compare_needs_an_estimator(tmp_path: Path) -> None:
    module = _load("compare_agent_costs")
    with pytest.raises(ArtifactError, match="--estimator"):
        module.main(
            ["--estimator", str(tmp_path / "none"), "--plot", str(tmp_path / "p.png")],
            engine=FakeEngine(),
        )


def test_compare_agent_costs_runs_four_policies_on_the_same_questions(tmp_path: Path) -> None:
    module = _load("compare_agent_costs")
    stub = CallablePolicy(lambda *, question, **_: 1 + len(question) % 4, name="t2")
    results = tmp_path / "results.json"
    argv = ["--questions", "4", "--n-max", "6", "--window", "2", "--plot", str(tmp_path / "p.png")]
    engine = FakeEngine(answers={"1": 0.4, "2": 0.3, "3": 0.3})
    out = module.main([*argv, "--json", str(results)], engine=engine, policy=stub)
    runs = out["policies"]
    assert list(runs) == list(module.RUNS) and out["tasks"] == 4
    assert runs["fixed"]["samples"] == [6, 6, 6, 6] and runs["fixed"]["engine_calls"] == [1] * 4
    per_run = out["settings"]["run_budget_used"]
    assert per_run == round(sum(runs["t2"]["samples"]) / 4)
    assert all(n <= max(per_run, 1) for n in runs["budget"]["samples"])
    hybrid = runs["hybrid"]
    assert hybrid["label"] == "hybrid+t2"
    assert all(h >= t for h, t in zip(hybrid["samples"], runs["t2"]["samples"], strict=True))
    assert sum(hybrid["engine_calls"]) >= 4
    assert json.loads(results.read_text("utf-8"))["settings"]["run_budget_used"] == per_run
    assert Path(out["plot"]).stat().st_size > 0
    with pytest.raises(ConfigError, match="exceed n_max=6"):
        module.main([*argv[:4], "--window", "8"], engine=engine, policy=stub)


def test_without_an_estimator_the_examples_fall_back_to_a_fixed_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("t2_agents.budget.shipped.default_estimator_path", lambda: None)
    out = _load("per_tool_call_reasoning").main(
        ["--questions", "2", "--n-max", "3"], engine=FakeEngine()
    )
    assert out["policy"] == "fixed-3" and [call["n"] for call in out["calls"]] == [3, 3]


@pytest.mark.slow
def test_budget_aware_self_consistency(engine: Any, fixture_estimator: Path) -> None:
    out = _load("budget_aware_self_consistency").main(
        ["--questions", "3", *TINY, "--estimator", str(fixture_estimator)], engine=engine
    )
    rows, report = out["rows"], out["report"]
    assert out["policy"] == "t2"
    assert [row["task"] for row in rows] == ["basic_arithmetic", "products", "lcm"]
    assert all(1 <= row["n"] == row["samples"] <= 4 for row in rows)
    assert all(isinstance(row["correct"], bool) and row["gold"] for row in rows)
    assert report["questions"] == 3
    assert report["samples"] == sum(row["samples"] for row in rows)
    assert report["correct"] == sum(row["correct"] for row in rows)
    assert report["completion_tokens"] == sum(row["completion_tokens"] for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [False, True])
def test_per_tool_call_reasoning(engine: Any, fixture_estimator: Path, parallel: bool) -> None:
    argv = ["--questions", "3", *TINY, "--estimator", str(fixture_estimator)]
    out = _load("per_tool_call_reasoning").main(
        argv + (["--parallel"] if parallel else []), engine=engine
    )
    calls, ledger = out["calls"], out["ledger"]
    assert out["policy"] == "t2" and len(calls) == 3
    assert all(call["policy"] == "t2" and 1 <= call["n"] <= 4 for call in calls)
    assert ledger["steps"] == 3
    assert ledger["samples"] == sum(call["n"] for call in calls)
    assert ledger["completion_tokens"] == sum(call["completion_tokens"] for call in calls)
    assert out["final"].splitlines()[0].startswith("1. ")
    assert len(out["final"].splitlines()) == 3
    assert out["accuracy"] == sum(call["correct"] for call in calls) / 3


@pytest.mark.slow
def test_compare_agent_costs(engine: Any, fixture_estimator: Path, tmp_path: Path) -> None:
    plot = tmp_path / "plots" / "costs.png"
    out = _load("compare_agent_costs").main(
        ["--questions", "3", *TINY, "--estimator", str(fixture_estimator), "--plot", str(plot)],
        engine=engine,
    )
    runs = out["policies"]
    fixed, t2, budgeted, hybrid = (runs[name] for name in ("fixed", "t2", "budget", "hybrid"))
    assert fixed["label"] == "fixed-4" and t2["label"] == "t2"
    per_run = out["settings"]["run_budget_used"]
    assert per_run == max(1, round(sum(t2["samples"]) / 3))
    assert all(n <= per_run for n in budgeted["samples"])
    assert hybrid["label"] == "hybrid+t2"
    assert all(t <= h <= 4 for t, h in zip(t2["samples"], hybrid["samples"], strict=True))
    assert fixed["samples"] == [4, 4, 4] and all(1 <= n <= 4 for n in t2["samples"])
    for totals in (fixed, t2):
        assert 0.0 <= totals["accuracy"] <= 1.0 and min(totals["seconds"]) > 0
        assert all(0 < t <= 4 * 12 for t in totals["completion_tokens"])
    assert out["differences"]["t2"]["samples"]["difference"] == pytest.approx(
        sum(t2["samples"]) / 3 - 4
    )
    assert out["plot"] == str(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
