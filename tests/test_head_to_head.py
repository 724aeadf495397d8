"""Tests of t2_agents.evaluate.head_to_head: the one runner behind t2 demo and t2 eval --live."""

from __future__ import annotations

from typing import Any

import pytest

from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.errors import ConfigError
from t2_agents.evaluate.head_to_head import PolicyRun, Trial, policy_totals, run_policy
from t2_agents.graph import CostLedger, ThinkingContext, build_parallel_thinking_graph


def _trials(count: int) -> list[Trial]:
    return [
        Trial(index=i, id=f"q{i}", task="demo", prompt=f"What is {i} + 1?", gold="42",
              grade=lambda answer: answer == "42")
        for i in range(count)
    ]  # fmt: skip


def _graph(n: int) -> Any:
    context = ThinkingContext(policy=FixedPolicy(n), n_max=n, max_tokens=8)
    return build_parallel_thinking_graph(engine=FakeEngine(answers={"42": 1.0}), context=context)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_outcomes_follow_the_trials_and_the_ledger_sums_them(concurrency: int) -> None:
    events: list[tuple[int, str]] = []
    ledger = CostLedger()
    run = run_policy(
        _graph(3), _trials(5), ledger=ledger, concurrency=concurrency,
        progress=lambda index, event: events.append((index, event["event"])),
    )  # fmt: skip
    assert [o["n"] for o in run.outcomes] == [3] * 5 and all(o["correct"] for o in run.outcomes)
    assert run.wall_seconds > 0 and len(ledger.steps) == 5
    for index in range(5):  # every question streams budget, its branches and the verdict
        kinds = [kind for i, kind in events if i == index]
        assert kinds[0] == "budget" and kinds[-1] == "verdict" and kinds.count("branch") == 3
    totals = policy_totals(ledger, run, policy="fixed-3")
    assert totals["questions"] == 5 and totals["correct"] == 5 and totals["accuracy"] == 1.0
    assert totals["samples"] == 15 and totals["mean_n"] == 3.0
    assert totals["completion_tokens"] == sum(o["completion_tokens"] for o in run.outcomes)


def test_bad_concurrency_and_empty_runs() -> None:
    with pytest.raises(ConfigError, match="concurrency=0 is not an int >= 1"):
        run_policy(_graph(1), _trials(1), ledger=CostLedger(), concurrency=0)
    empty = policy_totals(CostLedger(), PolicyRun([], 0.0), policy="t2")
    assert empty["questions"] == 0 and empty["accuracy"] is None and empty["mean_rounds"] is None
