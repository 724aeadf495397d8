"""Agents and served graphs on the default model, for ``examples/`` and ``graphs/``.

- :func:`build_default_graph`: the parallel-thinking graph on the default engine with the best
  policy available (:func:`~t2_agents.demo.choose_policy`); what ``graphs/`` serves;
- :class:`ScriptedToolCaller`: a deterministic stand-in for a tool-calling chat model (the default
  model cannot call tools), so an agent's control flow is scripted while its tool really thinks;
- :func:`make_agent`: a LangChain ``create_agent`` agent whose one tool is the parallel-thinking
  graph (:func:`~t2_agents.graph.as_tool`); :func:`run_agent` asks it several questions and
  grades each tool call;
- :class:`LazyEngine` and :func:`shared_default_engine`: the default engine, loaded on first use,
  so modules that build graphs at import time (``langgraph dev``) import fast;
- :data:`AGENT_TASKS`: the numeric tasks the agent examples use by default.

Example:
    >>> from t2_agents.demo import demo_questions
    >>> agent = make_agent(build_default_graph())  # nothing is loaded yet
    >>> out = run_agent(agent, demo_questions(3, tasks=AGENT_TASKS))  # doctest: +SKIP
    >>> [call["task"] for call in out["calls"]]  # doctest: +SKIP
    ['basic_arithmetic', 'products', 'lcm']
"""

from __future__ import annotations

import functools
import json
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

from t2_agents.backends.base import Completion, Engine, SamplingParams
from t2_agents.data import DEFAULT_INSTRUCTION, Question
from t2_agents.errors import ConfigError, DependencyError
from t2_agents.graph import (
    CostLedger,
    RunBudget,
    ThinkingContext,
    ThinkingGraph,
    as_tool,
    build_parallel_thinking_graph,
)
from t2_agents.graph.budgets import RunAccount
from t2_agents.graph.state import Fanout
from t2_agents.policies import FixedPolicy
from t2_agents.shipped import choose_policy

if TYPE_CHECKING:
    from langgraph.graph.state import CompiledStateGraph

__all__ = [
    "AGENT_TASKS",
    "LazyEngine",
    "ScriptedToolCaller",
    "build_default_graph",
    "make_agent",
    "run_agent",
    "shared_default_engine",
]

AGENT_TASKS: tuple[str, ...] = ("basic_arithmetic", "products", "lcm")
"""Default tasks of the agent examples: all numeric, because an agent's ``solve`` tool sees only
the question, not the task, so it extracts answers with the default (number-first) extractor."""

_CALL_PREFIX = "call"


# --------------------------------------------------------------------------------- graph
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
    run_budget: RunBudget | RunAccount | None = None,
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
        run_budget: One budget shared by every tool call of an agent run
            (:class:`~t2_agents.graph.RunBudget`: one account per ``thread_id``, so invoke
            the agent with ``config={"configurable": {"thread_id": ...}}``; or a
            ``RunAccount`` for a single run).

    Returns:
        The compiled agent; invoke it with ``{"messages": [{"role": "user", "content": ...}]}``.

    Raises:
        DependencyError: ``langchain`` is not installed (``pip install 't2-agents[agents]'``).

    Example:
        >>> from t2_agents.backends.fake import FakeEngine
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
    tool = as_tool(graph, name=tool_name, ledger=ledger, run_budget=run_budget)
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
        >>> from t2_agents.backends.fake import FakeEngine
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
        from t2_agents.backends.default_model import resolve_model

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
