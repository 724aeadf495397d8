"""Tests of t2_agents.ask: ``t2 ask`` is one run of the parallel-thinking graph."""

from __future__ import annotations

import pytest

from t2_agents.ask import ask_question
from t2_agents.backends.fake import FakeEngine
from t2_agents.errors import ConfigError, PromptError, TransientEngineError


def test_a_given_n_samples_that_many_paths_and_votes() -> None:
    engine = FakeEngine(answers={"42": 3.0, "41": 1.0})
    result = ask_question(engine, "What is 6 * 7?", n=8, seed=1)
    assert result["n"] == 8 and result["policy"] == "fixed-8"
    assert len(result["paths"]) == 8
    answers = [p["answer"] for p in result["paths"]]
    assert result["verdict"]["answer"] == max(set(answers), key=answers.count)
    assert result["completion_tokens"] == sum(p["tokens"] for p in result["paths"])
    assert result["out_of_distribution"] is False
    # the instruction is appended to the question the engine sees
    assert engine.sample_calls[0][0].endswith("Give only the final answer.")


def test_a_transient_engine_error_is_retried_by_the_graph() -> None:
    """The graph's retry policy covers ``t2 ask`` too (the old hand-rolled job had none)."""
    engine = FakeEngine(answers={"7": 1.0}, errors={0: [TransientEngineError("503")]})
    result = ask_question(engine, "3 + 4?", n=2, seed=0)
    assert result["verdict"]["answer"] == "7"
    assert len(engine.sample_calls) == 2  # the failed call, then the retry


def test_bad_input_names_the_value() -> None:
    with pytest.raises(PromptError):
        ask_question(FakeEngine(), "   ", n=2)
    with pytest.raises(ConfigError, match="n=0"):
        ask_question(FakeEngine(), "2 + 2?", n=0)
