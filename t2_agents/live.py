"""Live evaluation: fixed ``N_D`` against T2 on real graph runs (``t2 eval --live``).

Where :mod:`t2_agents.evaluate` replays collected pools, :func:`live_eval` answers the first
questions of the collections again with the parallel-thinking graph on an engine, once with
``FixedPolicy(N_D)`` and once with the T2 policy, with each collection's sampling settings
(temperature, top-p, max tokens) and each record's task extractor. A question is right when the
voted answer is among the record's ``correct`` answers or equals its normalised gold. Costs come
from one :class:`~t2_agents.graph.CostLedger` per policy.

Example:
    >>> live_eval(engine, ["runs/heldout/lcm"], "artifacts/t2", n_d=8)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig

from t2_agents.answers import normalize_answer
from t2_agents.backends.base import Engine
from t2_agents.errors import ConfigError, DataError
from t2_agents.graph import CONFIG_KEY, CostLedger, ThinkingContext, build_parallel_thinking_graph
from t2_agents.policies import BudgetEstimator, BudgetPolicy, FixedPolicy, T2Policy

__all__ = ["LIVE_POLICIES", "LiveProgress", "live_eval", "live_table"]

LIVE_POLICIES: tuple[str, str] = ("fixed", "t2")
"""Keys of the two runs in :func:`live_eval`'s result."""

LiveProgress = Callable[[int, int], None]
"""``progress(done, total)`` after every (question, policy) run."""


def _pick(
    collections: Sequence[Any], questions: int, exclude: frozenset[str] = frozenset()
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """The first ``questions`` records, round-robin over the collections: (collection, record).

    Records whose question key is in ``exclude`` (seen in training) or already picked are
    skipped; the second value counts the skipped records that were seen in training.
    """
    from t2_agents.calibrate import record_key

    picked: list[tuple[int, dict[str, Any]]] = []
    seen, skipped = set(exclude), 0
    depth = max(len(c.records) for c in collections)
    for r in range(depth):
        for k, c in enumerate(collections):
            if r >= len(c.records) or len(picked) >= questions:
                continue
            key = record_key(c.records[r])
            if key in seen:
                skipped += key in exclude
                continue
            seen.add(key)
            picked.append((k, c.records[r]))
    return picked, skipped


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
) -> dict[str, Any]:
    """Run fixed ``N_D`` and T2 through the graph on ``questions`` collected questions.

    Args:
        engine: The engine (the collections' model, e.g. ``TransformersEngine(model=...)``).
        folders: Collection folders (made by ``t2 collect``); questions are taken in order,
            round-robin over the folders.
        estimator: A T2 estimator folder, or a loaded estimator.
        n_d: The fixed policy's budget (the replay's ``N_D``).
        questions: How many questions (>= 1).
        seed: Base sampling seed of every run.
        progress: Called with ``(done, total)`` after every (question, policy) run.

    Returns:
        JSON-ready dict: ``questions``, ``n_d``, ``model``, ``folders``, ``policies`` (per
        ``fixed``/``t2``: ``name``, ``correct``, ``accuracy``, ``mean_samples``,
        ``mean_completion_tokens``, ``seconds_per_question``, ``seconds``) and ``rows`` (one
        per question: ``id``, ``task``, ``gold`` and per policy ``n``, ``answer``, ``correct``).

    Raises:
        ConfigError: ``questions`` or ``n_d`` below 1.
        DataError: No folder, or empty collections.
        ArtifactError: An estimator fitted on another model.
    """
    from t2_agents.evaluate import _load

    for name, value in (("questions", questions), ("n_d", n_d)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} must be an int >= 1")
    collections = _load(folders, "evaluation")
    if isinstance(estimator, str | Path):
        from t2_agents.estimator import T2Estimator

        estimator = T2Estimator.load(
            estimator, expect_identity=engine.identity, expect_hidden_size=engine.hidden_size
        )
    policies: dict[str, BudgetPolicy] = {
        "fixed": FixedPolicy(n_d),
        "t2": T2Policy(estimator, engine=engine),
    }
    graphs = []
    for c in collections:
        cfg = c.config
        context = ThinkingContext(
            n_min=1, n_max=max(n_d, int(cfg.samples)), temperature=cfg.temperature,
            top_p=cfg.top_p, max_tokens=cfg.max_tokens, seed=seed,
        )  # fmt: skip
        graphs.append({
            key: build_parallel_thinking_graph(engine=engine, policy=p, context=context)
            for key, p in policies.items()
        })  # fmt: skip
    trained = frozenset(getattr(estimator, "training_keys", frozenset()))
    picked, skipped = _pick(collections, questions, trained)
    if not picked:
        raise DataError(
            f"no question in {[str(f) for f in folders]} is new to the estimator ({skipped} were "
            "seen in training); evaluate on questions it never saw"
        )
    ledgers = {key: CostLedger() for key in LIVE_POLICIES}
    rows: list[dict[str, Any]] = []
    done, total = 0, len(picked) * len(LIVE_POLICIES)
    for k, record in picked:
        row: dict[str, Any] = {"id": record["id"], "task": record["task"], "gold": record["gold"]}
        config: RunnableConfig = {"configurable": {CONFIG_KEY: {"task": record["task"]}}}
        for key in LIVE_POLICIES:
            state = graphs[k][key].invoke({"question": record["prompt"]}, config)
            ledgers[key].add_state(state)
            answer = state.get("answer")
            row[key] = {"n": int(state["cost"]["samples"]), "answer": answer,
                        "correct": is_right(answer, record)}  # fmt: skip
            done += 1
            if progress is not None:
                progress(done, total)
        rows.append(row)
    count = len(rows)
    out: dict[str, Any] = {}
    for key in LIVE_POLICIES:
        summary = ledgers[key].summary()
        right = sum(1 for row in rows if row[key]["correct"])
        out[key] = {
            "name": f"fixed N_D={n_d}" if key == "fixed" else "t2",
            "correct": right,
            "accuracy": right / count,
            "mean_samples": summary["samples"] / count,
            "mean_completion_tokens": summary["completion_tokens"] / count,
            "seconds_per_question": summary["wall_seconds"] / count,
            "seconds": summary["wall_seconds"],
        }
    return {
        "questions": count,
        "skipped_seen_in_training": skipped,
        "n_d": n_d,
        "model": engine.identity,
        "folders": [str(f) for f in folders],
        "policies": out,
        "rows": rows,
    }


def live_table(result: Mapping[str, Any]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Header and rows of strings for :func:`live_eval`'s per-policy results."""
    header: tuple[str, ...] = (
        "policy",
        "accuracy",
        "mean N",
        "mean tokens",
        "s / question",
        "total s",
    )
    rows: list[tuple[str, ...]] = [
        (
            str(p["name"]),
            f"{p['accuracy']:.3f}",
            f"{p['mean_samples']:.2f}",
            f"{p['mean_completion_tokens']:.1f}",
            f"{p['seconds_per_question']:.2f}",
            f"{p['seconds']:.1f}",
        )
        for p in (result["policies"][key] for key in LIVE_POLICIES)
    ]
    return header, rows
