"""The fan-out (batched or Send) and aggregate nodes of the parallel-thinking graph.

The budget node that chooses ``N`` before them lives in :mod:`~t2_agents.graph.budget_node`.

Every node is a plain function of ``(state, runtime, config)`` returning a partial update; the
builder binds the graph's default :class:`~t2_agents.graph.state.ThinkingContext` (live objects
included) with ``functools.partial``, and each node combines it with the run's context
(``runtime.context``: usually a :data:`~t2_agents.graph.settings.ThinkingSettings`, or a parent
graph's own context, which is ignored) and ``configurable["t2"]``
(:func:`~t2_agents.graph.state.resolve_context`).

With a stop rule the fan-out nodes sample one *wave* at a time (branch indices and seeds
continue from ``wave_start``) and the ``wave`` node of :mod:`~t2_agents.graph.waves` decides
whether another follows; with a run budget the budget node asks the run's account for the
step's paths and the aggregate node books what the step used
(:mod:`~t2_agents.graph.budgets`).

Under ``ainvoke``/``abatch`` LangGraph runs these synchronous nodes in worker threads
(``run_in_executor`` with the context copied, which is what ``asyncio.to_thread`` does), so the
engine calls of independent questions run concurrently; an engine that is not thread-safe must
serialise itself (the transformers engine holds a lock).

**The two fan-out modes.** After the budget node has chosen ``N`` and the seeds
``seed + i`` (``i = 0..N-1``):

- ``send``: one ``Send("branch", ...)`` per branch; branch ``i`` calls
  ``sample([q], n=1, seed=seed + i)``. Branches are separate LangGraph tasks, so they are retried,
  checkpointed and streamed one by one, and a chat-model sampler can serve them concurrently.
- ``batched``: one ``sample`` node calls ``sample([q], n=N, seed=seed)`` once (fast on a local
  model: one ``generate``).

Both write the same state: ``N`` :class:`~t2_agents.graph.state.BranchResult` dicts with the
same keys, branch ``i`` labelled with seed ``seed + i``, one ``branch`` event each, and the same
cost accounting. The answers are *identical branch by branch* when the engine declares
``per_path_seeds = True`` (completion ``k`` of ``sample(n, seed=s)`` equals the single completion
of ``sample(n=1, seed=s + k)``), or when ``ThinkingContext.exact_seeds`` makes the batched node
call ``sample(n=1)`` once per seed. Otherwise (e.g. the transformers engine, which seeds one
batched ``generate``) the modes draw ``N`` independent paths from the same model, prompt and
sampling parameters: the same answer distribution in law, different individual draws. At
``temperature=0`` every path is the same greedy path, so both modes give the same answers; the
batched node still makes one ``sample(n=N)`` call, and the engines decode the greedy path once
and repeat it (transformers' ``generate`` and vLLM refuse ``n > 1`` without sampling).

**Errors.** A :class:`~t2_agents.errors.TransientEngineError` is re-raised while the node's
``RetryPolicy`` has attempts left (LangGraph retries the branch, or the batched call); after the
last attempt, and at once for any other exception, the branch is kept as a failed result
(``error`` set) and the other branches still vote. With ``branch_errors="raise"`` the error
fails the run instead; a checkpointer then resumes it without re-running finished branches.
``ConfigError`` (a caller mistake such as ``n`` above the engine's maximum) always propagates.
When every branch failed, the aggregate node sets ``error`` and leaves ``verdict`` and
``answer`` None: no answer is ever made up.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from langgraph.types import Send

from t2_agents.backends.base import (
    CANCEL_EVENT,
    Completion,
    Sampler,
    SamplingParams,
    StopsWeakPaths,
    per_path_seeds,
)
from t2_agents.budget.stop_rules import StopRule
from t2_agents.confidence import PathConfidence
from t2_agents.early_stop import LOW_CONFIDENCE, warmup_floor
from t2_agents.errors import (
    CancelledCallError,
    ConfigError,
    DataError,
    EngineError,
    TransientEngineError,
)
from t2_agents.graph.budgets import settle_step
from t2_agents.graph.inflight import WaveBoard, board_for, can_fire_within_a_wave
from t2_agents.graph.ledger import StepRecord
from t2_agents.graph.state import (
    BranchResult,
    BranchTask,
    ThinkingContext,
    ThinkingState,
    WaveRecord,
    WaveTask,
    resolve_context,
)
from t2_agents.vote_rules import apply_vote
from t2_agents.voting import VerdictDict

__all__ = [
    "aggregate_node",
    "branch_answers",
    "branch_node",
    "branch_span",
    "route_fanout",
    "sample_node",
    "vote_seed",
]


def route_fanout(state: ThinkingState) -> list[Send] | str:
    """Before a wave: one ``Send`` per branch in send mode, else the batched node.

    A step that was granted no path (run budget exhausted) goes straight to ``aggregate``.
    """
    if not state.get("seeds"):
        return "aggregate"
    if state.get("fanout") != "send":
        return "sample"
    start = int(state.get("wave_start", 0))
    wave: WaveTask | None = None
    if state.get("stop_rule"):
        key = f"{state.get('step_id', '')}:{start}"
        wave = {"key": key, "prior": list(state.get("answers") or [])}
    return [
        Send(
            "branch",
            BranchTask(
                question=state["question"],
                index=start + i,
                seed=seed,
                params=state["params"],
                wave=wave,
            ),
        )
        for i, seed in enumerate(state["seeds"])
    ]


def branch_node(
    state: BranchTask,
    runtime: Runtime[Any],
    config: RunnableConfig,
    *,
    defaults: ThinkingContext,
    max_attempts: int = 1,
) -> dict[str, Any]:
    """Sample one reasoning path (send mode) and emit its ``branch`` event.

    In a wave whose rule can fire on part of the wave, the branch shares the wave's
    :class:`~t2_agents.graph.inflight.WaveBoard`: its engine call is cancelled once the rule
    fires, and a branch that returns after that is kept as cancelled (it does not vote).
    """
    ctx = resolve_context(defaults, runtime.context, config)
    sampler = ctx.require_sampler()
    attempt = _attempt(runtime)
    started, clock = time.time(), time.perf_counter()
    index, seed = state["index"], state["seed"]
    params = SamplingParams(**state["params"], seed=seed)
    board = _board(state, ctx)
    if board is not None and board.fired:
        result = _failure(index, seed, _CANCELLED, started, clock, attempt, cancelled=True)
        _emit_branch(result)
        return {"branches": [result]}
    token = CANCEL_EVENT.set(board.cancel_event(CANCEL_EVENT.get())) if board else None
    try:
        completion = _one(sampler, state["question"], params, ctx.early_stop_floor)
        result = _result(index, seed, completion, started, clock, attempt)
        if board is not None and not board.add(ctx.get_extractor()(completion.text)):
            result = {**result, "error": _CANCELLED_TEXT, "finish_reason": "cancelled"}
    except Exception as exc:
        cancelled = board is not None and board.fired and not isinstance(exc, GraphBubbleUp)
        if not cancelled and _must_raise(exc, ctx, attempt, max_attempts):
            raise
        result = _failure(index, seed, exc, started, clock, attempt, cancelled=cancelled)
    finally:
        if token is not None:
            CANCEL_EVENT.reset(token)
    _emit_branch(result)
    return {"branches": [result]}


_CANCELLED_TEXT = "cancelled: the stop rule fired while this path was in flight"
_CANCELLED = EngineError(_CANCELLED_TEXT)


def _board(state: BranchTask, ctx: ThinkingContext) -> WaveBoard | None:
    wave = state.get("wave")
    rule = ctx.stop
    if not wave or not isinstance(rule, StopRule) or not can_fire_within_a_wave(rule):
        return None
    return board_for(wave["key"], rule, wave["prior"])


def sample_node(
    state: ThinkingState,
    runtime: Runtime[Any],
    config: RunnableConfig,
    *,
    defaults: ThinkingContext,
    max_attempts: int = 1,
) -> dict[str, Any]:
    """Sample all ``N`` paths in one engine call (batched mode) and emit ``N`` branch events.

    Each result's ``seconds`` is its share of the call (call time / N). With ``exact_seeds`` (on
    an engine without ``per_path_seeds``) it calls ``sample(n=1)`` once per branch seed instead.
    """
    ctx = resolve_context(defaults, runtime.context, config)
    sampler = ctx.require_sampler()
    attempt = _attempt(runtime)
    question, seeds = state["question"], list(state["seeds"])
    start = int(state.get("wave_start", 0))
    exact = ctx.exact_seeds and seeds[0] is not None
    per_seed = len(seeds) > 1 and exact and not per_path_seeds(sampler)
    results: list[BranchResult] = []
    floor = ctx.early_stop_floor
    if per_seed and ctx.early_stop_warmup:
        raise ConfigError(
            f"early_stop_warmup={ctx.early_stop_warmup} needs the batched call, but exact_seeds "
            "samples each seed on its own here; drop exact_seeds or pass early_stop_floor"
        )
    if per_seed:
        for index, seed in enumerate(seeds, start=start):
            started, clock = time.time(), time.perf_counter()
            params = SamplingParams(**state["params"], seed=seed)
            try:
                completion = _one(sampler, question, params, ctx.early_stop_floor)
                results.append(_result(index, seed, completion, started, clock, attempt))
            except Exception as exc:
                if _must_raise(exc, ctx, attempt, max_attempts):
                    raise
                results.append(_failure(index, seed, exc, started, clock, attempt))
    else:
        started, clock = time.time(), time.perf_counter()
        params = SamplingParams(**state["params"], seed=seeds[0])
        try:
            completions, floor = _many_stopping_weak(sampler, question, len(seeds), params, ctx)
            share = (time.perf_counter() - clock) / len(seeds)
            pairs = zip(seeds, completions, strict=True)
            for index, (seed, completion) in enumerate(pairs, start=start):
                result = _result(index, seed, completion, started, clock, attempt)
                results.append({**result, "seconds": share})
        except Exception as exc:
            if _must_raise(exc, ctx, attempt, max_attempts):
                raise
            results = [
                _failure(index, seed, exc, started, clock, attempt)
                for index, seed in enumerate(seeds, start=start)
            ]
    for result in results:
        _emit_branch(result)
    if ctx.early_stop is None:
        return {"branches": results}
    return {"branches": results, "weak_floor": floor}


def branch_answers(branches: list[BranchResult], ctx: ThinkingContext) -> list[str | None]:
    """Each branch's extracted answer: None for a failed branch, no answer, or a path stopped
    for low confidence (it does not vote; :mod:`t2_agents.early_stop`)."""
    extractor = ctx.get_extractor()
    return [
        None
        if b["error"] is not None or b["text"] is None or b["finish_reason"] == LOW_CONFIDENCE
        else extractor(b["text"])
        for b in branches
    ]


def vote_seed(branches: list[BranchResult]) -> int:
    """The vote's tie-breaking seed: branch 0's seed (0 without one)."""
    seed = branches[0]["seed"] if branches else None
    return seed or 0


def aggregate_node(
    state: ThinkingState,
    runtime: Runtime[Any],
    config: RunnableConfig,
    *,
    defaults: ThinkingContext,
) -> dict[str, Any]:
    """Extract the answers, vote, write the verdict and the step's cost; emit ``verdict``.

    With a run budget, the step's use is booked (:meth:`RunAccount.settle`) and the cost
    record's ``budget`` shows the run's budget, spent and remaining after the step.
    """
    clock = time.perf_counter()
    ctx = resolve_context(defaults, runtime.context, config)
    branches = sorted(state.get("branches") or [], key=lambda branch: branch["index"])
    answers = branch_answers(branches, ctx)
    ok = [i for i, b in enumerate(branches) if b["error"] is None]
    cancelled = [i for i, b in enumerate(branches) if b["finish_reason"] == "cancelled"]
    paid = sorted([*ok, *cancelled])  # what was generated, cancelled paths' partial text included
    error: str | None = None
    verdict: VerdictDict | None = None
    weak = [i for i in ok if branches[i]["finish_reason"] == LOW_CONFIDENCE]
    voters = [i for i in ok if branches[i]["finish_reason"] != LOW_CONFIDENCE]
    if weak and not voters:  # every path was stopped: their partial answers vote, not nothing
        extractor = ctx.get_extractor()
        answers = [
            extractor(b["text"] or "") if i in weak else a
            for i, (b, a) in enumerate(zip(branches, answers, strict=True))
        ]
        voters = weak
    if ok:
        confidences = [PathConfidence.from_dict(branches[i].get("confidence")) for i in voters]
        verdict = apply_vote(
            [answers[i] for i in voters], confidences, ctx.vote_settings, seed=vote_seed(branches)
        ).to_dict()
    elif branches:
        error = f"all {len(branches)} branches failed; first error: {branches[0]['error']}"
    else:
        error = state.get("error") or "no branch ran; nothing to vote on"
    answer = None if verdict is None else verdict["answer"]
    completion = sum(branches[i]["completion_tokens"] for i in paid)
    budget = settle_step(ctx.run_budget, config, state.get("run_budget"), len(branches), completion)
    waves = list(state.get("waves") or [])
    record = StepRecord(
        question=state["question"],
        policy=state.get("policy", "?"),
        n_chosen=state.get("n", len(branches)),
        n_min=state.get("n_min", 1),
        n_max=state.get("n_max", len(branches)),
        samples=len(branches),
        failed=len(branches) - len(paid),
        cancelled=len(cancelled),
        prompt_tokens=sum(branches[i]["prompt_tokens"] for i in paid),
        completion_tokens=completion,
        node_seconds={
            "budget": state.get("budget_seconds", 0.0),
            "fanout": branch_span(branches),
            "aggregate": time.perf_counter() - clock,
        },
        engine_seconds=sum(b["seconds"] for b in branches),
        wall_seconds=time.time() - state.get("started_at", time.time()),
        fanout=state.get("fanout", ctx.fanout),
        answer=answer,
        share=0.0 if verdict is None else float(verdict["share"]),
        error=error,
        warning=state.get("budget_warning"),
        engine_calls=_engine_calls(ctx, state, branches, waves),
        waves=[dict(w) for w in waves],
        stopped=state.get("stopped"),
        weak_stopped=len(weak),
        weak_floor=state.get("weak_floor", ctx.early_stop_floor),
        budget=budget,
    )
    if ctx.ledger is not None:
        ctx.ledger.add(record)
    cost = record.to_dict()
    get_stream_writer()(
        {"event": "verdict", "answer": answer, "verdict": verdict, "error": error, "cost": cost}
    )
    return {"answers": answers, "verdict": verdict, "answer": answer, "error": error, "cost": cost}


def _engine_calls(
    ctx: ThinkingContext,
    state: ThinkingState,
    branches: list[BranchResult],
    waves: list[WaveRecord],
) -> int:
    if not branches:
        return 0
    sampler = ctx.sampler if ctx.sampler is not None else ctx.engine
    per_seed = ctx.exact_seeds and branches[0]["seed"] is not None and not per_path_seeds(sampler)
    if state.get("fanout") == "send" or per_seed:
        return len(branches)
    return max(1, len(waves))


def _attempt(runtime: Runtime[Any]) -> int:
    info = getattr(runtime, "execution_info", None)
    return int(getattr(info, "node_attempt", 1) or 1)


def _must_raise(exc: Exception, ctx: ThinkingContext, attempt: int, max_attempts: int) -> bool:
    if isinstance(exc, GraphBubbleUp | ConfigError):
        return True
    if isinstance(exc, TransientEngineError) and attempt < max_attempts:
        return True
    return ctx.branch_errors == "raise"


def _one(
    sampler: Sampler, question: str, params: SamplingParams, floor: float | None
) -> Completion:
    return _many(sampler, question, 1, params, floor)[0]


def _many(
    sampler: Sampler, question: str, n: int, params: SamplingParams, floor: float | None = None
) -> list[Completion]:
    if floor is None:
        out = sampler.sample([question], n, params)
    else:
        out = _stopper(sampler).sample_stopping_weak([question], n, params, floor=floor)
    if len(out) != 1 or len(out[0]) != n:
        shape = [len(row) for row in out]
        raise EngineError(f"the engine returned {shape} completions for 1 prompt x n={n}")
    return list(out[0])


def _stopper(sampler: Sampler) -> StopsWeakPaths:
    if not isinstance(sampler, StopsWeakPaths):
        raise ConfigError(
            f"early stop of weak paths needs a sampler that can stop them (the transformers "
            f"engine, or VLLMConfig(confidence_top_k=20)); {type(sampler).__name__} cannot: "
            "drop early_stop_floor / early_stop_warmup or use one of those engines"
        )
    return sampler


def _many_stopping_weak(
    sampler: Sampler, question: str, n: int, params: SamplingParams, ctx: ThinkingContext
) -> tuple[list[Completion], float | None]:
    """The batched wave's paths and the floor they were held to (None: no early stop).

    With a warm-up, the first ``early_stop_warmup`` paths run to the end and set the floor
    (:func:`~t2_agents.early_stop.warmup_floor`); the others are sampled with seeds continuing
    after them, stopped below it.
    """
    early = ctx.early_stop
    if early is None or early.floor is not None:
        floor = None if early is None else early.floor
        return _many(sampler, question, n, params, floor), floor
    _stopper(sampler)
    first = _many(sampler, question, min(early.warmup, n), params)
    if len(first) == n:
        return first, None
    lowest = [c.confidence.lowest_group for c in first if c.confidence is not None]
    try:
        floor = warmup_floor(lowest, keep=early.keep)
    except DataError as exc:  # the sampler gave no log-probabilities: a setup mistake
        raise ConfigError(str(exc)) from None
    seed = None if params.seed is None else params.seed + len(first)
    rest = _many(sampler, question, n - len(first), replace(params, seed=seed), floor)
    return [*first, *rest], floor


def _result(
    index: int,
    seed: int | None,
    completion: Completion,
    started: float,
    clock: float,
    attempt: int,
) -> BranchResult:
    return {
        "index": index,
        "seed": seed,
        "text": completion.text,
        "prompt_tokens": int(completion.prompt_tokens),
        "completion_tokens": int(completion.completion_tokens),
        "finish_reason": completion.finish_reason,
        "error": None,
        "attempts": attempt,
        "started": started,
        "finished": time.time(),
        "seconds": time.perf_counter() - clock,
        "confidence": None if completion.confidence is None else completion.confidence.to_dict(),
    }


def _failure(
    index: int,
    seed: int | None,
    exc: Exception,
    started: float,
    clock: float,
    attempt: int,
    *,
    cancelled: bool = False,
) -> BranchResult:
    prompt = completion = 0
    if cancelled and isinstance(exc, CancelledCallError):  # what the engine generated before
        prompt, completion = exc.prompt_tokens, exc.completion_tokens
    return {
        "index": index,
        "seed": seed,
        "text": None,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "finish_reason": "cancelled" if cancelled else "error",
        "error": _CANCELLED_TEXT if cancelled else f"{type(exc).__name__}: {exc}",
        "attempts": attempt,
        "started": started,
        "finished": time.time(),
        "seconds": time.perf_counter() - clock,
        "confidence": None,
    }


def _emit_branch(result: BranchResult) -> None:
    get_stream_writer()(
        {
            "event": "branch",
            "index": result["index"],
            "seed": result["seed"],
            "text": result["text"],
            "finish_reason": result["finish_reason"],
            "completion_tokens": result["completion_tokens"],
            "error": result["error"],
            "seconds": result["seconds"],
        }
    )


def branch_span(branches: list[BranchResult]) -> float:
    """Seconds from the first branch's start to the last branch's end (0 without branches)."""
    if not branches:
        return 0.0
    return max(b["finished"] for b in branches) - min(b["started"] for b in branches)
