"""Tests of t2_agents.artifact, through ``T2Estimator.save``/``load``: round trip and errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from t2_agents.artifact import FORMAT_NAME, FORMAT_VERSION, load_artifact
from t2_agents.errors import ArtifactError
from t2_agents.estimator import FitReport, T2Estimator
from t2_agents.probes import ProbeConfig

torch.set_num_threads(1)

Q, D = 40, 16
LAYERS = (2, 5, 9, 13)
GRID = (1, 2, 4, 8, 16, 32, 64)
CONFIG = ProbeConfig(hidden=8, epochs=5, lr=1e-2, batch_size=32, dropout=0.0)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(Q, len(LAYERS), D)).astype(np.float32)
    return x, np.where(x[:, 1, 0] > 0, 8, 2)


@pytest.fixture(scope="module")
def fitted(data: tuple[np.ndarray, np.ndarray]) -> tuple[T2Estimator, FitReport]:
    x, y = data
    return T2Estimator.fit(
        x, y, layers=LAYERS, grid=GRID, n_min=2, n_max=32, model_identity="toy/model",
        hidden_size=D, config=CONFIG, n_d=16, data_summary={"task": "toy"},
    )  # fmt: skip


@pytest.fixture()
def artifact(fitted: tuple[T2Estimator, FitReport], tmp_path: Path) -> Path:
    return fitted[0].save(tmp_path / "est")


def test_round_trip(
    fitted: tuple[T2Estimator, FitReport], data: tuple[np.ndarray, np.ndarray], artifact: Path
) -> None:
    est, report = fitted
    assert sorted(p.name for p in artifact.iterdir()) == ["metadata.json", "probes.safetensors"]
    assert [p.name for p in artifact.parent.iterdir()] == ["est"]  # no temp dirs left
    loaded = T2Estimator.load(artifact, expect_identity="toy/model", expect_hidden_size=D)
    np.testing.assert_array_equal(loaded.predict_log2(data[0]), est.predict_log2(data[0]))
    assert loaded.weights == est.weights and loaded.layers == LAYERS and loaded.grid == GRID
    assert (loaded.n_min, loaded.n_max, loaded.config) == (2, 32, CONFIG)
    meta = json.loads((artifact / "metadata.json").read_text())
    assert meta["format"] == "t2-estimator" and meta["format_version"] == 1
    assert meta["validation"] == report.to_dict() and meta["training_data"] == {"task": "toy"}
    assert loaded.metadata == meta
    est.save(artifact)  # replacing an existing artifact works
    assert T2Estimator.load(artifact).weights == est.weights


def test_load_artifact_returns_the_parts(
    fitted: tuple[T2Estimator, FitReport], artifact: Path
) -> None:
    est, _ = fitted
    parts = load_artifact(artifact, expect_identity="toy/model", expect_hidden_size=D)
    assert (parts.spec.layers, parts.spec.grid, parts.config) == (LAYERS, GRID, CONFIG)
    assert parts.weights == list(est.weights) and len(parts.probes) == len(LAYERS)
    assert sorted(parts.extra) == ["created", "training_data", "validation"]
    assert (est.metadata["format"], est.metadata["format_version"]) == (FORMAT_NAME, FORMAT_VERSION)


def test_save_refuses_a_file(fitted: tuple[T2Estimator, FitReport], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a directory"):
        fitted[0].save(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "keep me"


def test_save_refuses_foreign_directory(
    fitted: tuple[T2Estimator, FitReport], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="refusing"):
        fitted[0].save(tmp_path)


def test_load_wrong_model(artifact: Path) -> None:
    with pytest.raises(ArtifactError, match=r"hidden size 16.*576.*t2 train"):
        T2Estimator.load(artifact, expect_hidden_size=576)
    with pytest.raises(ArtifactError, match="'toy/model', not 'other'"):
        T2Estimator.load(artifact, expect_identity="other")


def test_load_truncated_safetensors(artifact: Path) -> None:
    path = artifact / "probes.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        T2Estimator.load(artifact)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"hidden_size": "16"}, "hidden_size='16' is not of type int"),
        ({"layers": [2, "5", 9, 13]}, "wrong type"),
        ({"weights": None}, "weights=None"),
        ({"format": "other"}, "format 'other'"),
        ({"format_version": 2}, "version 2"),
        ({"probe_config": {"nope": 1}}, "inconsistent"),
        ({"probe_hidden": 5}, "disagrees with probe_config"),
        ({"weights": [0.5, 0.5, 0.5, 0.5]}, "summing to 1"),
        ({"probe_hidden": 5, "probe_config": {"hidden": 5}}, "do not match"),
        ({"layers": [2, 5, 9, 14]}, "do not match"),
    ],
)
def test_load_bad_metadata(artifact: Path, edit: dict[str, Any], match: str) -> None:
    path = artifact / "metadata.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | edit))
    with pytest.raises(ArtifactError, match=match):
        T2Estimator.load(artifact)


def test_load_metadata_not_json(artifact: Path) -> None:
    (artifact / "metadata.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        T2Estimator.load(artifact)


@pytest.mark.parametrize("missing", ["metadata.json", "probes.safetensors", None])
def test_load_missing(artifact: Path, missing: str | None) -> None:
    if missing is None:
        target = artifact / "nowhere"
    else:
        (artifact / missing).unlink()
        target = artifact
    with pytest.raises(ArtifactError, match="missing" if missing else "not a directory"):
        T2Estimator.load(target)
