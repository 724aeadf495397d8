"""The run settings of the parallel-thinking graph, declared once.

:class:`RunSettings` declares every JSON-ready setting of a step (budget range, sampling, fan-out,
extractor task, stop rule...) with its type, default and documentation.
:class:`~t2_agents.graph.state.ThinkingContext` extends it with the live objects (engine, policy,
ledger...), and :data:`ThinkingSettings`, the graph's LangGraph ``context_schema`` (what the
LangGraph server builds from a run's ``context`` and shows as JSON schema), is derived from it:
the same fields, each optional (left out: the graph's default), documented with the same text.

This module deliberately does not use ``from __future__ import annotations``: the field types
must be objects at run time, to derive :data:`ThinkingSettings` from them.

Example:
    >>> RunSettings().n_max
    8
    >>> ThinkingSettings(n_max=4, seed=None).overrides()
    {'n_max': 4, 'seed': None}
    >>> ThinkingSettings.model_fields["temperature"].description
    'Sampling temperature of every branch (0: greedy).'
"""

import ast
import inspect
import itertools
import textwrap
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from t2_agents.budget.stop_rules import StopKind, StopRule, check_stop_kind
from t2_agents.confidence import ConfidenceStatistic
from t2_agents.vote_rules import check_vote_kind

__all__ = [
    "BranchErrors",
    "Fanout",
    "RunSettings",
    "SettingsOverrides",
    "ThinkingSettings",
]

Fanout = Literal["batched", "send"]
"""``batched``: one ``sample(n=N)`` call in one node; ``send``: one ``Send`` task per branch."""

BranchErrors = Literal["record", "raise"]
"""What a failed branch does: become a failed branch result, or fail the run."""

_NULLABLE = ("seed", "task")
"""Settings whose None is a value (fresh randomness; the default extractor), not "unset"."""


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Every JSON-ready setting of one parallel-thinking step, with its default.

    Example:
        >>> RunSettings(temperature=0.2).temperature
        0.2
    """

    n_min: int = 1
    """Smallest budget; the policy's choice is clamped to at least this."""
    n_max: int = 8
    """Largest budget; the policy's choice is clamped to at most this."""
    temperature: float = 0.7
    """Sampling temperature of every branch (0: greedy)."""
    top_p: float = 1.0
    """Nucleus mass of every branch, in (0, 1]."""
    max_tokens: int = 64
    """Largest completion length of every branch, in tokens."""
    seed: Optional[int] = 0  # noqa: UP045 - evaluated at run time (see the module docs)
    """Base seed: branch i samples with seed + i (None: fresh randomness); also the vote's
    tie-breaking seed (0 when None)."""
    fanout: Fanout = "batched"
    """batched: one sample(n=N) engine call; send: one LangGraph task per branch."""
    task: Optional[str] = None  # noqa: UP045
    """Task name choosing the answer extractor (e.g. "syllogism" for yes/no, "products" for a
    number; None: the default extractor)."""
    exact_seeds: bool = False
    """Batched mode: when the engine does not declare per_path_seeds, sample each branch seed
    separately so answers equal send mode exactly (slower: no batching)."""
    branch_errors: BranchErrors = "record"
    """record: a failed branch (after retries) is kept with its error and the others vote;
    raise: the error fails the run, which a checkpointer can resume."""
    stop: Optional[StopRule | StopKind] = None  # noqa: UP045
    """Sample in waves and stop early, by a registered stop rule: adaptive
    (Adaptive-Consistency, one path per wave), esc (windows of 4, stop on a unanimous window),
    hybrid (a first wave of the policy's N, then waves of 4 until the vote is decisive) or any
    rule registered since, or a StopRule with other settings; None: one wave of N."""
    vote: str = "majority"
    """How the aggregation node combines the paths' answers, by a registered vote rule:
    majority (one vote per path), weighted (each path votes with its confidence, from the
    engine's token log-probabilities) or filtered (the vote_eta % most confident paths, then
    majority); a rule that needs confidence falls back to majority, with a warning in the
    verdict, when a path has none."""
    vote_eta: float = 50.0
    """filtered: the percentage of the paths with an answer kept, most confident first; in
    (0, 100]."""
    vote_statistic: ConfidenceStatistic = "lowest_group"
    """The path confidence the weighted and filtered rules read: mean, lowest_group (the
    lowest sliding-window mean) or tail."""
    early_stop_floor: Optional[float] = None  # noqa: UP045
    """Stop a path while it is decoded once the mean token confidence over its last window
    of tokens falls below this floor (DeepConf-online); a stopped path does not vote and its
    tokens are counted. Needs an engine that stops weak paths (transformers, vLLM with
    confidence_top_k). None: no fixed floor."""
    early_stop_warmup: int = 0
    """Batched fan-out: decode this many paths to the end first and set the floor from their
    lowest group confidences (DeepConf-online's warm-up); 0: no warm-up."""
    early_stop_keep: float = 90.0
    """With a warm-up: the percentage of warm-up paths whose confidence is at or above the
    floor, in (0, 100] (90 stops only paths weaker than the weakest tenth)."""


class SettingsOverrides(BaseModel):
    """Base of :data:`ThinkingSettings`: the settings a run overrides, all optional.

    Every field left out keeps the graph's default (set when the graph was built); only the
    fields a run sets override it. A None counts as left out, except for ``seed`` (None: fresh
    randomness) and ``task`` (None: the default extractor), where an explicit None overrides.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def overrides(self) -> dict[str, Any]:
        """The fields this run sets: ``{name: value}`` for :func:`dataclasses.replace`."""
        return {
            name: getattr(self, name)
            for name in sorted(self.model_fields_set)
            if getattr(self, name) is not None or name in _NULLABLE
        }


def _attribute_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a class's attributes (read from its source)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):  # no source (frozen or zipped): no descriptions
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _stop_kind(kind: str) -> str:
    return check_stop_kind(kind, option="stop")


def _vote_kind(kind: str) -> str:
    return check_vote_kind(kind, option="vote")


def _json_type(name: str, annotation: Any) -> Any:
    # A run's context is JSON: the stop rule is given by its kind (StopRule settings are Python),
    # checked against the registry when the run starts (rules may be registered after import).
    if name == "stop":
        return Optional[Annotated[str, AfterValidator(_stop_kind)]]  # noqa: UP045
    if name == "vote":
        return Optional[Annotated[str, AfterValidator(_vote_kind)]]  # noqa: UP045
    return Optional[annotation]  # noqa: UP045


_DOCS = _attribute_docs(RunSettings)

_FIELDS: dict[str, Any] = {
    f.name: (_json_type(f.name, f.type), Field(default=None, description=_DOCS.get(f.name)))
    for f in fields(RunSettings)
}

ThinkingSettings: type[SettingsOverrides] = create_model(
    "ThinkingSettings",
    __base__=SettingsOverrides,
    __module__=__name__,
    __doc__="""The JSON-ready run settings: the graph's LangGraph ``context_schema``.

    Derived from :class:`RunSettings` (same fields and documentation, each optional: left out,
    the graph's default). The LangGraph server builds it from a run's ``context``
    (``{"context": {"n_max": 4}}``) and serves its JSON schema; in Python, pass
    ``context=ThinkingSettings(...)`` or a dict.
    """,
    **_FIELDS,
)
"""The graph's JSON context schema, derived from :class:`RunSettings` (see the module docs)."""
