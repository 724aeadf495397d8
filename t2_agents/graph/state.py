"""The state, the per-run settings and context, and the reducers of the parallel-thinking graph.

The graph state is a ``TypedDict`` of plain JSON-ready values (so any checkpointer can store
it). The live objects (engine, sampler, policy, extractor, ledger) are bound into the nodes when
the graph is built (:func:`~t2_agents.graph.build_parallel_thinking_graph`); they never travel in
the state. The graph's LangGraph ``context_schema`` is
:data:`~t2_agents.graph.settings.ThinkingSettings`, a model of plain
JSON fields, so the LangGraph server can build it from a run's ``context`` and show its JSON
schema (``/assistants/{id}/schemas``).

Configuration of one run, lowest to highest precedence:

1. the defaults given to :func:`~t2_agents.graph.build_parallel_thinking_graph`;
2. the run's context, either
   ``graph.invoke(..., context=ThinkingSettings(n_max=4))`` (or ``context={"n_max": 4}``, which
   LangGraph turns into :class:`ThinkingSettings`; this is what the LangGraph server does with a
   run's ``context``): overrides only the fields it sets; or, in Python,
   ``graph.invoke(..., context=ThinkingContext(...))``: replaces every field, except that the
   live objects left as None there (``engine``, ``sampler``, ``policy``, ``extractor``,
   ``ledger``) keep the graph's defaults;
3. ``config={"configurable": {"t2": {"n_max": 4, "temperature": 0.2}}}``: overrides single
   fields (this also reaches the graph when it is a subgraph or a tool of a larger agent, and
   works the same through the LangGraph server).

A context of any other type (a parent graph's own context, when this graph is its subgraph or
tool) is ignored.

Example:
    >>> ctx = ThinkingContext(n_max=4, fanout="send")
    >>> from t2_agents.graph.settings import ThinkingSettings
    >>> resolve_context(ctx, ThinkingSettings(n_max=3), None).n_max
    3
    >>> resolve_context(ctx, None, {"configurable": {"t2": {"n_max": 2}}}).n_max
    2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Annotated, Any, NotRequired, get_args

from typing_extensions import TypedDict

from t2_agents.answers import AnswerExtractor, get_extractor
from t2_agents.backends.base import Engine, Sampler, SamplingParams
from t2_agents.budget.protocols import BasicPolicy
from t2_agents.budget.stop_rules import StopRule, check_stop_kind, stop_rule_kinds
from t2_agents.checks import check_budget_range
from t2_agents.early_stop import EarlyStop
from t2_agents.errors import ConfigError
from t2_agents.graph.ledger import CostLedger
from t2_agents.graph.settings import BranchErrors, Fanout, RunSettings, SettingsOverrides
from t2_agents.vote_rules import VoteSettings
from t2_agents.voting import VerdictDict

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from t2_agents.graph.budgets import RunAccount, RunBudget

__all__ = [
    "CONFIG_KEY",
    "BranchResult",
    "BranchTask",
    "FeatureSummary",
    "ThinkingContext",
    "ThinkingInput",
    "ThinkingState",
    "WaveRecord",
    "WaveTask",
    "add_branches",
    "add_waves",
    "resolve_context",
    "with_overrides",
]

CONFIG_KEY = "t2"
"""Key under ``config["configurable"]`` holding a dict of :class:`ThinkingContext` overrides."""

_INHERITED = ("engine", "sampler", "policy", "extractor", "ledger", "stop", "run_budget")


class ThinkingInput(TypedDict):
    """What a run needs: the question (a user message; the engine applies the chat template)."""

    question: str


class BranchResult(TypedDict):
    """One reasoning path, successful or failed (``error`` set, ``text`` None)."""

    index: int
    seed: int | None
    text: str | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    error: str | None
    attempts: int
    started: float
    finished: float
    seconds: float
    confidence: NotRequired[dict[str, float | int] | None]
    """The path's :class:`~t2_agents.confidence.PathConfidence` (``to_dict``); None or absent
    when the engine gave none."""


class WaveTask(TypedDict):
    """What a ``send`` branch of a wave needs to cancel the wave's other requests in flight."""

    key: str
    prior: list[str | None]


class BranchTask(TypedDict):
    """The payload of one ``Send("branch", ...)``."""

    question: str
    index: int
    seed: int | None
    params: dict[str, Any]
    wave: NotRequired[WaveTask | None]


class FeatureSummary(TypedDict):
    """What the state keeps of the prompt's features (never the raw tensor)."""

    layers: list[int]
    shape: list[int]
    l2_norm: list[float]
    l2_norm_mean: float


def add_branches(
    left: list[BranchResult] | None, right: list[BranchResult] | None
) -> list[BranchResult]:
    """Fan-in reducer of branch results: ``operator.add``, plus a reset.

    An update of None clears the list. The budget node sends it at the start of every step, so
    a thread that a checkpointer keeps across several questions starts each step empty.

    Example:
        >>> add_branches([], [{"index": 0}])  # doctest: +SKIP
        [{'index': 0}]
        >>> add_branches([{"index": 0}], None)  # doctest: +SKIP
        []
    """
    if right is None:
        return []
    return [*(left or []), *right]


class WaveRecord(TypedDict):
    """One wave of a sequential step (a stop rule is set): what it cost and what it decided."""

    wave: int
    size: int
    samples: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    answer: str | None
    share: float
    distribution: dict[str, float]
    leader_probability: float
    stop: bool
    reason: str
    cancelled: int


def add_waves(left: list[WaveRecord] | None, right: list[WaveRecord] | None) -> list[WaveRecord]:
    """Reducer of the wave records: append; an update of None clears (a new step).

    Example:
        >>> add_waves([{"wave": 1}], None)  # doctest: +SKIP
        []
    """
    if right is None:
        return []
    return [*(left or []), *right]


class ThinkingState(TypedDict, total=False):
    """The graph state after (and during) one step; every value is JSON-ready."""

    question: str
    prompt: str
    n: int
    n_min: int
    n_max: int
    n_cap: int
    policy: str
    budget_warning: str | None
    features: FeatureSummary | None
    out_of_distribution: bool
    fanout: Fanout
    params: dict[str, Any]
    seeds: list[int | None]
    branches: Annotated[list[BranchResult], add_branches]
    step_id: str
    wave_start: int
    stop_rule: dict[str, Any] | None
    waves: Annotated[list[WaveRecord], add_waves]
    stopped: str | None
    weak_floor: float | None
    run_budget: dict[str, Any] | None
    answers: list[str | None]
    verdict: VerdictDict | None
    answer: str | None
    error: str | None
    cost: dict[str, Any] | None
    started_at: float
    budget_seconds: float


@dataclass(frozen=True, kw_only=True)
class ThinkingContext(RunSettings):
    """The whole configuration of a step: the live objects and the run settings.

    The settings (budget range, sampling, fan-out, task, stop rule...) are declared once, in
    :class:`~t2_agents.graph.settings.RunSettings`; this class adds the live objects. The
    graph's defaults are one (``build_parallel_thinking_graph(context=...)``); a Python run may
    pass another as its context (``graph.invoke(..., context=ThinkingContext(...))``). The
    graph's JSON ``context_schema`` is :data:`~t2_agents.graph.settings.ThinkingSettings`,
    derived from the same declaration.

    Example:
        >>> ThinkingContext(n_min=2, n_max=8, temperature=0.5).sampling_params(seed=3).seed
        3
    """

    engine: Engine | None = None
    """Renders prompts and encodes features; also samples unless ``sampler`` is set."""
    sampler: Sampler | None = None
    """Samples the branches when set (any :class:`~t2_agents.backends.base.Sampler`, e.g. a
    chat model adapter); None uses ``engine``."""
    policy: BasicPolicy | None = None
    """Chooses N (a :class:`~t2_agents.budget.protocols.BudgetPolicy`, or any object that
    chooses: its missing capabilities get the defaults); None means ``FixedPolicy(n_max)``
    (plain self-consistency)."""
    extractor: AnswerExtractor | None = None
    """An explicit answer extractor; overrides ``task``."""
    ledger: CostLedger | None = None
    """When set, every finished step's cost record is added to it."""
    run_budget: RunBudget | RunAccount | None = None
    """A budget shared by every step of one agent run
    (:class:`~t2_agents.graph.budgets.RunBudget`: one account per ``thread_id``; or one
    :class:`~t2_agents.graph.budgets.RunAccount`); None: no run-level limit."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            kind = check_stop_kind(self.stop, option="stop")
            object.__setattr__(self, "stop", StopRule(kind=kind))
        elif self.stop is not None and not isinstance(self.stop, StopRule):
            raise ConfigError(
                f"stop={self.stop!r} must be a StopRule, a registered kind "
                f"({', '.join(stop_rule_kinds())}) or None"
            )
        check_budget_range(self.n_min, self.n_max)
        if isinstance(self.stop, StopRule):
            self.stop.check_cap(self.n_max)
        if self.fanout not in get_args(Fanout):
            raise ConfigError(f"fanout={self.fanout!r} is not one of {get_args(Fanout)}")
        if self.branch_errors not in get_args(BranchErrors):
            raise ConfigError(
                f"branch_errors={self.branch_errors!r} is not one of {get_args(BranchErrors)}"
            )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ConfigError(f"seed={self.seed!r} must be an int or None")
        self.sampling_params(seed=None)  # validates temperature, top_p, max_tokens
        _ = self.vote_settings  # validates the vote rule and its parameters
        early = self.early_stop
        if early is not None and early.warmup and (self.fanout == "send" or self.stop):
            raise ConfigError(
                f"early_stop_warmup={early.warmup} needs fanout='batched' and no stop rule "
                f"(got fanout={self.fanout!r}, stop={self.stop!r}): the warm-up paths must end "
                "before the others start; pass a fixed early_stop_floor instead"
            )

    @property
    def early_stop(self) -> EarlyStop | None:
        """The online stop of weak paths (:mod:`t2_agents.early_stop`), or None when off."""
        if self.early_stop_floor is None and not self.early_stop_warmup:
            return None
        return EarlyStop(
            floor=self.early_stop_floor, warmup=self.early_stop_warmup, keep=self.early_stop_keep
        )

    @property
    def vote_settings(self) -> VoteSettings:
        """The aggregation node's vote rule (:mod:`t2_agents.vote_rules`)."""
        return VoteSettings(kind=self.vote, eta=self.vote_eta, statistic=self.vote_statistic)

    def sampling_params(self, *, seed: int | None) -> SamplingParams:
        """The :class:`~t2_agents.backends.base.SamplingParams` of one branch."""
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=seed
        )

    def branch_seeds(self, n: int) -> list[int | None]:
        """Seeds of branches ``0..n-1``: ``seed + i``, or all None without a base seed."""
        return [None if self.seed is None else self.seed + i for i in range(n)]

    def get_extractor(self) -> AnswerExtractor:
        """The answer extractor: ``extractor`` if set, else the one registered for ``task``."""
        return self.extractor if self.extractor is not None else get_extractor(self.task)

    def require_engine(self) -> Engine:
        """The engine, or a ConfigError saying how to provide one."""
        if self.engine is None:
            raise ConfigError(
                "no engine: pass engine=... to build_parallel_thinking_graph, or "
                "context=ThinkingContext(engine=...) to invoke"
            )
        return self.engine

    def require_sampler(self) -> Sampler:
        """The engine that samples branches (``sampler`` or ``engine``)."""
        return self.sampler if self.sampler is not None else self.require_engine()


_FIELDS = frozenset(f.name for f in fields(ThinkingContext))


def with_overrides(config: RunnableConfig, overrides: Mapping[str, Any]) -> RunnableConfig:
    """``config`` with ``overrides`` merged into its ``configurable["t2"]`` (what
    :func:`resolve_context` reads); ``config`` itself when there is nothing to add.

    Example:
        >>> with_overrides({"configurable": {"thread_id": "r"}}, {"task": "lcm"})["configurable"]
        {'thread_id': 'r', 't2': {'task': 'lcm'}}
    """
    if not overrides:
        return config
    configurable = dict(config.get("configurable") or {})
    configurable[CONFIG_KEY] = {**dict(configurable.get(CONFIG_KEY) or {}), **overrides}
    return {**config, "configurable": configurable}


def resolve_context(
    defaults: ThinkingContext, context: object, config: Mapping[str, Any] | None
) -> ThinkingContext:
    """Combine the graph defaults, the run's context and ``configurable["t2"]`` overrides.

    Args:
        defaults: The graph's defaults.
        context: ``runtime.context``: a :class:`ThinkingSettings` (its set fields override), a
            :class:`ThinkingContext` (replaces every field but the live objects it leaves None),
            or anything else, which is ignored (a parent graph may run with its own context).
        config: The run's config.

    Returns:
        The effective context (see the module docs for the precedence).

    Raises:
        ConfigError: The overrides are not a dict, name unknown fields, or give invalid values.

    Example:
        >>> resolve_context(ThinkingContext(), ThinkingContext(n_max=3), None).n_max
        3
    """
    resolved = defaults
    if isinstance(context, SettingsOverrides):
        settings = context.overrides()
        if settings:
            resolved = replace(defaults, **settings)
    elif isinstance(context, ThinkingContext):
        inherited = {name: getattr(defaults, name) for name in _INHERITED}
        resolved = replace(
            context,
            **{name: value for name, value in inherited.items() if getattr(context, name) is None},
        )
    configurable = (config or {}).get("configurable") or {}
    overrides = configurable.get(CONFIG_KEY)
    if overrides is None:
        return resolved
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f'config["configurable"]["{CONFIG_KEY}"] must be a dict of ThinkingContext fields, '
            f"got {type(overrides).__name__}"
        )
    unknown = sorted(set(overrides) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"unknown ThinkingContext field(s) {unknown} in configurable[{CONFIG_KEY!r}]; "
            f"known: {sorted(_FIELDS)}"
        )
    return replace(resolved, **dict(overrides))
