"""Tests of t2_agents.estimator: layer-wise probes, weighting, artifacts and their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from t2_agents.errors import ArtifactError, ConfigError, DataError
from t2_agents.estimator import FitReport, LayerProbe, ProbeConfig, T2Estimator

torch.set_num_threads(1)

Q, D = 200, 16
LAYERS = (2, 5, 9, 13)
INFORMATIVE = (1, 3)  # positions in LAYERS whose features carry the label
GRID = (1, 2, 4, 8, 16, 32, 64)
CONFIG = ProbeConfig(hidden=8, epochs=60, patience=10, lr=1e-2, batch_size=32, dropout=0.0)
ARGS: dict[str, Any] = {
    "layers": LAYERS,
    "grid": GRID,
    "n_min": 2,
    "n_max": 32,
    "model_identity": "toy/model",
    "hidden_size": D,
    "config": CONFIG,
}


def _data(q: int = Q, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels 2**k with k = round(3 + 1.5 * z·u); informative layers see z, others pure noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(q, D))
    u = np.zeros(D)
    u[:2] = (1.0, 1.0)
    k = np.clip(np.round(3 + 1.5 * (z @ u) / np.sqrt(2)), 0, 6).astype(np.int64)
    x = rng.normal(size=(q, len(LAYERS), D))
    for i in INFORMATIVE:
        x[:, i] = 3.0 * z + 0.1 * rng.normal(size=(q, D)) + 5.0  # shifted, scaled: tests stats
    return x.astype(np.float32), 2**k


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _data()


@pytest.fixture(scope="module")
def fitted(data: tuple[np.ndarray, np.ndarray]) -> tuple[T2Estimator, FitReport]:
    x, y = data
    return T2Estimator.fit(x, y, n_d=16, data_summary={"task": "toy"}, **ARGS)


@pytest.fixture()
def artifact(fitted: tuple[T2Estimator, FitReport], tmp_path: Path) -> Path:
    return fitted[0].save(tmp_path / "est")


# ------------------------------------------------------------------------------- fitting
def test_informative_layers_get_more_weight(fitted: tuple[T2Estimator, FitReport]) -> None:
    est, report = fitted
    w = np.array(est.weights)
    assert w.sum() == pytest.approx(1.0)
    noise = [i for i in range(len(LAYERS)) if i not in INFORMATIVE]
    assert w[list(INFORMATIVE)].min() > 3 * w[noise].max()
    assert report.weights == est.weights


def test_beats_baselines(fitted: tuple[T2Estimator, FitReport]) -> None:
    _, r = fitted
    assert r.combined_mse < 0.5 * r.mean_baseline_mse
    assert r.n_d_baseline_mse is not None and r.combined_mse < r.n_d_baseline_mse
    assert r.n_train + r.n_val == Q and r.n_val == 40
    assert r.grid_within_2x >= r.grid_exact > 0.3
    assert all(1 <= e <= CONFIG.epochs for e in r.best_epochs)


def test_predictions_on_grid_and_clamped(
    fitted: tuple[T2Estimator, FitReport], data: tuple[np.ndarray, np.ndarray]
) -> None:
    est, _ = fitted
    x, y = data
    pred = est.predict(x)
    assert pred.shape == (Q,) and pred.dtype == np.int64
    assert set(pred.tolist()) <= {2, 4, 8, 16, 32}
    assert {1, 64} & set(y.tolist())  # the clamp is exercised
    log2 = est.predict_log2(x)
    assert log2.shape == (Q,) and log2.dtype == np.float64
    assert est.predict_one(x[7]) == pred[7]


def test_deterministic(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    a, ra = T2Estimator.fit(x[:60], y[:60], **ARGS)
    b, rb = T2Estimator.fit(x[:60], y[:60], **ARGS)
    np.testing.assert_array_equal(a.predict_log2(x), b.predict_log2(x))
    assert ra == rb


def test_top_k_and_progress(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    calls: list[tuple[str, int, int]] = []
    cfg = ProbeConfig(hidden=4, epochs=15, lr=1e-2, top_k=2)
    est, _ = T2Estimator.fit(
        x[:80], y[:80], **(ARGS | {"config": cfg}), progress=lambda *a: calls.append(a)
    )
    assert calls == [(f"layer {layer}", i + 1, 4) for i, layer in enumerate(LAYERS)]
    assert sum(w > 0 for w in est.weights) == 2


def test_report_dict_and_table(fitted: tuple[T2Estimator, FitReport]) -> None:
    _, r = fitted
    d = json.loads(json.dumps(r.to_dict()))
    assert d["layers"] == list(LAYERS) and d["n_d"] == 16
    rows = r.table()
    assert all(len(row) == len(FitReport.header) for row in rows)
    assert [row[0] for row in rows[-3:]] == ["combined", "baseline: N_D=16", "baseline: train mean"]


def test_layer_probe_standardisation() -> None:
    torch.manual_seed(0)
    probe = LayerProbe(4, 3)
    x = torch.randn(50, 4) * 10 + 3
    x[:, 0] = 1.0  # constant column: std is floored, not zero
    probe.set_standardisation(x)
    assert probe.std[0].item() == pytest.approx(1e-6)
    assert torch.allclose(probe.mean[1:], x[:, 1:].mean(0))
    assert probe(x).shape == (50,)


# ----------------------------------------------------------------------------- fit errors
def _fit(x: np.ndarray, y: np.ndarray, **over: Any) -> None:
    T2Estimator.fit(x, y, **(ARGS | over))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda x, y: (x, np.full_like(y, 4)), "nothing to learn: all N\\* = 4"),
        (lambda x, y: (x[:9], y[:9]), "need at least 8 train and 2 validation"),
        (lambda x, y: (x, np.where(y == 8, 3, y)), "not in grid"),
        (lambda x, y: (x[:, 0], y), "expected \\[Q, L, d\\]"),
        (lambda x, y: (x[:, :3], y), "needs 4 layers"),
        (lambda x, y: (x[:, :, :8], y), "of width 16"),
        (lambda x, y: (x, y[:-1]), "one per question"),
        (lambda x, y: (np.where(x > 4, np.nan, x), y), "NaN"),
        (lambda x, y: (x, y.astype(float)), "integer"),
    ],
)
def test_fit_data_errors(data: tuple[np.ndarray, np.ndarray], mutate: Any, match: str) -> None:
    with pytest.raises(DataError, match=match):
        _fit(*mutate(*data))


@pytest.mark.parametrize(
    "over",
    [
        {"grid": (1, 4, 2)},
        {"layers": (1, 1, 2, 3)},
        {"n_min": 40, "n_max": 50},
        {"n_min": 8, "n_max": 4},
        {"model_identity": ""},
        {"n_d": 0},
        {"data_summary": {"x": object()}},
    ],
)
def test_fit_config_errors(data: tuple[np.ndarray, np.ndarray], over: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _fit(*data, **over)


@pytest.mark.parametrize(
    "bad",
    [{"lr": 0.0}, {"dropout": 1.0}, {"epochs": 0}, {"val_fraction": 1.5}, {"hidden": True},
     {"loss": "l1"}, {"target": "linear"}, {"top_k": 0}],
)  # fmt: skip
def test_probe_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ProbeConfig(**bad)


def test_predict_shape_errors(fitted: tuple[T2Estimator, FitReport]) -> None:
    est, _ = fitted
    with pytest.raises(DataError, match="needs 4 layers"):
        est.predict(np.zeros((3, 2, D), dtype=np.float32))
    with pytest.raises(DataError, match=r"expected \[L, d\]"):
        est.predict_one(np.zeros((1, 4, D), dtype=np.float32))


# ---------------------------------------------------------------------------- artifacts
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
