"""bench/confidence_rules.py on a tiny fake collection (wiring only: no real measurement)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from t2_agents.backends.fake import FakeEngine
from t2_agents.calibrate.collect import CollectConfig, collect

BENCH = Path(__file__).resolve().parents[1] / "bench" / "confidence_rules.py"


def _load_bench() -> ModuleType:
    name = "bench_confidence_rules"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def _collection(tmp_path: Path, *, confidence: bool) -> Path:
    rows = [{"question": f"What is {i} + {i}?", "answer": "42"} for i in range(6)]
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # the right answer is the minority but written with far more confidence
    engine = FakeEngine(
        answers={"42": 0.35, "41": 0.65},
        confidence={"42": 8.0, "41": 1.0} if confidence else None,
    )
    config = CollectConfig(
        data=str(data), questions=6, samples=8, model=engine.identity, layers=(0, 1)
    )
    return collect(engine, config, tmp_path / ("conf" if confidence else "plain"))


class _Estimator:
    """A stand-in fitted estimator: N = 4 for every question (only the wiring is tested)."""

    layers = (1,)

    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        assert features.shape[1] == 1
        return np.full(len(features), 4, dtype=np.int64)


def test_the_bench_replays_every_rule_with_intervals(tmp_path: Path) -> None:
    folder = _collection(tmp_path, confidence=True)
    out = tmp_path / "report.json"
    assert bench.main(["--data", str(folder), "--n", "1", "8", "--eta", "25", "--draws", "200",
                       "--resamples", "200", "--out", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert report["questions"] == 6 and report["questions_with_confidence"] == 6
    assert list(report["rules"]) == ["majority", "weighted", "filtered-25"]
    assert report["fallback_questions"] == {"majority": 0, "weighted": 0, "filtered-25": 0}
    at_8 = report["fixed"]["8"]
    assert at_8["weighted"]["accuracy"] > at_8["majority"]["accuracy"]
    low, high = at_8["weighted"]["vs_majority_ci"]
    assert low <= at_8["weighted"]["vs_majority"] <= high
    assert (
        at_8["filtered-25"]["mean_completion_tokens"] == at_8["majority"]["mean_completion_tokens"]
    )
    # N = 1: every rule votes one path, so every rule has the majority's accuracy (up to MC)
    one = report["fixed"]["1"]
    assert abs(one["weighted"]["accuracy"] - one["majority"]["accuracy"]) < 0.1


def test_the_bench_under_an_estimator(tmp_path: Path) -> None:
    folder = _collection(tmp_path, confidence=True)
    report = bench.run([folder], fixed=[2], etas=[50], estimator=_Estimator(), draws=100,
                       resamples=100)  # fmt: skip
    assert report["t2"]["mean_n"] == 4.0
    assert set(report["t2"]) == {"mean_n", "majority", "weighted", "filtered-50"}
    assert report["t2"]["weighted"]["mean_completion_tokens"] > 0


def test_the_bench_falls_back_on_collections_without_confidence(tmp_path: Path) -> None:
    folder = _collection(tmp_path, confidence=False)
    report = bench.run([folder], fixed=[8], etas=[50], draws=100, resamples=100)
    assert report["questions_with_confidence"] == 0
    assert report["fallback_questions"]["weighted"] == 6
    at_8 = report["fixed"]["8"]
    assert at_8["weighted"]["accuracy"] == pytest.approx(at_8["majority"]["accuracy"])
