"""One request through the parallel-thinking graph: prepare, run, pick the voted path, answer.

:class:`ThinkingService` owns one compiled graph
(:func:`~t2_agents.graph.build_parallel_thinking_graph`) over one engine. A request becomes a
:class:`Job` (the rendered prompt and the run's ``configurable["t2"]`` overrides: policy, budget
range, sampling settings, answer extractor); the graph chooses N, samples N paths in one engine
call and votes; the service then picks the
voted answer's best path (a path that stopped on its own before one that hit ``max_tokens``,
then the lowest index) and builds the OpenAI response with a ``t2`` extension field and the
``usage`` block (prompt tokens counted once, completion tokens of all N paths).

With tools, the graph votes on each path's stage-1 key (tool names, or the text answer) and the
service runs the second stage on the arguments (:mod:`t2_agents.serve.tools`).

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> service = ThinkingService(FakeEngine(answers={"7": 1.0}), config=ServeConfig())
    >>> request = ChatRequest.model_validate(
    ...     {"model": "fake-engine", "messages": [{"role": "user", "content": "3+4?"}],
    ...      "t2": {"n": 3}})
    >>> import asyncio
    >>> job = service.prepare(request)
    >>> body = service.response(job, asyncio.run(service.run(job)), response_id="x")
    >>> body["choices"][0]["message"]["content"], body["t2"]["n"]
    ('Let me think. The answer is 7.', 3)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from t2_agents.answers import get_extractor
from t2_agents.backends.base import Engine, RenderedPrompt
from t2_agents.budget.names import SERVE_POLICIES
from t2_agents.budget.policies import BudgetPolicy, FixedPolicy, T2Policy
from t2_agents.budget.stop_rules import stop_criterion
from t2_agents.early_stop import LOW_CONFIDENCE
from t2_agents.errors import ConfigError, T2Error
from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph
from t2_agents.graph.result import ThinkingResult
from t2_agents.serve.config import ServeConfig, T2Options
from t2_agents.serve.jobs import (
    Job,
    Outcome,
    answer_pieces,
    build_extension,
    cut_at_stop,
    vote_key_extractor,
)
from t2_agents.serve.prompts import render_messages
from t2_agents.serve.protocol import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    chunk,
)
from t2_agents.serve.recording import TrafficRecorder
from t2_agents.serve.safeguards import Calibration, EstimatorFailure, FallbackPolicy
from t2_agents.serve.tools import (
    CALL_PREFIX,
    ToolSet,
    check_tools,
    parse_tool_calls,
    vote_arguments,
)
from t2_agents.voting import VerdictDict

__all__ = ["Job", "Outcome", "ThinkingService"]


class ThinkingService:
    """Answers OpenAI requests with budget-aware self-consistency (see the module docs).

    Args:
        engine: Renders, encodes and samples (transformers, vLLM, server engine, fake).
        config: Limits and defaults (``max_tokens`` and ``temperature`` left None there come
            from the T2 estimator's calibration settings, else 64 and 0.7).
        policy: The default budget policy (e.g. ``load_t2_policy(engine)``); None samples a
            fixed ``config.n_max`` paths unless a request says otherwise.
    """

    def __init__(
        self, engine: Engine, *, config: ServeConfig, policy: BudgetPolicy | None = None
    ) -> None:
        self.engine = engine
        self.config = config
        self.policy = policy
        self.model_name = config.model_name or engine.identity
        self.calibration = Calibration.of(policy)
        self.max_tokens = min(
            config.max_tokens_cap,
            config.default_max_tokens or self.calibration.max_tokens or _MAX_TOKENS,
        )
        """``max_tokens`` per path when a request leaves it out."""
        self.temperature = _first(
            config.default_temperature, self.calibration.temperature, _TEMPERATURE
        )
        """Sampling temperature when a request leaves it out."""
        self.recording = (
            None
            if config.record is None
            else TrafficRecorder.for_service(engine, policy, config.record)
        )
        """Records pools of a sampled share of requests (``config.record``); None: off."""
        self.graph = build_parallel_thinking_graph(
            engine=engine,
            policy=policy,
            n_min=config.n_min,
            n_max=config.n_max,
            context=ThinkingContext(
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=None,
            ),
            name="t2_serve",
        )

    # -- prepare -------------------------------------------------------------------------
    def prepare(self, request: ChatRequest | CompletionRequest) -> Job:
        """Validate a request against the limits and build its :class:`Job`.

        Raises:
            ApiError: 404 for an unknown model, 400 for anything else the request gets wrong.
        """
        if request.model != self.model_name:
            raise ApiError(
                404,
                f"the model {request.model!r} does not exist here; this server serves "
                f"{self.model_name!r}",
                type="not_found_error",
                param="model",
                code="model_not_found",
            )
        options = request.t2
        overrides = self._budget(options, request.n)
        overrides.update(self._sampling(request))
        policy = overrides["policy"]
        fallback = policy if isinstance(policy, FallbackPolicy) else None
        if options.stop_rule is not None and not stop_criterion(options.stop_rule).takes_first_wave:
            fallback = None  # adaptive/ESC ignore the policy: T2 does not choose N
        if options.stop_rule is not None:
            overrides["stop"] = options.stop_rule
        for name in (
            "vote",
            "vote_eta",
            "vote_statistic",
            "early_stop_floor",
            "early_stop_warmup",
            "early_stop_keep",
        ):
            if getattr(options, name) is not None:
                overrides[name] = getattr(options, name)
        stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
        tools: ToolSet | None = None
        forced: str | None = None
        if isinstance(request, ChatRequest):
            kind: Literal["chat", "text"] = "chat"
            tools, forced = self._tools(request)
            messages = [m.model_dump() for m in request.messages]
            prompt = render_messages(self.engine, messages, tools=tools)
        else:
            kind = "text"
            prompt = self._text_prompt(request)
        overrides["extractor"] = vote_key_extractor(
            get_extractor(options.task), tools, forced, stop
        )
        include = bool((request.stream_options or {}).get("include_usage"))
        calibration = None
        if fallback is not None and self.calibration.known:
            calibration = self.calibration.differences(
                temperature=overrides.get("temperature", self.temperature),
                max_tokens=overrides.get("max_tokens", self.max_tokens),
                prompt=str(prompt),
            )
        return Job(
            kind=kind,
            prompt=prompt,
            overrides=overrides,
            tools=tools,
            ignore=(*self.config.ignore_arguments, *options.ignore_arguments),
            stop=stop,
            stream=request.stream,
            include_usage=include,
            paths=options.paths,
            events=options.events and request.stream,
            calibration=calibration,
            fallback=fallback,
            question=_question_text(request),
            task=options.task or "traffic",
        )

    def _budget(self, options: T2Options, top_n: int | None) -> dict[str, Any]:
        cap = self.config.max_n
        name, n = options.policy, options.n
        if top_n is not None and n is not None and top_n != n:
            raise ApiError(400, f"n={top_n} and t2.n={n} disagree; pass one", param="n")
        n = n if n is not None else top_n
        if name is not None and name.startswith("fixed-"):
            suffix = name.removeprefix("fixed-")
            if not (suffix.isascii() and suffix.isdigit()) or int(suffix) < 1:
                raise ApiError(
                    400,
                    f"t2.policy={name!r} is not fixed-<n> with n a whole number from 1 to {cap}; "
                    "pass e.g. fixed-8",
                    param="t2.policy",
                )
            if n is not None and n != int(suffix):
                raise ApiError(
                    400, f"t2.policy={name!r} and n={n} disagree; pass one", param="t2.policy"
                )
            name, n = "fixed", int(suffix)
        if name is not None and name not in SERVE_POLICIES:
            known = ", ".join(SERVE_POLICIES)
            raise ApiError(
                400, f"t2.policy={name!r} is unknown; use {known} or fixed-<n>", param="t2.policy"
            )
        n_min = options.n_min if options.n_min is not None else self.config.n_min
        n_max = options.n_max if options.n_max is not None else self.config.n_max
        for label, value in (("n", n), ("t2.n_max", n_max)):
            if value is not None and value > cap:
                raise ApiError(
                    400, f"{label}={value} is above this server's cap of {cap} paths", param=label
                )
        if n_min > n_max:
            raise ApiError(400, f"t2.n_min={n_min} is above n_max={n_max}", param="t2.n_min")
        if n is not None or name == "fixed":
            if name == "t2" or options.tolerance is not None:
                raise ApiError(
                    400, "a fixed n and the T2 policy/tolerance exclude each other", param="t2.n"
                )
            chosen = n if n is not None else n_max
            return {"policy": FixedPolicy(chosen), "n_min": chosen, "n_max": chosen}
        policy: BudgetPolicy | None = self.policy
        if name == "t2" and not isinstance(policy, T2Policy):
            raise ApiError(400, "this server has no T2 estimator loaded", param="t2.policy")
        if options.tolerance is not None:
            if not isinstance(policy, T2Policy):
                raise ApiError(400, "tolerance needs the T2 policy", param="t2.tolerance")
            try:
                policy = T2Policy(policy.estimator, tolerance=options.tolerance)
            except ConfigError as exc:
                raise ApiError(400, str(exc), param="t2.tolerance") from None
        if isinstance(policy, T2Policy):
            policy = FallbackPolicy(
                policy, safe_n=self.config.safe_n, mode=self.config.on_estimator_error
            )
        return {"policy": policy or FixedPolicy(n_max), "n_min": n_min, "n_max": n_max}

    def _sampling(self, request: ChatRequest | CompletionRequest) -> dict[str, Any]:
        max_tokens = request.max_tokens
        param = "max_tokens"
        if isinstance(request, ChatRequest) and request.max_completion_tokens is not None:
            max_tokens, param = request.max_completion_tokens, "max_completion_tokens"
        if max_tokens is not None and max_tokens > self.config.max_tokens_cap:
            raise ApiError(
                400,
                f"{param}={max_tokens} is above this server's cap of {self.config.max_tokens_cap}",
                param=param,
            )
        out: dict[str, Any] = {"seed": request.seed}
        if max_tokens is not None:
            out["max_tokens"] = max_tokens
        if request.temperature is not None:
            out["temperature"] = request.temperature
        if request.top_p is not None:
            out["top_p"] = request.top_p
        return out

    def _tools(self, request: ChatRequest) -> tuple[ToolSet | None, str | None]:
        choice = request.tool_choice
        if not request.tools:
            if choice not in (None, "none", "auto"):
                raise ApiError(400, "tool_choice needs tools", param="tool_choice")
            return None, None
        tools = check_tools(request.tools)
        if choice in (None, "auto", "required"):
            return tools, "" if choice == "required" else None
        if choice == "none":
            return None, None
        function = choice.get("function") if isinstance(choice, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or name not in tools.names:
            shown = repr(choice) if len(repr(choice)) <= 80 else repr(choice)[:77] + "..."
            raise ApiError(
                400,
                f"tool_choice={shown} names no declared tool; use none, auto, required or "
                f'{{"type": "function", "function": {{"name": N}}}} with N one of '
                f"{', '.join(tools.names)}",
                param="tool_choice",
            )
        return tools, name

    def _text_prompt(self, request: CompletionRequest) -> str:
        prompt = request.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise ApiError(400, "send exactly one prompt per request", param="prompt")
            prompt = prompt[0]
        if not prompt.strip():
            raise ApiError(400, "prompt is empty", param="prompt")
        return prompt if request.t2.chat_template else RenderedPrompt(prompt)

    # -- run -----------------------------------------------------------------------------
    async def run(self, job: Job) -> Outcome:
        """Run the graph for ``job``, then pick the voted path.

        Raises:
            ApiError: 400 for a prompt the engine refuses (e.g. longer than the context), 502
                when every path failed or the engine failed.
        """
        try:
            state = await self.graph.ainvoke(
                {"question": job.prompt}, {"configurable": {"t2": job.overrides}}
            )
        except EstimatorFailure as exc:
            raise _estimator_error(exc) from None
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from None
        except T2Error as exc:
            raise ApiError(
                502, f"{type(exc).__name__}: {exc}", type="server_error", code="engine_error"
            ) from None
        return self._outcome(job, dict(state))

    async def run_events(self, job: Job) -> AsyncIterator[dict[str, Any] | Outcome]:
        """Like :meth:`run`, yielding the graph's events (``budget``, ``branch`` x N,
        ``verdict``) as they happen, then the :class:`Outcome`.

        The events leave out texts that would repeat the prompt; a ``branch`` event holds its
        path's text.

        Raises:
            ApiError: As :meth:`run`.
        """
        state: dict[str, Any] = {}
        try:
            async for mode, item in self.graph.astream(
                {"question": job.prompt},
                {"configurable": {"t2": job.overrides}},
                stream_mode=["custom", "values"],
            ):
                if mode == "values" and isinstance(item, dict):
                    state = dict(item)
                elif isinstance(item, dict):
                    yield {k: v for k, v in item.items() if k != "question"}
        except EstimatorFailure as exc:
            raise _estimator_error(exc) from None
        except ConfigError as exc:
            raise ApiError(400, str(exc)) from None
        except T2Error as exc:
            raise ApiError(
                502, f"{type(exc).__name__}: {exc}", type="server_error", code="engine_error"
            ) from None
        yield self._outcome(job, state)

    def _outcome(self, job: Job, state: dict[str, Any]) -> Outcome:
        result = ThinkingResult.from_state(state)
        ok = [i for i, p in enumerate(result.paths) if p.error is None]
        if not ok:
            raise ApiError(
                502, str(result.error or "no path ran"), type="server_error", code="engine_error"
            )
        texts = [cut_at_stop(p.text or "", job.stop)[0] for p in result.paths]
        answers = [p.answer for p in result.paths]
        calls = [
            parse_tool_calls(text, job.tools) if job.tools is not None else []
            for text in texts
        ]  # fmt: skip
        winner = result.verdict.answer
        arguments: VerdictDict | None = None
        candidates = [i for i in ok if winner is None or answers[i] == winner]
        if winner is not None and job.tools is not None and winner.startswith(CALL_PREFIX):
            seed = int(job.overrides.get("seed") or 0)
            args_verdict, keys = vote_arguments(
                calls, answers, winner, ignore=job.ignore, seed=seed
            )
            arguments = args_verdict.to_dict()
            candidates = [i for i in ok if keys[i] == args_verdict.answer]
        best = min(candidates, key=lambda i: (result.paths[i].finish_reason != "stop", i))
        chosen_calls = calls[best] or [] if arguments is not None else []
        text: str | None = texts[best]
        cut = cut_at_stop(result.paths[best].text or "", job.stop)[1]
        finish = "stop" if cut else result.paths[best].finish_reason
        if finish == LOW_CONFIDENCE:  # every path was stopped early: OpenAI's nearest reason
            finish = "length"
        if chosen_calls:
            before, tag, _ = texts[best].partition("<tool_call>")
            text = (before.strip() or None) if tag else None  # a bare JSON call has no prose
            finish = "tool_calls"
        t2 = build_extension(result, texts, best=best, arguments=arguments, paths=job.paths)
        t2 = t2.model_copy(update=job.flags())
        if self.recording is not None:
            self.recording.consider(job, result)
        return Outcome(
            text=text,
            tool_calls=list(chosen_calls),
            finish_reason=finish,
            usage={
                "prompt_tokens": t2.cost.prompt_tokens,
                "completion_tokens": t2.cost.completion_tokens,
                "total_tokens": t2.cost.prompt_tokens + t2.cost.completion_tokens,
            },
            t2=t2,
        )

    # -- answer --------------------------------------------------------------------------
    def response(self, job: Job, outcome: Outcome, *, response_id: str) -> dict[str, Any]:
        """The non-streaming response body (``chat.completion`` or ``text_completion``)."""
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": outcome.finish_reason,
            "logprobs": None,
        }
        if job.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": outcome.text}
            if outcome.tool_calls:
                message["tool_calls"] = [
                    call.to_openai(f"call_{response_id[-12:]}_{i}")
                    for i, call in enumerate(outcome.tool_calls)
                ]
            choice["message"] = message
        else:
            choice["text"] = outcome.text or ""
        return {
            "id": response_id,
            "object": "chat.completion" if job.kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": outcome.usage,
            "t2": outcome.t2.wire(),
        }

    def event_chunk(self, job: Job, event: dict[str, Any], *, response_id: str) -> dict[str, Any]:
        """A graph event as a chunk with empty ``choices`` and a ``t2_event`` field."""
        out = chunk(kind=job.kind, response_id=response_id, model=self.model_name)
        out["choices"] = []
        out["t2_event"] = event
        return out

    def chunks(self, job: Job, outcome: Outcome, *, response_id: str) -> Iterator[dict[str, Any]]:
        """The streamed response: the voted answer piece by piece, then finish, t2 and usage."""
        created = int(time.time())

        def make(**kwargs: Any) -> dict[str, Any]:
            return chunk(
                kind=job.kind, response_id=response_id, model=self.model_name, created=created,
                **kwargs,
            )  # fmt: skip

        if job.kind == "chat":
            yield make(delta={"role": "assistant", "content": ""})
        for piece in answer_pieces(outcome.text or ""):
            yield make(delta={"content": piece}) if job.kind == "chat" else make(text=piece)
        if outcome.tool_calls:
            calls = [
                {"index": i, **call.to_openai(f"call_{response_id[-12:]}_{i}")}
                for i, call in enumerate(outcome.tool_calls)
            ]
            yield make(delta={"tool_calls": calls})
        yield make(finish_reason=outcome.finish_reason, extra={"t2": outcome.t2.wire()})
        if job.include_usage:
            last = make(extra={"usage": outcome.usage})
            last["choices"] = []
            yield last


_MAX_TOKENS = 64
"""``max_tokens`` per path when neither the config nor the estimator says."""
_TEMPERATURE = 0.7
"""Temperature when neither the config nor the estimator says (T2's usual calibration)."""


def _question_text(request: ChatRequest | CompletionRequest) -> str:
    """The last user message's text (its text parts joined), or the completion prompt."""
    if isinstance(request, CompletionRequest):
        prompt = request.prompt
        return prompt[0] if isinstance(prompt, list) and prompt else str(prompt)
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, list):
            return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        return content or ""
    return ""


def _first(*values: float | None) -> float:
    return float(next(v for v in values if v is not None))


def _estimator_error(exc: EstimatorFailure) -> ApiError:
    return ApiError(500, str(exc), type="server_error", code="estimator_error")
