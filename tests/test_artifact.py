"""Tests of t2_agents.estimator.artifact, through ``T2Estimator.save``/``load``: round trip and
errors."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from t2_agents.errors import ArtifactError
from t2_agents.estimator.artifact import FORMAT_NAME, FORMAT_VERSION, load_artifact
from t2_agents.estimator.estimator import FitReport, T2Estimator
from t2_agents.estimator.probes import ProbeConfig

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
    assert parts.training == est.training and parts.training.to_dict() == {"task": "toy"}
    assert parts.validation == est.metadata["validation"] and parts.knob is None
    assert parts.created == est.metadata["created"]
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


# ------------------------------------------------------------------ hostile artifacts (issue 7)
def _edit_metadata(artifact: Path, edit: dict[str, Any]) -> None:
    path = artifact / "metadata.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | edit))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"hidden_size": -16}, r"hidden_size=-16 is not an int >= 1; pass hidden_size >= 1"),
        ({"hidden_size": 16.0}, r"hidden_size=16\.0 is not of type int"),
        ({"hidden_size": math.nan}, r"hidden_size=nan is not of type int"),
        ({"n_max": "32"}, r"n_max='32' is not of type int"),
        ({"layers": {"2": 2}}, r"layers=\{'2': 2\} is not of type list"),
        ({"grid": [1, 2, 4.5]}, r"grid=\[1, 2, 4\.5\] has entries of the wrong type"),
        ({"model_identity": ["toy"]}, r"model_identity=\['toy'\] is not of type str"),
        ({"probe_config": [8, 0.0]}, r"probe_config=\[8, 0\.0\] is not of type dict"),
        ({"probe_config": {"hidden": 8, "dropout": math.nan}}, r"dropout=nan"),
        ({"weights": [math.nan, 0.5, 0.25, 0.25]}, r"weights=\[nan, 0\.5, 0\.25, 0\.25\]"),
        ({"weights": [-1.0, 1.0, 0.5, 0.5]}, r"finite values >= 0 summing to 1"),
        ({"layers": [2, 5, 9, -13]}, r"layers entry=-13 is not an int >= 0"),
        # Metadata that disagrees with the tensors is caught from the safetensors header, before
        # any probe is built: hidden_size 2**40 would otherwise allocate ~35 TB for the probes.
        ({"hidden_size": 2**40}, r"'layer2\.mean' has shape \[16\], the metadata implies"),
        ({"hidden_size": 8}, r"'layer2\.mean' has shape \[16\], the metadata implies \[8\]"),
        (
            {"hidden_size": 10**15, "probe_hidden": 10**15 // 8, "probe_config": {}},
            r"hidden_size=1000000000000000 and probe_hidden=125000000000000 describe no probe",
        ),
    ],
)
def test_load_metadata_of_the_wrong_type_or_size(
    artifact: Path, edit: dict[str, Any], match: str
) -> None:
    _edit_metadata(artifact, edit)
    with pytest.raises(ArtifactError, match=match) as info:
        T2Estimator.load(artifact)
    assert "metadata.json" in str(info.value) or "probes.safetensors" in str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"not valid JSON"),
        (b"[1, 2]", r"holds a list, not a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, r"not valid JSON \(maximum recursion depth"),  # was a
        # bare RecursionError
        (b'{"format": "t2-estimator", "format_version": 1, "x": "\xff"}', r"not valid JSON"),
        (b'{"format": "t2-estimator", "format_version": 1, "pad": "' + b"x" * (17 << 20) + b'"}',
         r"more than the 16777216 an estimator's metadata needs"),
    ],
    ids=["empty", "list", "deeply-nested", "invalid-utf8", "17MB"],
)  # fmt: skip
def test_load_hostile_metadata_file(artifact: Path, content: bytes, match: str) -> None:
    (artifact / "metadata.json").write_bytes(content)
    with pytest.raises(ArtifactError, match=match):
        T2Estimator.load(artifact)


def _rewrite_header(path: Path, change: Any) -> None:
    """Rewrite the JSON header of a safetensors file in place (``change`` edits the dict)."""
    blob = path.read_bytes()
    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + size])
    change(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + size :])


def _lie_offsets(header: dict[str, Any]) -> None:
    header["layer2.mean"]["data_offsets"] = [0, 10**12]


def _lie_dtype(header: dict[str, Any]) -> None:
    header["layer2.mean"]["dtype"] = "F64"  # the bytes hold 16 float32 values


def _lie_shape(header: dict[str, Any]) -> None:
    header["layer2.mean"]["shape"] = [4, 4]  # same byte count, another shape


def _int_dtype(header: dict[str, Any]) -> None:
    header["layer2.mean"]["dtype"] = "I32"  # same byte count, not a float


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_lie_offsets, r"truncated or corrupt \(.*offset"),
        (_lie_dtype, r"truncated or corrupt \(.*data type"),
        (_lie_shape, r"'layer2\.mean' has shape \[4, 4\], the metadata implies \[16\]"),
        (_int_dtype, r"'layer2\.mean' has dtype I32, not one of"),
    ],
)
def test_load_safetensors_header_that_lies(artifact: Path, change: Any, match: str) -> None:
    _rewrite_header(artifact / "probes.safetensors", change)
    with pytest.raises(ArtifactError, match=match):
        T2Estimator.load(artifact)


def _retensor(artifact: Path, edit: Any) -> None:
    path = artifact / "probes.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


def _nan_weight(t: dict[str, torch.Tensor]) -> None:
    t["layer5.net.0.weight"].view(-1)[3] = math.nan


def _inf_bias(t: dict[str, torch.Tensor]) -> None:
    t["layer9.net.3.bias"].fill_(math.inf)


def _zero_std(t: dict[str, torch.Tensor]) -> None:
    t["layer2.std"][0] = 0.0


def _negative_std(t: dict[str, torch.Tensor]) -> None:
    t["layer2.std"][0] = -1.0


def _extra_layer(t: dict[str, torch.Tensor]) -> None:
    t["layer77.mean"] = torch.zeros(D)


def _missing_tensor(t: dict[str, torch.Tensor]) -> None:
    del t["layer13.net.0.bias"]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_nan_weight, r"'layer5\.net\.0\.weight' holds NaN or inf"),
        (_inf_bias, r"'layer9\.net\.3\.bias' holds NaN or inf"),
        (_zero_std, r"'layer2\.std' has values <= 0"),
        (_negative_std, r"'layer2\.std' has values <= 0"),
        (_extra_layer, r"not described by metadata\.json \(\['layer77\.mean'\]\)"),
        (_missing_tensor, r"layer 13 .* \(no tensor 'layer13\.net\.0\.bias'\)"),
    ],
)
def test_load_bad_tensor_values(artifact: Path, edit: Any, match: str) -> None:
    _retensor(artifact, edit)  # before: NaN/inf/zero std loaded and predicted garbage budgets
    with pytest.raises(ArtifactError, match=match):
        T2Estimator.load(artifact)


@pytest.mark.parametrize(
    "content",
    [b"", struct.pack("<Q", 2**62) + b"{}", b"\x00" * 64],
    ids=["empty", "huge-header", "zeros"],
)
def test_load_empty_or_garbage_safetensors(artifact: Path, content: bytes) -> None:
    (artifact / "probes.safetensors").write_bytes(content)
    with pytest.raises(ArtifactError, match=r"probes\.safetensors is truncated or corrupt"):
        T2Estimator.load(artifact)


@pytest.mark.parametrize("name", ["metadata.json", "probes.safetensors"])
def test_load_directory_where_a_file_is_expected(artifact: Path, name: str) -> None:
    (artifact / name).unlink()
    (artifact / name).mkdir()
    with pytest.raises(ArtifactError, match=rf"{name} is not a regular file"):
        T2Estimator.load(artifact)


@pytest.mark.parametrize("name", ["metadata.json", "probes.safetensors"])
def test_load_refuses_symlinks_leading_outside(
    fitted: tuple[T2Estimator, FitReport], artifact: Path, tmp_path: Path, name: str
) -> None:
    # A valid artifact elsewhere: following the link would load without any error.
    elsewhere = fitted[0].save(tmp_path / "elsewhere")
    (artifact / name).unlink()
    (artifact / name).symlink_to(elsewhere / name)
    with pytest.raises(ArtifactError, match=r"outside the artifact folder") as info:
        T2Estimator.load(artifact)  # before: followed the link and loaded the other file
    assert str(elsewhere / name) in str(info.value)


def test_load_refuses_a_link_to_system_files(artifact: Path) -> None:
    (artifact / "metadata.json").unlink()
    (artifact / "metadata.json").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactError, match=r"leads to /etc/passwd, outside the artifact folder"):
        T2Estimator.load(artifact)


def test_load_broken_link(artifact: Path) -> None:
    (artifact / "probes.safetensors").unlink()
    (artifact / "probes.safetensors").symlink_to(artifact / "gone.safetensors")
    with pytest.raises(ArtifactError, match=r"probes\.safetensors is a broken link"):
        T2Estimator.load(artifact)


def test_links_inside_the_folder_and_a_linked_folder_load(
    fitted: tuple[T2Estimator, FitReport], artifact: Path, tmp_path: Path
) -> None:
    (artifact / "probes.safetensors").rename(artifact / "v1.safetensors")
    (artifact / "probes.safetensors").symlink_to("v1.safetensors")
    (tmp_path / "current").symlink_to(artifact, target_is_directory=True)
    assert T2Estimator.load(tmp_path / "current").weights == fitted[0].weights


def test_metadata_paths_are_never_followed(
    fitted: tuple[T2Estimator, FitReport], artifact: Path
) -> None:
    # File names are fixed; path-like metadata entries are inert extra keys.
    _edit_metadata(
        artifact,
        {"probes": "../../etc/passwd", "weights_file": "/etc/passwd", "path": "../elsewhere"},
    )
    assert T2Estimator.load(artifact).weights == fitted[0].weights


def test_artifact_from_before_the_heads_loads_as_the_nstar_mlp(
    fitted: tuple[T2Estimator, FitReport], data: tuple[np.ndarray, np.ndarray], artifact: Path
) -> None:
    """Artifacts written before ``head``/``kind`` existed (the first shipped one) still load."""
    meta_path = artifact / "metadata.json"
    meta = json.loads(meta_path.read_text())
    for key in ("head", "kind", "ridge_alphas"):
        del meta["probe_config"][key]
    meta_path.write_text(json.dumps(meta))
    loaded = T2Estimator.load(artifact)
    assert loaded.head == "nstar" and loaded.config.kind == "mlp" and not loaded.has_knob
    assert loaded.training_keys == frozenset()  # no keys recorded then: nothing to exclude
    assert loaded.training_instance_keys == frozenset()
    np.testing.assert_array_equal(loaded.predict(data[0]), fitted[0].predict(data[0]))
