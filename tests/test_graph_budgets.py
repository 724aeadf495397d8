"""A budget for a whole agent run: the account's rule, the graph, the tool and the agent."""

from __future__ import annotations

import asyncio
import doctest
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import t2_agents.graph.budgets as budgets
from t2_agents.agents import make_agent
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import FixedPolicy, T2Policy
from t2_agents.budget.stop_rules import StopRule
from t2_agents.errors import ConfigError
from t2_agents.graph import (
    CostLedger,
    RunBudget,
    ThinkingContext,
    as_tool,
    build_parallel_thinking_graph,
)
from t2_agents.graph.budgets import RunAccount

Q = "What is 6 * 7?"


def test_doctests() -> None:
    assert doctest.testmod(budgets).failed == 0


# ------------------------------------------------------------------------------ the account
def test_later_steps_are_never_starved() -> None:
    account = RunBudget(total_samples=10, steps=4, n_min=2).open()
    first = account.request(wanted=16, n_min=1, n_max=16)
    assert first.ceiling == 10 - 2 * 3  # three later steps keep n_min = 2 each
    assert first.n == 2  # 16 wanted + 3 typical steps of 16 > 10: 10 * 16 / 64 = 2.5 -> 2
    grants = [first.n] + [account.request(wanted=16, n_min=1, n_max=16).n for _ in range(3)]
    assert grants == [2, 2, 3, 3] and sum(grants) == 10


def test_a_step_gets_its_n_when_it_fits() -> None:
    account = RunBudget(total_samples=64, steps=4).open()
    assert [account.request(wanted=n, n_min=1, n_max=16).n for n in (3, 5, 2, 7)] == [3, 5, 2, 7]
    assert account.snapshot()["remaining_samples"] == 64 - 17


def test_settle_gives_back_unused_paths() -> None:
    account = RunBudget(total_samples=8, steps=2).open()
    grant = account.request(wanted=8, n_min=1, n_max=8)
    assert grant.n == 4  # 8 + a typical 8 > 8: scaled to its share
    snapshot = account.settle(grant.step, samples=2, completion_tokens=20)
    assert snapshot["spent_samples"] == 2 and snapshot["remaining_samples"] == 6
    assert account.request(wanted=8, n_min=1, n_max=8).n == 6


def test_curves_send_samples_where_the_predicted_gain_is_largest() -> None:
    steep = np.array([0.2, 0.2, 0.5, 0.5, 0.7, 0.7, 0.8, 0.8])
    flat = np.array([0.6, 0.6, 0.61, 0.61, 0.61, 0.61, 0.61, 0.61])
    account = RunBudget(total_samples=12, steps=2).open()
    first = account.request(wanted=1, n_min=1, n_max=8, curve=flat)
    second = account.request(wanted=1, n_min=1, n_max=8, curve=steep)
    assert first.n < second.n and first.n + second.n <= 12


def test_the_success_objective_gives_a_weak_step_more_than_the_sum_objective() -> None:
    """A run succeeds only if every step does: an extra path on a weak step raises the log of
    the run's predicted success more than one on a strong step (same curves, same total)."""
    strong = np.array([0.7, 0.7, 0.8, 0.8, 0.85, 0.85, 0.88, 0.88])
    weak = np.array([0.1, 0.1, 0.16, 0.16, 0.2, 0.2, 0.22, 0.22])
    grants = {}
    for objective in ("sum", "success"):
        account = RunBudget(total_samples=10, steps=3, objective=objective).open()  # type: ignore[arg-type]
        account.request(wanted=4, n_min=1, n_max=8, curve=strong)
        grants[objective] = account.request(wanted=4, n_min=1, n_max=8, curve=weak).n
    assert grants == {"sum": 3, "success": 5}
    with pytest.raises(ConfigError, match="objective='product' is not one of"):
        RunBudget(total_samples=10, objective="product")  # type: ignore[arg-type]


def test_a_token_limit_is_never_exceeded() -> None:
    account = RunBudget(total_samples=100, total_tokens=200, steps=2).open()
    grant = account.request(wanted=16, n_min=1, n_max=16, max_tokens=50)
    assert grant.n == 3  # 200 tokens / 50 per path = 4 paths, one kept for the later step
    account.settle(grant.step, samples=3, completion_tokens=150)
    assert account.request(wanted=16, n_min=1, n_max=16, max_tokens=50).n == 1
    assert account.snapshot()["remaining_tokens"] == 0


def test_exhaustion_n_min_is_recorded_as_overspend() -> None:
    account = RunBudget(total_samples=2, steps=1).open()
    account.request(wanted=2, n_min=1, n_max=4)
    grant = account.request(wanted=2, n_min=1, n_max=4)
    assert grant.n == 1 and grant.over_budget == 1
    assert grant.warning is not None and "1 over budget" in grant.warning


def test_exhaustion_error_samples_nothing() -> None:
    account = RunBudget(total_samples=2, on_exhausted="error").open()
    account.request(wanted=2, n_min=1, n_max=4)
    grant = account.request(wanted=2, n_min=1, n_max=4)
    assert grant.n == 0 and grant.warning is not None and "run budget exhausted" in grant.warning
    assert account.snapshot()["spent_samples"] == 2


def test_concurrent_requests_never_overspend() -> None:
    account = RunBudget(total_samples=50, steps=20).open()
    barrier = threading.Barrier(20)

    def step(_: int) -> int:
        barrier.wait()
        grant = account.request(wanted=8, n_min=1, n_max=8)
        account.settle(grant.step, samples=grant.n, completion_tokens=0)
        return grant.n

    with ThreadPoolExecutor(20) as pool:
        grants = list(pool.map(step, range(20)))
    assert sum(grants) <= 50 and min(grants) >= 1
    assert account.snapshot()["spent_samples"] == sum(grants)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"total_samples": 3, "steps": 4}, r"total_samples=3 is below n_min x steps = 1 x 4 = 4"),
        ({"total_samples": 8, "steps": 2, "n_min": 5}, r"pass total_samples >= 10"),
        ({"total_samples": -1}, r"total_samples=-1 is below 1"),
        ({"total_samples": 8.5}, r"total_samples=8.5 must be a whole number of samples"),
        ({"total_samples": True}, r"total_samples=True must be a whole number"),
        ({"total_samples": 8, "total_tokens": 0}, r"total_tokens=0 is below 1"),
        ({"total_samples": 8, "on_exhausted": "wait"}, r"on_exhausted='wait' is not one of"),
    ],
)
def test_bad_budgets_name_the_value_and_the_fix(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunBudget(**kwargs)


def test_an_account_shared_across_threads_is_refused() -> None:
    account = RunBudget(total_samples=8).open(thread_id="a")
    with pytest.raises(ConfigError, match="belongs to thread 'a' but thread 'b' used it"):
        account.bind("b")
    with pytest.raises(ConfigError, match="needs the run's thread_id"):
        RunBudget(total_samples=8).account_for(None)


# ------------------------------------------------------------------------------ in the graph
def _config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def test_the_graph_charges_each_thread_its_own_account() -> None:
    ledger = CostLedger()
    graph = build_parallel_thinking_graph(
        engine=FakeEngine(),
        policy=FixedPolicy(6),
        n_max=8,
        run_budget=RunBudget(total_samples=10, steps=3),
        context=ThinkingContext(ledger=ledger),
    )
    for thread in ("run-1", "run-2"):
        states = [graph.invoke({"question": f"{Q} {k}"}, _config(thread)) for k in range(3)]
        assert sum(len(s["branches"]) for s in states) <= 10
        rows = [s["cost"]["budget"] for s in states]
        assert [r["total_samples"] for r in rows] == [10, 10, 10]
        assert rows[-1]["remaining_samples"] == 10 - rows[-1]["spent_samples"] >= 0
        assert [r["used"] for r in rows] == [len(s["branches"]) for s in states]
    assert ledger.summary()["over_budget"] == 0


def test_a_run_account_used_by_a_second_thread_fails_the_step() -> None:
    graph = build_parallel_thinking_graph(
        engine=FakeEngine(), n_max=2, run_budget=RunBudget(total_samples=8).open()
    )
    graph.invoke({"question": Q}, _config("a"))
    with pytest.raises(ConfigError, match="belongs to thread 'a'"):
        graph.invoke({"question": Q}, _config("b"))


def test_exhaustion_error_state_in_the_graph() -> None:
    engine = FakeEngine()
    account = RunBudget(total_samples=2, on_exhausted="error").open()
    graph = build_parallel_thinking_graph(engine=engine, n_max=2, run_budget=account)
    assert graph.invoke({"question": Q})["answer"] is not None
    state = graph.invoke({"question": Q})
    assert state["answer"] is None and "run budget exhausted" in state["error"]
    assert state["branches"] == [] and len(engine.sample_calls) == 1
    assert state["cost"]["samples"] == 0 and state["cost"]["budget"]["remaining_samples"] == 0


def test_hybrid_waves_stop_when_the_run_budget_is_spent() -> None:
    account = RunBudget(total_samples=7).open()
    graph = build_parallel_thinking_graph(
        engine=FakeEngine(answers={"1": 0.34, "2": 0.33, "3": 0.33}),
        policy=FixedPolicy(3),
        n_max=16,
        stop=StopRule(kind="hybrid"),
        run_budget=account,
    )
    state = graph.invoke({"question": Q})
    assert len(state["branches"]) <= 7 and account.snapshot()["spent_samples"] <= 7
    if len(state["branches"]) == 7:
        assert state["stopped"] == "run budget"


class CurveEstimator:
    layers = (0, 2)
    n_min, n_max = 1, 8
    model_identity = "fake-engine"
    hidden_size = 8
    has_knob = True
    grid = (1, 2, 4, 8)

    def predict_one(self, features: np.ndarray, *, tolerance: float | None = None) -> int:
        return 8

    def predict_curve(self, features: np.ndarray) -> np.ndarray:
        assert features.shape == (1, 2, 8)
        return np.array([[0.2, 0.3, 0.6, 0.7]])


def test_a_curve_head_policy_hands_its_curve_to_the_account() -> None:
    policy = T2Policy(CurveEstimator())  # type: ignore[arg-type]
    curve = policy.predict_curve(np.zeros((2, 8)))
    assert curve is not None and curve.tolist() == [0.2, 0.3, 0.3, 0.6, 0.6, 0.6, 0.6, 0.7]
    graph = build_parallel_thinking_graph(
        engine=FakeEngine(), policy=policy, n_max=8, run_budget=RunBudget(total_samples=12).open()
    )
    budget = graph.invoke({"question": Q})["cost"]["budget"]
    assert budget["curve"] is True and budget["wanted"] == 8 and budget["granted"] <= 8


# ------------------------------------------------------------------------------ tool and agent
def test_concurrent_tool_calls_of_one_agent_run_never_overspend() -> None:
    ledger = CostLedger()
    budget = RunBudget(total_samples=9, steps=4)
    graph = build_parallel_thinking_graph(engine=FakeEngine(delay=0.05), n_max=8)
    agent = make_agent(graph, ledger=ledger, parallel=True, run_budget=budget)
    questions = "\n---\n".join(f"What is {k} + {k}?" for k in range(4))
    out = agent.invoke({"messages": [{"role": "user", "content": questions}]}, _config("agent"))
    assert len(out["messages"][-1].content.splitlines()) == 4
    summary = ledger.summary()
    assert summary["steps"] == 4 and summary["samples"] <= 9 and summary["over_budget"] == 0
    assert budget.account_for("agent").snapshot()["spent_samples"] == summary["samples"]


def test_async_tool_calls_share_the_budget() -> None:
    account = RunBudget(total_samples=6, steps=3).open()
    tool = as_tool(
        build_parallel_thinking_graph(engine=FakeEngine(delay=0.02), n_max=4), run_budget=account
    )

    async def main() -> list[Any]:
        calls = [
            {
                "name": tool.name,
                "args": {"question": f"{Q} {k}"},
                "id": f"c{k}",
                "type": "tool_call",
            }
            for k in range(3)
        ]
        return await asyncio.gather(*(tool.ainvoke(call) for call in calls))

    messages = asyncio.run(main())
    used = sum(len(m.artifact["branches"]) for m in messages)
    assert used <= 6 and account.snapshot()["spent_samples"] == used


def test_a_run_account_type_check() -> None:
    with pytest.raises(ConfigError, match="must be a RunBudget or a RunAccount"):
        budgets.resolve_account("64", None)  # type: ignore[arg-type]
    assert isinstance(RunBudget(total_samples=1).open(), RunAccount)


def test_the_readme_snippet_runs() -> None:
    """The python block of the README section on run budgets, on a fake engine."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    section = readme.split("## Budgets for whole agent runs and early stopping", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"engine": FakeEngine(), "policy": FixedPolicy(3)}
    exec(compile(code, "README.md", "exec"), namespace)
    snapshot = namespace["budget"].account_for("run-1").snapshot()
    assert 2 <= snapshot["spent_samples"] <= 64 and snapshot["steps"] == 2
    assert namespace["out"]["messages"][-1].content.startswith("1. ")
