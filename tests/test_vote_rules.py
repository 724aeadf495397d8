"""Vote rules: the registry, the confidence rules, their fallback, Monte-Carlo A(N), the wiring."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.confidence import PathConfidence
from t2_agents.curves.exact import AnswerPool, accuracy_curve
from t2_agents.errors import ConfigError, DataError
from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph
from t2_agents.vote_rules import (
    VoteSettings,
    apply_vote,
    mc_accuracy_curve,
    vote_criterion,
    vote_rule_kinds,
)


def _conf(*values: float) -> list[PathConfidence]:
    return [PathConfidence(mean=v, lowest_group=v - 1, tail=v + 1, tokens=5) for v in values]


def test_the_built_in_rules_are_registered() -> None:
    assert vote_rule_kinds()[:3] == ("majority", "weighted", "filtered")
    assert vote_criterion("majority").needs_confidence is False


def test_majority_is_todays_vote() -> None:
    verdict = apply_vote(["a", "b", "b", None], None)
    assert (verdict.answer, verdict.rule, verdict.warning) == ("b", "majority", None)
    assert verdict.distribution == {"b": 2.0, "a": 1.0}


def test_weighted_votes_with_the_chosen_statistic() -> None:
    answers = ["7", "8", "8"]
    confidences = _conf(9.0, 4.0, 4.0)  # lowest_group 8, 3, 3; tail 10, 5, 5
    verdict = apply_vote(answers, confidences, VoteSettings(kind="weighted"))
    assert verdict.answer == "7" and verdict.rule == "weighted"
    assert verdict.distribution == {"7": 8.0, "8": 6.0}
    tail = apply_vote(answers, confidences, VoteSettings(kind="weighted", statistic="tail"))
    assert tail.tied == ("7", "8") and tail.distribution == {"7": 10.0, "8": 10.0}


def test_filtered_keeps_the_most_confident_share() -> None:
    answers = ["7", "7", "8", "8", "8", None]
    confidences = [*_conf(9.0, 8.0, 2.0, 3.0, 1.0), None]  # the pathless one needs none
    half = apply_vote(answers, confidences, VoteSettings(kind="filtered", eta=40))
    # 40 % of 5 valid -> ceil(2.0) = 2 kept: both "7"s
    assert half.answer == "7" and half.distribution == {"7": 2.0, "8": 0.0}
    everything = apply_vote(answers, confidences, VoteSettings(kind="filtered", eta=100))
    assert everything.answer == "8" and everything.rule == "filtered"
    one = apply_vote(answers, confidences, VoteSettings(kind="filtered", eta=0.001))
    assert one.answer == "7" and sum(one.distribution.values()) == 1.0


def test_filter_ties_keep_the_earlier_path() -> None:
    verdict = apply_vote(["a", "b"], _conf(5.0, 5.0), VoteSettings(kind="filtered", eta=50))
    assert verdict.answer == "a"


@pytest.mark.parametrize("kind", ["weighted", "filtered"])
def test_missing_confidence_falls_back_with_a_warning(kind: str) -> None:
    answers = ["7", "8", "8"]
    for confidences in (None, [*_conf(9.0, 1.0), None]):
        verdict = apply_vote(answers, confidences, VoteSettings(kind=kind))
        assert verdict.answer == "8" and verdict.rule == "majority"
        assert verdict.warning is not None and kind in verdict.warning
        assert "fell back to the plain majority" in verdict.warning
    assert apply_vote(answers, [None] * 3, VoteSettings(kind="majority")).warning is None


@pytest.mark.parametrize("eta", [0, -5, 100.5, math.nan, math.inf, "50", True])
def test_bad_eta_names_value_range_and_fix(eta: Any) -> None:
    with pytest.raises(ConfigError, match=r"eta=.*(0, 100\]|not a number).*e\.g\. 50"):
        VoteSettings(kind="filtered", eta=eta)


def test_unknown_rule_and_statistic_list_the_registered_ones() -> None:
    with pytest.raises(ConfigError, match="majority, weighted, filtered"):
        VoteSettings(kind="borda")
    with pytest.raises(ConfigError, match="statistic="):
        VoteSettings(statistic="median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="one PathConfidence"):
        apply_vote(["a"], _conf(1.0, 2.0), VoteSettings(kind="weighted"))


def test_no_valid_answer_gives_no_winner() -> None:
    verdict = apply_vote([None, None], [None, None], VoteSettings(kind="weighted"))
    assert verdict.answer is None and verdict.valid == 0


# ------------------------------------------------------------------------- Monte-Carlo A(N)
@pytest.mark.parametrize("seed", range(3))
def test_mc_majority_agrees_with_the_exact_curve(seed: int) -> None:
    rng = np.random.default_rng(seed)
    answers = [None if x == 3 else str(x) for x in rng.integers(0, 4, size=12)]
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    exact = accuracy_curve(AnswerPool(counts, frozenset({"0"}), answers.count(None)), 12)
    mc = mc_accuracy_curve(answers, None, {"0"}, VoteSettings(), 12, draws=4000, seed=seed)
    assert not mc.fallback
    assert np.all(np.abs(mc.mean - exact) <= 4 * mc.stderr + 1e-9)
    assert mc.mean[-1] == pytest.approx(exact[-1])  # the whole pool: no randomness left


def test_mc_weighted_and_filtered_reward_confident_right_paths() -> None:
    answers = ["r", "w", "w", "r", "w", "w"]
    confidences = _conf(9.0, 2.0, 2.0, 9.0, 2.0, 2.0)
    plain = mc_accuracy_curve(answers, confidences, {"r"}, VoteSettings(), 6, seed=1)
    for kind in ("weighted", "filtered"):
        ruled = mc_accuracy_curve(answers, confidences, {"r"}, VoteSettings(kind=kind), 6, seed=1)
        assert not ruled.fallback
        assert ruled.mean[-1] == 1.0 and plain.mean[-1] == 0.0
        assert np.all(ruled.mean >= plain.mean - 1e-12)
        assert np.all(ruled.stderr >= 0)


def test_mc_falls_back_without_confidences_and_is_seeded() -> None:
    answers = ["a", "b", "a", "c"]
    first = mc_accuracy_curve(answers, None, {"a"}, VoteSettings(kind="weighted"), 4, seed=3)
    again = mc_accuracy_curve(answers, None, {"a"}, VoteSettings(kind="weighted"), 4, seed=3)
    assert first.fallback and np.array_equal(first.mean, again.mean)


def test_mc_bad_input() -> None:
    with pytest.raises(DataError, match="empty"):
        mc_accuracy_curve([], None, set(), VoteSettings(), 1)
    with pytest.raises(ConfigError, match="n_max=3 exceeds"):
        mc_accuracy_curve(["a", "b"], None, set(), VoteSettings(), 3)
    with pytest.raises(ConfigError, match="draws="):
        mc_accuracy_curve(["a"], None, set(), VoteSettings(), 1, draws=1)


# ----------------------------------------------------------------------- graph and endpoint
def _graph_run(engine: FakeEngine, **settings: Any) -> dict[str, Any]:
    graph = build_parallel_thinking_graph(engine=engine, policy=FixedPolicy(8))
    return dict(graph.invoke({"question": "2+2?"}, context=ThinkingContext(n_max=8, **settings)))


def test_the_aggregation_node_applies_the_vote_rule() -> None:
    # "41" is the minority answer but far more confident than "42"
    engine = FakeEngine(answers={"42": 0.6, "41": 0.4}, confidence={"42": 1.0, "41": 9.0})
    plain = _graph_run(engine)
    assert plain["verdict"]["answer"] == "42" and plain["verdict"]["rule"] == "majority"
    weighted = _graph_run(engine, vote="weighted")
    assert weighted["verdict"]["answer"] == "41" and weighted["verdict"]["rule"] == "weighted"
    assert all(b["confidence"] is not None for b in weighted["branches"])
    filtered = _graph_run(engine, vote="filtered", vote_eta=25.0, fanout="send")
    assert filtered["verdict"]["answer"] == "41"


def test_the_aggregation_node_falls_back_without_confidence() -> None:
    state = _graph_run(FakeEngine(answers={"42": 0.6, "41": 0.4}), vote="weighted")
    assert state["verdict"]["rule"] == "majority" and "fell back" in state["verdict"]["warning"]
    assert state["answer"] is not None


def test_the_graph_refuses_bad_vote_settings() -> None:
    with pytest.raises(ConfigError, match="eta=0"):
        ThinkingContext(vote="filtered", vote_eta=0)
    graph = build_parallel_thinking_graph(engine=FakeEngine(), policy=FixedPolicy(2))
    with pytest.raises(Exception, match="registered vote rules"):
        graph.invoke({"question": "q"}, context={"vote": "borda"})


@pytest.fixture()
def client() -> Iterator[httpx.Client]:
    from t2_agents.serve import ServeConfig, ThinkingService, serve_in_thread

    engine = FakeEngine(answers={"42": 0.6, "41": 0.4}, confidence={"42": 1.0, "41": 9.0})
    service = ThinkingService(engine, config=ServeConfig(port=0, n_max=8))
    with serve_in_thread(service) as base_url, httpx.Client(base_url=base_url) as http:
        yield http


def _ask(client: httpx.Client, t2: dict[str, Any]) -> httpx.Response:
    messages = [{"role": "user", "content": "2+2?"}]
    body = {"model": "fake-engine", "messages": messages, "seed": 0, "t2": {"paths": True, **t2}}
    return client.post("/v1/chat/completions", json=body)


def test_the_endpoint_takes_t2_vote(client: httpx.Client) -> None:
    plain = _ask(client, {"n": 8}).json()["t2"]
    answers = [p["answer"] for p in plain["paths"]]
    assert answers.count("42") > answers.count("41") > 0  # the seeded paths (seed 0)
    assert plain["vote"] == "majority" and plain["answer"] == "42"
    weighted = _ask(client, {"n": 8, "vote": "weighted"}).json()["t2"]
    assert weighted["vote"] == "weighted" and weighted["answer"] == "41"
    assert weighted["vote_warning"] is None
    filtered = _ask(client, {"n": 8, "vote": "filtered", "vote_eta": 25}).json()["t2"]
    assert filtered["vote"] == "filtered" and filtered["answer"] == "41"


@pytest.mark.parametrize(
    ("t2", "param", "text"),
    [
        ({"vote": "borda"}, "t2.vote", "majority, weighted, filtered"),
        ({"vote": "filtered", "vote_eta": 0}, "t2.vote_eta", "greater than 0"),
        ({"vote": "filtered", "vote_eta": 101}, "t2.vote_eta", "less than or equal to 100"),
        ({"vote_statistic": "median"}, "t2.vote_statistic", "lowest_group"),
    ],
)
def test_the_endpoint_refuses_bad_votes(
    client: httpx.Client, t2: dict[str, Any], param: str, text: str
) -> None:
    response = _ask(client, t2)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and text in json.dumps(error)


# ---------------------------------------------------------------------------- t2 eval --vote
def _pools() -> list[Any]:
    from t2_agents.evaluate.replay import ReplayPool

    confident = _conf(9.0, 2.0, 2.0, 9.0, 2.0, 2.0, 2.0, 9.0)
    answers = ("r", "w", "w", "r", "w", "w", "x", "r")
    return [
        ReplayPool(answers, (5,) * 8, frozenset({"r"}), tuple(confident)),
        ReplayPool(answers, (5,) * 8, frozenset({"r"})),  # no confidences: falls back
    ]


def test_replay_scores_fixed_n_under_the_vote_rule() -> None:
    from t2_agents.evaluate.offline import EvalConfig, evaluate_pools

    plain = evaluate_pools(_pools(), config=EvalConfig(policies=("fixed",)))
    assert plain.extra["vote"]["method"] == "exact" and all(r.exact for r in plain.results)
    config = EvalConfig(policies=("fixed",), vote="filtered", vote_eta=40, vote_draws=400)
    ruled = evaluate_pools(_pools(), config=config)
    info = ruled.extra["vote"]
    assert info["method"] == "monte-carlo" and info["fallback_questions"] == 1
    assert 0 < info["max_question_stderr"] < 0.05
    assert not any(r.exact for r in ruled.results)
    by_name = {r.name: r for r in ruled.results}
    # N=8: the filter keeps the 3+1 most confident -> "r" on the first pool; "w" on the second
    assert by_name["fixed N=8"].accuracy == pytest.approx(0.5)
    assert {r.name: r for r in plain.results}["fixed N=8"].accuracy == 0.0
    with pytest.raises(ConfigError, match="eta="):
        EvalConfig(vote="filtered", vote_eta=0)


def test_t2_eval_takes_vote(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from t2_agents.calibrate.collect import CollectConfig, collect
    from t2_agents.cli import app

    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "2+2?", "answer": "42"}\n{"question": "3+3?", "answer": "42"}\n'
    )
    engine = FakeEngine(answers={"42": 0.4, "41": 0.6}, confidence={"42": 8.0, "41": 1.0})
    config = CollectConfig(data=str(questions), questions=2, samples=8, model=engine.identity)
    folder = collect(engine, config, tmp_path / "pool")
    runner = CliRunner()
    args = ["eval", "--data", str(folder), "--policies", "fixed", "--replays", "5", "--json"]
    weighted = runner.invoke(app, [*args, "--vote", "weighted"])
    assert weighted.exit_code == 0, weighted.output
    payload = json.loads(weighted.stdout)
    assert payload["extra"]["vote"]["rule"] == "weighted"
    assert payload["extra"]["vote"]["fallback_questions"] == 0
    plain = json.loads(runner.invoke(app, args).stdout)

    def at_8(report: dict[str, Any]) -> float:
        return float(next(r for r in report["results"] if r["name"] == "fixed N=8")["accuracy"])

    assert at_8(payload) > at_8(plain)
    bad = runner.invoke(app, [*args, "--vote", "borda"])
    assert bad.exit_code != 0 and "registered vote rules" in bad.stdout + bad.stderr
