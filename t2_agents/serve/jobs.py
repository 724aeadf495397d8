"""A request as the service runs it (:class:`Job`), what it answers (:class:`Outcome`), and the
helpers that turn the graph's paths into the answer: each path's vote key (stop strings, tool
calls), the ``t2`` extension field, the streamed pieces.

Example:
    >>> cut_at_stop("The answer is 7. Q: next", (" Q:",))
    ('The answer is 7.', True)
    >>> list(answer_pieces("one two three", size=8))
    ['one two ', 'three']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from t2_agents.early_stop import LOW_CONFIDENCE
from t2_agents.graph.result import ThinkingResult
from t2_agents.serve.protocol import T2Cost, T2Extension, T2Path
from t2_agents.serve.safeguards import FallbackPolicy
from t2_agents.serve.tools import ToolCall, ToolSet, call_key, parse_tool_calls
from t2_agents.voting import VerdictDict

__all__ = [
    "Job",
    "Outcome",
    "answer_pieces",
    "build_extension",
    "cut_at_stop",
    "vote_key_extractor",
]


@dataclass(frozen=True, kw_only=True)
class Job:
    """A validated request, ready for the graph."""

    kind: Literal["chat", "text"]
    """``chat`` (``/v1/chat/completions``) or ``text`` (``/v1/completions``)."""
    prompt: str
    """The question for the graph (a lone user message, or a rendered prompt)."""
    overrides: dict[str, Any]
    """The run's ``configurable["t2"]`` overrides (policy, n range, sampling, extractor)."""
    tools: ToolSet | None = None
    """Declared tools when the paths may call them (not with ``tool_choice="none"``)."""
    ignore: tuple[str, ...] = ()
    """Arguments ignored by the arguments vote."""
    stop: tuple[str, ...] = ()
    """Stop strings: each path is cut at the first one before it is voted."""
    stream: bool = False
    """Answer as server-sent chunks."""
    include_usage: bool = False
    """Streaming: send a last chunk with ``usage`` (``stream_options.include_usage``)."""
    paths: bool = False
    """Return every path in the ``t2`` field."""
    events: bool = False
    """Stream the graph's events before the answer (with ``stream``)."""
    calibration: list[str] | None = None
    """When T2 chooses N and its estimator records calibration settings: each setting this
    request's sampling differs from (empty: calibrated); None otherwise."""
    fallback: FallbackPolicy | None = None
    """The request's T2 policy with its safe N (tells after the run whether it fell back)."""
    question: str = ""
    """The question as the client wrote it (the last user message, or the prompt): what
    ``--record`` keys a recorded pool by."""
    task: str = "traffic"
    """``t2.task`` (the answer extractor's task), or ``traffic`` when the request names none."""

    def flags(self) -> dict[str, Any]:
        """The ``t2`` response fields this job adds: ``calibrated``, its reason, ``fallback``."""
        differences = self.calibration
        return {
            "calibrated": None if differences is None else not differences,
            "calibration_reason": "; ".join(differences) if differences else None,
            "fallback": None if self.fallback is None else self.fallback.reason,
        }


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What the service answers for one job."""

    text: str | None
    """The chosen path's text (cut at a stop string); None when a tool call won and no text
    precedes it."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """The winning tool calls (empty when a text answer won)."""
    finish_reason: str
    """``stop``, ``length`` or ``tool_calls``."""
    usage: dict[str, int]
    """``prompt_tokens`` (once), ``completion_tokens`` (all paths), ``total_tokens``."""
    t2: T2Extension
    """The ``t2`` extension field: N, policy, vote shares, the arguments vote, cost."""


def build_extension(
    result: ThinkingResult,
    texts: list[str],
    *,
    best: int,
    arguments: VerdictDict | None,
    paths: bool,
) -> T2Extension:
    verdict = result.verdict
    return T2Extension(
        n=result.n,
        policy=result.policy,
        n_min=result.n_min,
        n_max=result.n_max,
        out_of_distribution=result.out_of_distribution,
        warning=result.warning,
        answer=verdict.answer,
        share=verdict.share,
        distribution=dict(verdict.distribution),
        valid=verdict.valid,
        invalid=verdict.invalid,
        vote=verdict.rule,
        vote_warning=verdict.warning,
        arguments_vote=dict(arguments) if arguments is not None else None,
        chosen_path=best,
        failed_paths=len(result.paths) - len(result.ok_paths),
        waves=list(result.waves),
        stopped=result.stopped,
        weak_stopped=sum(p.finish_reason == LOW_CONFIDENCE for p in result.paths),
        cost=T2Cost(
            samples=len(result.paths),
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            seconds={**result.node_seconds, "wall": result.wall_seconds},
        ),
        paths=[
            T2Path(
                text=texts[i],
                answer=p.answer,
                tokens=p.completion_tokens,
                finish_reason=p.finish_reason,
                error=p.error,
            )
            for i, p in enumerate(result.paths)
        ]
        if paths
        else None,
    )


def vote_key_extractor(
    base: Callable[[str], str | None],
    tools: ToolSet | None,
    forced: str | None,
    stop: tuple[str, ...],
) -> Callable[[str], str | None]:
    """The stage-1 vote key of a path: its tool calls' key, or its answer by ``base``, after
    cutting it at the first stop string (see :mod:`t2_agents.serve.tools`)."""

    def extract(text: str) -> str | None:
        text = cut_at_stop(text, stop)[0]
        if tools is None:
            return base(text)
        calls = parse_tool_calls(text, tools)
        if calls is None:
            return None
        if calls:
            if forced and any(call.name != forced for call in calls):
                return None
            return call_key(calls)
        return None if forced is not None else base(text)

    return extract


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    positions = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


def answer_pieces(text: str, size: int = 24) -> Iterator[str]:
    """Split the answer into small pieces at whitespace (what a streaming client expects)."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        space = text.rfind(" ", start + 1, end) if end < len(text) else -1
        end = space + 1 if space > start else end
        yield text[start:end]
        start = end
