"""Tests of t2_agents.evaluate.live and ``t2 eval --live`` (FakeEngine, a tiny collection)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from conftest import FakeEngine
from typer.testing import CliRunner

from t2_agents import cli
from t2_agents.backends import factory
from t2_agents.errors import ConfigError, DataError
from t2_agents.evaluate.live import is_right, live_eval, live_table

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two tiny collections and a T2 estimator fitted on their features."""
    from t2_agents.calibrate.collect import CollectConfig, collect
    from t2_agents.calibrate.training_set import load_training_set
    from t2_agents.estimator.estimator import T2Estimator
    from t2_agents.estimator.probes import ProbeConfig

    root = tmp_path_factory.mktemp("live")
    folders = []
    for name, suffix, count in (("a", "", 8), ("b", " Quick.", 12)):
        source = root / f"{name}.jsonl"
        lines = [json.dumps({"question": f"Pick digit {i}.{suffix}", "answer": str(i % 3)})
                 for i in range(count)]  # fmt: skip
        source.write_text("\n".join(lines) + "\n")
        config = CollectConfig(data=str(source), questions=count, samples=8, layers=(0, 3),
                               model="fake", max_tokens=8, batch_questions=8)  # fmt: skip
        folders.append(collect(FakeEngine(), config, root / name))
    data = load_training_set(folders[1:])  # trained on b only: a is new to it
    est, _ = T2Estimator.fit(
        data.features, data.labels, layers=data.layers, grid=list(range(1, 9)), n_min=1, n_max=8,
        model_identity="fake", hidden_size=8, config=ProbeConfig(epochs=2), n_d=data.n_d,
        data_summary=data.summary,
    )  # fmt: skip
    return {"folders": folders, "estimator": est.save(root / "t2")}


def test_live_eval_runs_both_policies(setup: dict[str, Any]) -> None:
    ticks: list[tuple[int, int]] = []
    out = live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=3, questions=5,
                    progress=lambda d, t: ticks.append((d, t)),
                    policies=("t2", "fixed"))  # fmt: skip
    assert out["questions"] == 5 and ticks[-1] == (10, 10)
    assert list(out["policies"]) == ["fixed", "t2"]
    tasks_order = [r["id"] for r in out["rows"]]
    assert len(set(tasks_order)) == 5
    fixed, t2 = out["policies"]["fixed"], out["policies"]["t2"]
    assert fixed["policy"] == "fixed N_D=3" and fixed["mean_n"] == 3.0
    assert 1.0 <= t2["mean_n"] <= 8.0
    for p in (fixed, t2):
        assert p["accuracy"] == sum(r[p["policy"].split()[0]]["correct"] for r in out["rows"]) / 5
        assert p["mean_completion_tokens"] == pytest.approx(3 * p["mean_n"])
        assert p["seconds"] >= 0 and p["seconds_per_question"] == pytest.approx(p["seconds"] / 5)


def test_live_eval_runs_every_live_policy(setup: dict[str, Any]) -> None:
    out = live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=3, questions=4)
    policies = out["policies"]
    assert list(policies) == ["fixed", "t2", "adaptive", "esc", "hybrid", "budget"]
    t2_total = round(policies["t2"]["mean_n"] * 4)
    assert out["run_budget"] == t2_total
    assert policies["budget"]["mean_n"] * 4 <= t2_total
    assert policies["budget"]["policy"] == f"t2, run budget {t2_total}"
    for row in out["rows"]:
        assert row["hybrid"]["n"] >= row["t2"]["n"]  # same first wave, then follow-ups
    assert policies["adaptive"]["mean_engine_calls"] == policies["adaptive"]["mean_n"]
    assert policies["esc"]["mean_n"] % 4 == 0 or policies["esc"]["mean_n"] >= 4
    assert policies["fixed"]["mean_rounds"] == 1.0 and policies["adaptive"]["mean_rounds"] >= 4
    header, rows = live_table(out)
    assert "engine calls" in header and len(rows) == 6
    with pytest.raises(
        ConfigError, match=r"add t2 \(policies=\('t2', 'budget'\)\) or pass run_budget"
    ):
        live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=3, policies=["budget"])
    with pytest.raises(ConfigError, match=r"unknown policies \['beta'\]; choose from fixed, t2"):
        live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=3, policies=["beta"])


def test_live_eval_runs_questions_concurrently(setup: dict[str, Any]) -> None:
    from t2_agents.calibrate.collect import load_collection
    from t2_agents.calibrate.training_set import record_key

    one = live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=3, questions=6,
                    policies=("fixed", "t2", "hybrid"))  # fmt: skip
    ticks: list[tuple[int, int]] = []
    many = live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=3, questions=6,
                     policies="fixed,T2, hybrid", concurrency=4,
                     progress=lambda d, t: ticks.append((d, t)))  # fmt: skip
    assert many["rows"] == one["rows"] and sorted(ticks) == [(d, 18) for d in range(1, 19)]
    keys = {record_key(r) for r in load_collection(setup["folders"][0]).records}
    assert all(row["key"] in keys for row in many["rows"])
    with pytest.raises(ConfigError, match="concurrency=0"):
        live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=3, concurrency=0)


def test_live_questions_round_robin_over_folders(setup: dict[str, Any]) -> None:
    out = live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=1, questions=3)
    prompts = [r["id"] for r in out["rows"]]
    from t2_agents.calibrate.collect import load_collection

    a = load_collection(setup["folders"][0]).records
    assert prompts == [a[0]["id"], a[1]["id"], a[2]["id"]]  # b's questions were training data
    assert out["skipped_seen_in_training"] == 2
    with pytest.raises(DataError, match=r"no question .* is new to the estimator \(12 were seen"):
        live_eval(FakeEngine(), setup["folders"][1:], setup["estimator"], n_d=1, questions=3)


def test_is_right_and_bad_input(setup: dict[str, Any]) -> None:
    record = {"gold": " 7.0 ", "correct": ["5"]}
    assert is_right("5", record) and is_right("7", record) and not is_right("6", record)
    assert not is_right(None, record)
    with pytest.raises(ConfigError, match="questions=0"):
        live_eval(FakeEngine(), setup["folders"], setup["estimator"], n_d=2, questions=0)


def test_cli_eval_live(setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "load_engine", lambda *args, **kwargs: FakeEngine())
    folder, estimator = str(setup["folders"][0]), str(setup["estimator"])
    base = ["eval", "--data", folder, "--estimator", estimator, "--policies", "fixed,nd,t2",
            "--n-d", "2", "--replays", "5", "--live", "--live-questions", "2"]  # fmt: skip
    result = runner.invoke(cli.app, [*base, "--json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    payload = json.loads(result.stdout)
    assert payload["live"]["questions"] == 2 and payload["live"]["n_d"] == 2
    assert payload["live"]["policies"]["fixed"]["mean_n"] == 2.0
    table = runner.invoke(cli.app, base)
    assert table.exit_code == 0, table.stderr
    assert "Live on fake: 2 questions" in table.stdout and "fixed N_D=2" in table.stdout
    missing = runner.invoke(cli.app, ["eval", "--data", folder, "--policies", "fixed", "--live",
                                      "--json"])  # fmt: skip
    assert missing.exit_code == 2 and "--estimator" in missing.stdout


def test_cli_eval_live_policies_selects_a_subset(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factory, "load_engine", lambda *args, **kwargs: FakeEngine())
    folder, estimator = str(setup["folders"][0]), str(setup["estimator"])
    base = ["eval", "--data", folder, "--estimator", estimator, "--policies", "fixed",
            "--n-d", "2", "--replays", "5", "--live-questions", "2", "--json"]  # fmt: skip
    result = runner.invoke(cli.app, [*base, "--live-policies", "hybrid, FIXED"])  # implies --live
    assert result.exit_code == 0, result.stdout + result.stderr
    assert list(json.loads(result.stdout)["live"]["policies"]) == ["fixed", "hybrid"]
    bad = runner.invoke(cli.app, [*base, "--live-policies", "fixed,beta"])
    assert bad.exit_code == 2
    message = json.loads(bad.stdout)["error"]["message"]
    assert "--live-policies 'fixed,beta': unknown policies ['beta']" in message
    assert "choose from fixed, t2, adaptive, esc, hybrid, budget" in message
    alone = runner.invoke(cli.app, [*base, "--live-policies", "budget"])
    assert alone.exit_code == 2 and "--live-policies t2,budget" in alone.stdout


def test_bench_live_vs_replay_pairs_the_same_questions(setup: dict[str, Any]) -> None:
    """bench/live_vs_replay.py on the tiny collections: live and replay, same keys, CIs."""
    from pathlib import Path

    from conftest import load_script

    path = Path(__file__).resolve().parents[1] / "bench" / "live_vs_replay.py"
    bench = load_script(path, "live_vs_replay")
    out = bench.run(FakeEngine(), folders=setup["folders"], estimator=setup["estimator"],
                    questions=5, concurrency=3, replays=5, resamples=200,
                    train_data=setup["folders"][1:])  # fmt: skip
    assert out["questions"] == 5 and out["skipped_seen_in_training"] == 4  # b: training
    for mode in ("replay", "live"):
        policies = out["modes"][mode]
        assert list(policies) == list(bench.POLICIES)
        for p in policies.values():
            assert len(p["per_question"]["credit"]) == 5
            assert np.mean(p["per_question"]["credit"]) == pytest.approx(p["accuracy"])
            assert np.mean(p["per_question"]["samples"]) == pytest.approx(p["mean_samples"])
        c = out["comparisons"][mode]
        d = c["hybrid_minus_nd_accuracy"]
        want = policies["hybrid"]["accuracy"] - policies["fixed"]["accuracy"]
        assert (
            d["difference"] == pytest.approx(want)
            and d["ci"][0] <= want + 1e-12 <= d["ci"][1] + 2e-12
        )
        assert c["budget_target_met"] == (c["budget_minus_t2_accuracy"]["difference"] >= 0)
    assert out["modes"]["live"]["budget"]["samples"] <= out["live_run_budget"]
    whole = out["replay_all"]
    assert whole["questions"] >= out["questions"] and set(whole["modes"]) == set(bench.POLICIES)
    assert all("per_question" not in row for row in whole["modes"].values())
    assert set(whole["comparisons"]["targets"]) == set(out["comparisons"]["replay"]["targets"])
    table = bench.plot(out | {"engine": "fake"}, Path(setup["estimator"]).parent / "lvr.png")
    assert table.stat().st_size > 0


def test_live_skips_training_questions_in_another_operand_order(tmp_path: Any) -> None:
    from conftest import TrainedOn

    from t2_agents.calibrate.collect import CollectConfig, collect, load_collection
    from t2_agents.tasks import load_task

    config = CollectConfig(task="lcm", task_config={"max_value": 12}, questions=8, seed=30,
                           samples=8, layers=(0, 3), model="fake", max_tokens=8)  # fmt: skip
    held = collect(FakeEngine(), config, tmp_path / "held")
    swapped = load_collection(held).records[2]
    assert "12, 4" in swapped["prompt"]  # training (seed 1) asks "4, 12"
    trained = load_task("lcm", size=8, seed=1, config={"max_value": 12})
    keys, instances = [q.key for q in trained], [q.instance_key for q in trained]
    out = live_eval(FakeEngine(), [held], TrainedOn(keys, instances), n_d=2, questions=8,
                    policies=("fixed",))  # fmt: skip
    assert out["questions"] == 7 and swapped["id"] not in [r["id"] for r in out["rows"]]
    assert (out["skipped_seen_in_training"], out["skipped_seen_by_text"],
            out["skipped_seen_by_instance"]) == (1, 0, 1)  # fmt: skip
    older = live_eval(FakeEngine(), [held], TrainedOn(keys), n_d=2, questions=8,
                      policies=("fixed",))  # fmt: skip  # no instance keys recorded
    assert older["questions"] == 8 and older["skipped_seen_in_training"] == 0
