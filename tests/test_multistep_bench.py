"""bench/multistep.py: the run-level replay helpers on hand-made step curves (fast, no model)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "multistep.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    from conftest import load_script

    module: ModuleType = load_script(BENCH, "bench_multistep")
    return module


def _steps(bench: ModuleType) -> Any:
    """Two runs: run 0 has steps with A(N) = 0.5 and 1.0; run 1 one step with A(N) = N / 32."""
    m = bench.M
    grid = np.arange(1, m + 1) / m
    curves = np.stack([np.full(m, 0.5), np.ones(m), grid])
    return bench._Steps(
        chain_of=np.array([0, 0, 1]), curves=curves, mean_tokens=np.array([10.0, 20.0, 5.0]),
        t2=np.array([2, 1, 8]), predicted=curves.copy(), caps=np.array([2, 1, 8]),
        flagged=np.zeros(3, dtype=bool), features=np.zeros((3, 1, 1), dtype=np.float32),
        pools=[], tasks=["a", "b", "a"], kinds=["k0", "k0", "k1"],
    )  # fmt: skip


def test_run_success_is_the_product_of_its_steps(bench: ModuleType) -> None:
    runs = bench._fixed_budgets(_steps(bench), np.array([2, 1, 8]))
    assert runs.success.tolist() == [0.5 * 1.0, 8 / 32]
    assert runs.samples.tolist() == [3.0, 8.0]
    assert runs.tokens.tolist() == [2 * 10.0 + 20.0, 40.0]
    assert runs.rounds.tolist() == [2.0, 1.0]


def test_fixed_at_equal_samples_interpolates_between_two_ns(bench: ModuleType) -> None:
    steps = _steps(bench)  # 3 steps over 2 runs: 1.5 steps per run
    at = bench._fixed_at(steps, samples_per_run=1.5 * 2.5)  # N = 2.5 per step
    two = bench._fixed_budgets(steps, np.full(3, 2)).success
    three = bench._fixed_budgets(steps, np.full(3, 3)).success
    assert np.allclose(at, (two + three) / 2)


def test_the_run_budget_replay_never_overspends_a_run(bench: ModuleType) -> None:
    steps = _steps(bench)
    for objective in ("sum", "success"):
        runs = bench._run_budget(steps, np.array([4, 3]), objective)
        assert runs.samples.tolist()[0] <= 4 and runs.samples.tolist()[1] <= 3
        assert (runs.samples >= np.array([2, 1])).all()  # every step got n_min


def test_the_readme_tables_render_from_a_results_file(bench: ModuleType, tmp_path: Path) -> None:
    """The committed results file (if present) renders both README tables."""
    results = BENCH.parent / "results" / "multistep.json"
    if not results.exists():
        pytest.skip("bench/results/multistep.json is not committed yet")
    data = json.loads(results.read_text())
    assert data["chains"] >= 300 and data["steps_seen_in_training"] == 0
    assert data["distinct_texts"] == data["distinct_instances"] == data["steps"]
