"""Path confidence: DeepConf's statistics, odd log-probabilities, storage in collections."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from t2_agents.backends.base import SamplingParams
from t2_agents.backends.fake import FakeEngine
from t2_agents.backends.vllm import VLLMConfig
from t2_agents.calibrate.collect import CollectConfig, collect, load_collection
from t2_agents.confidence import (
    PathConfidence,
    check_confidence_settings,
    confidence_from_steps,
    path_confidence,
    token_confidences,
)
from t2_agents.errors import ConfigError, DataError
from t2_agents.evaluate.replay import ReplayPool

OLD_COLLECTION = Path("tests/data/rebuild/train/basic_arithmetic")


def _reference(rows: list[list[float]], k: int, window: int, tail: int) -> tuple[float, ...]:
    """DeepConf's definitions written out with plain Python loops."""
    c = [-sum(sorted(row, reverse=True)[:k]) / k for row in rows]
    w = min(window, len(c))
    groups = [sum(c[i : i + w]) / w for i in range(len(c) - w + 1)]
    return sum(c) / len(c), min(groups), sum(c[-tail:]) / len(c[-tail:])


@pytest.mark.parametrize("seed", range(5))
def test_statistics_match_the_definitions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    length, k = int(rng.integers(1, 50)), int(rng.integers(1, 6))
    rows = (-rng.exponential(2.0, size=(length, k + 2))).tolist()
    conf = path_confidence(rows, top_k=k, window=16, tail=8)
    assert conf is not None
    expected = _reference(rows, k, 16, 8)
    assert conf.mean == pytest.approx(expected[0])
    assert conf.lowest_group == pytest.approx(expected[1])
    assert conf.tail == pytest.approx(expected[2])
    assert conf.tokens == length and conf.skipped == 0
    assert conf.lowest_group <= conf.mean + 1e-12


def test_a_peaked_distribution_is_more_confident_than_a_flat_one() -> None:
    peaked = path_confidence([[-0.01, -9.0, -10.0, -11.0]] * 4, top_k=4)
    flat = path_confidence([[-1.38, -1.39, -1.39, -1.40]] * 4, top_k=4)
    assert peaked is not None and flat is not None
    assert peaked.mean > flat.mean


def test_a_short_path_is_one_window() -> None:
    conf = path_confidence([[-1.0], [-3.0]], top_k=1, window=16, tail=16)
    assert conf is not None
    assert conf.lowest_group == conf.mean == conf.tail == 2.0


def test_non_finite_log_probabilities_are_dropped_not_fatal() -> None:
    rows = [[-1.0, -math.inf], [math.nan, math.nan], [-2.0, math.nan], [math.inf, -3.0]]
    c, skipped = token_confidences(rows, top_k=2)
    assert c.tolist() == [1.0, 2.0, 3.0] and skipped == 1
    conf = path_confidence(rows, top_k=2)
    assert conf is not None and conf.skipped == 1 and conf.tokens == 3
    assert math.isfinite(conf.mean)


def test_no_finite_position_gives_no_confidence() -> None:
    assert path_confidence([[math.nan], [-math.inf, math.inf]]) is None
    assert path_confidence([]) is None


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("top_k", {"top_k": 0}), ("window", {"window": 0}), ("tail", {"tail": -1})],
)
def test_bad_settings_name_the_setting(name: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=f"{name}="):
        path_confidence([[-1.0]], **kwargs)


def test_engine_configs_validate_the_settings() -> None:
    with pytest.raises(ConfigError, match="confidence_window=0"):
        VLLMConfig(confidence_window=0)
    with pytest.raises(ConfigError, match="confidence_top_k=0"):
        check_confidence_settings(0, 16, 16)
    check_confidence_settings(None, 16, 16)  # None turns confidence off


@pytest.mark.parametrize("value", [math.nan, math.inf, "x"])
def test_a_confidence_is_finite(value: Any) -> None:
    with pytest.raises(DataError, match="finite number"):
        PathConfidence(mean=value, lowest_group=1.0, tail=1.0, tokens=1)


def test_compact_round_trip_and_bad_stored_values() -> None:
    conf = PathConfidence(mean=3.14159, lowest_group=2.5, tail=4.0, tokens=12, skipped=2)
    assert conf.compact() == [3.1416, 2.5, 4.0, 12]
    assert PathConfidence.from_compact(json.loads(json.dumps(conf.compact()))) == conf.rounded()
    assert PathConfidence.from_dict(conf.to_dict()) == conf
    assert PathConfidence.from_dict(None) is None
    for bad in ([1.0, 2.0], "conf", [1.0, 2.0, "x", 3], [1.0, 2.0, 3.0, 0]):
        with pytest.raises(DataError):
            PathConfidence.from_compact(bad)
    with pytest.raises(ConfigError, match="statistic="):
        conf.value("median")  # type: ignore[arg-type]


def test_vllm_outputs_convert_to_confidence() -> None:
    """vLLM reports the top k and the sampled token per step; the top k enter c_t."""
    steps = [
        {5: SimpleNamespace(logprob=-0.1), 6: SimpleNamespace(logprob=-2.1)},
        None,  # a position vLLM left empty is skipped
        {
            7: SimpleNamespace(logprob=-1.0),
            8: SimpleNamespace(logprob=-1.0),
            9: SimpleNamespace(logprob=-12.0),  # sampled, outside the top 2
        },
    ]
    conf = confidence_from_steps(steps, top_k=2)
    assert conf is not None and conf.tokens == 2 and conf.skipped == 1
    assert conf.mean == pytest.approx((1.1 + 1.0) / 2)
    assert confidence_from_steps(None) is None


def test_collections_store_confidences_compactly(tmp_path: Path) -> None:
    engine = FakeEngine(answers={"4": 0.7, "5": 0.3}, confidence={"4": 6.0, "5": 2.0})
    config = CollectConfig(
        data=str(_questions(tmp_path)), questions=2, samples=4, model=engine.identity
    )
    folder = collect(engine, config, tmp_path / "out")
    loaded = load_collection(folder)
    sample = loaded.records[0]["samples"][0]
    assert len(sample["conf"]) == 4 and all(isinstance(v, int | float) for v in sample["conf"])
    pool = ReplayPool.from_record(loaded.records[0])
    assert pool.confidences is not None and len(pool.confidences) == 4
    paths = engine.sample([loaded.records[0]["prompt"]], 4, SamplingParams(seed=0))[0]
    assert paths[0].confidence is not None


def test_collections_without_confidences_still_load() -> None:
    """A collection committed before confidences existed (no ``conf`` in its samples)."""
    loaded = load_collection(OLD_COLLECTION)
    assert all("conf" not in s for r in loaded.records for s in r["samples"])
    pools = [ReplayPool.from_record(r) for r in loaded.records]
    assert pools and all(p.confidences is None for p in pools)


def test_a_malformed_stored_confidence_is_a_data_error() -> None:
    record = {"id": "q", "samples": [{"answer": "4", "tokens": 3, "conf": [1.0]}]}
    with pytest.raises(DataError, match="malformed sample"):
        ReplayPool.from_record(record)
    partial = {
        "id": "q",
        "samples": [{"answer": "4", "tokens": 3, "conf": [1.0, 1.0, 1.0, 3]}, {"answer": None,
                    "tokens": 2}],
    }  # fmt: skip
    pool = ReplayPool.from_record(partial)
    assert pool.confidences is not None and pool.confidences[1] is None


def _questions(tmp_path: Path) -> Path:
    path = tmp_path / "q.jsonl"
    rows = [{"question": "What is 2 + 2?", "answer": "4"}, {"question": "3 + 1?", "answer": "4"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
