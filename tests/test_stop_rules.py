"""Tests of t2_agents.budget.stop_rules: the live rules, and the published Adaptive-Consistency
rule."""

from __future__ import annotations

import doctest
import random

import numpy as np
import pytest

import t2_agents.budget.stop_rules as stop_rules
from t2_agents.budget.stop_rules import StopRule, StopRules, leader_probability, vote_counts
from t2_agents.errors import ConfigError
from t2_agents.evaluate.replay import ReplayPool, replay_many


def test_doctests() -> None:
    assert doctest.testmod(stop_rules).failed == 0


def _sequences(count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        weights = [rng.random() for _ in range(rng.randint(1, 4))]
        out.append(
            [str(rng.choices(range(len(weights)), weights)[0]) for _ in range(rng.randint(1, 24))]
        )
    return out


def _first_stop(rule: StopRule, answers: list[str]) -> int:
    for k in range(1, len(answers) + 1):
        if rule.decide(answers[:k], wave=answers[k - 1 : k]).stop:
            return k
    return len(answers)


def test_adaptive_matches_the_published_package_on_the_same_sequences() -> None:
    """The pip package ``AdaptiveConsistency`` (its BetaStoppingCriteria, scipy quadrature)."""
    ac = pytest.importorskip("adaptive_consistency")
    for threshold in (0.8, 0.95, 0.99):
        package = ac.AC(max_gens=40, stop_criteria=ac.BetaStoppingCriteria(threshold))
        rule = StopRule(kind="adaptive", threshold=threshold)
        for answers in _sequences(60, seed=int(threshold * 100)):
            for k in range(1, len(answers) + 1):
                theirs = package.should_stop(answers[:k], return_dict=True)
                ours = rule.decide(answers[:k], wave=answers[k - 1 : k])
                assert ours.leader_probability == pytest.approx(theirs["prob"], abs=1e-7)
                assert ours.stop == theirs["stop"], (threshold, answers[:k])


def test_live_adaptive_and_esc_stop_where_replay_stops() -> None:
    """The same answer order: the live rule's stop point equals the vectorised replay's."""
    for answers in _sequences(80, seed=3):
        pool = ReplayPool(tuple(answers), (1,) * len(answers), frozenset({"0"}))
        order = [list(range(len(answers)))]
        out = replay_many(pool, ["adaptive", "esc"], orders=order, stop=StopRules(window=3))
        assert _first_stop(StopRule(kind="adaptive"), answers) == int(out["adaptive"].samples[0])
        esc, live = StopRule(kind="esc", window=3), len(answers)
        for end in range(3, len(answers) + 1, 3):
            if esc.decide(answers[:end], wave=answers[end - 3 : end]).stop:
                live = end
                break
        assert live == int(out["esc"].samples[0])


def test_hybrid_waves_and_decisions() -> None:
    rule = StopRule(kind="hybrid", window=2)
    assert rule.wave_sizes(first=5, n_max=16) == (5, 2)
    assert rule.decide(["a", "a", "a", "b"], wave=["a", "b"]).reason == "decisive"
    assert rule.decide(["a", "b", "c"], wave=["c"]).stop is False
    assert rule.decide(["a", "b", "c", "d"], wave=["c", "d"], n_max=4).reason == "n_max"
    assert StopRule(kind="esc").decide(["a"] * 3 + [None], wave=["a"] * 3 + [None]).stop is False


def test_vote_counts_ignore_missing_answers() -> None:
    assert vote_counts([None, None]) == (0, 0, 0)
    assert leader_probability(0, 0) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"threshold": 1.0}, "threshold=1.0 is outside"),
        ({"threshold": 0.0}, "threshold=0.0 is outside"),
        ({"threshold": True}, "threshold=True"),
        ({"window": 0}, "window=0"),
        ({"wave": 0}, "wave=0"),
        ({"kind": "beta"}, "kind='beta'"),
        ({"kind": "esc", "wave": 3}, "ESC's waves are its windows"),
    ],
)
def test_bad_settings_name_the_value(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StopRule(**kwargs)  # type: ignore[arg-type]


def test_waves_larger_than_n_max_are_refused() -> None:
    with pytest.raises(ConfigError, match="exceed n_max=4; pass wave/window <= 4"):
        StopRule(kind="hybrid", window=8).wave_sizes(first=2, n_max=4)


def test_array_criteria_match_scalar_ones() -> None:
    top1 = np.array([[4, 3], [2, 5]])
    top2 = np.array([[0, 0], [2, 1]])
    got = stop_rules.beta_confident(top1, top2, 0.95)
    want = [
        [leader_probability(a, b) >= 0.95 for a, b in zip(r1, r2, strict=True)]
        for r1, r2 in zip(top1.tolist(), top2.tolist(), strict=True)
    ]
    assert got.tolist() == want == [[True, False], [False, False]]


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.1", True])
def test_cap_tolerance_outside_0_1_is_refused_with_the_fix(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"cap_tolerance=.* is not an accuracy in \[0, 1\].*None"):
        StopRule(kind="hybrid", cap_tolerance=bad)  # type: ignore[arg-type]


def test_cap_tolerance_defaults_to_the_predicted_peak_and_none_turns_it_off() -> None:
    assert StopRule(kind="hybrid").cap_tolerance == 0.0
    assert StopRules(cap_tolerance=None).cap_tolerance is None
