"""Load (issue 7): 50 concurrent questions through the async graph on one real engine.

The tests import ``bench/load.py`` and run its load at small settings (T2 policy clamped to
``n_max=2``, 4 new tokens, greedy): two concurrent rounds of 50 distinct questions on the one
session engine, then a sequential reference. They assert that every question completes, that
nothing crosses between questions (the state's question and prompt, the budget node's features
and the branches' prompt token counts are the question's own, no completion carries another
question's numbers), that the greedy answers agree with the reference, that the engine calls
really overlapped, and that round 2's peak memory is not above round 1's by more than 10 %.
A fast test checks that the cross-talk check itself catches swapped results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from conftest import load_script, needs_vllm

from t2_agents.backends.fake import FakeEngine

BENCH = Path(__file__).resolve().parents[1] / "bench" / "load.py"
QUESTIONS = 50
N_MAX = 2
MAX_TOKENS = 4
MEMORY_SLACK = 1.10
"""Round 2's peak RSS (own + children) may exceed round 1's by at most 10 %."""


load: ModuleType = load_script(BENCH, "bench_load")


def _run(engine: Any) -> dict[str, Any]:
    """The load at test settings: T2 policy (shipped estimator), n_max 2, 4 tokens, 2 rounds."""
    from t2_agents.budget.shipped import load_t2_policy

    policy = load_t2_policy(engine)
    result: dict[str, Any] = load.run_load(
        engine,
        questions=QUESTIONS,
        policy=policy,
        n_max=N_MAX,
        max_tokens=MAX_TOKENS,
        rounds=2,
        workers=64,
        interval=0.5,
    )
    return result


def _assert_no_crosstalk(result: dict[str, Any], *, min_agreement: float) -> None:
    assert result["settings"]["policy"] == "t2"
    assert len(result["per_question"]) == QUESTIONS
    reference = result["sequential"]
    assert reference["questions"] == QUESTIONS and reference["errors"] == 0
    for run in result["rounds"]:
        label = f"round {run['round']}"
        assert run["questions"] == QUESTIONS and run["errors"] == 0, label
        assert 1 * QUESTIONS <= run["completions"] <= N_MAX * QUESTIONS, label
        assert set(run["n_chosen"]) <= {1, 2}, label
        talk = run["crosstalk"]
        assert talk["errors"] == [], (label, talk["errors"][:3])
        assert talk["failures"] == [], (label, talk)
        assert talk["features_checked"] == QUESTIONS, label  # T2 encodes every question
        assert talk["max_feature_rel_diff"] < load.FEATURE_RTOL, label
        assert talk["n_mismatch"] == [], label  # same features -> same budget
        assert talk["answer_agreement"] >= min_agreement, (label, talk["answer_agreement"])
        overlap = run["overlap"]
        # More calls in the engine at once than asyncio's default 6 executor threads allow:
        # the questions really ran concurrently (serialised inside transformers by its lock).
        assert overlap["peak_in_flight"] >= 10, (label, overlap)
        assert overlap["encode_calls"] == QUESTIONS, (label, overlap)
    for row in result["per_question"]:  # each question's own prompt length, in both runs
        assert row["concurrent"]["prompt_tokens"] == row["sequential"]["prompt_tokens"], row
        assert len(row["concurrent"]["prompt_tokens"]) == 1, row
    assert len(result["prompt_token_counts"]) >= 3  # lengths differ, so a swap would show


def _assert_memory_bounded(result: dict[str, Any]) -> None:
    first, second = result["memory"]["round_peaks_mb"]
    assert second <= first * MEMORY_SLACK, result["memory"]
    for run in result["rounds"]:
        assert run["memory"]["samples"] >= 2, run["memory"]  # sampled, not just guessed
    assert result["rss_after_mb"] <= result["rounds"][0]["memory"]["peak_mb"] * MEMORY_SLACK


@pytest.mark.slow
def test_fifty_concurrent_questions_transformers(engine: Any) -> None:
    result = _run(engine)
    # The lock serialises every call and single-prompt calls are exact: answers, texts and
    # features are identical to the sequential reference.
    _assert_no_crosstalk(result, min_agreement=1.0)
    for run in result["rounds"]:
        assert run["crosstalk"]["text_agreement"] == 1.0, run["crosstalk"]
        assert run["crosstalk"]["max_feature_rel_diff"] == 0.0, run["crosstalk"]
    _assert_memory_bounded(result)


@pytest.mark.slow
@needs_vllm
def test_fifty_concurrent_questions_vllm(vllm_engine: Any) -> None:
    result = _run(vllm_engine)
    # vLLM batches the 50 questions together; bf16 numerics depend on the batch, so a greedy
    # path may legitimately diverge: at least 90 % of the answers must still agree.
    _assert_no_crosstalk(result, min_agreement=0.9)
    for run in result["rounds"]:
        assert run["memory"]["children"] >= 1, run["memory"]  # the engine core is a child
        assert run["memory"]["peak_children_mb"] > 0, run["memory"]
        assert run["overlap"]["mean_in_flight"] > 5, run["overlap"]  # batched, not queued
    _assert_memory_bounded(result)


# -- the checker itself (fast, no model) ------------------------------------------------------
class _FeaturePolicy:
    """A policy that needs features (so the budget node encodes) and always chooses 2."""

    name = "features-2"
    needs_features = True
    layers: Sequence[int] = (0, 2)

    def choose(
        self, *, features: npt.NDArray[np.float32] | None, question: str, n_min: int, n_max: int
    ) -> int:
        assert features is not None and features.shape == (2, 8)
        return 2


def test_crosstalk_check_catches_swapped_results() -> None:
    engine = FakeEngine()
    questions = load.make_questions(6)
    numbers = [n for q in questions for n in q.numbers]
    assert len(numbers) == len(set(numbers)) == 18  # no number belongs to two questions
    graph = load.build_graph(engine, _FeaturePolicy(), n_max=2, max_tokens=8)
    texts = [q.text for q in questions]
    reference, _ = load.run_sequential(graph, texts)
    results, _ = load.run_concurrent(graph, texts, workers=8)
    tokens = [None] * len(questions)
    clean = load.check_crosstalk(questions, results, reference, render=engine.render, tokens=tokens)
    assert clean.failures == [] and clean.errors == [] and clean.answer_agreement == 1.0
    assert clean.features_checked == 6 and clean.max_feature_rel_diff == 0.0

    swapped = [results[1], results[0], *results[2:]]
    caught = load.check_crosstalk(
        questions, swapped, reference, render=engine.render, tokens=tokens
    )
    assert caught.wrong_question == [0, 1] and caught.wrong_prompt == [0, 1]
    assert caught.feature_mismatch == [0, 1]
    assert caught.failures == [0, 1]

    leaked = [dict(state) for state in results]
    leaked[3] = {**leaked[3], "answer": str(questions[4].total)}  # another question's sum
    assert load.check_crosstalk(
        questions, leaked, reference, render=engine.render, tokens=tokens
    ).foreign_numbers == [3]

    broken = [RuntimeError("boom"), *results[1:]]
    failed = load.check_crosstalk(questions, broken, reference, render=engine.render, tokens=tokens)
    assert len(failed.errors) == 1 and failed.answers_equal == 5
