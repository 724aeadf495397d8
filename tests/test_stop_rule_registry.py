"""Adding a stop rule is one class in one place: a toy rule through replay, graph and endpoint.

The toy rule, registered by the fixture below and nowhere else: sample one path at a time and
stop as soon as two valid votes agree. Everything else (the replay, the offline and live
policy names, the graph's ``stop=``, a run's JSON context, the endpoint's ``t2.stop_rule``)
reads it from the registry. The fixture unregisters it afterwards, so other tests see the
built-in rules only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from t2_agents.backends.fake import FakeEngine
from t2_agents.budget import names
from t2_agents.budget.stop_rules import (
    StopCriterion,
    StopRule,
    StopRules,
    Votes,
    register_stop_rule,
    stop_rule_kinds,
    unregister_stop_rule,
)
from t2_agents.errors import ConfigError
from t2_agents.evaluate.live import parse_live_policies
from t2_agents.evaluate.offline import EvalConfig, evaluate_pools
from t2_agents.evaluate.replay import ReplayPool, replay, replay_many, replay_rules
from t2_agents.graph import ThinkingContext, ThinkingSettings, build_parallel_thinking_graph
from t2_agents.serve import ServeConfig, ThinkingService, serve_in_thread

KIND = "agree-2"
BUILT_IN = ("adaptive", "esc", "hybrid")


class FirstAgreement(StopCriterion):
    """The toy rule: one path at a time; stop once two valid votes agree."""

    kind = KIND
    summary = "one path at a time; stop once two valid votes agree"
    reason = "agreed"

    def fires(self, votes: Votes, settings: StopRules) -> Any:
        return votes.top1 >= 2

    def default_wave(self, settings: StopRules) -> int:
        return 1


@pytest.fixture()
def toy_rule() -> Iterator[str]:
    """Register the toy rule for one test; unregister it afterwards."""
    register_stop_rule(FirstAgreement)
    try:
        yield KIND
    finally:
        unregister_stop_rule(KIND)
    assert stop_rule_kinds() == BUILT_IN


def test_the_registry_lists_the_toy_rule_everywhere(toy_rule: str) -> None:
    assert stop_rule_kinds() == (*BUILT_IN, toy_rule)
    assert replay_rules()[-1] == toy_rule
    assert toy_rule in names.replay_policies() and toy_rule in names.live_policies()
    assert names.policy_names()[toy_rule].needs_estimator is False  # it ignores T2's N
    assert parse_live_policies(f"t2, {toy_rule}") == ("t2", toy_rule)
    rule = StopRule(kind=toy_rule)
    assert (rule.name, rule.follow_up(), rule.wave_sizes(first=5, n_max=8)) == (KIND, 1, (1, 1))
    assert rule.decide(["7", "8", "7"], wave=["7"]).reason == "agreed"
    with pytest.raises(ConfigError, match="registered already"):
        register_stop_rule(FirstAgreement)


def test_replay_draws_until_two_votes_agree(toy_rule: str) -> None:
    pool = ReplayPool(("7", "8", "7", None, "7"), (1, 2, 3, 4, 5), frozenset({"7"}))
    out = replay_many(pool, [toy_rule], orders=[[0, 1, 2, 3, 4], [1, 3, 0, 4, 2]])[toy_rule]
    assert out.samples.tolist() == [3, 4] and out.rounds.tolist() == [3, 4]
    assert out.tokens.tolist() == [6.0, 12.0] and out.credit.tolist() == [1.0, 1.0]
    # the live rule stops where the replay stops, on the same order
    answers = ["8", None, "7", "7", "7"]
    live = next(k for k in range(1, 6) if StopRule(kind=toy_rule).decide(
        answers[:k], wave=answers[k - 1 : k]).stop)  # fmt: skip
    assert live == 4
    assert replay(pool, toy_rule, replays=50).samples.max() <= 5
    report = evaluate_pools([pool], config=EvalConfig(policies=("fixed", toy_rule), replays=20))
    row = report.result(toy_rule)
    assert not row.exact and 2.0 <= row.mean_samples <= 5.0 and row.accuracy == 1.0


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_the_graph_samples_in_waves_of_one_and_stops_by_the_toy_rule(
    toy_rule: str, fanout: str
) -> None:
    context = ThinkingContext(n_max=8, stop=toy_rule, fanout=fanout)  # type: ignore[arg-type]
    graph = build_parallel_thinking_graph(engine=FakeEngine(answers={"7": 1.0}), context=context)
    state = graph.invoke({"question": "What is 3 + 4?"})
    assert (state["answer"], state["stopped"], state["policy"]) == ("7", "agreed", KIND)
    assert [w["size"] for w in state["waves"]] == [1, 1] and state["cost"]["samples"] == 2
    # a run's JSON context names it too (checked against the registry when the run starts)
    plain = build_parallel_thinking_graph(engine=FakeEngine(answers={"7": 1.0}), n_max=8)
    again = plain.invoke({"question": "What is 3 + 4?"}, context=ThinkingSettings(stop=toy_rule))
    assert again["stopped"] == "agreed" and again["stop_rule"]["kind"] == KIND


def test_the_endpoint_accepts_the_toy_rule_as_t2_stop_rule(toy_rule: str) -> None:
    service = ThinkingService(FakeEngine(answers={"7": 1.0}), config=ServeConfig(port=0))
    context = serve_in_thread(service)
    base = context.__enter__()
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            body = {"model": "fake-engine", "messages": [{"role": "user", "content": "3 + 4?"}]}
            t2 = client.post(
                "/v1/chat/completions", json={**body, "t2": {"stop_rule": toy_rule, "n": 8}}
            ).json()["t2"]
            assert (t2["waves"], t2["stopped"], t2["answer"]) == ([1, 1], "agreed", "7")
            unknown = client.post("/v1/chat/completions", json={**body, "t2": {"stop_rule": "x"}})
            assert unknown.status_code == 400
            assert f"{', '.join(BUILT_IN)}, {KIND}" in unknown.text  # the allowed names
    finally:
        context.__exit__(None, None, None)


def test_unknown_kinds_name_the_registered_rules() -> None:
    with pytest.raises(ConfigError, match=r"kind='agree-2' is not one of the registered stop "):
        StopRule(kind=KIND)
    with pytest.raises(ConfigError, match=r"\(adaptive, esc, hybrid\); pass one of them"):
        ThinkingContext(stop=KIND)  # type: ignore[arg-type]
    assert np.array_equal(replay_rules(), ("fixed", *BUILT_IN))
