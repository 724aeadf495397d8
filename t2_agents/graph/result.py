"""The typed result of one thinking step, read once from the graph's final state.

The graph's state is a JSON-ready ``dict`` (LangGraph checkpoints and streams it);
:class:`ThinkingResult` is what Python callers read from it: ``t2 ask``
(:func:`t2_agents.ask.ask_question`) and the endpoint (:mod:`t2_agents.serve.service`) both
build one with :meth:`ThinkingResult.from_state` instead of picking keys out of the dict.

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> from t2_agents.budget.policies import FixedPolicy
    >>> from t2_agents.graph import build_parallel_thinking_graph
    >>> graph = build_parallel_thinking_graph(
    ...     engine=FakeEngine(answers={"7": 1.0}), policy=FixedPolicy(3), n_max=3)
    >>> result = ThinkingResult.from_state(graph.invoke({"question": "3+4?"}))
    >>> result.n, result.verdict.answer, len(result.paths)
    (3, '7', 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from t2_agents.voting import Verdict

__all__ = ["PathRecord", "ThinkingResult"]


@dataclass(frozen=True, kw_only=True)
class PathRecord:
    """One sampled reasoning path of a step, with its extracted answer."""

    index: int
    """The path's position in the step (0-based, in sampling order)."""
    text: str | None
    """The completion; None when the path failed."""
    answer: str | None
    """The extracted final answer; None when none was found or the path failed."""
    prompt_tokens: int
    """Prompt tokens of the path's request."""
    completion_tokens: int
    """Tokens the path decoded (also for a path cut short)."""
    finish_reason: str
    """``stop``, ``length``, ``cancelled`` or ``error``."""
    error: str | None = None
    """Why the path failed; None for a path that ran."""


@dataclass(frozen=True, kw_only=True)
class ThinkingResult:
    """What one step chose, sampled, voted and cost (see the module docs)."""

    question: str
    """The question as the graph received it."""
    n: int
    """Paths sampled (after clamping; with a stop rule, all waves together)."""
    policy: str
    """The policy (and stop rule) that chose N, e.g. ``t2`` or ``fixed-16``."""
    n_min: int
    """Lower end of the step's budget range."""
    n_max: int
    """Upper end of the step's budget range."""
    out_of_distribution: bool = False
    """The policy's distribution guard flagged the question and gave it the safe budget."""
    warning: str | None = None
    """Why N was clamped or changed, when it was."""
    verdict: Verdict = field(default_factory=Verdict)
    """The vote over the paths' answers."""
    paths: tuple[PathRecord, ...] = ()
    """Every path of the step, in index order."""
    waves: tuple[int, ...] = ()
    """Paths per wave when a stop rule ran (empty otherwise)."""
    stopped: str | None = None
    """Why a stop rule stopped (``decisive``, ``cap``...); None without a stop rule."""
    node_seconds: Mapping[str, float] = field(default_factory=dict)
    """Seconds spent per graph node (``budget``, ``sample``, ``aggregate``...)."""
    wall_seconds: float | None = None
    """Wall time of the step."""
    error: str | None = None
    """Why the step failed, when every path failed."""

    @property
    def ok_paths(self) -> tuple[PathRecord, ...]:
        """The paths that ran (no error)."""
        return tuple(p for p in self.paths if p.error is None)

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens of the step, counted once (the prompt is shared by every path)."""
        ok = self.ok_paths
        return ok[0].prompt_tokens if ok else 0

    @property
    def completion_tokens(self) -> int:
        """Tokens decoded by all paths together."""
        return sum(p.completion_tokens for p in self.paths)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ThinkingResult:
        """Read the graph's final state (a :class:`~t2_agents.graph.state.ThinkingState`)."""
        branches = sorted(state.get("branches") or [], key=lambda b: int(b["index"]))
        answers = list(state.get("answers") or [None] * len(branches))
        answers += [None] * (len(branches) - len(answers))
        verdict = state.get("verdict") or {}
        cost = state.get("cost") or {}
        return cls(
            question=str(state.get("question", "")),
            n=int(state.get("n") or 0),
            policy=str(state.get("policy") or ""),
            n_min=int(state.get("n_min") or 0),
            n_max=int(state.get("n_max") or 0),
            out_of_distribution=bool(state.get("out_of_distribution", False)),
            warning=state.get("budget_warning"),
            verdict=Verdict(
                answer=verdict.get("answer"),
                share=float(verdict.get("share", 0.0)),
                distribution=dict(verdict.get("distribution", {})),
                valid=int(verdict.get("valid", 0)),
                invalid=int(verdict.get("invalid", len(branches))),
                tied=tuple(verdict.get("tied", ())),
                rule=str(verdict.get("rule", "majority")),
                warning=verdict.get("warning"),
            ),
            paths=tuple(_path(b, answers[i]) for i, b in enumerate(branches)),
            waves=tuple(int(w["size"]) for w in state.get("waves") or []),
            stopped=state.get("stopped"),
            node_seconds=dict(cost.get("node_seconds", {})),
            wall_seconds=cost.get("wall_seconds"),
            error=state.get("error"),
        )


def _path(branch: Mapping[str, Any], answer: str | None) -> PathRecord:
    return PathRecord(
        index=int(branch["index"]),
        text=branch.get("text"),
        answer=answer,
        prompt_tokens=int(branch.get("prompt_tokens") or 0),
        completion_tokens=int(branch.get("completion_tokens") or 0),
        finish_reason=str(branch.get("finish_reason") or ""),
        error=branch.get("error"),
    )
