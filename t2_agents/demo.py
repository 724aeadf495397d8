"""The demo: T2 against a fixed budget on a few questions, plus the pieces the examples share.

:func:`run_demo` answers a handful of held-out reasoning-gym questions with the parallel-thinking
graph twice, once with the T2 budget (the estimator shipped for the default model, or one you
pass) and once with a fixed budget ``n_max``, and puts accuracy, samples, tokens and wall time side
by side (from the two runs' cost ledgers). :func:`format_demo` renders the result as rich tables
for the ``t2 demo`` command.

The rest serves the example scripts (``examples/``) and the served graphs (``graphs/``):

- :data:`DEMO_TASKS` and :func:`demo_questions`: easy task settings the 135M default model gets
  right about a third of the time, so the budget matters;
- :data:`AGENT_TASKS`: the numeric tasks the agent examples use by default;
- :func:`load_t2_policy`: the T2 policy from an estimator folder, with a clear error when there
  is none; :func:`choose_policy`: the same, falling back to a fixed budget when no estimator is
  given or shipped;
- :func:`build_default_graph`: the parallel-thinking graph on the default engine with the best
  policy available (what ``graphs/`` serves);
- :class:`ScriptedToolCaller`: a deterministic stand-in for a tool-calling chat model (the default
  model cannot call tools), so an agent's control flow is scripted while its tool really thinks;
- :func:`make_agent`: a LangChain ``create_agent`` agent whose one tool is the parallel-thinking
  graph (:func:`~t2_agents.graph.as_tool`); :func:`run_agent` asks it several questions and
  grades each tool call;
- :class:`LazyEngine` and :func:`shared_default_engine`: the default engine, loaded on first use,
  so modules that build graphs at import time (``langgraph dev``) import fast.

Example:
    >>> [q.task for q in demo_questions(3, tasks=("lcm", "products"), seed=7)]
    ['lcm', 'products', 'lcm']
    >>> result = run_demo(TransformersEngine(), questions=2, n_max=4)  # doctest: +SKIP
    >>> result["totals"]["samples_ratio"]  # doctest: +SKIP
    0.5
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from rich.table import Table

from t2_agents.ask import DEFAULT_ESTIMATOR, default_estimator_path
from t2_agents.backends.base import Completion, Engine, SamplingParams
from t2_agents.data import DEFAULT_INSTRUCTION, Question, load_task
from t2_agents.errors import ArtifactError, ConfigError, DependencyError
from t2_agents.graph import (
    CONFIG_KEY,
    CostLedger,
    Fanout,
    ThinkingContext,
    ThinkingGraph,
    as_tool,
    build_parallel_thinking_graph,
    compare_ledgers,
)
from t2_agents.policies import BudgetPolicy, FixedPolicy, T2Policy

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

__all__ = [
    "AGENT_TASKS",
    "DEFAULT_TASKS",
    "DEMO_TASKS",
    "FALLBACK_N",
    "POLICY_KEYS",
    "DemoProgress",
    "LazyEngine",
    "ScriptedToolCaller",
    "build_default_graph",
    "choose_policy",
    "demo_questions",
    "format_demo",
    "load_t2_policy",
    "make_agent",
    "resolve_estimator",
    "run_agent",
    "run_demo",
    "shared_default_engine",
]

DEMO_TASKS: dict[str, dict[str, Any]] = {
    "basic_arithmetic": {"max_digits": 1, "max_terms": 3, "allow_parentheses": False},
    "syllogism": {},
    "products": {"max_digits": 2},
    "lcm": {"max_value": 12},
    "gcd": {"max_value": 50},
    "chain_sum": {"max_digits": 2, "max_terms": 3},
}
"""reasoning-gym task -> options easy enough for the default model (the calibration settings)."""

DEFAULT_TASKS: tuple[str, ...] = ("basic_arithmetic", "syllogism", "products")
"""Tasks :func:`run_demo` draws from by default."""

AGENT_TASKS: tuple[str, ...] = ("basic_arithmetic", "products", "lcm")
"""Default tasks of the agent examples: all numeric, because an agent's ``solve`` tool sees only
the question, not the task, so it extracts answers with the default (number-first) extractor."""

POLICY_KEYS: tuple[str, str] = ("t2", "fixed")
"""Keys of the two runs in :func:`run_demo`'s rows and totals."""

DemoProgress = Callable[[int, str, dict[str, Any]], None]
"""``progress(question_index, policy_key, event)``: one custom stream event of the graph
(``budget``, ``branch`` x N, ``verdict``; see :mod:`t2_agents.graph.nodes`)."""

FALLBACK_N = 8
"""The fixed budget :func:`build_default_graph` uses when there is no T2 estimator."""

_NO_ESTIMATOR_FIX = "train one with `t2 train` or pass --estimator PATH"
_CALL_PREFIX = "call"


# --------------------------------------------------------------------------------- questions
def demo_questions(
    questions: int, *, tasks: Sequence[str] = DEFAULT_TASKS, seed: int = 2026
) -> list[Question]:
    """Held-out reasoning-gym questions, taking the tasks in turn.

    Question ``i`` is question ``i // len(tasks)`` of task ``tasks[i % len(tasks)]``, generated
    with :data:`DEMO_TASKS`' options (reasoning-gym's defaults for other tasks) and ``seed``. The
    calibration data used seeds 1 and 1001, so the default seed is held out.

    Args:
        questions: How many questions (>= 1).
        tasks: reasoning-gym task names (at least one).
        seed: Dataset seed.

    Returns:
        The questions, in the order described.

    Raises:
        ConfigError: ``questions < 1``, no tasks, or a task reasoning-gym does not know.

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
    pools = {
        name: load_task(name, size=per_task, seed=seed, config=DEMO_TASKS.get(name))
        for name in dict.fromkeys(names)
    }
    return [pools[names[i % len(names)]][i // len(names)] for i in range(questions)]


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


def load_t2_policy(engine: Engine, estimator: str | Path | None = None) -> T2Policy:
    """Load the T2 policy for ``engine`` from ``estimator`` (or the shipped estimator).

    Args:
        engine: The engine whose hidden states the estimator reads (checked against it).
        estimator: Estimator folder; None uses the one shipped for the default model.

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
    return T2Policy(model, engine=engine)


def choose_policy(
    engine: Engine,
    estimator: str | Path | None = None,
    *,
    fallback_n: int = FALLBACK_N,
    on_fallback: Callable[[str], None] | None = None,
) -> BudgetPolicy:
    """T2 from ``estimator`` or the shipped estimator; without either, a fixed budget.

    Args:
        engine: The engine the estimator must fit.
        estimator: Estimator folder; None looks for the shipped one.
        fallback_n: The fixed budget used when there is no estimator at all.
        on_fallback: Called with the reason when falling back (e.g. to print a note).

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
    return load_t2_policy(engine, estimator)


def build_default_graph(
    engine: Engine | None = None,
    *,
    estimator: str | Path | None = None,
    n_max: int = 16,
    max_tokens: int = 48,
    fanout: Fanout = "batched",
) -> ThinkingGraph:
    """The parallel-thinking graph on the default engine with the best policy available.

    T2 (``estimator``, else the shipped estimator) when there is one, with budgets in
    ``[1, n_max]``; otherwise ``FixedPolicy(FALLBACK_N)`` with ``n_max = FALLBACK_N``. Nothing
    is loaded until the first run when ``engine`` is None (:func:`shared_default_engine`).

    Args:
        engine: The engine; None shares one lazily loaded default engine per process.
        estimator: T2 estimator folder; None uses the shipped one if it exists.
        n_max: Largest budget of the T2 policy.
        max_tokens: Largest completion per path.
        fanout: ``"batched"`` or ``"send"``.

    Returns:
        The compiled graph, named ``parallel_thinking``.

    Raises:
        ArtifactError: ``estimator`` is given but missing, or fits another model.

    Example:
        >>> graph = build_default_graph()  # nothing is loaded yet
        >>> graph.name, shared_default_engine().loaded
        ('parallel_thinking', False)
    """
    chosen = engine if engine is not None else shared_default_engine()
    policy = choose_policy(chosen, estimator)
    if isinstance(policy, FixedPolicy):
        n_max = policy.n
    context = ThinkingContext(n_min=1, n_max=n_max, max_tokens=max_tokens, fanout=fanout)
    return build_parallel_thinking_graph(engine=chosen, policy=policy, context=context)


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
        seed: Dataset seed (held out from calibration) and base sampling seed.
        n_max: The fixed budget, and the largest budget T2 may choose.
        estimator: T2 estimator folder; None uses the one shipped for the default model.
        max_tokens: Largest completion per path.
        progress: Called with ``(question_index, policy_key, event)`` for every custom stream
            event of the graph (``budget``, one ``branch`` per path, ``verdict``).

    Returns:
        A JSON-ready dict:

        - ``settings``: the arguments (estimator as the folder used);
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
        ConfigError: Bad settings (``questions < 1``, ``n_max < 1``, unknown task...).

    Example:
        >>> result = run_demo(engine, questions=2, n_max=4, max_tokens=12)  # doctest: +SKIP
        >>> sorted(result["totals"])  # doctest: +SKIP
        ['fixed', 'samples_ratio', 't2', 'tokens_ratio']
    """
    estimator_path = resolve_estimator(estimator)
    fixed_policy = FixedPolicy(n_max)
    t2_policy = load_t2_policy(engine, estimator_path)
    items = demo_questions(questions, tasks=tasks, seed=seed)
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


# --------------------------------------------------------------------------------- agents
def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
    ]
    return "\n".join(parts)


def _split_questions(text: str) -> list[str]:
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            blocks.append([])
        else:
            blocks[-1].append(line)
    return [joined for block in blocks if (joined := "\n".join(block).strip())]


class ScriptedToolCaller(BaseChatModel):
    """A deterministic chat model that calls one tool per question, then sums up.

    It stands in for a tool-calling model in examples and served graphs (the 135M default model
    cannot call tools): the agent's control flow is scripted, the tool does the real work. On the
    last user message it splits questions on lines holding only ``---``, appends
    ``instruction`` to each (unless the question already contains it), and then

    - sequential (default): answers each turn with one call ``tool_name(question=...)`` for the
      next question not yet asked, so every call is its own agent step;
    - ``parallel=True``: answers the first turn with all the calls at once.

    When every question has a tool result it answers ``"1. <result>\\n2. <result>..."``.

    Example:
        >>> model = ScriptedToolCaller()
        >>> call = model.invoke([HumanMessage("What is 2+3?\\n---\\nWhat is 4*5?")])
        >>> call.tool_calls[0]["args"]
        {'question': 'What is 2+3? Give only the final answer.'}
        >>> result = ToolMessage("5", tool_call_id="call-0-0")
        >>> model.invoke([HumanMessage("What is 2+3?"), call, result]).content
        '1. 5'
    """

    tool_name: str = "solve"
    """Name of the tool to call (it must be among the tools bound by the agent)."""
    instruction: str = DEFAULT_INSTRUCTION
    """Appended to each question that does not contain it already."""
    parallel: bool = False
    """Call the tool for all questions in one turn instead of one per turn."""
    bound_tools: tuple[str, ...] = ()
    """Names of the tools the agent bound (set by :meth:`bind_tools`)."""

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Record the bound tools' names; the model must find ``tool_name`` among them.

        Raises:
            ConfigError: ``tool_name`` is not one of the tools.
        """
        names = tuple(_tool_name(tool) for tool in tools)
        if names and self.tool_name not in names:
            raise ConfigError(
                f"ScriptedToolCaller calls {self.tool_name!r} but the agent's tools are "
                f"{list(names)}; pass tool_name=..."
            )
        return self.model_copy(update={"bound_tools": names})

    def questions(self, text: str) -> list[str]:
        """The tool inputs for one user message (split on ``---``, instruction appended).

        Example:
            >>> ScriptedToolCaller(instruction="Be brief.").questions("a?\\n---\\nb? Be brief.")
            ['a? Be brief.', 'b? Be brief.']
        """
        out = []
        for question in _split_questions(text):
            if self.instruction and self.instruction not in question:
                question = f"{question.rstrip()} {self.instruction}"
            out.append(question)
        return out

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._next(messages)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _next(self, messages: Sequence[BaseMessage]) -> AIMessage:
        last_user = max(
            (i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=None
        )
        if last_user is None:
            return AIMessage(content="Ask me one or more questions (separate them with ---).")
        turn = messages[last_user + 1 :]
        asked = [call for m in turn if isinstance(m, AIMessage) for call in m.tool_calls]
        results = {m.tool_call_id: _text(m) for m in turn if isinstance(m, ToolMessage)}
        unknown = sorted(set(results) - {str(call["id"]) for call in asked})
        if unknown:
            raise ConfigError(
                f"tool result for {unknown[0]!r} matches no call of ScriptedToolCaller"
            )
        questions = self.questions(_text(messages[last_user]))
        if not questions:
            return AIMessage(content="There is no question to answer.")
        todo = questions[len(asked) :]
        if todo:
            batch = todo if self.parallel else todo[:1]
            calls = [
                {
                    "name": self.tool_name,
                    "args": {"question": question},
                    "id": f"{_CALL_PREFIX}-{last_user}-{len(asked) + k}",
                    "type": "tool_call",
                }
                for k, question in enumerate(batch)
            ]
            return AIMessage(content="", tool_calls=calls)
        lines = [
            f"{k}. {results.get(str(call['id']), '(no result)')}"
            for k, call in enumerate(asked, start=1)
        ]
        return AIMessage(content="\n".join(lines))


def _tool_name(tool: object) -> str:
    if isinstance(tool, BaseTool):
        return tool.name
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and "name" in function:
            return str(function["name"])
        return str(tool.get("name", "?"))
    return str(getattr(tool, "__name__", "?"))


def make_agent(
    graph: ThinkingGraph,
    *,
    ledger: CostLedger | None = None,
    tool_name: str = "solve",
    parallel: bool = False,
    instruction: str = DEFAULT_INSTRUCTION,
    name: str = "t2_agent",
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A ``create_agent`` agent whose one tool runs the parallel-thinking graph.

    The tool is ``as_tool(graph, name=tool_name, ledger=ledger)``: every call chooses its own
    budget N and records its cost in ``ledger``; its ``ToolMessage`` carries the whole thinking
    state as ``artifact``. The chat model is a :class:`ScriptedToolCaller`.

    Args:
        graph: A parallel-thinking graph (:func:`~t2_agents.graph.build_parallel_thinking_graph`).
        ledger: Collects each tool call's cost record.
        tool_name: The tool's name.
        parallel: Let the model issue all tool calls in one turn.
        instruction: Appended to each question by the model.
        name: The agent graph's name.

    Returns:
        The compiled agent; invoke it with ``{"messages": [{"role": "user", "content": ...}]}``.

    Raises:
        DependencyError: ``langchain`` is not installed (``pip install 't2-agents[agents]'``).

    Example:
        >>> from t2_agents.graph.testing import FakeEngine
        >>> agent = make_agent(build_parallel_thinking_graph(engine=FakeEngine(), n_max=2))
        >>> out = agent.invoke({"messages": [{"role": "user", "content": "What is 6*7?"}]})
        >>> out["messages"][-1].content
        '1. 42'
    """
    try:
        from langchain.agents import create_agent
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError(
            "make_agent needs langchain>=1.0; install it with pip install 't2-agents[agents]'"
        ) from exc
    tool = as_tool(graph, name=tool_name, ledger=ledger)
    model = ScriptedToolCaller(tool_name=tool_name, parallel=parallel, instruction=instruction)
    return create_agent(model, [tool], name=name)


def run_agent(
    agent: Runnable[Any, Any],
    questions: Sequence[Question],
    *,
    config: RunnableConfig | None = None,
) -> dict[str, Any]:
    """Ask a :func:`make_agent` agent several questions in one user message and grade each call.

    The questions' prompts are joined with ``---`` lines, so the :class:`ScriptedToolCaller`
    makes one ``solve`` call per question, in order. Every tool call is graded against its
    question's gold answer from the thinking state the ``ToolMessage`` carries as artifact.

    Args:
        agent: An agent from :func:`make_agent` (or any agent with the same tool protocol).
        questions: The questions, e.g. from :func:`demo_questions`.
        config: Run config (callbacks, ``configurable["t2"]`` overrides...); the recursion
            limit is raised to fit one model turn and one tool turn per question.

    Returns:
        ``{"final": the agent's last message, "seconds": wall time, "calls": [...]}``; each call
        has ``index``, ``id``, ``task``, ``gold``, ``n``, ``policy``, ``answer``, ``correct``,
        ``samples``, ``completion_tokens``, ``prompt_tokens`` and ``seconds`` (None where a
        call failed and has no thinking state).

    Raises:
        ConfigError: No questions, or the agent made a different number of tool calls.

    Example:
        >>> from t2_agents.graph.testing import FakeEngine
        >>> agent = make_agent(build_parallel_thinking_graph(engine=FakeEngine(), n_max=2))
        >>> out = run_agent(agent, demo_questions(2, tasks=("products",), seed=1))
        >>> [call["n"] for call in out["calls"]]
        [2, 2]
    """
    if not questions:
        raise ConfigError("run_agent needs at least one question")
    message = "\n---\n".join(q.prompt for q in questions)
    run_config: RunnableConfig = {**(config or {})}
    run_config.setdefault("recursion_limit", 4 * len(questions) + 10)
    started = time.perf_counter()
    out = agent.invoke({"messages": [HumanMessage(message)]}, run_config)
    seconds = time.perf_counter() - started
    messages = list(out["messages"])
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if len(results) != len(questions):
        raise ConfigError(
            f"the agent made {len(results)} tool calls for {len(questions)} questions; "
            "use make_agent's ScriptedToolCaller or one call per question"
        )
    calls = []
    for index, (question, result) in enumerate(zip(questions, results, strict=True)):
        state = result.artifact if isinstance(result.artifact, Mapping) else {}
        cost = state.get("cost") if isinstance(state.get("cost"), Mapping) else None
        answer = state.get("answer")
        calls.append(
            {
                "index": index,
                "id": question.id,
                "task": question.task,
                "gold": question.gold,
                "n": state.get("n"),
                "policy": state.get("policy"),
                "answer": answer,
                "correct": question.is_correct(answer),
                "samples": None if cost is None else int(cost["samples"]),
                "completion_tokens": None if cost is None else int(cost["completion_tokens"]),
                "prompt_tokens": None if cost is None else int(cost["prompt_tokens"]),
                "seconds": None if cost is None else float(cost["wall_seconds"]),
            }
        )
    return {"final": _text(messages[-1]), "seconds": seconds, "calls": calls}


# --------------------------------------------------------------------------------- engines
class LazyEngine:
    """The default :class:`~t2_agents.backends.transformers.TransformersEngine`, loaded on use.

    ``identity``, ``num_layers`` and ``hidden_size`` are read from the model folder's
    ``config.json`` without loading the weights, so a graph (and a T2 policy's engine check) can
    be built at import time; the first ``render``/``encode``/``sample`` loads the model (once,
    thread-safe). Other attributes are looked up on the loaded engine.

    Args:
        factory: Builds the real engine; None builds ``TransformersEngine(**overrides)``.
        **overrides: ``TransformersConfig`` fields for the default factory (``model``,
            ``cache_dir``...).

    Example:
        >>> engine = LazyEngine()  # doctest: +SKIP
        >>> engine.identity, engine.loaded  # doctest: +SKIP
        ('SmolLM2-135M-Instruct', False)
    """

    def __init__(self, factory: Callable[[], Engine] | None = None, **overrides: Any) -> None:
        self._factory = factory
        self._overrides = dict(overrides)
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the real engine has been built."""
        return self._engine is not None

    def get(self) -> Engine:
        """The real engine (built on the first call)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._build()
        return self._engine

    def _build(self) -> Engine:
        if self._factory is not None:
            return self._factory()
        from t2_agents.backends.transformers import TransformersEngine

        return TransformersEngine(**self._overrides)

    @functools.cached_property
    def _config(self) -> dict[str, Any] | None:
        if self._factory is not None:
            return None
        from t2_agents.models import resolve_model

        spec = resolve_model(
            self._overrides.get("model"), cache_dir=self._overrides.get("cache_dir")
        )
        path = Path(spec.path) / "config.json"
        if not path.is_file():
            return None
        config = json.loads(path.read_text(encoding="utf-8"))
        return {
            "identity": spec.identity,
            "num_layers": config.get("num_hidden_layers"),
            "hidden_size": config.get("hidden_size"),
        }

    def _peek(self, name: str) -> Any:
        if self._engine is None and self._config is not None and self._config.get(name):
            return self._config[name]
        return getattr(self.get(), name)

    @property
    def identity(self) -> str:
        """The model's identity."""
        return str(self._peek("identity"))

    @property
    def num_layers(self) -> int:
        """Number of decoder layers."""
        return int(self._peek("num_layers"))

    @property
    def hidden_size(self) -> int:
        """Residual stream width."""
        return int(self._peek("hidden_size"))

    def render(self, prompt: str) -> str:
        """Apply the chat template (loads the model)."""
        return self.get().render(prompt)

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """Final-prompt-token features (loads the model)."""
        return self.get().encode(prompts, layers)

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """``n`` completions per prompt (loads the model)."""
        return self.get().sample(prompts, n, params)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        return f"LazyEngine(loaded={self.loaded})"


@functools.cache
def shared_default_engine() -> LazyEngine:
    """One process-wide :class:`LazyEngine` for the default model (shared by served graphs).

    Example:
        >>> shared_default_engine() is shared_default_engine()
        True
    """
    return LazyEngine()
