"""Compare an agent's cost under budget policies: the same tasks, one run per task and policy.

``t2 compare`` (and :func:`compare_agent`) takes a user's agent as a *factory*: a callable that
builds the agent around a parallel-thinking graph,

    def build(thinking: ThinkingGraph, *, ledger: CostLedger, run_budget: RunBudget | None)
        -> Runnable  # invoked with {"messages": [{"role": "user", "content": task}]}

(:func:`~t2_agents.agents.harness.make_agent` is one, and the default). For every policy a
thinking graph is built on the same engine, the agent is built around it, and every task runs
once as its own agent run (``thread_id`` per task and policy, so a run budget is per run). Each
run is graded on the agent's final message: the task's extractor against its gold answer, or a
grader ``grade(question, final_text) -> bool``. Every thinking step's cost comes from the
ledger: samples, completion tokens, engine calls, sequential rounds (waves of a stop rule, one
per step otherwise), and the run's wall time.

Policies (:data:`COMPARE_POLICIES`): ``fixed`` (``n_max`` paths per step), ``t2`` (T2 per
step), ``budget`` (T2 under one :class:`~t2_agents.graph.budgets.RunBudget` per run: by default
the mean samples per run that ``t2`` spent, so the two cost about the same; ``objective`` sets
its rule), ``hybrid`` (T2's N, then waves until the vote is decisive) and ``one`` (one path per
step). Differences against the first policy come with paired bootstrap 95 % intervals over
tasks.

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> from t2_agents.budget.policies import FixedPolicy
    >>> from t2_agents.tasks import Question
    >>> tasks = [Question("q1", "products", "What is 6 * 7?", "42")]
    >>> result = compare_agent(tasks, engine=FakeEngine(answers={"42": 1.0}),
    ...                        t2_policy=FixedPolicy(2), config=CompareConfig(policies=("fixed",
    ...                        "one"), n_max=4))
    >>> [(p.policy, p.accuracy, p.samples_mean) for p in result.policies]
    [('fixed', 1.0, 4.0), ('one', 1.0, 1.0)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np

from t2_agents.answers import get_extractor
from t2_agents.backends.base import Engine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.budget.protocols import BasicPolicy
from t2_agents.budget.stop_rules import StopRule
from t2_agents.checks import check_int, import_callable
from t2_agents.curves.compare import paired_difference
from t2_agents.errors import ConfigError
from t2_agents.graph import CostLedger, ThinkingContext, build_parallel_thinking_graph
from t2_agents.graph.budgets import RunBudget, RunObjective
from t2_agents.tasks import Question

__all__ = [
    "COMPARE_POLICIES",
    "AgentComparison",
    "AgentFactory",
    "CompareConfig",
    "ComparePolicy",
    "PolicyRuns",
    "compare_agent",
    "load_agent_factory",
    "plot_comparison",
]

ComparePolicy = Literal["fixed", "t2", "budget", "hybrid", "one"]
"""A policy :func:`compare_agent` runs (see the module docs)."""
COMPARE_POLICIES: tuple[str, ...] = get_args(ComparePolicy)
"""Every :data:`ComparePolicy`."""
Grader = Callable[[str, str], bool]
"""``grade(question, final_text) -> bool``."""


class AgentFactory(Protocol):
    """Builds the agent under test around a parallel-thinking graph (see the module docs)."""

    def __call__(
        self, thinking: Any, /, *, ledger: CostLedger, run_budget: RunBudget | None
    ) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    """How :func:`compare_agent` runs the policies.

    Example:
        >>> CompareConfig(policies=("t2", "fixed")).policies
        ('t2', 'fixed')
    """

    policies: tuple[str, ...] = ("fixed", "t2", "budget", "hybrid")
    """The policies, in order; the first is the reference of the differences."""
    n_max: int = 8
    """The fixed budget, and T2's largest N per step."""
    max_tokens: int = 48
    """Tokens per path (the shipped estimator was calibrated at 48)."""
    temperature: float = 0.7
    """Sampling temperature of every path."""
    seed: int = 0
    """Sampling seed (every policy and task starts from it)."""
    window: int = 4
    """The hybrid's follow-up wave size."""
    run_budget: int | None = None
    """``budget``: samples per run; None: the mean samples per run of ``t2`` (run first)."""
    steps: int = 1
    """``budget``: thinking steps a run is expected to make."""
    objective: RunObjective = "sum"
    """``budget``: what the allocation maximises (``sum`` or ``success``)."""
    resamples: int = 2000
    """Bootstrap resamples of the paired intervals."""

    def __post_init__(self) -> None:
        if not self.policies:
            raise ConfigError(f"policies is empty; pass some of {COMPARE_POLICIES}")
        for name in self.policies:
            if name not in COMPARE_POLICIES:
                raise ConfigError(
                    f"policy {name!r} is not one of {COMPARE_POLICIES}; pass e.g. "
                    "--policies fixed,t2,budget"
                )
        if len(set(self.policies)) != len(self.policies):
            raise ConfigError(f"policies={list(self.policies)} repeats a policy; list each once")
        check_int("n_max", self.n_max, low=1)
        check_int("max_tokens", self.max_tokens, low=1)
        check_int("steps", self.steps, low=1)
        check_int("resamples", self.resamples, low=100)
        if self.run_budget is not None:
            check_int("run_budget", self.run_budget, low=self.steps)
        if "hybrid" in self.policies:
            StopRule(kind="hybrid", window=self.window).check_cap(self.n_max)


@dataclass(frozen=True)
class PolicyRuns:
    """One policy's runs: per-task outcomes and their means."""

    policy: str
    """The policy (``fixed``, ``t2``...)."""
    label: str
    """The budget policy's own name (``fixed-8``, ``t2``...)."""
    correct: list[bool]
    """Per task: the final answer was right."""
    samples: list[int]
    """Per task: paths sampled over the run's thinking steps."""
    completion_tokens: list[int]
    """Per task: completion tokens of those paths."""
    engine_calls: list[int]
    """Per task: engine sample calls."""
    rounds: list[int]
    """Per task: sequential rounds of sampling (waves of a stop rule; one per step)."""
    seconds: list[float]
    """Per task: the agent run's wall time."""
    steps: list[int]
    """Per task: thinking steps (tool calls)."""
    answers: list[str | None]
    """Per task: the answer extracted from the final message."""

    @property
    def accuracy(self) -> float:
        """Share of tasks answered right."""
        return float(np.mean(self.correct))

    def mean(self, metric: str) -> float:
        """The per-task mean of ``samples``, ``completion_tokens``, ``engine_calls``,
        ``rounds``, ``seconds`` or ``steps``."""
        return float(np.mean(getattr(self, metric)))

    @property
    def samples_mean(self) -> float:
        """Mean paths per run."""
        return self.mean("samples")


_METRICS = ("samples", "completion_tokens", "engine_calls", "rounds", "seconds")


@dataclass(frozen=True)
class AgentComparison:
    """:func:`compare_agent`'s result: every policy's runs and the paired differences."""

    tasks: int
    """Tasks run under every policy."""
    policies: list[PolicyRuns]
    """In the configured order."""
    differences: dict[str, dict[str, Any]]
    """Policy -> metric -> ``{"difference", "ci"}`` against the first policy."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The configuration, the run budget used and the agent factory."""

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of the side-by-side table (means per run, differences vs first)."""
        first = self.policies[0].policy
        header = ["metric", *(p.policy for p in self.policies)]
        rows = [["accuracy", *(self._cell(p, "accuracy", p.accuracy) for p in self.policies)]]
        for metric in _METRICS:
            rows.append([metric, *(self._cell(p, metric, p.mean(metric)) for p in self.policies)])
        rows.append(["policy", *(p.label for p in self.policies)])
        rows.append([f"(differences vs {first}, 95 % CI)", *([""] * len(self.policies))])
        return header, rows

    def _cell(self, runs: PolicyRuns, metric: str, value: float) -> str:
        diff = self.differences.get(runs.policy, {}).get(metric)
        text = f"{value:.3g}"
        if diff is not None:
            low, high = diff["ci"]
            text += f" ({diff['difference']:+.3g} [{low:+.3g}, {high:+.3g}])"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "tasks": self.tasks,
            "policies": {
                p.policy: {
                    **asdict(p),
                    "accuracy": p.accuracy,
                    **{f"mean_{m}": p.mean(m) for m in _METRICS},
                }
                for p in self.policies
            },
            "differences": self.differences,
            "settings": self.settings,
        }


def load_agent_factory(spec: str) -> AgentFactory:
    """Import an agent factory given as ``module:function`` (from the current directory or
    ``PYTHONPATH``).

    Raises:
        ConfigError: Not ``module:function``, no such module, or not callable.

    Example:
        >>> load_agent_factory("t2_agents.agents.harness:make_agent").__name__
        'make_agent'
    """
    return import_callable(spec, role="agent")  # type: ignore[return-value]


def compare_agent(
    tasks: Sequence[Question],
    *,
    engine: Engine,
    t2_policy: BasicPolicy | None,
    config: CompareConfig,
    factory: AgentFactory | None = None,
    grader: Grader | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> AgentComparison:
    """Run every task under every policy of ``config`` (see the module docs).

    Args:
        tasks: One agent run each (``Question.prompt`` is the user message, ``gold`` the final
            answer; ``task`` picks the extractor).
        engine: Encodes and samples for every policy.
        t2_policy: T2 (``t2``, ``budget``, ``hybrid`` need it).
        config: Policies and settings.
        factory: Builds the agent (default: :func:`~t2_agents.agents.harness.make_agent`).
        grader: ``grade(question, final_text) -> bool`` instead of the extractor.
        progress: Called as ``progress(policy, tasks_done, tasks)``.

    Raises:
        ConfigError: No tasks; a policy needs T2 and none was given; the agent returned no
            messages.
    """
    if not tasks:
        raise ConfigError("no tasks to run; pass a JSONL file with question and answer lines")
    needs_t2 = [p for p in config.policies if p in ("t2", "budget", "hybrid")]
    if needs_t2 and t2_policy is None:
        raise ConfigError(f"policies {needs_t2} need T2: pass --estimator PATH (or train one)")
    if factory is None:
        from t2_agents.agents.harness import make_agent

        factory = make_agent
    runs: dict[str, PolicyRuns] = {}
    order = list(config.policies)
    if "budget" in order and config.run_budget is None and "t2" in order:
        order.sort(key=lambda p: p == "budget")  # t2 first: the budget spends what it spent
    budget_used: int | None = config.run_budget
    for name in order:
        budget = None
        if name == "budget":
            if budget_used is None:
                t2_runs = runs.get("t2") or _run_policy(
                    "t2", tasks, engine, t2_policy, config, factory, grader, None, progress
                )
                budget_used = max(config.steps, round(t2_runs.samples_mean))
            budget = RunBudget(
                total_samples=budget_used, steps=config.steps, objective=config.objective
            )
        runs[name] = _run_policy(
            name, tasks, engine, t2_policy, config, factory, grader, budget, progress
        )
    ordered = [runs[name] for name in config.policies]
    return AgentComparison(
        tasks=len(tasks),
        policies=ordered,
        differences=_differences(ordered, config.resamples, config.seed),
        settings={
            **asdict(config),
            "run_budget_used": budget_used,
            "factory": getattr(factory, "__qualname__", repr(factory)),
        },
    )


def _run_policy(
    name: str,
    tasks: Sequence[Question],
    engine: Engine,
    t2_policy: BasicPolicy | None,
    config: CompareConfig,
    factory: AgentFactory,
    grader: Grader | None,
    run_budget: RunBudget | None,
    progress: Callable[[str, int, int], None] | None,
) -> PolicyRuns:
    policy: BasicPolicy = FixedPolicy(1 if name == "one" else config.n_max)
    if name in ("t2", "budget", "hybrid"):
        assert t2_policy is not None
        policy = t2_policy
    context = ThinkingContext(
        n_max=config.n_max, max_tokens=config.max_tokens, temperature=config.temperature,
        seed=config.seed,
        stop=StopRule(kind="hybrid", window=config.window) if name == "hybrid" else None,
    )  # fmt: skip
    thinking = build_parallel_thinking_graph(engine=engine, policy=policy, context=context)
    ledger = CostLedger()
    agent = factory(thinking, ledger=ledger, run_budget=run_budget)
    rows: list[tuple[bool, str | None, list[Any], float]] = []
    for index, task in enumerate(tasks):
        before = len(ledger.steps)
        started = time.perf_counter()
        final = _final_text(
            agent.invoke(
                {"messages": [{"role": "user", "content": task.prompt}]},
                {"configurable": {"thread_id": f"compare-{name}-{index}"}},
            )
        )
        seconds = time.perf_counter() - started
        answer = get_extractor(task.task)(final)
        right = grader(task.text, final) if grader is not None else task.is_correct(answer)
        if not isinstance(right, bool):
            raise ConfigError(f"the grader returned {right!r} for task {task.id!r}; return a bool")
        rows.append((right, answer, list(ledger.steps[before:]), seconds))
        if progress is not None:
            progress(name, index + 1, len(tasks))
    labels = [steps[0].policy for _, _, steps, _ in rows if steps]
    return PolicyRuns(
        policy=name,
        label=labels[0] if labels else name,
        correct=[right for right, _, _, _ in rows],
        samples=[sum(s.samples for s in steps) for _, _, steps, _ in rows],
        completion_tokens=[sum(s.completion_tokens for s in steps) for _, _, steps, _ in rows],
        engine_calls=[sum(s.engine_calls for s in steps) for _, _, steps, _ in rows],
        rounds=[sum(max(1, len(s.waves)) for s in steps) for _, _, steps, _ in rows],
        seconds=[seconds for _, _, _, seconds in rows],
        steps=[len(steps) for _, _, steps, _ in rows],
        answers=[answer for _, answer, _, _ in rows],
    )


def _final_text(state: object) -> str:
    messages = state.get("messages") if isinstance(state, Mapping) else None
    if not messages:
        raise ConfigError(
            "the agent returned no messages; the factory must build an agent invoked with "
            '{"messages": [...]} that returns its messages (create_agent, a MessagesState graph)'
        )
    from t2_agents.agents.scripted_model import message_text

    return message_text(messages[-1])


def _differences(
    runs: Sequence[PolicyRuns], resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    base = runs[0]
    out: dict[str, dict[str, Any]] = {}
    for other in runs[1:]:
        row: dict[str, Any] = {}
        pairs = [("accuracy", [float(x) for x in other.correct], [float(x) for x in base.correct])]
        pairs += [(m, getattr(other, m), getattr(base, m)) for m in _METRICS]
        for metric, mine, theirs in pairs:
            d = paired_difference(mine, theirs, resamples=resamples, seed=seed)
            row[metric] = {"difference": d["difference"], "ci": d["ci"]}
        out[other.policy] = row
    return out


def plot_comparison(result: AgentComparison, path: str | Path) -> Path:
    """Bar charts of accuracy, samples, tokens, wall time and rounds per run, per policy.

    Returns:
        The PNG written (its folder is created).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("accuracy", None), ("samples per run", "samples"),
              ("completion tokens per run", "completion_tokens"),
              ("wall seconds per run", "seconds"), ("rounds per run", "rounds"))  # fmt: skip
    labels = [p.policy for p in result.policies]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.2))
    for ax, (title, metric) in zip(axes, panels, strict=True):
        values = [p.accuracy if metric is None else p.mean(metric) for p in result.policies]
        bars = ax.bar(labels, values, color="#2b7bba")
        ax.bar_label(bars, fmt="%.3g")
        ax.tick_params(axis="x", labelrotation=30)
        ax.set_title(title, fontsize=9)
        ax.margins(y=0.15)
    fig.suptitle(f"The same agent on {result.tasks} tasks under each budget policy")
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
