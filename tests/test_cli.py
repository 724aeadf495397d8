"""End-to-end tests of the ``t2`` command with ``--json`` (stdout is exactly one JSON object)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from t2_agents.cli import app

# click >= 8.2 always keeps stderr apart from stdout (the old mix_stderr=False behaviour).
runner = CliRunner()


def _one_json_object(stdout: str) -> dict[str, Any]:
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    return payload


@pytest.mark.slow
def test_ask_json_end_to_end() -> None:
    result = runner.invoke(
        app, ["ask", "What is 2 + 3?", "--n", "2", "--max-tokens", "16", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    payload = _one_json_object(result.stdout)
    assert payload["n"] == 2
    assert payload["policy"] == "fixed-2"
    assert payload["out_of_distribution"] is False
    assert len(payload["paths"]) == 2
    for path in payload["paths"]:
        assert set(path) == {"answer", "text", "tokens", "finish"}
        assert 1 <= path["tokens"] <= 16
        assert path["finish"] in ("stop", "length")
    assert {"answer", "share", "valid", "invalid"} <= set(payload["verdict"])
    assert payload["completion_tokens"] == sum(p["tokens"] for p in payload["paths"])
    assert payload["prompt_tokens"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "kind", "words"),
    [
        (["ask", "", "--json"], "PromptError", "empty"),
        (["ask", "   ", "--json"], "PromptError", "whitespace"),
        (["ask", "2+2?", "--n", "0", "--json"], "ConfigError", "n=0"),
    ],
)
def test_ask_bad_input_is_a_json_error(args: list[str], kind: str, words: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    error = _one_json_object(result.stdout)["error"]
    assert error["type"] == kind
    assert words in error["message"]


@pytest.mark.parametrize("value", ["1.5", "-0.01", "nan"])
def test_ask_tolerance_out_of_range_fails_before_loading(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from t2_agents.backends import factory

    def no_engine(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model must not load for a bad --tolerance")

    monkeypatch.setattr(factory, "load_engine", no_engine)
    result = runner.invoke(app, ["ask", "2+2?", "--tolerance", value, "--json"])
    assert result.exit_code == 2
    error = _one_json_object(result.stdout)["error"]
    assert error["type"] == "ConfigError" and "is not an accuracy in [0, 1]" in error["message"]


def test_missing_model_is_a_json_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    result = runner.invoke(app, ["ask", "2+2?", "--model", str(missing), "--json"])
    assert result.exit_code == 2
    error = _one_json_object(result.stdout)["error"]
    assert error["type"] == "ModelError"
    assert str(missing) in error["message"]


def test_ask_bad_input_without_json_goes_to_stderr(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ask", "2+2?", "--model", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "error" in result.stderr


@pytest.mark.slow
def test_collect_json_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "lcm"
    args = [
        "collect", "--out", str(out), "--task", "lcm", "--questions", "2", "--samples", "2",
        "--max-tokens", "8", "--layers", "0,29", "--confidence-top-k", "5", "--json",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    payload = _one_json_object(result.stdout)
    assert payload["out"] == str(out)
    assert payload["questions"] == 2
    assert payload["samples"] == 2
    assert payload["layers"] == [0, 29]
    assert 0.0 <= payload["mean_accuracy"] <= 1.0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for sample in (s for r in records for s in r["samples"]):  # top-5 confidences recorded
        assert len(sample["conf"]) == 4 and sample["conf"][3] == sample["tokens"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--task-config", "{oops"], "--task-config"),
        pytest.param(["--layers", "0,x"], "--layers", marks=pytest.mark.slow),  # after load
    ],
)
def test_collect_bad_options_are_json_errors(tmp_path: Path, extra: list[str], words: str) -> None:
    args = ["collect", "--out", str(tmp_path), "--task", "lcm", "--questions", "1"]
    result = runner.invoke(app, [*args, "--samples", "1", *extra, "--json"])
    assert result.exit_code == 2
    error = _one_json_object(result.stdout)["error"]
    assert error["type"] == "ConfigError"
    assert words in error["message"]


def test_collect_plan_json_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import FakeEngine

    from t2_agents.backends import factory
    from t2_agents.calibrate.collect import load_collection

    engines: list[FakeEngine] = []

    def fake_engine(*args: Any, **kwargs: Any) -> FakeEngine:
        engines.append(FakeEngine())
        return engines[-1]

    monkeypatch.setattr(factory, "load_engine", fake_engine)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "defaults": {"samples": 2, "max_tokens": 8, "layers": [0, 3], "keep_texts": False},
                "collections": [
                    {"out": "runs/lcm", "task": "lcm", "questions": 2, "seed": 1},
                    {"out": "runs/gcd", "task": "gcd", "questions": 3, "seed": 1},
                    {"out": "runs/lcm", "task": "lcm", "questions": 4, "seed": 1},
                ],
            }
        )
    )
    result = runner.invoke(app, ["collect", "--plan", str(plan), "--json"])
    assert result.exit_code == 0, result.stderr
    summaries = _one_json_object(result.stdout)["collections"]
    assert len(engines) == 1  # one engine for the whole plan
    assert [s["out"] for s in summaries] == [
        str(tmp_path / "runs" / name) for name in ("lcm", "gcd", "lcm")
    ]
    assert [s["questions"] for s in summaries] == [2, 3, 4]
    assert all(s["samples"] == 2 and s["layers"] == [0, 3] for s in summaries)
    loaded = load_collection(tmp_path / "runs" / "lcm")
    assert [r["id"] for r in loaded.records] == [f"lcm-1-{i}" for i in range(4)]
    assert all("text" not in s for r in loaded.records for s in r["samples"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--plan", "p.json", "--out", "x"], "drop --out"),
        (["--plan", "p.json", "--task", "lcm"], "drop --out"),
        (["--plan", "p.json", "--questions", "3"], "drop --out"),
        (["--out", "x", "--task", "lcm", "--questions", "2"], "pass --out, --questions and"),
        (["--task", "lcm"], "or --plan FILE"),
    ],
)
def test_collect_plan_usage_errors(
    args: list[str], words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from t2_agents.backends import factory

    def no_engine(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a usage error must not load the model")

    monkeypatch.setattr(factory, "load_engine", no_engine)
    result = runner.invoke(app, ["collect", *args, "--json"])
    assert result.exit_code == 2
    error = _one_json_object(result.stdout)["error"]
    assert error["type"] == "ConfigError"
    assert words in error["message"]


def test_collect_bad_plan_fails_before_loading_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from t2_agents.backends import factory

    def no_engine(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a bad plan must not load the model")

    monkeypatch.setattr(factory, "load_engine", no_engine)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"collections": [{"out": "a", "task": "lcm", "questions": 0}]}))
    result = runner.invoke(app, ["collect", "--plan", str(plan), "--json"])
    assert result.exit_code == 2
    error = _one_json_object(result.stdout)["error"]
    assert error["type"] == "ConfigError" and "entry 1" in error["message"]
    result = runner.invoke(app, ["collect", "--plan", str(tmp_path / "none.json"), "--json"])
    assert _one_json_object(result.stdout)["error"]["type"] == "DataError"


def test_python_dash_m_prints_only_json_on_stdout(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    proc = subprocess.run(
        [sys.executable, "-m", "t2_agents", "ask", "2+2?", "--model", str(missing), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert _one_json_object(proc.stdout)["error"]["type"] == "ModelError"


def test_multi_value_options_take_several_folders() -> None:
    from t2_agents.cli import expand_multi_value

    argv = ["train", "--data", "a", "b", "--heldout", "c", "d", "--out", "o", "--json"]
    assert expand_multi_value(argv) == [
        "train", "--data", "a", "--data", "b", "--heldout", "c", "--heldout", "d",
        "--out", "o", "--json",
    ]  # fmt: skip
    assert expand_multi_value(["ask", "--data-free", "x"]) == ["ask", "--data-free", "x"]


def test_unknown_engine_is_a_json_error() -> None:
    result = runner.invoke(app, ["ask", "2+2?", "--engine", "llamacpp", "--json"])
    assert result.exit_code == 2
    error = _one_json_object(result.stdout)["error"]
    assert error["type"] == "ConfigError"
    assert "'llamacpp' is not one of transformers, vllm" in error["message"]


def test_sigterm_runs_the_exit_handlers(tmp_path: Path) -> None:
    """A SIGTERM'd ``t2`` exits through ``sys.exit``, so engines' ``atexit`` close runs (vLLM's
    engine-core process would otherwise outlive it)."""
    marker = tmp_path / "closed"
    code = (
        "import atexit, os, signal, time\n"
        "from t2_agents.cli.common import exit_on_sigterm\n"
        "exit_on_sigterm()\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('closed'))\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(30)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert done.returncode == 143 and marker.read_text() == "closed"
