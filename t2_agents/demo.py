"""The demo: T2 against a fixed budget on a few questions, and choosing the budget policy.

:func:`run_demo` answers a handful of held-out reasoning-gym questions with the parallel-thinking
graph twice, once with the T2 budget (the estimator shipped for the default model, or one you
pass) and once with a fixed budget ``n_max``, and puts accuracy, samples, tokens and wall time side
by side (from the two runs' cost ledgers). :func:`format_demo` renders the result as rich tables
for the ``t2 demo`` command.

The demo's building blocks also serve the example scripts (``examples/``) and, through
:mod:`t2_agents.agents`, the served graphs (``graphs/``):

- :data:`DEMO_TASKS` and :func:`demo_questions`: easy task settings the 135M default model gets
  right about a third of the time, so the budget matters;
- :func:`resolve_estimator`: the estimator folder to use (given or shipped);
  :func:`load_t2_policy`: the T2 policy from an estimator folder, with a clear error when there
  is none; :func:`choose_policy`: the same, falling back to a fixed budget when no estimator is
  given or shipped.

Example:
    >>> [q.task for q in demo_questions(3, tasks=("lcm", "products"), seed=7)]
    ['lcm', 'products', 'lcm']
    >>> result = run_demo(TransformersEngine(), questions=2, n_max=4)  # doctest: +SKIP
    >>> result["totals"]["samples_ratio"]  # doctest: +SKIP
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from rich.table import Table

from t2_agents.ask import DEFAULT_ESTIMATOR, default_estimator_path
from t2_agents.backends.base import Engine
from t2_agents.data import Question, load_task
from t2_agents.errors import ArtifactError, ConfigError
from t2_agents.graph import (
    CONFIG_KEY,
    CostLedger,
    ThinkingContext,
    ThinkingGraph,
    build_parallel_thinking_graph,
    compare_ledgers,
)
from t2_agents.policies import BudgetPolicy, FixedPolicy, T2Policy

__all__ = [
    "DEFAULT_TASKS",
    "DEMO_TASKS",
    "FALLBACK_N",
    "POLICY_KEYS",
    "DemoProgress",
    "choose_policy",
    "demo_questions",
    "format_demo",
    "load_t2_policy",
    "resolve_estimator",
    "run_demo",
    "training_keys",
]

DEMO_TASKS: dict[str, dict[str, Any]] = {
    # No "/": at these settings reasoning-gym's division questions have wrong gold answers
    # ("Calculate 4 / 1." -> "2"), measured while choosing the calibration tasks.
    "basic_arithmetic": {
        "max_digits": 1,
        "max_terms": 3,
        "allow_parentheses": False,
        "operators": ["+", "-", "*"],
    },
    "syllogism": {},
    "products": {"max_digits": 2},
    "lcm": {"max_value": 30},
    "gcd": {"max_value": 60},
    "aiw": {},
    "number_format": {},
    "leg_counting": {"min_animals": 1, "max_animals": 2},
    "chain_sum": {"max_digits": 2, "max_terms": 3},
    "number_sequence": {},
}
"""reasoning-gym task -> options the default model is sometimes right on: the calibration
settings of ``bench/calibration_plan.json`` (chain_sum and number_sequence are held out of
training entirely)."""

DEFAULT_TASKS: tuple[str, ...] = ("basic_arithmetic", "syllogism", "products")
"""Tasks :func:`run_demo` draws from by default."""

POLICY_KEYS: tuple[str, str] = ("t2", "fixed")
"""Keys of the two runs in :func:`run_demo`'s rows and totals."""

DemoProgress = Callable[[int, str, dict[str, Any]], None]
"""``progress(question_index, policy_key, event)``: one custom stream event of the graph
(``budget``, ``branch`` x N, ``verdict``; see :mod:`t2_agents.graph.nodes`)."""

FALLBACK_N = 8
"""The fixed budget :func:`choose_policy` (so :func:`~t2_agents.agents.build_default_graph`)
falls back to when there is no T2 estimator."""

_NO_ESTIMATOR_FIX = "train one with `t2 train` or pass --estimator PATH"


# --------------------------------------------------------------------------------- questions
def demo_questions(
    questions: int,
    *,
    tasks: Sequence[str] = DEFAULT_TASKS,
    seed: int = 2026,
    exclude: Collection[str] = (),
) -> list[Question]:
    """Held-out reasoning-gym questions, taking the tasks in turn.

    Question ``i`` is question ``i // len(tasks)`` of task ``tasks[i % len(tasks)]``, generated
    with :data:`DEMO_TASKS`' options (reasoning-gym's defaults for other tasks) and ``seed``.
    A seed alone does not hold questions out (easy task settings have small question spaces, so
    other seeds repeat them): pass the estimator's training question keys as ``exclude`` (see
    :func:`training_keys`) and every question whose :attr:`~t2_agents.data.Question.key` is
    among them is skipped.

    Args:
        questions: How many questions (>= 1).
        tasks: reasoning-gym task names (at least one).
        seed: Dataset seed.
        exclude: Question keys (:func:`~t2_agents.data.question_key`) never to draw.

    Returns:
        The questions, in the order described.

    Raises:
        ConfigError: ``questions < 1``, no tasks, a task reasoning-gym does not know, or a task
            whose settings hold too few questions outside ``exclude``.

    Example:
        >>> qs = demo_questions(2, tasks=("products",), seed=3)
        >>> [q.id for q in qs]
        ['products-3-0', 'products-3-1']
    """
    if isinstance(questions, bool) or not isinstance(questions, int) or questions < 1:
        raise ConfigError(f"questions={questions!r} must be an int >= 1")
    names = list(tasks)
    if not names:
        raise ConfigError("tasks is empty; pass at least one reasoning-gym task name")
    per_task = math.ceil(questions / len(names))
    skip = frozenset(exclude)
    pools = {name: _unseen(name, per_task, seed, skip) for name in dict.fromkeys(names)}
    return [pools[names[i % len(names)]][i // len(names)] for i in range(questions)]


def _unseen(name: str, wanted: int, seed: int, exclude: frozenset[str]) -> list[Question]:
    """The first ``wanted`` questions of a task whose keys are not in ``exclude``."""
    config = DEMO_TASKS.get(name)
    size = wanted
    fresh: list[Question] = []
    while True:
        try:
            drawn = load_task(name, size=size, seed=seed, config=config)
        except ConfigError as exc:
            if size == wanted:
                raise  # unknown task, bad options or fewer distinct questions than wanted
            raise ConfigError(
                f"task {name!r} ({config or {}}) has too few questions the estimator did not "
                f"train on: wanted {wanted}, found {len(fresh)} unseen before the task ran out "
                f"of distinct questions ({exc}); ask for fewer demo questions or pick other tasks"
            ) from exc
        fresh = [q for q in drawn if q.key not in exclude]
        if len(fresh) >= wanted:
            return fresh[:wanted]
        # `wanted + len(exclude)` distinct questions always hold `wanted` unseen ones
        assert size < wanted + len(exclude)
        size = min(size * 2, wanted + len(exclude))


def training_keys(estimator: object) -> frozenset[str]:
    """The question keys an estimator was trained on, from its metadata (empty when absent).

    Reads ``estimator.metadata["training_data"]["question_keys"]``; artifacts trained before
    the keys were recorded have none, and then nothing can be excluded.

    Example:
        >>> class Fitted:
        ...     metadata = {"training_data": {"question_keys": ["0123456789abcdef"]}}
        >>> sorted(training_keys(Fitted()))
        ['0123456789abcdef']
        >>> training_keys(object())
        frozenset()
    """
    metadata = getattr(estimator, "metadata", None)
    if not isinstance(metadata, Mapping):
        return frozenset()
    training = metadata.get("training_data")
    keys = training.get("question_keys") if isinstance(training, Mapping) else None
    if not isinstance(keys, list | tuple):
        return frozenset()
    return frozenset(str(key) for key in keys)


# --------------------------------------------------------------------------------- estimator
def resolve_estimator(estimator: str | Path | None = None) -> Path:
    """The estimator folder to use: ``estimator`` if given, else the shipped one.

    Args:
        estimator: An estimator folder (``metadata.json`` + ``probes.safetensors``) or None.

    Returns:
        The folder.

    Raises:
        ArtifactError: ``estimator`` holds no ``metadata.json``, or it is None and no estimator
            is shipped; the message says how to get one.

    Example:
        >>> resolve_estimator("/no/such/folder")
        Traceback (most recent call last):
        ...
        t2_agents.errors.ArtifactError: no T2 estimator at /no/such/folder (no metadata.json); \
train one with `t2 train` or pass --estimator PATH
    """
    if estimator is not None:
        path = Path(estimator)
        if not (path / "metadata.json").is_file():
            raise ArtifactError(
                f"no T2 estimator at {path} (no metadata.json); {_NO_ESTIMATOR_FIX}"
            )
        return path
    shipped = default_estimator_path()
    if shipped is None:
        raise ArtifactError(
            f"no T2 estimator is shipped for the default model yet (looked in "
            f"{DEFAULT_ESTIMATOR}); {_NO_ESTIMATOR_FIX}"
        )
    return shipped


def load_t2_policy(
    engine: Engine,
    estimator: str | Path | None = None,
    *,
    tolerance: float | None = None,
    price: float | None = None,
) -> T2Policy:
    """Load the T2 policy for ``engine`` from ``estimator`` (or the shipped estimator).

    Args:
        engine: The engine whose hidden states the estimator reads (checked against it).
        estimator: Estimator folder; None uses the one shipped for the default model.
        tolerance: The cost knob of a curve-head estimator (see
            :class:`~t2_agents.policies.T2Policy`); None uses the calibrated default.
        price: The other cost knob (price per path); give at most one of the two.

    Returns:
        A :class:`~t2_agents.policies.T2Policy` checked against ``engine``.

    Raises:
        ArtifactError: No estimator (see :func:`resolve_estimator`), or it was fitted on another
            model.

    Example:
        >>> policy = load_t2_policy(engine, "artifacts/my-estimator")  # doctest: +SKIP
        >>> policy.name  # doctest: +SKIP
        't2'
    """
    from t2_agents.estimator import T2Estimator

    path = resolve_estimator(estimator)
    model = T2Estimator.load(
        path, expect_identity=engine.identity, expect_hidden_size=engine.hidden_size
    )
    return T2Policy(model, engine=engine, tolerance=tolerance, price=price)


def choose_policy(
    engine: Engine,
    estimator: str | Path | None = None,
    *,
    fallback_n: int = FALLBACK_N,
    on_fallback: Callable[[str], None] | None = None,
    tolerance: float | None = None,
    price: float | None = None,
) -> BudgetPolicy:
    """T2 from ``estimator`` or the shipped estimator; without either, a fixed budget.

    Args:
        engine: The engine the estimator must fit.
        estimator: Estimator folder; None looks for the shipped one.
        fallback_n: The fixed budget used when there is no estimator at all.
        on_fallback: Called with the reason when falling back (e.g. to print a note).
        tolerance: The T2 cost knob (curve-head estimators); None uses the default.
        price: The other T2 cost knob (price per path); give at most one of the two.

    Returns:
        A :class:`~t2_agents.policies.T2Policy` or ``FixedPolicy(fallback_n)``.

    Raises:
        ArtifactError: ``estimator`` was given but is missing or fits another model (an explicit
            choice never falls back silently).

    Example:
        >>> choose_policy(engine, "artifacts/my-estimator").name  # doctest: +SKIP
        't2'
    """
    if estimator is None and default_estimator_path() is None:
        if on_fallback is not None:
            on_fallback(
                f"no T2 estimator is shipped for the default model yet; using a fixed budget "
                f"of {fallback_n} paths ({_NO_ESTIMATOR_FIX} for T2)"
            )
        return FixedPolicy(fallback_n)
    return load_t2_policy(engine, estimator, tolerance=tolerance, price=price)


# --------------------------------------------------------------------------------- the demo
def run_demo(
    engine: Engine,
    *,
    questions: int = 6,
    tasks: Sequence[str] = DEFAULT_TASKS,
    seed: int = 2026,
    n_max: int = 16,
    estimator: str | Path | None = None,
    max_tokens: int = 48,
    progress: DemoProgress | None = None,
) -> dict[str, Any]:
    """Answer held-out questions with T2 and with a fixed budget, and compare the costs.

    Every question runs through the parallel-thinking graph twice: with the T2 policy (budget in
    ``[1, n_max]``) and with ``FixedPolicy(n_max)`` (plain self-consistency), with the same
    sampling settings and the task's answer extractor. Each run's cost record goes to a
    :class:`~t2_agents.graph.CostLedger`; the totals come from the two ledgers and
    :func:`~t2_agents.graph.compare_ledgers`.

    Args:
        engine: The engine (e.g. ``TransformersEngine()`` for the default model).
        questions: Number of questions.
        tasks: reasoning-gym tasks, taken in turn (see :func:`demo_questions`).
        seed: Dataset seed and base sampling seed. Questions the estimator trained on (the
            question keys its metadata records, when it does) are never drawn.
        n_max: The fixed budget, and the largest budget T2 may choose.
        estimator: T2 estimator folder; None uses the one shipped for the default model.
        max_tokens: Largest completion per path.
        progress: Called with ``(question_index, policy_key, event)`` for every custom stream
            event of the graph (``budget``, one ``branch`` per path, ``verdict``).

    Returns:
        A JSON-ready dict:

        - ``settings``: the arguments (estimator as the folder used) and
          ``excluded_training_questions``, how many training question keys were skipped;
        - ``questions``: one row per question with ``index``, ``id``, ``task``, ``question``,
          ``gold`` and, under ``"t2"`` and ``"fixed"``, ``policy``, ``n``, ``answer``,
          ``correct``, ``share``, ``samples``, ``completion_tokens``, ``prompt_tokens`` and
          ``seconds`` (the step's wall time);
        - ``totals``: under ``"t2"`` and ``"fixed"``, ``policy``, ``questions``, ``correct``,
          ``accuracy``, ``samples``, ``mean_n``, ``completion_tokens``, ``prompt_tokens``,
          ``total_tokens`` and ``seconds``; and ``samples_ratio`` (T2 samples / fixed samples)
          and ``tokens_ratio`` (completion tokens, same order);
        - ``comparison``: :func:`~t2_agents.graph.compare_ledgers` (fixed vs t2).

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
    fixed_policy = FixedPolicy(n_max)
    t2_policy = load_t2_policy(engine, estimator_path)
    seen = training_keys(t2_policy.estimator)
    items = demo_questions(questions, tasks=tasks, seed=seed, exclude=seen)
    context = ThinkingContext(n_min=1, n_max=n_max, max_tokens=max_tokens, seed=seed)
    graphs = {
        "t2": build_parallel_thinking_graph(engine=engine, policy=t2_policy, context=context),
        "fixed": build_parallel_thinking_graph(engine=engine, policy=fixed_policy, context=context),
    }
    ledgers = {key: CostLedger() for key in POLICY_KEYS}
    rows: list[dict[str, Any]] = []
    for index, question in enumerate(items):
        row: dict[str, Any] = {
            "index": index,
            "id": question.id,
            "task": question.task,
            "question": question.text,
            "gold": question.gold,
        }
        for key in POLICY_KEYS:
            state = _think(graphs[key], question, index, key, progress)
            ledgers[key].add_state(state)
            row[key] = _policy_row(state, question)
        rows.append(row)
    comparison = compare_ledgers(ledgers["fixed"], ledgers["t2"], labels=("fixed", "t2"))
    totals: dict[str, Any] = {
        key: _totals(ledgers[key], rows, key, name)
        for key, name in zip(POLICY_KEYS, (t2_policy.name, fixed_policy.name), strict=True)
    }
    totals["samples_ratio"] = comparison["metrics"]["samples"]["ratio"]
    totals["tokens_ratio"] = comparison["metrics"]["completion_tokens"]["ratio"]
    return {
        "settings": {
            "questions": questions,
            "tasks": list(tasks),
            "seed": seed,
            "n_max": n_max,
            "max_tokens": max_tokens,
            "estimator": str(estimator_path),
            "model": engine.identity,
            "excluded_training_questions": len(seen),
        },
        "questions": rows,
        "totals": totals,
        "comparison": comparison,
    }


def _think(
    graph: ThinkingGraph,
    question: Question,
    index: int,
    key: str,
    progress: DemoProgress | None,
) -> dict[str, Any]:
    config: RunnableConfig = {"configurable": {CONFIG_KEY: {"task": question.task}}}
    final: dict[str, Any] | None = None
    for mode, data in graph.stream(
        {"question": question.prompt}, config, stream_mode=["custom", "values"]
    ):
        if mode == "custom" and progress is not None and isinstance(data, Mapping):
            progress(index, key, dict(data))
        elif mode == "values" and isinstance(data, Mapping):
            final = dict(data)
    if final is None or not isinstance(final.get("cost"), Mapping):
        raise ConfigError(f"the graph ended without a cost record for question {question.id}")
    return final


def _policy_row(state: Mapping[str, Any], question: Question) -> dict[str, Any]:
    cost = state["cost"]
    answer = state.get("answer")
    return {
        "policy": state.get("policy"),
        "n": int(state.get("n", cost["n_chosen"])),
        "answer": answer,
        "correct": question.is_correct(answer),
        "share": float(cost["share"]),
        "samples": int(cost["samples"]),
        "completion_tokens": int(cost["completion_tokens"]),
        "prompt_tokens": int(cost["prompt_tokens"]),
        "seconds": float(cost["wall_seconds"]),
    }


def _totals(
    ledger: CostLedger, rows: Sequence[Mapping[str, Any]], key: str, name: str
) -> dict[str, Any]:
    summary = ledger.summary()
    correct = sum(1 for row in rows if row[key]["correct"])
    return {
        "policy": name,
        "questions": len(rows),
        "correct": correct,
        "accuracy": correct / len(rows) if rows else None,
        "samples": summary["samples"],
        "mean_n": summary["mean_n"],
        "completion_tokens": summary["completion_tokens"],
        "prompt_tokens": summary["prompt_tokens"],
        "total_tokens": summary["total_tokens"],
        "seconds": summary["wall_seconds"],
    }


def format_demo(result: Mapping[str, Any]) -> list[Table]:
    """Render :func:`run_demo`'s result as two rich tables: per question, then the totals.

    Example:
        >>> tables = format_demo(result)  # doctest: +SKIP
        >>> [t.title for t in tables]  # doctest: +SKIP
        ['Per question', 'Totals: T2 vs fixed-16']
    """
    totals = result["totals"]
    t2_name, fixed_name = totals["t2"]["policy"], totals["fixed"]["policy"]
    rows = Table(title="Per question")
    rows.add_column("#", justify="right")
    rows.add_column("task")
    rows.add_column("gold")
    for label in (t2_name, fixed_name):
        rows.add_column(f"{label} N", justify="right")
        rows.add_column(f"{label} answer")
    for row in result["questions"]:
        cells = [str(row["index"]), row["task"], _short(row["gold"])]
        for key in POLICY_KEYS:
            mark = "[green]✓[/]" if row[key]["correct"] else "[red]✗[/]"
            cells += [str(row[key]["n"]), f"{mark} {_short(row[key]['answer'])}"]
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
        ("seconds", "seconds"),
    )
    for label, name in metrics:
        a, b = totals["t2"][name], totals["fixed"][name]
        ratio = a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None
        summary.add_row(label, _num(a), _num(b), _num(ratio))
    return [rows, summary]


def _short(value: object, width: int = 24) -> str:
    text = "-" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
