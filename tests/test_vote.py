"""Tests of t2_agents.voting: majority, ties, weights and the verdict record."""

from __future__ import annotations

import json
import math
import random
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2_agents.errors import ConfigError
from t2_agents.voting import Verdict, majority, vote

ANSWERS = st.lists(st.sampled_from(["a", "b", "c", None]), max_size=20)


def test_plain_majority() -> None:
    verdict = vote(["12", "12", "7", None])
    assert verdict.answer == "12"
    assert verdict.share == pytest.approx(2 / 3)
    assert verdict.distribution == {"12": 2.0, "7": 1.0}
    assert (verdict.valid, verdict.invalid, verdict.tied) == (3, 1, ("12",))


def test_distribution_order() -> None:
    verdict = vote(["c", "b", "a", "b", "c"])
    assert list(verdict.distribution) == ["b", "c", "a"]


def test_empty_and_all_invalid() -> None:
    assert vote([]) == Verdict(answer=None, share=0.0, valid=0, invalid=0)
    verdict = vote([None, None])
    assert (verdict.answer, verdict.share, verdict.valid, verdict.invalid) == (None, 0.0, 0, 2)
    assert verdict.tied == ()


def test_tie_is_deterministic_and_fair() -> None:
    answers = ["x", "y", "y", "x", None]
    for seed in range(10):
        first = vote(answers, seed=seed)
        assert first.answer in {"x", "y"}
        assert first.tied == ("x", "y")
        assert first.share == 0.5
        assert vote(answers, seed=seed) == first
    wins = sum(vote(answers, seed=seed).answer == "x" for seed in range(2000))
    assert 850 < wins < 1150


def test_tie_independent_of_input_order() -> None:
    for seed in range(20):
        assert vote(["x", "y"], seed=seed).answer == vote(["y", "x"], seed=seed).answer


def test_weighted_vote() -> None:
    verdict = vote(["a", "b", "b"], weights=[3.0, 1.0, 1.0])
    assert verdict.answer == "a"
    assert verdict.share == pytest.approx(0.6)
    assert verdict.valid == 3


def test_weighted_tie_uses_tolerance() -> None:
    verdict = vote(["a", "a", "a", "b"], weights=[0.1, 0.1, 0.1, 0.3])
    assert verdict.tied == ("a", "b")


def test_zero_weights_give_no_answer() -> None:
    verdict = vote(["a", "b"], weights=[0.0, 0.0])
    assert verdict.answer is None
    assert (verdict.share, verdict.valid, verdict.tied) == (0.0, 2, ())


@pytest.mark.parametrize(
    ("weights", "pattern"),
    [
        ([1.0], "one weight per answer"),
        ([1.0, -1.0], r"weights\[1\]=-1.0"),
        ([math.nan, 1.0], r"weights\[0\]=nan"),
        ([1.0, math.inf], r"weights\[1\]=inf"),
        ([1.0, "x"], r"weights\[1\]='x'"),
    ],
)
def test_bad_weights(weights: list[float], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        vote(["a", "b"], weights=weights)


def test_majority() -> None:
    assert majority(["3", None, "3", "4"]) == "3"
    assert majority([None]) is None


def test_to_dict_is_json_ready() -> None:
    payload = vote(["a", "b", "b", None]).to_dict()
    assert json.loads(json.dumps(payload)) == {
        "answer": "b",
        "share": pytest.approx(2 / 3),
        "distribution": {"b": 2.0, "a": 1.0},
        "valid": 3,
        "invalid": 1,
        "tied": ["b"],
        "rule": "majority",
        "warning": None,
    }


@given(ANSWERS, st.integers(min_value=0, max_value=2**32))
def test_vote_invariants(answers: list[str | None], seed: int) -> None:
    verdict = vote(answers, seed=seed)
    assert 0.0 <= verdict.share <= 1.0
    assert verdict.valid + verdict.invalid == len(answers)
    assert sum(verdict.distribution.values()) == verdict.valid
    if verdict.answer is None:
        assert verdict.valid == 0
    else:
        assert verdict.answer in verdict.tied
        assert verdict.distribution[verdict.answer] == max(verdict.distribution.values())


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", None]),
            st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
        ),
        max_size=20,
    )
)
def test_weighted_invariants(pairs: list[tuple[str | None, float]]) -> None:
    answers = [answer for answer, _ in pairs]
    verdict = vote(answers, weights=[weight for _, weight in pairs])
    assert 0.0 <= verdict.share <= 1.0
    assert verdict.valid + verdict.invalid == len(answers)
    assert verdict.answer is None or verdict.answer in verdict.tied


# ------------------------------------------------------------------ hostile input (issue 7)
ANY_ANSWERS = st.lists(
    st.none() | st.text(max_size=12) | st.sampled_from(["1e999999", "__import__('os')", "{{7*7}}"]),
    max_size=40,
)
SEEDS = st.integers(min_value=-(2**70), max_value=2**70)


@settings(max_examples=300, deadline=None)
@given(ANY_ANSWERS, SEEDS, st.randoms(use_true_random=False))
def test_vote_on_arbitrary_answers(
    answers: list[str | None], seed: int, rnd: random.Random
) -> None:
    verdict = vote(answers, seed=seed)
    counts = Counter(a for a in answers if a is not None)
    assert verdict.valid == sum(counts.values()) and verdict.invalid == answers.count(None)
    assert verdict.distribution == {a: float(c) for a, c in counts.items()}
    assert list(verdict.distribution.values()) == sorted(verdict.distribution.values())[::-1]
    assert 0.0 <= verdict.share <= 1.0
    if not counts:  # no valid answer (empty or all None): the documented empty verdict
        assert (verdict.answer, verdict.share, verdict.tied) == (None, 0.0, ())
        return
    top = max(counts.values())
    assert verdict.tied == tuple(sorted(a for a, c in counts.items() if c == top))
    assert verdict.answer in verdict.tied and counts[verdict.answer] == top
    assert verdict.share == top / verdict.valid
    shuffled = list(answers)
    rnd.shuffle(shuffled)
    assert vote(shuffled, seed=seed) == verdict  # a function of the multiset and the seed


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.none() | st.text(max_size=4),
            st.floats(min_value=0.0, max_value=sys.float_info.max, allow_nan=False)
            | st.sampled_from([0.0, 5e-324, 1e308]),
        ),
        max_size=12,
    )
)
def test_weighted_vote_on_arbitrary_weights(pairs: list[tuple[str | None, float]]) -> None:
    answers, weights = [a for a, _ in pairs], [w for _, w in pairs]
    valid_weights = [w for a, w in pairs if a is not None]
    try:
        total = math.fsum(weights)
    except OverflowError:
        total = math.inf
    if not math.isfinite(total):
        with pytest.raises(ConfigError, match="largest float"):
            vote(answers, weights=weights)
        return
    verdict = vote(answers, weights=weights)
    assert 0.0 <= verdict.share <= 1.0
    assert math.fsum(verdict.distribution.values()) == pytest.approx(math.fsum(valid_weights))
    if verdict.answer is None:
        assert math.fsum(valid_weights) == 0.0 and verdict.tied == ()
    else:
        best = max(verdict.distribution.values())
        assert verdict.distribution[verdict.answer] == pytest.approx(best, rel=1e-12)


def test_weights_whose_sum_overflows_are_config_error() -> None:
    # Before: OverflowError("intermediate overflow in fsum") from inside vote().
    with pytest.raises(ConfigError, match=r"weights sum to more than 1\.8e\+308"):
        vote(["a", "b"], weights=[1e308, 1e308])
    assert vote(["a", "b"], weights=[1e308, 1e307]).answer == "a"
