"""Tests of t2_agents.evaluate.replay and .offline (synthetic pools) and of ``t2 eval``."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from t2_agents.cli import app, expand_multi_value
from t2_agents.curves.exact import accuracy_curve, optimal_budget
from t2_agents.errors import ArtifactError, ConfigError, DataError
from t2_agents.evaluate.folders import evaluate_folders
from t2_agents.evaluate.offline import POLICIES, EvalConfig, evaluate_pools, plot_eval
from t2_agents.evaluate.replay import ReplayPool, StopRules, leader_probability, replay, replay_many

runner = CliRunner()


def _pool(answers: str, correct: str = "a", tokens: list[int] | None = None) -> ReplayPool:
    """A pool from one character per completion ('.' = no answer)."""
    items = tuple(None if c == "." else c for c in answers)
    return ReplayPool(items, tuple(tokens or [10] * len(items)), frozenset(correct))


def _random_pools(n: int, m: int, seed: int) -> list[ReplayPool]:
    rng = np.random.default_rng(seed)
    pools = []
    for _ in range(n):
        p = rng.dirichlet(np.ones(4))
        answers = "".join(rng.choice(list("abc."), size=m, p=p))
        pools.append(_pool(answers, tokens=[int(t) for t in rng.integers(5, 60, size=m)]))
    return pools


def _brute_force(pool: ReplayPool, n: int) -> float:
    """Mean tie-credited vote over every n-subset of the pool (the definition of A_x(N))."""
    credits = []
    for subset in itertools.combinations(range(pool.size), n):
        votes = Counter(a for i in subset if (a := pool.answers[i]) is not None)
        if not votes:
            credits.append(0.0)
            continue
        top = max(votes.values())
        tied = [a for a, v in votes.items() if v == top]
        credits.append(sum(a in pool.correct for a in tied) / len(tied))
    return float(np.mean(credits))


# ---------------------------------------------------------------------------- exact vs replay
def test_fixed_n_is_exact_and_matches_replay() -> None:
    pool = _pool("aabca.bba", tokens=[1, 2, 3, 4, 5, 6, 7, 8, 9])
    report = evaluate_pools([pool], config=EvalConfig(policies=("fixed",)))
    exact = accuracy_curve(pool.pool, pool.size)
    for row in report.results:
        n = int(row.name.split("=")[1])
        assert row.accuracy == pytest.approx(_brute_force(pool, n), abs=1e-12)
        assert row.accuracy == pytest.approx(exact[n - 1], abs=1e-12)
        assert row.mean_tokens == pytest.approx(n * 5.0)
        monte_carlo = replay(pool, "fixed", n=n, replays=6000, seed=n)
        assert monte_carlo.credit.mean() == pytest.approx(exact[n - 1], abs=0.025)
        assert monte_carlo.tokens.mean() == pytest.approx(n * 5.0, rel=0.05)
        assert (monte_carlo.samples == n).all() and (monte_carlo.rounds == 1).all()


def test_oracle_is_at_least_every_fixed_n_per_question() -> None:
    for pool in _random_pools(25, 12, seed=3):
        report = evaluate_pools([pool], config=EvalConfig(policies=("fixed", "oracle")))
        oracle = report.result("oracle")
        assert all(oracle.accuracy >= r.accuracy - 1e-12 for r in report.results)
        assert oracle.mean_samples == optimal_budget(accuracy_curve(pool.pool, 12))


def test_replay_tokens_are_those_of_the_drawn_samples() -> None:
    pool = _pool("abab", tokens=[1, 10, 100, 1000])
    out = replay_many(pool, ["fixed"], orders=[[3, 2, 1, 0], [0, 1, 2, 3]], n=2)["fixed"]
    assert out.tokens.tolist() == [1100.0, 11.0]
    assert out.credit.tolist() == [0.5, 0.5]  # a 1-1 tie with one correct answer


# ---------------------------------------------------------------------------- stopping rules
def test_leader_probability_is_the_beta_tail() -> None:
    assert leader_probability(4, 0) == 0.96875
    assert leader_probability(3, 0) == 0.9375
    assert leader_probability(5, 5) == pytest.approx(0.5)
    x = np.linspace(0.5, 1.0, 200_001)
    for v1, v2 in [(6, 2), (10, 7), (1, 0)]:
        density = x**v1 * (1 - x) ** v2
        full = np.linspace(0.0, 1.0, 400_001)
        tail = np.trapezoid(density, x) / np.trapezoid(full**v1 * (1 - full) ** v2, full)
        assert leader_probability(v1, v2) == pytest.approx(tail, abs=1e-6)


def test_esc_on_a_unanimous_pool_stops_after_one_window() -> None:
    out = replay(_pool("a" * 16), "esc", replays=50)
    assert (out.samples == 4).all() and (out.rounds == 1).all() and (out.credit == 1).all()
    wide = replay(_pool("a" * 16), "esc", stop=StopRules(window=3), replays=5)
    assert (wide.samples == 3).all()


def test_esc_needs_a_unanimous_window_with_answers() -> None:
    pool = _pool("aaa.aaaa")
    out = replay_many(pool, ["esc"], orders=[list(range(8))])["esc"]
    assert out.samples.tolist() == [8] and out.rounds.tolist() == [2]


def test_adaptive_on_a_split_pool_runs_to_the_cap() -> None:
    pool = _pool("ab" * 8)
    alternating = [list(range(16)), [1, 0, *range(2, 16)]]
    out = replay_many(pool, ["adaptive"], orders=alternating)["adaptive"]
    assert out.samples.tolist() == [16, 16] and out.rounds.tolist() == [16, 16]
    assert out.credit.tolist() == [0.5, 0.5]
    many = replay(pool, "adaptive", replays=300)
    assert many.samples.max() == 16 and many.samples.mean() > 10


def test_adaptive_on_a_unanimous_pool_stops_after_four() -> None:
    out = replay(_pool("a" * 10), "adaptive", replays=20)
    assert (out.samples == 4).all()
    strict = replay(_pool("a" * 10), "adaptive", stop=StopRules(threshold=0.99), replays=5)
    assert (strict.samples == 6).all()  # 1 - 2**-7 >= 0.99 > 1 - 2**-6


def test_hybrid_never_uses_more_than_the_pool() -> None:
    rng = np.random.default_rng(5)
    for pool in _random_pools(30, 10, seed=6):
        first = int(rng.integers(1, 11))
        out = replay(pool, "hybrid", n=first, replays=40, seed=first)
        assert (out.samples <= pool.size).all() and (out.samples >= first).all()
        extra_waves = -(-(out.samples - first) // 4)
        assert (out.rounds == 1 + extra_waves).all()


def test_hybrid_stops_after_a_decisive_first_wave() -> None:
    decisive = replay(_pool("a" * 12), "hybrid", n=2, replays=10)
    assert (decisive.samples == 2).all() and (decisive.rounds == 1).all()
    single = replay(_pool("a" * 12), "hybrid", n=1, replays=10)  # one vote is never decisive
    assert (single.samples == 5).all() and (single.rounds == 2).all()
    split = replay_many(_pool("ab" * 6), ["hybrid"], orders=[list(range(12))], n=4)["hybrid"]
    assert split.samples.tolist() == [12] and split.rounds.tolist() == [3]


def test_hybrid_stops_at_its_cap() -> None:
    split = _pool("ab" * 6)
    order = [list(range(12))]
    for cap, samples, rounds in [(6, 6, 2), (5, 5, 2), (4, 4, 1), (99, 12, 3)]:
        out = replay_many(split, ["hybrid", "adaptive"], orders=order, n=4, cap=cap)
        assert out["hybrid"].samples.tolist() == [samples], cap
        assert out["hybrid"].rounds.tolist() == [rounds], cap
        assert out["adaptive"].samples.tolist() == [12]  # the cap is the hybrid's only
    decisive = replay(_pool("a" * 12), "hybrid", n=1, replays=5)  # stops before any cap
    capped = replay_many(_pool("a" * 12), ["hybrid"], orders=[list(range(12))], n=1, cap=8)
    assert capped["hybrid"].samples.tolist() == decisive.samples[:1].tolist() == [5]
    with pytest.raises(ConfigError, match=r"cap=3 is below its first wave n=4"):
        replay_many(split, ["hybrid"], orders=order, n=4, cap=3)


def test_evaluate_pools_caps_the_hybrid_per_question() -> None:
    pools = _random_pools(12, 16, seed=3)
    config = EvalConfig(policies=("hybrid",), replays=30)
    t2 = np.full(12, 2)
    free = evaluate_pools(pools, config=config, t2=t2).result("hybrid")
    caps = np.array([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
    capped = evaluate_pools(pools, config=config, t2=t2, t2_cap=caps).result("hybrid")
    assert capped.values is not None and free.values is not None
    assert all(s <= c for s, c in zip(capped.values.samples, caps, strict=True))
    assert capped.values.samples[0] == 2 and capped.mean_samples < free.mean_samples
    with pytest.raises(ConfigError, match=r"t2_cap has shape \(3,\); pass one cap per pool"):
        evaluate_pools(pools, config=config, t2=t2, t2_cap=[4, 4, 4])


def test_replay_bad_input() -> None:
    pool = _pool("aab")
    with pytest.raises(ConfigError, match=r"n within 1\.\.M=3"):
        replay(pool, "fixed", n=4)
    with pytest.raises(ConfigError, match="unknown"):
        replay(pool, "greedy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="permutation"):
        replay_many(pool, ["esc"], orders=[[0, 0, 1]])
    with pytest.raises(ConfigError, match="threshold"):
        StopRules(threshold=1.0)
    with pytest.raises(DataError, match="token count"):
        ReplayPool(("a",), (), frozenset())


# ---------------------------------------------------------------------------- the report
def test_report_rows_and_metrics() -> None:
    pools = _random_pools(20, 16, seed=7)
    t2 = [optimal_budget(accuracy_curve(p.pool, 16)) for p in pools]  # T2 as good as the oracle
    config = EvalConfig(policies=POLICIES[:-1], replays=30, n_d=8)
    report = evaluate_pools(pools, config=config, t2=t2, n_d_source="training set")
    names = [r.name for r in report.results]
    assert names[:5] == [f"fixed N={n}" for n in (1, 2, 4, 8, 16)]
    assert names[5:] == ["N_D=8 (training set)", "t2", "oracle", "adaptive", "esc", "hybrid"]
    assert report.result("t2").accuracy == report.result("oracle").accuracy
    assert report.result("t2").saving_share == pytest.approx(1.0)
    assert report.result("oracle").saving_share == pytest.approx(1.0)
    assert report.result("fixed N=4").saving_share is None
    esc = report.result("esc")
    assert not esc.exact and esc.accuracy_std > 0 and 1 <= esc.rounds <= 4
    assert esc.delta_fixed == pytest.approx(
        esc.accuracy - np.interp(esc.mean_samples, np.arange(1, 17), report.fixed_curve)
    )
    again = evaluate_pools(pools, config=config, t2=t2)
    assert again.result("hybrid") == report.result("hybrid")  # seeded replays
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["n_d"] == 8 and len(payload["results"]) == len(names)
    assert len(report.table()) == len(names) and len(report.table()[0]) == len(report.header)


def test_n_d_defaults_to_the_evaluated_data_and_says_so() -> None:
    pools = [_pool("aaab"), _pool("abbb"), _pool("abab")]
    report = evaluate_pools(pools, config=EvalConfig(policies=("nd",)))
    assert report.n_d_source == "eval data, optimistic"
    assert report.results[0].name.startswith(f"N_D={report.n_d} (eval data")


def test_alloc_defaults_to_t2s_total(tmp_path: Path) -> None:
    pools = _random_pools(12, 8, seed=8)
    curves = np.stack([accuracy_curve(p.pool, 8) for p in pools])  # perfect foresight
    t2 = [2] * 12
    report = evaluate_pools(
        pools, config=EvalConfig(policies=("t2", "alloc")), t2=t2, predicted_curves=curves
    )
    assert report.budget == 24 and report.budget_source == "T2's total"
    alloc = report.result("alloc (B=24)")
    assert alloc.mean_samples <= 2 and alloc.accuracy >= report.result("t2").accuracy
    assert plot_eval(report, tmp_path / "eval.png").stat().st_size > 0


def test_evaluation_bad_input() -> None:
    with pytest.raises(ConfigError, match="choose from fixed, nd, t2"):
        EvalConfig(policies=("fixed", "greedy"))
    with pytest.raises(DataError, match="empty"):
        evaluate_pools([])
    pools = [_pool("aab"), _pool("abbab")]
    with pytest.raises(ConfigError, match="N=4 for question 0 whose pool holds M=3"):
        evaluate_pools(pools, config=EvalConfig(policies=("t2",)), t2=[4, 1])
    with pytest.raises(ConfigError, match=r"N_D=5 .* exceeds the smallest pool M=3"):
        evaluate_pools(pools, config=EvalConfig(policies=("nd",), n_d=5))
    with pytest.raises(ConfigError, match="need T2's budgets"):
        evaluate_pools(pools, config=EvalConfig(policies=("hybrid",)))
    with pytest.raises(ConfigError, match="--train-data"):
        evaluate_pools(pools, config=EvalConfig(policies=("alloc",), budget=4))
    with pytest.raises(DataError, match="no evaluation folder"):
        evaluate_folders([])


# ---------------------------------------------------------------------------- folders and CLI
@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny collection (FakeEngine of conftest) and T2 estimators fitted on its features."""
    from conftest import FakeEngine

    from t2_agents.calibrate.collect import CollectConfig, collect
    from t2_agents.calibrate.training_set import load_training_set
    from t2_agents.estimator.estimator import T2Estimator
    from t2_agents.estimator.probes import ProbeConfig

    root = tmp_path_factory.mktemp("eval")
    source = root / "questions.jsonl"
    lines = [json.dumps({"question": f"Pick digit {i}.", "answer": str(i % 3)}) for i in range(16)]
    source.write_text("\n".join(lines) + "\n")
    config = CollectConfig(data=str(source), questions=16, samples=8, layers=(0, 3),
                           model="fake", max_tokens=8, batch_questions=8)  # fmt: skip
    folder = collect(FakeEngine(), config, root / "pools")
    data = load_training_set([folder])
    other = root / "heldout.jsonl"
    lines = [json.dumps({"question": f"Pick number {i}.", "answer": str(i % 3)}) for i in range(16)]
    other.write_text("\n".join(lines) + "\n")
    held = collect(FakeEngine(), replace(config, data=str(other)), root / "held")

    def fit(identity: str, out: str) -> Path:
        est, _ = T2Estimator.fit(
            data.features, data.labels, layers=data.layers, grid=list(range(1, 9)), n_min=1,
            n_max=8, model_identity=identity, hidden_size=8, config=ProbeConfig(epochs=3),
            n_d=data.n_d, data_summary=data.summary,
        )  # fmt: skip
        return est.save(root / out)

    return {"folder": folder, "estimator": fit("fake", "t2"), "other": fit("other", "t2-other"),
            "n_d": data.n_d, "held": held}  # fmt: skip


def _invoke(args: list[str]) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, expand_multi_value(args))
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return result.exit_code, json.loads(lines[0])


def test_cli_eval_json(collection: dict[str, Any], tmp_path: Path) -> None:
    folder, estimator = str(collection["folder"]), str(collection["estimator"])
    held = str(collection["held"])
    code, payload = _invoke([
        "eval", "--data", held, held, "--estimator", estimator, "--train-data", folder,
        "--replays", "20", "--plot", str(tmp_path / "eval.png"), "--json",
    ])  # fmt: skip
    assert code == 0, payload
    # The second copy of the held-out folder repeats its questions: dropped and counted.
    assert payload["extra"]["dropped"] == _dropped(duplicates=16)
    assert payload["questions"] == 16 and payload["pool_sizes"] == [8, 8]
    assert payload["n_d"] == collection["n_d"] and payload["n_d_source"] == "training set"
    policies = [r["policy"] for r in payload["results"]]
    assert set(policies) == set(POLICIES) | {"fixed@alloc"}
    t2 = next(r for r in payload["results"] if r["policy"] == "t2")
    assert payload["budget"] == round(t2["mean_samples"] * 16)
    assert payload["plot"] and Path(payload["plot"]).stat().st_size > 0
    assert payload["extra"]["alloc_curves"]["counts"]


def test_eval_drops_and_counts_training_questions(collection: dict[str, Any]) -> None:
    folder, held = collection["folder"], collection["held"]
    config = EvalConfig(policies=("fixed", "t2"), replays=5)
    with pytest.raises(DataError, match=r"every question .* was seen in training \(16 questions,"):
        evaluate_folders([folder], estimator=collection["estimator"], train_data=[folder],
                         config=config)  # fmt: skip
    report = evaluate_folders([folder, held], estimator=collection["estimator"],
                              train_data=[folder], config=config)  # fmt: skip
    assert report.questions == 16
    assert report.extra["dropped"] == _dropped(seen_in_training=16, seen_by_text=16)


def _dropped(**counts: int) -> dict[str, int]:
    """``extra["dropped"]`` of an evaluation: every count, 0 unless given."""
    names = ("seen_in_training", "seen_by_text", "seen_by_instance", "duplicates", "same_instance")
    return dict.fromkeys(names, 0) | counts


def test_eval_drops_training_questions_in_another_operand_order(tmp_path: Path) -> None:
    from conftest import FakeEngine

    from t2_agents.calibrate.collect import CollectConfig, collect, load_collection
    from t2_agents.calibrate.training_set import load_training_set
    from t2_agents.estimator.estimator import T2Estimator
    from t2_agents.estimator.probes import ProbeConfig

    config = CollectConfig(task="lcm", task_config={"max_value": 12}, questions=16, seed=1,
                           samples=8, layers=(0, 3), model="fake", max_tokens=8)  # fmt: skip
    train = collect(FakeEngine(), config, tmp_path / "train")  # asks "4, 12"
    held = collect(FakeEngine(), replace(config, questions=8, seed=30), tmp_path / "held")
    assert "12, 4" in str(load_collection(held).records[2]["prompt"])
    data = load_training_set([train])
    est, _ = T2Estimator.fit(
        data.features, data.labels, layers=data.layers, grid=list(range(1, 9)), n_min=1,
        n_max=8, model_identity="fake", hidden_size=8, config=ProbeConfig(kind="ridge"),
        n_d=data.n_d, data_summary=data.summary,
    )  # fmt: skip
    folder = est.save(tmp_path / "t2")
    config_eval = EvalConfig(policies=("fixed", "t2"), replays=5)
    report = evaluate_folders([held], estimator=folder, config=config_eval)
    seen = _dropped(seen_in_training=2, seen_by_text=1, seen_by_instance=1)
    assert report.extra["dropped"] == seen and report.questions == 6
    # An artifact trained before instance keys were recorded loads; only texts exclude then.
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["training_data"]["instance_keys"]
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    older = T2Estimator.load(folder)
    assert older.training_instance_keys == frozenset() and older.training_keys == data.summary.keys
    report = evaluate_folders([held], estimator=older, config=config_eval)
    assert report.extra["dropped"] == _dropped(seen_in_training=1, seen_by_text=1)
    assert report.questions == 7


def test_eval_on_chosen_questions_keeps_per_question_values(collection: dict[str, Any]) -> None:
    from t2_agents.calibrate.collect import load_collection
    from t2_agents.calibrate.training_set import record_key

    held = collection["held"]
    keys = [record_key(r) for r in load_collection(held).records]
    config = EvalConfig(policies=("nd", "t2", "hybrid"), replays=5)
    full = evaluate_folders([held], estimator=collection["estimator"], config=config)
    assert "question_keys" not in full.extra
    chosen = {keys[3], keys[0], keys[7]}
    report = evaluate_folders([held], estimator=collection["estimator"], config=config,
                              questions=chosen)  # fmt: skip
    assert report.questions == 3 and report.extra["question_keys"] == [keys[0], keys[3], keys[7]]
    for row in report.results:
        assert row.values is not None and len(row.values.credit) == 3
        assert np.mean(row.values.credit) == pytest.approx(row.accuracy)
        assert np.mean(row.values.samples) == pytest.approx(row.mean_samples)
        assert np.mean(row.values.rounds) == pytest.approx(row.rounds)
    t2 = full.result("t2").values
    assert t2 is not None and report.result("t2").values.credit == tuple(  # type: ignore[union-attr]
        t2.credit[i] for i in (0, 3, 7)
    )
    assert "values" not in json.dumps(report.to_dict())
    with pytest.raises(DataError, match="none of the 1 questions asked for"):
        evaluate_folders([held], estimator=collection["estimator"], config=config,
                         questions={"not-a-key"})  # fmt: skip


def test_cli_eval_table(collection: dict[str, Any]) -> None:
    args = ["eval", "--data", str(collection["folder"]), "--policies", "fixed,esc,nd",
            "--n-d", "2", "--replays", "5"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "N_D=2 (given)" in result.stdout and "esc" in result.stdout


@pytest.mark.parametrize(
    ("extra", "kind", "words"),
    [
        (["--policies", "t2,greedy"], "ConfigError", "choose from fixed, nd, t2, oracle"),
        (["--policies", "alloc"], "ConfigError", "--estimator"),
        (["--policies", "t2", "--estimator", "OTHER"], "ArtifactError", "'other'"),
        (["--policies", "nd", "--n-d", "9"], "ConfigError", "exceeds the smallest pool M=8"),
    ],
)
def test_cli_eval_errors(
    collection: dict[str, Any], extra: list[str], kind: str, words: str
) -> None:
    args = [str(collection["other"]) if a == "OTHER" else a for a in extra]
    code, payload = _invoke(["eval", "--data", str(collection["folder"]), *args, "--json"])
    assert code == 2
    assert payload["error"]["type"] == kind and words in payload["error"]["message"]


def test_cli_eval_empty_dataset(tmp_path: Path) -> None:
    code, payload = _invoke(["eval", "--data", str(tmp_path), "--policies", "fixed", "--json"])
    assert code == 2 and payload["error"]["type"] == "DataError"


def test_estimator_of_another_width_is_refused(collection: dict[str, Any]) -> None:
    class Wide:
        layers, model_identity, hidden_size, metadata = (0, 3), "fake", 16, {}

    with pytest.raises(ArtifactError, match="hidden size 16"):
        evaluate_folders([collection["folder"]], estimator=Wide(),  # type: ignore[arg-type]
                         config=EvalConfig(policies=("t2",)))  # fmt: skip


class _CurveHeadLike:
    """The fixture estimator, answering like a curve head: T2's N 2, saturating at 5."""

    has_knob = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.tolerances: list[float | None] = []
        self.layers, self.metadata = inner.layers, inner.metadata
        self.model_identity, self.hidden_size = inner.model_identity, inner.hidden_size
        self.training_keys = inner.training_keys
        self.training_instance_keys = inner.training_instance_keys

    def predict(self, features: np.ndarray, *, tolerance: float | None = None) -> np.ndarray:
        self.tolerances.append(tolerance)
        return np.full(len(features), 2 if tolerance is None else 5, dtype=np.int64)

    def predict_log2(self, features: np.ndarray) -> np.ndarray:
        return np.log2(self.predict(features)).astype(np.float64)


def test_eval_caps_the_hybrid_at_the_curve_head_s_saturation_budget(
    collection: dict[str, Any],
) -> None:
    from t2_agents.estimator.estimator import T2Estimator

    est = _CurveHeadLike(T2Estimator.load(collection["estimator"]))
    held = [collection["held"]]
    capped = evaluate_folders(held, estimator=est, config=EvalConfig(policies=("hybrid",)))
    assert est.tolerances == [None, 0.0]
    row = capped.result("hybrid")
    assert row.values is not None and max(row.values.samples) <= 5
    off = EvalConfig(policies=("hybrid",), cap_tolerance=None)
    free = evaluate_folders(held, estimator=est, config=off).result("hybrid")
    assert est.tolerances[2:] == [None] and free.mean_samples >= row.mean_samples
    code, payload = _invoke(["eval", "--data", str(collection["held"]), "--estimator",
                             str(collection["estimator"]), "--policies", "hybrid", "--no-cap",
                             "--replays", "5", "--json"])  # fmt: skip
    assert code == 0 and payload["results"][0]["policy"] == "hybrid"


def test_bench_hybrid_cap_sweeps_caps_on_a_validation_split(collection: dict[str, Any]) -> None:
    """bench/hybrid_cap.py's split keeps questions whole; its sweep replays every cap."""
    from conftest import load_script

    from t2_agents.calibrate.training_set import load_training_set
    from t2_agents.estimator.estimator import T2Estimator

    bench = load_script(Path(__file__).resolve().parents[1] / "bench" / "hybrid_cap.py", "cap")
    keys = ["a", "b", "a", "c", "d", "e", "b"]
    fit, val = bench.split(keys, seed=1)
    assert not {keys[i] for i in fit} & {keys[i] for i in val} and len(fit) + len(val) == 7
    data = load_training_set([collection["held"]])
    pools = bench.pools_for([collection["held"]], data.keys)
    assert [p.size for p in pools] == [8] * len(data.keys)
    est = _CurveHeadLike(T2Estimator.load(collection["estimator"]))
    out = bench.sweep(est, data, pools, seed=0)
    assert [r["cap_tolerance"] for r in out["rows"]] == list(bench.CAPS)
    capped = [r for r in out["rows"] if r["cap_tolerance"] is not None]
    assert all(r["mean_samples"] <= 5 + 1e-9 and r["mean_cap"] == 5 for r in capped)
    assert out["t2"]["mean_samples"] == 2 and out["nd"]["mean_samples"] == data.n_d
