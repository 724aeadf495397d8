"""Heads are objects in one registry; the knob and the training summary are typed values."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
import torch

from t2_agents.errors import ArtifactError, ConfigError
from t2_agents.estimator import heads
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.estimator.heads import (
    HEADS,
    CurveHead,
    KnobCalibration,
    KnobPoint,
    NStarHead,
    head_named,
)
from t2_agents.estimator.probes import EstimatorSpec, ProbeConfig, make_probe
from t2_agents.estimator.summary import CollectionSource, TrainingSummary

SHIPPED = Path(__file__).resolve().parents[1] / "t2_agents" / "artifacts" / "smollm2-135m-instruct"
SPEC = EstimatorSpec("toy", 4, (0,), (1, 2, 3, 4), 1, 4)


def test_the_registry_names_each_head_once() -> None:
    assert list(HEADS) == ["nstar", "curve"]
    assert all(name == head.name for name, head in HEADS.items())
    assert isinstance(head_named("nstar"), NStarHead) and isinstance(head_named("curve"), CurveHead)
    with pytest.raises(ConfigError, match=r"head='knob' is not one of \('nstar', 'curve'\)"):
        head_named("knob")
    with pytest.raises(ConfigError, match="head='knob'"):
        ProbeConfig(head="knob")
    assert ProbeConfig(head="curve").head_object is HEADS["curve"]


def test_heads_know_their_probe_target_and_loss() -> None:
    nstar, curve = HEADS["nstar"], HEADS["curve"]
    assert (nstar.outputs(4), curve.outputs(4)) == (1, 4)
    assert (nstar.bounded("mlp"), curve.bounded("mlp"), curve.bounded("ridge")) == (
        False,
        True,
        False,
    )
    assert make_probe(8, ProbeConfig(head="curve"), 4).bounded
    log2, curves = torch.ones(3), torch.full((3, 4), 0.5)
    assert nstar.target(log2, curves) is log2 and curve.target(log2, curves) is curves
    with pytest.raises(ConfigError, match="trains on curves"):
        curve.target(log2, None)
    pred, y = torch.tensor([0.0, 0.0]), torch.tensor([0.0, 3.0])
    assert float(nstar.loss(pred, y, kind="huber", huber_delta=1.0)) == pytest.approx(1.25)
    assert float(nstar.loss(pred, y, kind="mse", huber_delta=1.0)) == pytest.approx(4.5)
    assert float(curve.loss(pred, y, kind="huber", huber_delta=1.0)) == pytest.approx(4.5)
    assert (nstar.has_knob, nstar.predicts_log2, curve.has_knob, curve.predicts_curve) == (
        False,
        True,
        True,
        True,
    )


def test_heads_turn_predictions_into_budgets() -> None:
    curves = np.array([[[0.2, 0.5, 0.6, 1.3]], [[0.1, 0.1, 0.1, 0.1]]])  # [Q, L=1, G]
    combined = HEADS["curve"].combine(curves, np.array([1.0]))
    assert combined.max() == 1.0  # clipped
    assert HEADS["curve"].budgets(SPEC, combined, ("tolerance", 0.0)).tolist() == [4, 1]
    assert HEADS["curve"].budgets(SPEC, combined, ("price", 0.25)).tolist() == [2, 1]
    with pytest.raises(ConfigError, match="needs a knob"):
        HEADS["curve"].budgets(SPEC, combined, None)
    log2 = HEADS["nstar"].combine(np.array([[0.9, 1.1], [2.0, 2.0]]), np.array([0.5, 0.5]))
    assert HEADS["nstar"].budgets(SPEC, log2, None).tolist() == [2, 4]
    with pytest.raises(ConfigError, match="needs the curve head"):
        HEADS["nstar"].budgets(SPEC, log2, ("tolerance", 0.1))


def test_the_knob_calibration_round_trips_and_refuses_corrupt_entries() -> None:
    curves = np.array([[0.2, 0.5, 0.6, 0.62], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]])
    knob = HEADS["curve"].calibrate(SPEC, curves, curves, 4, 0.05)
    assert isinstance(knob, KnobCalibration) and knob.default_rule in ("tolerance", "price")
    assert [p.rule for p in knob.chosen] == ["tolerance", "price"]
    assert len(knob.sweep) == sum(len(v) for v in heads.KNOB_SWEEPS.values())
    on_disk = json.loads(json.dumps(knob.to_dict()))
    assert KnobCalibration.from_dict(on_disk) == knob
    assert HEADS["curve"].read_calibration({"knob": on_disk}) == knob
    assert HEADS["curve"].read_calibration({}) == KnobCalibration.uncalibrated()
    assert HEADS["nstar"].calibrate(SPEC, curves, curves, 4, 0.05) is None
    assert KnobPoint.from_dict("price", {"price": 0, "accuracy": 1, "mean_n": 2}).value == 0
    for bad, match in [
        ({**on_disk, "default_rule": "cost"}, "knob rule 'cost'"),
        ({**on_disk, "default_tolerance": 2.0}, "default_tolerance=2.0 is not an accuracy"),
        ({k: v for k, v in on_disk.items() if k != "default_price"}, r"lacks \['default_price'\]"),
        ({**on_disk, "chosen": {"price": {"price": "x", "accuracy": 0, "mean_n": 1}}}, "price='x'"),
        ({**on_disk, "sweep": {"price": {"a": 1}}}, "not lists"),
    ]:
        with pytest.raises(ConfigError, match=match):
            KnobCalibration.from_dict(bad)


def test_the_training_summary_reads_the_shipped_record_back_unchanged() -> None:
    raw = json.loads((SHIPPED / "metadata.json").read_text())["training_data"]
    summary = TrainingSummary.from_dict(raw)
    assert summary.to_dict() == raw and list(summary.to_dict()) == list(raw)
    assert summary.other == {} and summary.n_d == 32 and len(summary.keys) == 4132  # issue 19
    assert summary.collections is not None and isinstance(summary.collections[0], CollectionSource)
    assert T2Estimator.load(SHIPPED).training == summary


def test_the_training_summary_keeps_unknown_keys_and_refuses_bad_types() -> None:
    assert TrainingSummary.from_dict({"fixture": "x", "n_d": 4}).to_dict() == {
        "n_d": 4,
        "fixture": "x",
    }
    assert TrainingSummary.from_metadata({}) == TrainingSummary()
    for bad, match in [
        ({"n_d": "32"}, "n_d='32' is not of type int"),
        ({"question_keys": ["a", 1]}, r"question_keys\[\]=1"),
        ({"tasks": {"lcm": 1.5}}, "tasks{}=1.5"),
        ({"collections": [{"folder": "x"}]}, "does not hold exactly"),
        ({"x": object()}, "not JSON-serialisable"),
    ]:
        with pytest.raises(ConfigError, match=match):
            TrainingSummary.from_dict(bad)
    with pytest.raises(ConfigError, match="is not an object"):
        TrainingSummary.from_metadata({"training_data": [1]})


def test_a_corrupt_knob_or_summary_in_an_artifact_is_an_artifact_error(tmp_path: Path) -> None:
    x, y, curves = _toy_data()
    config = ProbeConfig(head="curve", kind="ridge")
    est, _ = T2Estimator.fit(x, y, curves=curves, n_d=4, config=config, **_ARGS)
    folder = est.save(tmp_path / "est")
    meta = json.loads((folder / "metadata.json").read_text())
    for key, value in [("validation", {"knob": {"default_rule": "cost"}}), ("training_data", [1])]:
        (folder / "metadata.json").write_text(json.dumps({**meta, key: value}))
        with pytest.raises(ArtifactError, match=r"metadata\.json is inconsistent|not an object"):
            T2Estimator.load(folder)


class _Log2MseHead(NStarHead):
    """A toy head: ``log2 N*`` with a plain MSE loss (what adding a head takes)."""

    name = "log2-mse"
    summary = "log2 N* (MSE)"

    def loss(
        self, pred: torch.Tensor, target: torch.Tensor, *, kind: str, huber_delta: float
    ) -> torch.Tensor:
        return super().loss(pred, target, kind="mse", huber_delta=huber_delta)


_ARGS: dict[str, Any] = {
    "layers": (0, 1), "grid": (1, 2, 3, 4), "n_min": 1, "n_max": 4, "model_identity": "toy",
    "hidden_size": 6,
}  # fmt: skip


def _toy_data(q: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(q, 2, 6)).astype(np.float32)
    y = np.where(x[:, 1, 0] > 0, 4, 1).astype(np.int64)
    curves = np.where(np.arange(1, 5)[None, :] >= y[:, None], 0.8, 0.3)
    return x, y, curves


def test_a_new_head_is_one_class_in_the_registry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    registry = MappingProxyType({**HEADS, "log2-mse": _Log2MseHead()})
    monkeypatch.setattr(heads, "HEADS", registry)
    x, y, _ = _toy_data()
    config = ProbeConfig(head="log2-mse", epochs=30)
    est, report = T2Estimator.fit(x, y, config=config, **_ARGS)
    assert (est.head, report.head, est.has_knob, est.knob) == ("log2-mse", "log2-mse", False, None)
    loaded = T2Estimator.load(est.save(tmp_path / "est"))
    assert loaded.config.head_object.summary == "log2 N* (MSE)"
    np.testing.assert_array_equal(loaded.predict(x), est.predict(x))
    with pytest.raises(ConfigError, match="needs the curve head; this estimator predicts log2"):
        loaded.predict(x, price=0.01)
