"""The demo: T2 against a fixed budget on questions the shipped estimator never saw.

:func:`run_demo` answers a handful of held-out reasoning-gym questions
(:func:`~t2_agents.evaluate.questions.heldout_questions`) with the parallel-thinking graph twice,
once with the T2 budget (the estimator shipped for the default model, or one you pass) and once
with a fixed budget ``n_max``, through the head-to-head runner
(:mod:`t2_agents.evaluate.head_to_head`), and puts accuracy, samples, tokens and wall time side
by side. A dozen live questions cannot show an accuracy difference, so the result also carries
the held-out evidence that ships with the estimator (:func:`heldout_evidence`: T2 and fixed N on
the held-out questions, the Pareto figure, and the command that reproduces them).
:func:`format_demo` renders it as rich tables for ``t2 demo``.

Example:
    >>> result = run_demo(TransformersEngine(), questions=2, n_max=4)  # doctest: +SKIP
    >>> result["totals"]["samples_ratio"]  # doctest: +SKIP
    0.5
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from typing_extensions import TypedDict

from t2_agents.backends.base import Engine
from t2_agents.budget.policies import BudgetPolicy, FixedPolicy
from t2_agents.budget.protocols import as_budget_estimator
from t2_agents.budget.shipped import load_t2_policy, resolve_estimator
from t2_agents.evaluate.head_to_head import (
    Outcome,
    PolicyTotals,
    Trial,
    policy_totals,
    run_policy,
)
from t2_agents.evaluate.questions import DEFAULT_TASKS, heldout_questions
from t2_agents.graph import CostLedger, ThinkingContext, build_parallel_thinking_graph
from t2_agents.graph.ledger import compare_ledgers
from t2_agents.tasks import Question

__all__ = [
    "POLICY_KEYS",
    "DemoProgress",
    "DemoResult",
    "DemoRow",
    "DemoSettings",
    "DemoTotals",
    "HeldoutEvidence",
    "format_demo",
    "heldout_evidence",
    "run_demo",
]

POLICY_KEYS: tuple[str, str] = ("t2", "fixed")
"""Keys of the two runs in :func:`run_demo`'s rows and totals, in the order they run."""

DemoProgress = Callable[[int, str, dict[str, Any]], None]
"""``progress(question_index, policy_key, event)``: one custom stream event of the graph
(``budget``, ``branch`` x N, ``verdict``; see :mod:`t2_agents.graph.nodes`)."""

EVIDENCE = Path(__file__).resolve().parents[2] / "docs" / "results" / "eval_heldout.json"
"""The held-out evaluation of the shipped estimator (in a source checkout)."""

REPRODUCE = (
    "t2 eval --data calibration/smollm2-135m-instruct/heldout/* "
    "--estimator t2_agents/artifacts/smollm2-135m-instruct "
    "--train-data calibration/smollm2-135m-instruct/train/* --plot docs/eval_heldout.png"
)
"""The command that reproduces :data:`EVIDENCE` (README, "The shipped estimator")."""


class DemoSettings(TypedDict):
    """What :func:`run_demo` ran with."""

    questions: int
    tasks: list[str]
    seed: int
    n_max: int
    max_tokens: int
    concurrency: int
    estimator: str
    """The estimator folder used."""
    model: str
    """The engine's model identity."""
    excluded_training_questions: int
    """Training question keys the draw skipped (the estimator's metadata records them)."""
    excluded_training_instances: int
    """Training instance keys the draw skipped too (other phrasings or operand orders of a
    training question; 0 for an artifact trained before instances were recorded)."""


class DemoRow(TypedDict):
    """One question, answered by both policies."""

    index: int
    id: str
    task: str
    question: str
    gold: str
    t2: Outcome
    fixed: Outcome


class DemoTotals(TypedDict):
    """Both policies over every question, and T2's share of the fixed budget's spend."""

    t2: PolicyTotals
    fixed: PolicyTotals
    samples_ratio: float | None
    """T2's samples / the fixed budget's samples."""
    tokens_ratio: float | None
    """T2's completion tokens / the fixed budget's completion tokens."""


class HeldoutEvidence(TypedDict):
    """The shipped estimator's held-out evaluation (``t2 eval``), summarised for the demo."""

    source: str
    """The JSON the rows come from (``docs/results/eval_heldout.json``)."""
    questions: int
    """Held-out questions (never seen in training)."""
    rows: list[dict[str, Any]]
    """``name``, ``accuracy``, ``mean_samples``, ``mean_tokens`` per policy."""
    figure: str
    """The accuracy-vs-samples Pareto figure."""
    command: str
    """The command that reproduces the evaluation."""


class DemoResult(TypedDict):
    """:func:`run_demo`'s JSON-ready result (``t2 demo --json`` prints it)."""

    settings: DemoSettings
    questions: list[DemoRow]
    totals: DemoTotals
    comparison: dict[str, Any]
    """:func:`~t2_agents.graph.compare_ledgers` (fixed vs t2)."""
    evidence: HeldoutEvidence | None
    """The held-out evidence, when the source checkout holds it."""


def run_demo(
    engine: Engine,
    *,
    questions: int = 6,
    tasks: Sequence[str] = DEFAULT_TASKS,
    seed: int = 2026,
    n_max: int = 16,
    estimator: str | Path | None = None,
    max_tokens: int = 48,
    concurrency: int = 1,
    progress: DemoProgress | None = None,
) -> DemoResult:
    """Answer held-out questions with T2 and with a fixed budget, and compare the costs.

    Every question runs through the parallel-thinking graph twice: with the T2 policy (budget in
    ``[1, n_max]``) and with ``FixedPolicy(n_max)`` (plain self-consistency), with the same
    sampling settings and the task's answer extractor; T2 answers every question first, then
    the fixed budget does.

    Args:
        engine: The engine (e.g. ``TransformersEngine()`` for the default model).
        questions: Number of questions.
        tasks: reasoning-gym tasks, taken in turn (see
            :func:`~t2_agents.evaluate.questions.heldout_questions`).
        seed: Dataset seed and base sampling seed. Questions the estimator trained on (by
            the text or instance keys its metadata records) are never drawn.
        n_max: The fixed budget, and the largest budget T2 may choose.
        estimator: T2 estimator folder; None uses the one shipped for the default model.
        max_tokens: Largest completion per path.
        concurrency: Questions in flight at once (vLLM batches them; see
            :func:`~t2_agents.evaluate.head_to_head.run_policy`).
        progress: Called with ``(question_index, policy_key, event)`` for every custom stream
            event of the graph (``budget``, one ``branch`` per path, ``verdict``).

    Returns:
        A :class:`DemoResult`.

    Raises:
        ArtifactError: No estimator given or shipped ("train one with `t2 train` or pass
            --estimator PATH"), or the estimator is for another model.
        ConfigError: Bad settings (``questions < 1``, ``n_max < 1``, unknown task, a task
            with too few questions the estimator did not train on...).

    Example:
        >>> result = run_demo(engine, questions=2, n_max=4, max_tokens=12)  # doctest: +SKIP
        >>> sorted(result["totals"])  # doctest: +SKIP
        ['fixed', 'samples_ratio', 't2', 'tokens_ratio']
    """
    estimator_path = resolve_estimator(estimator)
    t2_policy = load_t2_policy(engine, estimator_path)
    fixed_policy = FixedPolicy(n_max)
    trained = as_budget_estimator(t2_policy.estimator)
    seen, instances = trained.training_keys, trained.training_instance_keys
    items = heldout_questions(
        questions, tasks=tasks, seed=seed, exclude=seen, exclude_instances=instances
    )
    context = ThinkingContext(n_min=1, n_max=n_max, max_tokens=max_tokens, seed=seed)
    trials = [_trial(index, question) for index, question in enumerate(items)]
    policies: dict[str, BudgetPolicy] = {"t2": t2_policy, "fixed": fixed_policy}
    ledgers = {key: CostLedger() for key in POLICY_KEYS}
    totals: dict[str, PolicyTotals] = {}
    outcomes: dict[str, list[Outcome]] = {}
    for key in POLICY_KEYS:
        graph = build_parallel_thinking_graph(engine=engine, policy=policies[key], context=context)
        on_event = None if progress is None else _for_policy(progress, key)
        run = run_policy(
            graph, trials, ledger=ledgers[key], progress=on_event, concurrency=concurrency
        )
        outcomes[key] = run.outcomes
        totals[key] = policy_totals(ledgers[key], run, policy=policies[key].name)
    comparison = compare_ledgers(ledgers["fixed"], ledgers["t2"], labels=("fixed", "t2"))
    rows = [
        DemoRow(
            index=index,
            id=question.id,
            task=question.task,
            question=question.text,
            gold=question.gold,
            t2=outcomes["t2"][index],
            fixed=outcomes["fixed"][index],
        )
        for index, question in enumerate(items)
    ]
    return {
        "settings": {
            "questions": questions,
            "tasks": list(tasks),
            "seed": seed,
            "n_max": n_max,
            "max_tokens": max_tokens,
            "concurrency": concurrency,
            "estimator": str(estimator_path),
            "model": engine.identity,
            "excluded_training_questions": len(seen),
            "excluded_training_instances": len(instances),
        },
        "questions": rows,
        "totals": {
            "t2": totals["t2"],
            "fixed": totals["fixed"],
            "samples_ratio": comparison["metrics"]["samples"]["ratio"],
            "tokens_ratio": comparison["metrics"]["completion_tokens"]["ratio"],
        },
        "comparison": comparison,
        "evidence": heldout_evidence(n_max=n_max),
    }


def _trial(index: int, question: Question) -> Trial:
    return Trial(
        index=index, id=question.id, task=question.task, prompt=question.prompt,
        gold=question.gold, grade=question.is_correct,
    )  # fmt: skip


def _for_policy(progress: DemoProgress, key: str) -> Callable[[int, dict[str, Any]], None]:
    def on_event(index: int, event: dict[str, Any]) -> None:
        progress(index, key, event)

    return on_event


def heldout_evidence(*, n_max: int = 16, source: Path = EVIDENCE) -> HeldoutEvidence | None:
    """The shipped estimator's held-out evaluation: T2, fixed N at T2's cost, fixed ``n_max``, N_D.

    Reads ``t2 eval``'s JSON (``docs/results/eval_heldout.json`` in a source checkout); returns
    None when it is absent (an installed wheel) or unreadable.

    Example:
        >>> evidence = heldout_evidence()
        >>> evidence is None or evidence["rows"][0]["name"] == "t2"
        True
    """
    try:
        report = json.loads(source.read_text())
        results = {row["name"]: row for row in report["results"]}
        curve = [float(a) for a in report["fixed_curve"]]
        t2 = results["t2"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    rows: list[dict[str, Any]] = [_evidence_row("t2", t2)]
    mean_n = float(t2["mean_samples"])
    low = min(max(int(mean_n), 1), len(curve))
    high = min(low + 1, len(curve))
    frac = mean_n - low if high > low else 0.0
    rows.append(
        {
            "name": f"fixed N={mean_n:.2f} (T2's cost, interpolated)",
            "accuracy": curve[low - 1] + frac * (curve[high - 1] - curve[low - 1]),
            "mean_samples": mean_n,
            "mean_tokens": None,
        }
    )
    if 1 <= n_max <= len(curve):
        fixed = results.get(f"fixed N={n_max}")
        at_n_max = {"name": f"fixed N={n_max}", "accuracy": curve[n_max - 1],
                    "mean_samples": float(n_max), "mean_tokens": None}  # fmt: skip
        rows.append(at_n_max if fixed is None else _evidence_row(f"fixed N={n_max}", fixed))
    rows += [_evidence_row(name, row) for name, row in results.items() if name.startswith("N_D=")]
    return {
        "source": "docs/results/eval_heldout.json",
        "questions": int(report["questions"]),
        "rows": rows,
        "figure": "docs/heldout_pareto.png",
        "command": REPRODUCE,
    }


def _evidence_row(name: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "accuracy": float(row["accuracy"]),
        "mean_samples": float(row["mean_samples"]),
        "mean_tokens": float(row["mean_tokens"]),
    }


def format_demo(result: DemoResult) -> list[Table]:
    """Render :func:`run_demo`'s result as rich tables: per question, totals, held-out evidence.

    Example:
        >>> tables = format_demo(result)  # doctest: +SKIP
        >>> [t.title for t in tables][:2]  # doctest: +SKIP
        ['Per question', 'Totals: t2 vs fixed-16']
    """
    totals = result["totals"]
    t2_name, fixed_name = totals["t2"]["policy"], totals["fixed"]["policy"]
    rows = Table(title="Per question (questions the estimator never saw)")
    rows.add_column("#", justify="right")
    rows.add_column("task")
    rows.add_column("gold")
    for label in (t2_name, fixed_name):
        rows.add_column(f"{label} N", justify="right")
        rows.add_column(f"{label} answer")
    for row in result["questions"]:
        cells = [str(row["index"]), row["task"], _short(row["gold"])]
        for outcome in (row["t2"], row["fixed"]):
            mark = "[green]✓[/]" if outcome["correct"] else "[red]✗[/]"
            cells += [str(outcome["n"]), f"{mark} {_short(outcome['answer'])}"]
        rows.add_row(*cells)
    summary = Table(title=f"Totals: {t2_name} vs {fixed_name}")
    summary.add_column("metric")
    summary.add_column(t2_name, justify="right")
    summary.add_column(fixed_name, justify="right")
    summary.add_column("t2 / fixed", justify="right")
    metrics = (
        ("accuracy", "accuracy"),
        ("samples", "samples"),
        ("mean N", "mean_n"),
        ("completion tokens", "completion_tokens"),
        ("total tokens", "total_tokens"),
        ("seconds (wall)", "wall_seconds"),
    )
    for label, name in metrics:
        a, b = totals["t2"][name], totals["fixed"][name]  # type: ignore[literal-required]
        ratio = a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None
        summary.add_row(label, _num(a), _num(b), _num(ratio))
    tables = [rows, summary]
    evidence = result.get("evidence")
    if evidence is not None:
        held = Table(
            title=f"Held-out evidence shipped with the estimator: {evidence['questions']} "
            f"questions it never saw ({evidence['source']}; figure {evidence['figure']})",
            caption=f"reproduce: {evidence['command']}",
        )
        for column in ("policy", "accuracy", "mean N", "mean tokens"):
            held.add_column(column, justify="left" if column == "policy" else "right")
        for entry in evidence["rows"]:
            held.add_row(
                entry["name"], f"{entry['accuracy']:.3f}", f"{entry['mean_samples']:.2f}",
                "-" if entry["mean_tokens"] is None else f"{entry['mean_tokens']:.0f}",
            )  # fmt: skip
        tables.append(held)
    return tables


def _short(value: object, width: int = 24) -> str:
    text = "-" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
