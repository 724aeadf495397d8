"""Tests of t2_agents.estimator.estimator: fitting, layer weighting, prediction and their errors.

The artifact (save/load) is tested in ``test_artifact.py``, the probes in ``test_probes.py``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from t2_agents.errors import ArtifactError, ConfigError, DataError
from t2_agents.estimator.estimator import FitReport, T2Estimator
from t2_agents.estimator.probes import ProbeConfig

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


def test_predict_shape_errors(fitted: tuple[T2Estimator, FitReport]) -> None:
    est, _ = fitted
    with pytest.raises(DataError, match="needs 4 layers"):
        est.predict(np.zeros((3, 2, D), dtype=np.float32))
    with pytest.raises(DataError, match=r"expected \[L, d\]"):
        est.predict_one(np.zeros((1, 4, D), dtype=np.float32))


# ---------------------------------------------------------- estimator vs engine (issue 7)
def test_estimator_layers_the_engine_lacks_fail_with_a_named_layer(
    data: tuple[np.ndarray, np.ndarray], fake_engine: Any, tmp_path: Path
) -> None:
    # The fake engine has 4 layers of width 8; an artifact made for a deeper model of the same
    # identity and width reads layer 13. Hidden-size and identity mismatches are tested in
    # test_policies.py::test_t2_policy_checks_engine.
    from t2_agents.budget.policies import T2Policy
    from t2_agents.graph import build_parallel_thinking_graph

    x, y = data
    features = x[:, :2, : fake_engine.hidden_size]
    est, _ = T2Estimator.fit(
        features, y, **(ARGS | {"layers": (1, 13), "model_identity": "fake", "hidden_size": 8})
    )
    loaded = T2Estimator.load(est.save(tmp_path / "est"), expect_hidden_size=8)
    with pytest.raises(ArtifactError, match=r"layers \[1, 13\] but the engine has 4 layers"):
        T2Policy(loaded, engine=fake_engine)  # refused when the policy meets the engine
    with pytest.raises(ArtifactError, match=r"\(no \[13\]\)"):
        build_parallel_thinking_graph(engine=fake_engine, policy=T2Policy(loaded), n_max=4)
    assert fake_engine.sample_calls == 0  # nothing is sampled with a budget it cannot compute


# ------------------------------------------------------------------------- heads and the knob
CURVE_GRID = tuple(range(1, 9))


def _curve_data(q: int = 240, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample accuracy p = sigmoid(3 z) read by layer 1; curves = exact i.i.d. majority."""
    from math import comb

    rng = np.random.default_rng(seed)
    z = rng.normal(size=q)
    p = 1 / (1 + np.exp(-3 * z))
    x = rng.normal(size=(q, 2, 8))
    x[:, 1, 0] = z
    curves = np.array([[_majority(pi, n, comb) for n in CURVE_GRID] for pi in p])
    labels = np.array([CURVE_GRID[int(np.argmax(c >= c.max() - 1e-12))] for c in curves])
    return x.astype(np.float32), labels.astype(np.int64), curves


def _majority(p: float, n: int, comb: Any) -> float:
    win = sum(comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n // 2 + 1, n + 1))
    tie = 0.5 * comb(n, n // 2) * (p * (1 - p)) ** (n // 2) if n % 2 == 0 else 0.0
    return float(win + tie)


CURVE_ARGS: dict[str, Any] = {
    "layers": (3, 7), "grid": CURVE_GRID, "n_min": 1, "n_max": 8, "model_identity": "toy",
    "hidden_size": 8,
}  # fmt: skip


@pytest.mark.parametrize("kind", ["mlp", "ridge"])
def test_curve_head_learns_curves_and_has_a_knob(kind: str) -> None:
    x, y, curves = _curve_data()
    config = ProbeConfig(head="curve", kind=kind, hidden=8, epochs=80, lr=1e-2, dropout=0.0)
    est, report = T2Estimator.fit(x, y, curves=curves, n_d=8, config=config, **CURVE_ARGS)
    assert est.has_knob and est.head == "curve"
    assert report.combined_mse < 0.5 * report.mean_baseline_mse
    assert report.weights[1] > report.weights[0]  # the informative layer
    predicted = est.predict_curve(x)
    assert predicted.shape == (len(x), len(CURVE_GRID))
    assert predicted.min() >= 0 and predicted.max() <= 1
    # The knob: a larger tolerance never spends more, and 1.0 always spends n_min.
    spent = [est.predict(x, tolerance=t).mean() for t in (0.0, 0.02, 0.1, 1.0)]
    assert spent == sorted(spent, reverse=True) and spent[-1] == 1
    priced = [est.predict(x, price=c).mean() for c in (0.0, 0.002, 0.02, 1.0)]
    assert priced == sorted(priced, reverse=True) and priced[-1] == 1
    assert report.knob is not None and 0 <= est.default_tolerance <= 0.2
    assert est.knob == report.knob and est.default_tolerance == report.knob.default_tolerance
    assert est.default_price == report.knob.default_price
    rule, value = report.knob.default
    assert est.default_rule == rule in ("tolerance", "price")
    # the default rule is the one that reached the target with fewer samples on validation
    chosen = {p.rule: p for p in report.knob.chosen}
    assert chosen[rule].mean_n <= min(c.mean_n for c in chosen.values())
    assert value == (est.default_price if rule == "price" else est.default_tolerance)
    np.testing.assert_array_equal(est.predict(x), est.predict(x, **{rule: value}))
    assert report.equal_cost is not None and report.equal_cost["mean_n"] >= 1


def test_curve_head_budget_rule() -> None:
    """Budget = the smallest candidate within the tolerance of the predicted maximum."""
    from t2_agents.estimator.heads import curve_budgets
    from t2_agents.estimator.probes import EstimatorSpec

    spec = EstimatorSpec("toy", 4, (0,), (1, 2, 3, 4), 2, 4)
    curves = np.array([[0.9, 0.5, 0.6, 0.62], [0.1, 0.2, 0.3, 0.4]])
    assert curve_budgets(spec, curves, 0.0).tolist() == [4, 4]
    assert curve_budgets(spec, curves, 0.02).tolist() == [3, 4]  # n_min=2 excludes N=1
    assert curve_budgets(spec, curves, 0.15).tolist() == [2, 3]
    from t2_agents.estimator.heads import knob_budgets

    # price: argmax of A(N) - price * N over N in [2, 4]
    assert knob_budgets(spec, curves, "price", 0.0).tolist() == [4, 4]
    assert knob_budgets(spec, curves, "price", 0.05).tolist() == [3, 4]  # .40 .45 .42; .10 .15 .20
    assert knob_budgets(spec, curves, "price", 0.2).tolist() == [2, 2]


def test_knob_errors_and_nstar_has_none(fitted: tuple[T2Estimator, FitReport]) -> None:
    est, _ = fitted
    assert not est.has_knob and est.default_tolerance == 0.0
    with pytest.raises(ConfigError, match="needs the curve head"):
        est.predict(np.zeros((1, len(LAYERS), D), np.float32), tolerance=0.1)
    with pytest.raises(ConfigError, match="nstar head"):
        est.predict_curve(np.zeros((1, len(LAYERS), D), np.float32))
    x, y, curves = _curve_data(q=60)
    config = ProbeConfig(head="curve", kind="ridge")
    curve_est, _ = T2Estimator.fit(x, y, curves=curves, n_d=8, config=config, **CURVE_ARGS)
    for bad in (-0.1, 1.5, float("nan"), "0.1", True):
        with pytest.raises(ConfigError, match=r"tolerance=.* is not an accuracy in"):
            curve_est.predict(x, tolerance=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"price=.* is not an accuracy in"):
            curve_est.predict(x, price=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="are two rules; give one of them"):
        curve_est.predict(x, tolerance=0.01, price=0.01)
    with pytest.raises(DataError, match="curve head needs each question's accuracy curve"):
        T2Estimator.fit(x, y, config=config, **CURVE_ARGS)
    with pytest.raises(DataError, match=r"curves have shape \(60, 3\)"):
        T2Estimator.fit(x, y, curves=curves[:, :3], config=config, **CURVE_ARGS)


def test_ridge_nstar_head_round_trips(tmp_path: Path) -> None:
    x, y = _data(q=120)
    est, report = T2Estimator.fit(x, y, **(ARGS | {"config": ProbeConfig(kind="ridge")}))
    assert report.combined_mse < report.mean_baseline_mse
    loaded = T2Estimator.load(est.save(tmp_path / "ridge"))
    np.testing.assert_array_equal(loaded.predict(x), est.predict(x))
    assert loaded.config.kind == "ridge" and loaded.config.ridge_alphas == est.config.ridge_alphas


def test_curve_head_round_trips(tmp_path: Path) -> None:
    x, y, curves = _curve_data(q=80)
    config = ProbeConfig(head="curve", hidden=4, epochs=5)
    est, _ = T2Estimator.fit(x, y, curves=curves, n_d=8, config=config, **CURVE_ARGS)
    loaded = T2Estimator.load(est.save(tmp_path / "curve"))
    np.testing.assert_allclose(loaded.predict_curve(x), est.predict_curve(x))
    assert loaded.default_tolerance == est.default_tolerance
    np.testing.assert_array_equal(loaded.predict(x, tolerance=0.05), est.predict(x, tolerance=0.05))


def test_grouped_split_keeps_copies_on_one_side() -> None:
    from t2_agents.estimator.training import split_rows

    groups = [f"q{i // 3}" for i in range(90)]  # every question three times
    train, val = split_rows(90, ProbeConfig(), groups)
    assert sorted(train.tolist() + val.tolist()) == list(range(90))
    train_groups = {groups[i] for i in train.tolist()}
    assert train_groups.isdisjoint(groups[i] for i in val.tolist())
    with pytest.raises(DataError, match="groups has 3 entries for 90 questions"):
        split_rows(90, ProbeConfig(), groups[:3])


def test_training_keys_come_from_the_summary() -> None:
    x, y = _data(q=60)
    summary = {"question_keys": ["a", "b"], "instance_keys": ["i"]}
    est, _ = T2Estimator.fit(x, y, data_summary=summary, **ARGS)
    assert est.training_keys == frozenset({"a", "b"})
    assert est.training_instance_keys == frozenset({"i"}) == est.training.instances


def test_fit_does_not_depend_on_the_global_torch_rng() -> None:
    """The shipped artifact must be rebuilt bit for bit by `t2 train`, whatever ran before."""
    x, y, curves = _curve_data(q=60)
    config = ProbeConfig(head="curve", hidden=4, epochs=3)
    torch.manual_seed(1)
    a, _ = T2Estimator.fit(x, y, curves=curves, n_d=8, config=config, **CURVE_ARGS)
    torch.manual_seed(2)
    torch.rand(7)
    b, _ = T2Estimator.fit(x, y, curves=curves, n_d=8, config=config, **CURVE_ARGS)
    np.testing.assert_array_equal(a.predict_curve(x), b.predict_curve(x))
    assert torch.get_num_threads() >= 1  # the fit restores the thread count it found


def test_a_curve_head_report_with_n_d_prints_its_table() -> None:
    """The curve head has no N_D baseline on the log2 scale: its row is left out, not None."""
    curve = FitReport((0,), (0.05,), (0.01,), (1.0,), (3,), 0.05, 0.01, 0.1, 0.02, 2.0, 32,
                      None, None, 0.5, 0.9, 40, 10, head="curve")  # fmt: skip
    assert [row[0] for row in curve.table()] == ["layer 0", "combined", "baseline: train mean"]
    nstar = replace(curve, head="nstar", n_d_baseline_mae=0.7, n_d_baseline_mse=0.6)
    assert nstar.table()[2] == ("baseline: N_D=32", "0.700", "0.600", "", "")
