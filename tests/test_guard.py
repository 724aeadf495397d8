"""Tests of t2_agents.estimator.guard and of the guard inside the estimator and its artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from t2_agents.errors import ArtifactError, ConfigError
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.estimator.guard import DistributionGuard, GuardConfig
from t2_agents.estimator.probes import ProbeConfig

torch.set_num_threads(1)

GRID = tuple(range(1, 9))


def _training(q: int = 300, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features, scaled per column; curves rise until N = 5, then stay flat."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(q, d)) * np.linspace(1.0, 3.0, d) + 2.0
    curve = np.minimum(np.arange(1, 9), 5) * 0.05 + 0.1  # 0.15 ... 0.35, flat from N = 5
    return x, np.tile(curve, (q, 1))


def test_flags_far_questions_and_few_training_ones() -> None:
    x, curves = _training()
    guard = DistributionGuard.fit(x, layer=2, curves=curves, grid=GRID, n_d=8,
                                  config=GuardConfig(dims=12, quantile=99.0))  # fmt: skip
    assert guard.fallback_n == 5  # the smallest N within 2 points of N_D = 8
    assert guard.flags(x).mean() <= 0.03  # ~1 % by construction (99th percentile)
    rng = np.random.default_rng(1)
    near, _ = _training(q=50, seed=4)  # fresh draws from the training distribution
    far = x[:50] + 3.0 * rng.normal(size=x[:50].shape) * np.linspace(1.0, 3.0, x.shape[1])
    assert guard.flags(far).mean() > 0.9
    assert guard.flags(near).mean() <= 0.1
    budgets = guard.apply(np.full(50, 2), far)
    assert set(budgets.tolist()) <= {2, 5} and (budgets == 5).mean() > 0.9
    assert guard.apply(np.full(50, 8), far).tolist() == [8] * 50  # never lowers a budget
    curves = guard.apply_curves(np.zeros((50, 8)), far)
    flagged = guard.flags(far)
    np.testing.assert_array_equal(curves[flagged], np.tile(guard.safe_curve, (flagged.sum(), 1)))
    assert not curves[~flagged].any()


def test_safe_budget_is_the_slowest_training_task() -> None:
    x, _ = _training(q=40)
    fast = np.tile([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], (20, 1))  # converged at N = 1
    slow = np.tile([0.0, 0.1, 0.2, 0.3, 0.33, 0.35, 0.37, 0.38], (20, 1))  # needs N = 7
    curves, tasks = np.vstack([fast, slow]), ["fast"] * 20 + ["slow"] * 20
    per_task = DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=8, tasks=tasks)
    pooled = DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=8)
    assert per_task.fallback_n == 7  # 0.37 >= 0.38 - 0.02 > 0.35
    np.testing.assert_allclose(per_task.safe_curve, slow[0])  # the slowest task's curve
    assert pooled.fallback_n == 6  # pooled: 0.425 >= 0.44 - 0.02 > 0.415
    with pytest.raises(ConfigError, match="tasks has 3 entries for 40 questions"):
        DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=8, tasks=["a"] * 3)


def test_distance_matches_brute_force() -> None:
    x, curves = _training(q=60)
    guard = DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=8,
                                  config=GuardConfig(dims=5, neighbours=3))  # fmt: skip
    q = x[:7] + 0.3
    t = guard.tensors()
    z = ((q - t["mean"].double().numpy()) / t["std"].double().numpy()) @ t["basis"].double().numpy()
    d = np.linalg.norm(z[:, None, :] - t["points"].double().numpy()[None], axis=-1)
    np.testing.assert_allclose(guard.distance(q), np.sort(d, axis=1)[:, 2], rtol=1e-4)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"neighbours": 0}, "neighbours=0"),
        ({"dims": 2.5}, "dims=2.5"),
        ({"quantile": 0.0}, "quantile=0.0"),
        ({"quantile": 101}, "quantile=101"),
        ({"fallback_target": -0.1}, "fallback_target=-0.1"),
    ],
)
def test_config_errors_name_the_value(over: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        GuardConfig(**over)  # type: ignore[arg-type]


def test_fit_errors() -> None:
    x, curves = _training(q=30)
    with pytest.raises(ConfigError, match="Q > neighbours"):
        DistributionGuard.fit(x[:5], layer=0, curves=curves[:5], grid=GRID, n_d=8)
    with pytest.raises(ConfigError, match="n_d=9"):
        DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=9)


def _phrased(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Two tasks, four phrasings each: a phrasing is a tight cluster of its own (the template
    dominates the features, as on the agent families), the phrasings of a task lie together."""
    rng = np.random.default_rng(seed)
    rows, tasks, phrasings = [], [], []
    for task, centre in (("near", 0.0), ("wide", 40.0)):
        spread = 3.0 if task == "near" else 9.0
        for template in range(4):
            offset = centre + spread * rng.normal(size=6)
            rows.append(offset + 0.2 * rng.normal(size=(30, 6)))
            tasks += [task] * 30
            phrasings += [f"{task}#{template}"] * 30
    curves = np.tile(np.linspace(0.2, 0.4, 8), (240, 1))
    return np.vstack(rows), curves, tasks, phrasings


def test_phrasing_groups_let_a_new_phrasing_of_a_known_task_through() -> None:
    x, curves, tasks, phrasings = _phrased()
    held = np.asarray(phrasings) == "near#3"  # a phrasing of "near" the guard never saw
    fit = {"layer": 0, "curves": curves[~held], "grid": GRID, "n_d": 8}
    tasks_in = [t for t, h in zip(tasks, held, strict=True) if not h]
    groups_in = [p for p, h in zip(phrasings, held, strict=True) if not h]
    config = GuardConfig(dims=6, neighbours=5, quantile=95.0, per_task=False)
    by_row = DistributionGuard.fit(x[~held], tasks=tasks_in, config=config, **fit)
    by_phrasing = DistributionGuard.fit(x[~held], tasks=tasks_in, phrasings=groups_in,
                                        config=config, **fit)  # fmt: skip
    assert by_row.flags(x[held]).mean() == 1.0  # every unseen phrasing flagged
    assert by_phrasing.flags(x[held]).mean() < 0.5
    assert by_phrasing.threshold > by_row.threshold
    unseen = np.random.default_rng(3).normal(size=(20, 6)) * 0.2 + 200.0  # far from both tasks
    assert by_phrasing.flags(unseen).all()


def test_per_task_thresholds_follow_the_nearest_training_question() -> None:
    x, curves, tasks, phrasings = _phrased()
    config = GuardConfig(dims=6, neighbours=5)
    guard = DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=8, tasks=tasks,
                                  phrasings=phrasings, config=config)  # fmt: skip
    assert set(guard.thresholds) == {"near", "wide"}
    assert guard.thresholds["wide"] > guard.thresholds["near"]  # its phrasings lie farther apart
    limits = guard.limit(x)
    names = np.asarray(tasks)
    np.testing.assert_allclose(limits[names == "near"], guard.thresholds["near"])
    np.testing.assert_allclose(limits[names == "wide"], guard.thresholds["wide"])
    with pytest.raises(ConfigError, match="phrasings has 3 entries for 240 questions"):
        DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=8, phrasings=["a"] * 3)
    lonely = GuardConfig(dims=6, neighbours=5)
    with pytest.raises(ConfigError, match="outside some question's phrasing group"):
        DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=8, config=lonely,
                              phrasings=["one"] * 238 + ["a", "b"])  # fmt: skip


def test_a_guard_stored_before_per_task_thresholds_loads_with_its_one_threshold() -> None:
    x, curves, tasks, _ = _phrased()
    old = DistributionGuard.fit(x, layer=0, curves=curves, grid=GRID, n_d=8, tasks=tasks,
                                config=GuardConfig(dims=6, neighbours=5, per_task=False,
                                                   depth=0.5))  # fmt: skip
    meta = old.metadata()
    meta["config"] = {k: v for k, v in meta["config"].items() if k not in ("per_task", "depth")}
    tensors = old.tensors()
    assert "thresholds" not in meta and "limits" not in tensors  # one threshold: the old format
    assert set(DistributionGuard.expected_shapes(meta, 6)) == set(tensors)
    back = DistributionGuard.from_parts(meta, tensors, where="old")
    assert back.config.per_task is False and back.config.depth == 0.5
    probe = x[::7] + 0.5
    np.testing.assert_array_equal(back.flags(probe), old.flags(probe))
    assert back.thresholds == {}


# ------------------------------------------------------------------ inside the estimator
def _estimator(guard: GuardConfig | None) -> tuple[T2Estimator, np.ndarray]:
    rng = np.random.default_rng(2)
    base, curves = _training(q=160, d=8)
    x = np.stack([base, base + 0.01 * rng.normal(size=base.shape)], axis=1).astype(np.float32)
    labels = np.where(np.arange(len(x)) % 2 == 0, 5, 2)
    est, _ = T2Estimator.fit(
        x, labels, layers=[3, 7], grid=GRID, n_min=1, n_max=8, model_identity="toy",
        hidden_size=8, config=ProbeConfig(head="curve", hidden=4, epochs=5), n_d=8,
        curves=curves, guard=guard,
    )  # fmt: skip
    return est, x


def test_estimator_applies_the_guard_and_can_skip_it(tmp_path: Path) -> None:
    est, x = _estimator(GuardConfig(dims=8))
    assert est.guard is not None and est.guard.layer == 7  # the middle of layers [3, 7]
    noise = np.random.default_rng(3).normal(size=x[:20].shape) * np.linspace(1.0, 3.0, 8)
    far = (x[:20] + 4.0 * noise).astype(np.float32)
    flags = est.out_of_distribution(far)
    assert flags.mean() > 0.9
    raw, guarded = est.predict(far, guard=False), est.predict(far)
    np.testing.assert_array_equal(guarded, np.where(flags, np.maximum(raw, 5), raw))
    assert est.predict_one(far[0]) == guarded[0]
    curves = est.predict_curve(far)
    np.testing.assert_array_equal(curves[flags], np.tile(est.guard.safe_curve, (flags.sum(), 1)))
    np.testing.assert_array_equal(curves[~flags], est.predict_curve(far, guard=False)[~flags])
    loaded = T2Estimator.load(est.save(tmp_path / "est"))
    assert loaded.guard is not None and loaded.guard.fallback_n == est.guard.fallback_n
    np.testing.assert_array_equal(loaded.predict(far), guarded)
    np.testing.assert_array_equal(loaded.out_of_distribution(x), est.out_of_distribution(x))
    assert json.loads((tmp_path / "est" / "metadata.json").read_text())["guard"]["layer"] == 7


def test_estimator_without_guard_loads_and_flags_nothing(tmp_path: Path) -> None:
    est, x = _estimator(None)
    loaded = T2Estimator.load(est.save(tmp_path / "plain"))
    assert loaded.guard is None and not (tmp_path / "plain" / "guard.safetensors").exists()
    assert not loaded.out_of_distribution(x + 100).any()
    with pytest.raises(ConfigError, match="guard= needs curves= and n_d="):
        T2Estimator.fit(
            x, np.where(np.arange(len(x)) % 2 == 0, 5, 2), layers=[3, 7], grid=GRID, n_min=1,
            n_max=8, model_identity="toy", hidden_size=8, config=ProbeConfig(hidden=4, epochs=2),
            guard=GuardConfig(),
        )  # fmt: skip


def test_corrupt_guard_files_are_refused(tmp_path: Path) -> None:
    est, _ = _estimator(GuardConfig(dims=8))
    root = est.save(tmp_path / "est")
    (root / "guard.safetensors").unlink()
    with pytest.raises(ArtifactError, match=r"guard\.safetensors is missing"):
        T2Estimator.load(root)
    root = est.save(tmp_path / "est2")
    tensors = est.guard.tensors() if est.guard else {}
    tensors["points"] = tensors["points"][:3]
    save_file(tensors, str(root / "guard.safetensors"))
    with pytest.raises(ArtifactError, match="'points' has shape"):
        T2Estimator.load(root)
    root = est.save(tmp_path / "est3")
    meta = json.loads((root / "metadata.json").read_text())
    meta["guard"]["layer"] = 99
    (root / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="layer is one of"):
        T2Estimator.load(root)
    meta["guard"]["layer"], meta["guard"]["safe_curve"][0] = 7, 1.5
    (root / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="safe_curve is invalid"):
        T2Estimator.load(root)


def test_t2_policy_reports_the_guard_and_chooses_the_guarded_budget() -> None:
    from t2_agents.budget.policies import T2Policy

    est, x = _estimator(GuardConfig(dims=8))
    policy = T2Policy(est)
    noise = np.random.default_rng(5).normal(size=x[:10].shape) * np.linspace(1.0, 3.0, 8)
    far = (x[:10] + 4.0 * noise).astype(np.float32)
    for row in (*far, *x[:10]):
        flagged = policy.out_of_distribution(row)
        assert flagged == bool(est.out_of_distribution(row[None])[0])
        assert policy.choose(features=row, question="q", n_min=1, n_max=8) == est.predict_one(row)
    assert any(policy.out_of_distribution(row) for row in far)
    unguarded = T2Policy(est, guard=False)
    assert not any(unguarded.out_of_distribution(row) for row in far)
    for row in far:
        want = int(est.predict(row[None], guard=False)[0])
        assert unguarded.choose(features=row, question="q", n_min=1, n_max=8) == want
    np.testing.assert_array_equal(
        unguarded.predict_curve(far[0])[: len(GRID)], est.predict_curve(far[:1], guard=False)[0]
    )
    assert "guard=False" in repr(unguarded)


def test_extend_teaches_the_guard_a_new_task_and_survives_a_round_trip() -> None:
    x, curves = _training()
    guard = DistributionGuard.fit(x, layer=2, curves=curves, grid=GRID, n_d=8,
                                  tasks=["old"] * len(x), config=GuardConfig(dims=12))  # fmt: skip
    rng = np.random.default_rng(5)
    shift = 4.0 * np.linspace(1.0, 3.0, x.shape[1])
    new = x[:120] + shift + 0.3 * rng.normal(size=x[:120].shape)  # a far cluster
    more = x[120:200] + shift + 0.3 * rng.normal(size=x[120:200].shape)  # more of it, unseen
    assert guard.flags(more).mean() > 0.9
    wider = guard.extend(new, tasks=["new"] * len(new), phrasings=[str(i % 6) for i in range(120)])
    assert wider.flags(more).mean() < 0.1  # the new cluster is known now
    assert wider.flags(x).mean() == guard.flags(x).mean()  # the old questions: as before
    assert set(wider.thresholds) == {"old", "new"} and wider.fallback_n == guard.fallback_n
    far = x[:50] + 9.0 * shift
    assert wider.flags(far).all()
    again = DistributionGuard.from_parts(wider.metadata(), wider.tensors(), where="test")
    np.testing.assert_allclose(again.distance(more), wider.distance(more), rtol=1e-5)
    np.testing.assert_array_equal(again.flags(more), wider.flags(more))
    with pytest.raises(ConfigError, match="one task"):
        guard.extend(new, tasks=["new"])
