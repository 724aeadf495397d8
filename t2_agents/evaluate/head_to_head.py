"""Budget policies head to head: the same questions through one graph per policy.

The one runner behind ``t2 demo`` (:func:`~t2_agents.cli.demo.run_demo`: T2 against a fixed N)
and ``t2 eval --live`` (:func:`~t2_agents.evaluate.live.live_eval`: every live policy). Each
:class:`Trial` is one question with its own grader; :func:`run_policy` answers every trial with
one policy's graph (streaming the graph's custom events to a progress callback, optionally
several questions at a time so an engine that batches concurrent requests, like vLLM, can), and
:func:`policy_totals` sums the outcomes and the policy's :class:`~t2_agents.graph.CostLedger`.

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> from t2_agents.graph import CostLedger, build_parallel_thinking_graph
    >>> graph = build_parallel_thinking_graph(engine=FakeEngine(), n_max=3)
    >>> trial = Trial(index=0, id="q0", task="demo", prompt="What is 2 + 2?", gold="4",
    ...               grade=lambda answer: answer == "4")
    >>> ledger = CostLedger()
    >>> run = run_policy(graph, [trial], ledger=ledger)
    >>> [outcome["samples"] for outcome in run.outcomes]
    [3]
    >>> policy_totals(ledger, run, policy="fixed-3")["questions"]
    1
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from typing_extensions import TypedDict

from t2_agents.checks import check_int
from t2_agents.errors import ConfigError
from t2_agents.graph import CONFIG_KEY, CostLedger, ThinkingGraph

__all__ = [
    "Grader",
    "Outcome",
    "PolicyRun",
    "PolicyTotals",
    "Progress",
    "Trial",
    "policy_totals",
    "run_policy",
]

Grader = Callable[[str | None], bool]
"""Whether a voted answer (None: no answer) is right."""

Progress = Callable[[int, dict[str, Any]], None]
"""``progress(trial_index, event)``: one custom stream event of the graph (``budget``,
``branch`` x N, ``wave``, ``verdict``; see :mod:`t2_agents.graph.nodes`)."""


@dataclass(frozen=True, kw_only=True)
class Trial:
    """One question of a head-to-head run.

    Example:
        >>> Trial(index=0, id="q", task="t", prompt="2+2?", gold="4", grade=bool).id
        'q'
    """

    index: int
    """Position of the question in the run (the progress callback's first argument)."""
    id: str
    """The question's id (e.g. ``products-2026-0``)."""
    task: str
    """The task; it chooses the answer extractor of the vote."""
    prompt: str
    """What the graph is asked (the question and the instruction)."""
    gold: str
    """The reference answer, for display."""
    grade: Grader
    """Whether a voted answer is right."""


class Outcome(TypedDict):
    """One policy on one question: what it chose, answered and spent."""

    policy: str | None
    """The policy's name as the graph recorded it (e.g. ``t2``, ``fixed-16``)."""
    n: int
    """The budget the policy chose (before any early stop)."""
    answer: str | None
    """The voted answer (None: no path gave one)."""
    correct: bool
    """The trial's grader on the answer."""
    share: float
    """The answer's share of the valid votes."""
    samples: int
    """Paths sampled (fewer than ``n`` when a stop rule fired early)."""
    completion_tokens: int
    """Tokens generated over every path."""
    prompt_tokens: int
    """Prompt tokens of the step's engine calls."""
    seconds: float
    """The step's wall time."""


class PolicyTotals(TypedDict):
    """One policy over every question of a run."""

    policy: str
    """The policy's display name."""
    questions: int
    """Questions answered."""
    correct: int
    """Questions answered right."""
    accuracy: float | None
    """``correct / questions`` (None without questions)."""
    samples: int
    """Paths sampled in total."""
    mean_n: float | None
    """Mean paths sampled per question."""
    completion_tokens: int
    """Tokens generated in total."""
    mean_completion_tokens: float | None
    """Tokens generated per question."""
    prompt_tokens: int
    """Prompt tokens in total."""
    total_tokens: int
    """Prompt and completion tokens in total."""
    engine_calls: int
    """Engine calls in total (one per wave in the batched fan-out)."""
    mean_engine_calls: float | None
    """Engine calls per question."""
    mean_rounds: float | None
    """Sequential waves per question (1 for one parallel wave)."""
    seconds: float
    """The sum of the steps' wall times."""
    seconds_per_question: float | None
    """``seconds / questions``."""
    wall_seconds: float
    """Wall time of the whole run of this policy (less than ``seconds`` when questions ran
    concurrently)."""


@dataclass(frozen=True)
class PolicyRun:
    """What :func:`run_policy` returns: one outcome per trial and the run's wall time."""

    outcomes: list[Outcome]
    """One :class:`Outcome` per trial, in the trials' order."""
    wall_seconds: float
    """Wall time of the whole run (less than the steps' sum when questions ran concurrently)."""


def run_policy(
    graph: ThinkingGraph,
    trials: Sequence[Trial],
    *,
    ledger: CostLedger,
    progress: Progress | None = None,
    concurrency: int = 1,
    thread_id: str | None = None,
) -> PolicyRun:
    """Answer every trial with ``graph``; add each step's cost record to ``ledger``.

    Args:
        graph: A parallel-thinking graph (one policy, one context).
        trials: The questions.
        ledger: Receives one cost record per trial.
        progress: Called with ``(trial.index, event)`` for every custom stream event.
        concurrency: Questions in flight at once (1: one after another). An engine that
            batches concurrent requests (vLLM) answers several questions in about the time of
            one; the transformers engine serialises its calls, so more buys it nothing.
        thread_id: ``configurable.thread_id`` of every run (a run budget keeps one account per
            thread); None: no thread id.

    Returns:
        The outcomes (one per trial, in order) and the wall time.

    Raises:
        ConfigError: ``concurrency < 1``, or the graph ended a run without a cost record.
    """
    check_int("concurrency", concurrency, low=1)
    started = time.perf_counter()

    def one(trial: Trial) -> dict[str, Any]:
        return _think(graph, trial, progress, thread_id)

    if concurrency == 1 or len(trials) < 2:
        states = [one(trial) for trial in trials]
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(trials))) as pool:
            states = list(pool.map(one, trials))
    outcomes = []
    for trial, state in zip(trials, states, strict=True):
        ledger.add_state(state)
        outcomes.append(_outcome(state, trial))
    return PolicyRun(outcomes, time.perf_counter() - started)


def _think(
    graph: ThinkingGraph, trial: Trial, progress: Progress | None, thread_id: str | None
) -> dict[str, Any]:
    configurable: dict[str, Any] = {CONFIG_KEY: {"task": trial.task}}
    if thread_id is not None:
        configurable["thread_id"] = thread_id
    config: RunnableConfig = {"configurable": configurable}
    final: dict[str, Any] | None = None
    for mode, data in graph.stream(
        {"question": trial.prompt}, config, stream_mode=["custom", "values"]
    ):
        if mode == "custom" and progress is not None and isinstance(data, Mapping):
            progress(trial.index, dict(data))
        elif mode == "values" and isinstance(data, Mapping):
            final = dict(data)
    if final is None or not isinstance(final.get("cost"), Mapping):
        raise ConfigError(f"the graph ended without a cost record for question {trial.id}")
    return final


def _outcome(state: Mapping[str, Any], trial: Trial) -> Outcome:
    cost = state["cost"]
    answer = state.get("answer")
    return {
        "policy": state.get("policy"),
        "n": int(state.get("n", cost["n_chosen"])),
        "answer": answer,
        "correct": trial.grade(answer),
        "share": float(cost["share"]),
        "samples": int(cost["samples"]),
        "completion_tokens": int(cost["completion_tokens"]),
        "prompt_tokens": int(cost["prompt_tokens"]),
        "seconds": float(cost["wall_seconds"]),
    }


def policy_totals(ledger: CostLedger, run: PolicyRun, *, policy: str) -> PolicyTotals:
    """Sum one policy's run and ledger (the ledger given to :func:`run_policy`).

    Example:
        >>> policy_totals(CostLedger(), PolicyRun([], 0.0), policy="t2")["accuracy"] is None
        True
    """
    summary = ledger.summary()
    outcomes = run.outcomes
    count = len(outcomes)
    correct = sum(1 for outcome in outcomes if outcome["correct"])

    def mean(total: float) -> float | None:
        return total / count if count else None

    return {
        "policy": policy,
        "questions": count,
        "correct": correct,
        "accuracy": mean(correct),
        "samples": int(summary["samples"]),
        "mean_n": summary["mean_n"],
        "completion_tokens": int(summary["completion_tokens"]),
        "mean_completion_tokens": mean(summary["completion_tokens"]),
        "prompt_tokens": int(summary["prompt_tokens"]),
        "total_tokens": int(summary["total_tokens"]),
        "engine_calls": int(summary["engine_calls"]),
        "mean_engine_calls": mean(summary["engine_calls"]),
        "mean_rounds": mean(sum(max(1, len(step.waves)) for step in ledger.steps)),
        "seconds": float(summary["wall_seconds"]),
        "seconds_per_question": mean(summary["wall_seconds"]),
        "wall_seconds": run.wall_seconds,
    }
