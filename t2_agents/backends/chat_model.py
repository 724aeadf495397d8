"""Serve reasoning branches from any LangChain chat model, keeping T2's features local.

:class:`ChatModelEngine` adapts a ``BaseChatModel`` to the engine protocol: ``sample`` calls the
model's ``invoke`` once per path with the question as a user message and the branch's
temperature, ``max_tokens`` and seed (``seed + k`` for path ``k``, so it declares
``per_path_seeds``). ``encode`` is delegated to a local engine (``features=...``), because a chat
API exposes no hidden states. Put it in ``ThinkingContext(sampler=...)`` next to the local
``engine``; it works in both fan-out modes, and send mode runs the calls as concurrent tasks.

Trade-offs of serving branches remotely while the budget comes from a local model:

- The features describe how hard the question is *for the local model*; a T2 estimator was
  calibrated on that model's accuracy curve, so the budget is a proxy for the remote model's
  needs. It transfers best when the two models are alike (same family, or the estimator refit on
  the remote model's answer pools with the local features).
- The local model still costs one prefill per question, the remote one N calls; the saving is in
  the N, not in the encoding.
- Reproducibility rests on the provider: many ignore or only approximately honour ``seed``, so
  the two fan-out modes may differ path by path even though the adapter maps seeds exactly.
- Token counts come from the message's ``usage_metadata``; providers that do not report usage
  give 0, which the cost ledger then undercounts.
- Errors: the adapter marks timeouts, dropped connections, rate limits and 5xx answers as
  :class:`~t2_agents.errors.TransientEngineError` (retried by the graph's ``RetryPolicy``) and
  everything else as :class:`~t2_agents.errors.EngineError` (the branch is recorded as failed).

Example:
    >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
    >>> engine = ChatModelEngine(FakeListChatModel(responses=["The answer is 4."]))
    >>> engine.sample(["2+2?"], 1, SamplingParams(seed=0))[0][0].text
    'The answer is 4.'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from t2_agents.backends.base import (
    Completion,
    Engine,
    FinishReason,
    SamplingParams,
    check_n,
    check_prompts,
    transient_retrying,
)
from t2_agents.errors import ConfigError, EngineError, TransientEngineError

__all__ = ["ChatModelEngine", "default_call_kwargs"]

_TRANSIENT_NAMES = ("timeout", "ratelimit", "connection", "internalserver", "serviceunavailable")


def default_call_kwargs(params: SamplingParams) -> dict[str, Any]:
    """Keyword arguments passed to the chat model's ``invoke`` for one path.

    ``temperature`` and ``max_tokens`` always, ``top_p`` when below 1, ``seed`` when set.

    Example:
        >>> default_call_kwargs(SamplingParams(temperature=0.5, max_tokens=32, seed=7))
        {'temperature': 0.5, 'max_tokens': 32, 'seed': 7}
    """
    kwargs: dict[str, Any] = {"temperature": params.temperature, "max_tokens": params.max_tokens}
    if params.top_p < 1.0:
        kwargs["top_p"] = params.top_p
    if params.seed is not None:
        kwargs["seed"] = params.seed
    return kwargs


class ChatModelEngine:
    """An engine whose ``sample`` calls a LangChain chat model (see the module docs).

    Args:
        model: Any ``BaseChatModel``.
        features: A local engine that ``encode`` delegates to (T2 features); None means
            this engine cannot encode (fine with policies that need no features).
        identity: The name recorded for the model; default ``chat:<model name>``.
        call_kwargs: Maps a path's sampling parameters to ``invoke`` keyword arguments; use it
            for providers that name them differently or reject some.
        system_prompt: An optional system message sent before the question.
        max_n: Largest ``n`` per ``sample`` call.

    Example:
        >>> from langchain_core.language_models.fake_chat_models import FakeListChatModel
        >>> ChatModelEngine(FakeListChatModel(responses=["x"]), identity="fake").identity
        'fake'
    """

    per_path_seeds = True
    """Path ``k`` of ``sample(n, seed=s)`` is the call made with ``seed=s + k``."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        features: Engine | None = None,
        identity: str | None = None,
        call_kwargs: Callable[[SamplingParams], dict[str, Any]] = default_call_kwargs,
        system_prompt: str | None = None,
        max_n: int = 64,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not isinstance(model, BaseChatModel):
            raise ConfigError(
                f"ChatModelEngine needs a langchain BaseChatModel, got {type(model).__name__}"
            )
        self.model = model
        self.features = features
        self.call_kwargs = call_kwargs
        self.system_prompt = system_prompt
        self.max_n = max_n
        if retries < 1 or backoff < 0:
            raise ConfigError(
                f"retries={retries}, backoff={backoff}: need retries >= 1 and backoff >= 0"
            )
        self.retries = retries
        self.backoff = backoff
        name = getattr(model, "model_name", None) or getattr(model, "model", None)
        self._identity = identity or f"chat:{name if isinstance(name, str) else model._llm_type}"

    @property
    def identity(self) -> str:
        """The chat model's name (not the features engine's)."""
        return self._identity

    @property
    def num_layers(self) -> int:
        """The features engine's layer count (0 without one)."""
        return 0 if self.features is None else self.features.num_layers

    @property
    def hidden_size(self) -> int:
        """The features engine's width (0 without one)."""
        return 0 if self.features is None else self.features.hidden_size

    def render(self, prompt: str) -> str:
        """Return the prompt unchanged: the provider applies its own chat template."""
        return prompt

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """Delegate to the local features engine.

        Raises:
            ConfigError: No features engine was given.
        """
        if self.features is None:
            raise ConfigError(
                "this ChatModelEngine has no local features engine; pass features=<engine> "
                "or use a policy that needs no features"
            )
        return self.features.encode(prompts, layers)

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """Call the chat model ``n`` times per prompt, path ``k`` with seed ``seed + k``.

        Raises:
            TransientEngineError: A timeout, dropped connection, rate limit or server error.
            EngineError: Any other failure of the chat model.
        """
        items = check_prompts(prompts)
        n = check_n(n, self.max_n)
        results: list[list[Completion]] = []
        for prompt in items:
            row: list[Completion] = []
            for k in range(n):
                seed = None if params.seed is None else params.seed + k
                row.append(self._call(prompt, _with_seed(params, seed)))
            results.append(row)
        return results

    def _call(self, prompt: str, params: SamplingParams) -> Completion:
        # The engine's own transient failures (timeouts, 429/5xx) are retried here with bounded
        # exponential backoff; what still fails surfaces as TransientEngineError, which the
        # graph's RetryPolicy may retry once more at the node level.
        return transient_retrying(self.retries, self.backoff)(self._call_once, prompt, params)

    def _call_once(self, prompt: str, params: SamplingParams) -> Completion:
        messages: list[BaseMessage] = [HumanMessage(content=prompt)]
        if self.system_prompt is not None:
            messages.insert(0, SystemMessage(content=self.system_prompt))
        try:
            message = self.model.invoke(messages, **self.call_kwargs(params))
        except EngineError:
            raise
        except Exception as exc:
            kind = TransientEngineError if _is_transient(exc) else EngineError
            raise kind(f"chat model {self.identity!r} failed: {type(exc).__name__}: {exc}") from exc
        usage = getattr(message, "usage_metadata", None) or {}
        metadata = getattr(message, "response_metadata", None) or {}
        reason = str(metadata.get("finish_reason") or metadata.get("stop_reason") or "stop")
        finish: FinishReason = "length" if reason in ("length", "max_tokens") else "stop"
        return Completion(
            text=message.text.strip(),
            prompt_tokens=int(usage.get("input_tokens", 0)),
            completion_tokens=int(usage.get("output_tokens", 0)),
            finish_reason=finish,
        )

    def __repr__(self) -> str:
        return f"ChatModelEngine(identity={self.identity!r}, features={self.features is not None})"


def _with_seed(params: SamplingParams, seed: int | None) -> SamplingParams:
    return SamplingParams(
        temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_tokens, seed=seed
    )


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    status = getattr(exc, "status_code", None) or getattr(
        getattr(exc, "response", None), "status_code", None
    )
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    name = type(exc).__name__.lower().replace("_", "")
    return any(part in name for part in _TRANSIENT_NAMES)
