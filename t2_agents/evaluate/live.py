"""Live evaluation: every live policy on real graph runs (``t2 eval --live``).

Where :mod:`t2_agents.evaluate.offline` replays collected pools, :func:`live_eval` answers the first
questions of the collections again with the parallel-thinking graph on an engine, once per
policy of :data:`LIVE_POLICIES`, with each collection's sampling settings (temperature, top-p,
max tokens) and each record's task extractor:

- ``fixed``: ``FixedPolicy(N_D)``; ``t2``: the T2 policy, one wave;
- ``adaptive``, ``esc``, ``hybrid`` and any stop rule registered since: the live stop rules of
  :mod:`t2_agents.budget.stop_rules` (the hybrid's first wave is T2's N, its cap T2's predicted
  saturation budget at ``stop.cap_tolerance``), with the replay's settings (``stop``);
- ``budget``: T2 under one :class:`~t2_agents.graph.RunBudget` for all the questions, of as
  many samples as the ``t2`` run spent (``run_budget`` overrides), so both cost the same.

A question is right when the voted answer is among the record's ``correct`` answers or equals
its normalised gold. Costs come from one :class:`~t2_agents.graph.CostLedger` per policy.

Example:
    >>> live_eval(engine, ["runs/heldout/lcm"], "artifacts/t2", n_d=8)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from t2_agents.answers import normalize_answer
from t2_agents.backends.base import Engine
from t2_agents.budget import names as policy_names
from t2_agents.budget.policies import BudgetEstimator, BudgetPolicy, FixedPolicy, T2Policy
from t2_agents.budget.protocols import as_budget_estimator
from t2_agents.budget.stop_rules import StopRule, StopRules, stop_criterion, stop_rule_kinds
from t2_agents.checks import check_int
from t2_agents.errors import ConfigError, DataError
from t2_agents.evaluate.folders import load_collections
from t2_agents.evaluate.head_to_head import (
    Outcome,
    PolicyRun,
    PolicyTotals,
    Trial,
    policy_totals,
    run_policy,
)
from t2_agents.evaluate.offline import parse_policies
from t2_agents.graph import (
    CostLedger,
    RunBudget,
    ThinkingContext,
    ThinkingGraph,
    build_parallel_thinking_graph,
)

__all__ = [
    "LIVE_POLICIES",
    "LiveAnswer",
    "LiveProgress",
    "LiveResult",
    "is_right",
    "live_eval",
    "live_table",
    "parse_live_policies",
]

LIVE_POLICIES: tuple[str, ...] = policy_names.LIVE_POLICIES
"""Keys of the runs in :func:`live_eval`'s result, in the order they run (at import;
:func:`~t2_agents.budget.names.live_policies` also lists stop rules registered since)."""

LiveProgress = Callable[[int, int], None]
"""``progress(done, total)`` after every (question, policy) run."""


class LiveAnswer(TypedDict):
    """One policy on one question (a row's entry under the policy's key)."""

    n: int
    """Paths sampled."""
    answer: str | None
    correct: bool


class LiveResult(TypedDict):
    """:func:`live_eval`'s JSON-ready result (``t2 eval --live --json``: under ``live``)."""

    questions: int
    skipped_seen_in_training: int
    """Records skipped because the estimator trained on their question (by text or instance)."""
    skipped_seen_by_text: int
    """Of those, records whose text is a training question's."""
    skipped_seen_by_instance: int
    """Of those, records whose instance is a training question's in another phrasing or
    operand order (0 when the estimator records no instance keys)."""
    n_d: int
    run_budget: int | None
    """Total samples of the ``budget`` run."""
    model: str
    folders: list[str]
    policies: dict[str, PolicyTotals]
    """Per policy key: the totals (``policy`` holds the display name, e.g. ``fixed N_D=8``)."""
    rows: list[dict[str, Any]]
    """One per question: ``id``, ``key`` (:func:`~t2_agents.calibrate.training_set.record_key`),
    ``task``,
    ``gold`` and per policy key a :class:`LiveAnswer`."""


def _pick(
    collections: Sequence[Any],
    questions: int,
    exclude: frozenset[str] = frozenset(),
    exclude_instances: frozenset[str] = frozenset(),
) -> tuple[list[tuple[int, dict[str, Any]]], tuple[int, int]]:
    """The first ``questions`` records, round-robin over the collections: (collection, record).

    Records whose text key is in ``exclude`` or whose instance key is in ``exclude_instances``
    (seen in training), or whose text or instance was already picked, are skipped; the second
    value counts the skipped records seen in training: (by text, by instance only).
    """
    from t2_agents.calibrate.training_set import collection_identities

    identities = [collection_identities(c) for c in collections]
    picked: list[tuple[int, dict[str, Any]]] = []
    texts, instances = set(exclude), set(exclude_instances)
    by_text = by_instance = 0
    depth = max(len(c.records) for c in collections)
    for r in range(depth):
        for k, c in enumerate(collections):
            if r >= len(c.records) or len(picked) >= questions:
                continue
            key, instance = identities[k][0][r], identities[k][1][r]
            if key in texts or instance in instances:
                by_text += key in exclude
                by_instance += key not in exclude and instance in exclude_instances
                continue
            texts.add(key)
            instances.add(instance)
            picked.append((k, c.records[r]))
    return picked, (by_text, by_instance)


def is_right(answer: str | None, record: Mapping[str, Any]) -> bool:
    """Whether a voted answer is in ``record["correct"]`` or equals the normalised gold."""
    if answer is None:
        return False
    norm = normalize_answer(str(answer))
    correct = {str(a) for a in record.get("correct", ())}
    return answer in correct or norm in correct or norm == normalize_answer(str(record["gold"]))


def live_eval(
    engine: Engine,
    folders: Sequence[str | Path],
    estimator: str | Path | BudgetEstimator,
    *,
    n_d: int,
    questions: int = 8,
    seed: int = 0,
    progress: LiveProgress | None = None,
    policies: Sequence[str] | None = None,
    stop: StopRules | None = None,
    run_budget: int | None = None,
    concurrency: int = 1,
) -> LiveResult:
    """Run the live policies through the graph on ``questions`` collected questions.

    Args:
        engine: The engine (the collections' model, e.g. ``TransformersEngine(model=...)``).
        folders: Collection folders (made by ``t2 collect``); questions are taken in order,
            round-robin over the folders.
        estimator: A T2 estimator folder, or a loaded estimator.
        n_d: The fixed policy's budget (the replay's ``N_D``).
        questions: How many questions (>= 1).
        seed: Base sampling seed of every run.
        progress: Called with ``(done, total)`` after every (question, policy) run.
        policies: Keys of :func:`~t2_agents.budget.names.live_policies` to run (``budget``
            needs ``t2`` or ``run_budget``); None: all of them.
        stop: Settings of the stop rules (threshold, window...); None: the defaults.
        run_budget: Total samples of the ``budget`` run; None: what the ``t2`` run spent.
        concurrency: Questions in flight at once within a policy (1: one after another); an
            engine that batches concurrent requests (vLLM) answers many in about the time of
            one. Questions of collections with the same sampling settings share one graph.

    Returns:
        A :class:`LiveResult`.

    Raises:
        ConfigError: ``questions``, ``n_d`` or ``concurrency`` below 1, an unknown policy,
            ``budget`` without ``t2`` or ``run_budget``.
        DataError: No folder, or empty collections.
        ArtifactError: An estimator fitted on another model.
    """
    keys = _check(policies, questions, n_d, run_budget)
    check_int("concurrency", concurrency, low=1)
    collections = load_collections(folders, "evaluation")
    if isinstance(estimator, str | Path):
        from t2_agents.estimator.estimator import T2Estimator

        estimator = T2Estimator.load(
            estimator, expect_identity=engine.identity, expect_hidden_size=engine.hidden_size
        )
    t2 = T2Policy(estimator, engine=engine)
    trained = as_budget_estimator(estimator)
    picked, (by_text, by_instance) = _pick(
        collections, questions, trained.training_keys, trained.training_instance_keys
    )
    skipped = by_text + by_instance
    if not picked:
        raise DataError(
            f"no question in {[str(f) for f in folders]} is new to the estimator ({skipped} were "
            f"seen in training, {by_instance} of them in another phrasing or operand order); "
            "evaluate on questions it never saw"
        )
    from t2_agents.calibrate.training_set import record_key

    cfg = stop or StopRules()
    rows: list[dict[str, Any]] = [
        {"id": record["id"], "key": record_key(record), "task": record["task"],
         "gold": record["gold"]}
        for _, record in picked
    ]  # fmt: skip
    settings = [_settings(c.config) for c in collections]
    groups: dict[tuple[float, ...], list[Trial]] = {}  # questions that share a graph
    for i, (k, record) in enumerate(picked):
        groups.setdefault(settings[k], []).append(Trial(
            index=i, id=str(record["id"]), task=str(record["task"]),
            prompt=str(record["prompt"]), gold=str(record["gold"]),
            grade=functools.partial(is_right, record=record),
        ))  # fmt: skip
    ticker = _Ticker(progress, len(picked) * len(keys))
    budget_total = run_budget
    totals: dict[str, PolicyTotals] = {}
    for key in keys:
        if key == "budget" and budget_total is None:
            budget_total = totals["t2"]["samples"]
        budget = None
        if key == "budget":
            budget = RunBudget(total_samples=int(budget_total or 0), steps=len(picked))
        ledger = CostLedger()
        by_index: dict[int, Outcome] = {}
        wall = 0.0
        for setting, trials in groups.items():
            graph = _graph(engine, setting, key, n_d=n_d, seed=seed, t2=t2, stop=cfg, budget=budget)
            run = run_policy(
                graph, trials, ledger=ledger, thread_id=f"live-{key}", concurrency=concurrency,
                progress=ticker.event,
            )  # fmt: skip
            by_index.update((t.index, o) for t, o in zip(trials, run.outcomes, strict=True))
            wall += run.wall_seconds
        outcomes = [by_index[i] for i in range(len(picked))]
        for row, outcome in zip(rows, outcomes, strict=True):
            row[key] = LiveAnswer(
                n=outcome["samples"], answer=outcome["answer"], correct=outcome["correct"]
            )
        name = _names(n_d, cfg, budget_total)[key]
        totals[key] = policy_totals(ledger, PolicyRun(outcomes, wall), policy=name)
    return {
        "questions": len(rows),
        "skipped_seen_in_training": skipped,
        "skipped_seen_by_text": by_text,
        "skipped_seen_by_instance": by_instance,
        "n_d": n_d,
        "run_budget": budget_total,
        "model": engine.identity,
        "folders": [str(f) for f in folders],
        "policies": totals,
        "rows": rows,
    }


def parse_live_policies(
    policies: str | Sequence[str], *, run_budget: int | None = None, option: str = "policies"
) -> tuple[str, ...]:
    """Live policy keys from ``"t2, hybrid"`` or a sequence, in the live runs' order.

    Args:
        policies: Names from :func:`~t2_agents.budget.names.live_policies` (the registry
            :func:`t2_agents.budget.names.policy_names`), comma-separated or a sequence.
        run_budget: The ``budget`` run's total samples, if given.
        option: Where the names came from, for the message (``t2 eval``: ``--live-policies``).

    Raises:
        ConfigError: An unknown name or none (naming the value, the allowed names and the fix),
            or ``budget`` without ``t2`` and without ``run_budget``.

    Example:
        >>> parse_live_policies("hybrid, T2")
        ('t2', 'hybrid')
    """
    live = policy_names.live_policies()
    chosen = parse_policies(policies, allowed=live, option=option)
    keys = tuple(p for p in live if p in chosen)
    if "budget" in keys and "t2" not in keys and run_budget is None:
        fixed = ("t2", *keys)
        fix = f"{option} {','.join(fixed)}" if option.startswith("-") else f"{option}={fixed!r}"
        raise ConfigError(
            f"{option} {','.join(keys)!r}: the budget run spends what the t2 run spent; add t2 "
            f"({fix}) or pass run_budget=SAMPLES"
        )
    return keys


def _check(
    policies: Sequence[str] | None, questions: int, n_d: int, run_budget: int | None
) -> tuple[str, ...]:
    check_int("questions", questions, low=1)
    check_int("n_d", n_d, low=1)
    chosen = policy_names.live_policies() if policies is None else policies
    return parse_live_policies(chosen, run_budget=run_budget)


class _Ticker:
    """Calls ``progress(done, total)`` once per finished (question, policy) run (thread-safe)."""

    def __init__(self, progress: LiveProgress | None, total: int) -> None:
        self._progress, self._total, self._done = progress, total, 0
        self._lock = threading.Lock()

    def event(self, index: int, event: dict[str, Any]) -> None:
        del index
        if self._progress is None or event.get("event") != "verdict":
            return
        with self._lock:
            self._done += 1
            self._progress(self._done, self._total)


def _settings(config: Any) -> tuple[float, ...]:
    """A collection's sampling settings: temperature, top-p, max tokens, pool size."""
    return (float(config.temperature), float(config.top_p), int(config.max_tokens),
            int(config.samples))  # fmt: skip


def _graph(
    engine: Engine,
    settings: tuple[float, ...],
    key: str,
    *,
    n_d: int,
    seed: int,
    t2: T2Policy,
    stop: StopRules,
    budget: RunBudget | None,
) -> ThinkingGraph:
    policy: BudgetPolicy = FixedPolicy(n_d) if key == "fixed" else t2
    rule = None
    if key in stop_rule_kinds():
        rule = StopRule(
            kind=key, threshold=stop.threshold, window=stop.window,
            decisive_share=stop.decisive_share, min_votes=stop.min_votes,
            cap_tolerance=stop.cap_tolerance,
        )  # fmt: skip
    temperature, top_p, max_tokens, samples = settings
    context = ThinkingContext(
        n_min=1, n_max=max(n_d, int(samples)), temperature=temperature, top_p=top_p,
        max_tokens=int(max_tokens), seed=seed, stop=rule, run_budget=budget,
    )  # fmt: skip
    return build_parallel_thinking_graph(engine=engine, policy=policy, context=context)


def _names(n_d: int, stop: StopRules, budget: int | None) -> dict[str, str]:
    rules = {kind: stop_criterion(kind).label(stop) for kind in stop_rule_kinds()}
    return {"fixed": f"fixed N_D={n_d}", "t2": "t2", **rules, "budget": f"t2, run budget {budget}"}


def live_table(result: LiveResult) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and rows of strings for :func:`live_eval`'s per-policy results."""
    header: tuple[str, ...] = (
        "policy",
        "accuracy",
        "mean N",
        "mean tokens",
        "engine calls",
        "rounds",
        "s / question",
        "total s",
    )
    rows: list[tuple[str, ...]] = [
        (
            p["policy"],
            f"{p['accuracy'] or 0.0:.3f}",
            f"{p['mean_n'] or 0.0:.2f}",
            f"{p['mean_completion_tokens'] or 0.0:.1f}",
            f"{p['mean_engine_calls'] or 0.0:.2f}",
            f"{p['mean_rounds'] or 0.0:.2f}",
            f"{p['seconds_per_question'] or 0.0:.2f}",
            f"{p['seconds']:.1f}",
        )
        for p in result["policies"].values()
    ]
    return header, rows
