"""The engine protocol: one interface for every way of running the model.

An engine does two things for the rest of the library:

- ``encode(prompts, layers)`` returns the hidden state of each prompt's final token (after the
  chat template) at each requested decoder layer, as a float32 array ``[n_prompts, n_layers, d]``.
  Layer ``l`` means the residual stream after decoder layer ``l`` (0-based) *before* any final
  norm, which is transformers' ``hidden_states[l + 1]`` for every layer but the last.
- ``sample(prompts, n, params)`` returns ``n`` completions per prompt.

Both apply the chat template in the same way (:meth:`Engine.render`), so the features describe
exactly the prompt that is decoded. The graph and the estimator only ever talk to this protocol.

Example:
    >>> params = SamplingParams(temperature=0.7, max_tokens=32, seed=1)
    >>> params.max_tokens
    32
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from t2_agents.confidence import PathConfidence
from t2_agents.errors import ConfigError, PromptError, TransientEngineError

__all__ = [
    "CANCEL_EVENT",
    "Completion",
    "Encoder",
    "Engine",
    "FinishReason",
    "RenderedPrompt",
    "Sampler",
    "SamplingParams",
    "SeedsEachPath",
    "StopsWeakPaths",
    "cancel_requested",
    "check_layers",
    "check_n",
    "check_prompts",
    "per_path_seeds",
    "render_chat",
    "transient_retrying",
]

FinishReason = Literal["stop", "length", "error", "low_confidence"]

CANCEL_EVENT: ContextVar[threading.Event | None] = ContextVar("t2_cancel_event", default=None)
"""Set by a caller around engine work it may abandon (the endpoint, when a client disconnects).

Context variables follow the work into LangGraph's worker threads. An engine that supports it
stops early once the event is set: the transformers engine at the next generated token (and it
does not start a call), the vLLM engine by cancelling its requests (vLLM aborts them), the
server engine before its next HTTP request. A call stopped before it returns raises
:class:`~t2_agents.errors.CancelledCallError` with the tokens generated until then."""


def cancel_requested() -> bool:
    """Whether the caller of the current engine work asked to cancel it (:data:`CANCEL_EVENT`).

    Example:
        >>> cancel_requested()
        False
    """
    event = CANCEL_EVENT.get()
    return event is not None and event.is_set()


class RenderedPrompt(str):
    """A prompt the chat template was already applied to; ``render`` returns it unchanged.

    The engines render one user message themselves. A caller that renders a whole conversation
    (system and assistant turns, tool definitions: the OpenAI-compatible endpoint) wraps the
    result in this marker so that ``encode`` and ``sample`` see exactly that text.

    Example:
        >>> render_chat(None, RenderedPrompt("<|user|>hi<|assistant|>"), None)
        '<|user|>hi<|assistant|>'
    """

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample reasoning paths."""

    temperature: float = 0.7
    """Softmax temperature; 0 means greedy (then all n paths are identical)."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]."""
    max_tokens: int = 64
    """Largest number of new tokens per completion; longer ones end with finish reason 'length'."""
    seed: int | None = None
    """Seed for reproducible sampling; None draws fresh randomness."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(
                f"temperature={self.temperature!r} must be a finite number >= 0; "
                "use 0 for greedy or e.g. 0.7 for sampling"
            )
        if not (0 < self.top_p <= 1):
            raise ConfigError(f"top_p={self.top_p!r} must be in (0, 1]; use 1.0 to turn it off")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise ConfigError(f"max_tokens={self.max_tokens!r} must be an int >= 1")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens={self.max_tokens} is below the minimum 1; pass >= 1")

    def to_dict(self) -> dict[str, object]:
        """Return the parameters as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Completion:
    """One sampled reasoning path."""

    text: str
    """The decoded completion, without the prompt and without special tokens."""
    prompt_tokens: int
    """Tokens in the rendered prompt (chat template included)."""
    completion_tokens: int
    """Tokens generated, counting the end-of-sequence token when one was produced."""
    finish_reason: FinishReason
    """'stop' (end of sequence), 'length' (hit max_tokens), 'error' (the engine failed) or
    'low_confidence' (stopped early by :meth:`StopsWeakPaths.sample_stopping_weak`)."""
    logprob: float | None = None
    """Sum of the sampled tokens' log-probabilities, when the engine reports them."""
    confidence: PathConfidence | None = None
    """DeepConf's confidence summary of the path (:mod:`t2_agents.confidence`), from the
    engine's token log-probabilities; None when the engine cannot give them (a remote chat
    model, a server without ``logprobs``) or no position had a finite one."""

    def to_dict(self) -> dict[str, object]:
        """Return the completion as a JSON-ready dict."""
        return asdict(self)


@runtime_checkable
class Encoder(Protocol):
    """The encoder role: render a prompt and read its final-token hidden states (T2's features)."""

    @property
    def identity(self) -> str:
        """A stable model name, checked against estimator artifacts."""
        ...

    @property
    def num_layers(self) -> int:
        """Number of decoder layers."""
        ...

    @property
    def hidden_size(self) -> int:
        """Width of the residual stream (feature dimension)."""
        ...

    def render(self, prompt: str) -> str:
        """Apply the chat template to one user message, ready for generation."""
        ...

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """Final-prompt-token hidden states, ``[n_prompts, n_layers, hidden_size]`` float32."""
        ...


@runtime_checkable
class Sampler(Protocol):
    """The sampler role: decode reasoning paths. All a ``ThinkingContext(sampler=...)`` needs."""

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """``n`` completions for each prompt, in prompt order.

        At ``temperature=0`` the ``n`` paths are the same greedy path: the engine must accept
        ``n > 1`` there (the local engines decode it once and repeat it).
        """
        ...


@runtime_checkable
class SeedsEachPath(Protocol):
    """An optional declaration of a sampler: whether it seeds each path of a call on its own.

    ``per_path_seeds = True`` promises that completion ``k`` of ``sample(n, seed=s)`` equals the
    single completion of ``sample(1, seed=s + k)``, so batched and per-branch sampling give the
    same paths. A sampler that does not declare it (most do not) is taken not to.
    """

    @property
    def per_path_seeds(self) -> bool:
        """Whether path ``k`` of a call with seed ``s`` is the path of seed ``s + k``."""
        ...


@runtime_checkable
class StopsWeakPaths(Protocol):
    """An optional capability of a sampler: stop paths online when their confidence falls.

    DeepConf-online (:mod:`t2_agents.early_stop`): while a path is decoded, the mean token
    confidence over its last ``window`` tokens is watched, and the path is stopped once it is
    below ``floor``. A stopped path keeps the text and tokens generated so far and ends with
    ``finish_reason="low_confidence"``; its tokens were paid for, so they are counted.
    """

    def sample_stopping_weak(
        self, prompts: Sequence[str], n: int, params: SamplingParams, *, floor: float
    ) -> list[list[Completion]]:
        """:meth:`Sampler.sample`, stopping each path whose window confidence falls below
        ``floor`` (see :class:`~t2_agents.early_stop.WindowMonitor`).

        Raises:
            ConfigError: The engine was built without log-probabilities for confidence, or
                ``floor`` is not a finite number.
        """
        ...


def per_path_seeds(sampler: Sampler | None) -> bool:
    """Whether ``sampler`` declares :class:`SeedsEachPath` (False when it does not say).

    Example:
        >>> from t2_agents.backends.fake import FakeEngine
        >>> per_path_seeds(FakeEngine()), per_path_seeds(FakeEngine(per_path_seeds=False))
        (True, False)
    """
    return isinstance(sampler, SeedsEachPath) and bool(sampler.per_path_seeds)


@runtime_checkable
class Engine(Encoder, Sampler, Protocol):
    """What the library needs from a model runtime (transformers, vLLM, a server...): both roles.

    A runtime that only decodes (a remote chat model) needs only :class:`Sampler`, and goes in
    ``ThinkingContext(sampler=...)`` next to an engine that encodes.
    """


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """Validate a batch of prompts: non-empty list of non-blank strings.

    Raises:
        PromptError: The list is empty, or a prompt is not a string or is blank.
    """
    if isinstance(prompts, str):
        raise PromptError("prompts must be a list of strings, got one str; wrap it: [prompt]")
    items = list(prompts)
    if not items:
        raise PromptError("the prompt list is empty; pass at least one prompt")
    for i, prompt in enumerate(items):
        if not isinstance(prompt, str):
            raise PromptError(f"prompt {i} is {type(prompt).__name__}, not str; pass text")
        if not prompt.strip():
            raise PromptError(
                f"prompt {i} is empty or whitespace only ({prompt!r}); pass a question"
            )
    return items


def check_n(n: int, max_n: int) -> int:
    """Validate a number of paths against the engine's configured maximum.

    Raises:
        ConfigError: ``n`` is not an int, below 1, or above ``max_n``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ConfigError(f"n={n!r} must be an integer in [1, {max_n}]")
    if n < 1:
        raise ConfigError(f"n={n} is below the minimum 1; ask for at least one path")
    if n > max_n:
        raise ConfigError(
            f"n={n} is above the configured maximum {max_n}; lower n or raise the engine's max_n"
        )
    return int(n)


def check_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """Validate layer indices (0-based; negative counts from the end like Python).

    Returns:
        The layers as non-negative indices, in the order given.

    Raises:
        ConfigError: A layer is out of range, duplicated, or the list is empty.
    """
    items = list(layers)
    if not items:
        raise ConfigError(f"no layers requested; pass indices in [0, {num_layers - 1}]")
    resolved: list[int] = []
    for layer in items:
        if isinstance(layer, bool) or not isinstance(layer, int | np.integer):
            raise ConfigError(f"layer {layer!r} is not an integer; pass ints in [0, {num_layers})")
        index = int(layer) + num_layers if layer < 0 else int(layer)
        if not 0 <= index < num_layers:
            raise ConfigError(
                f"layer {layer} is out of range for a model with {num_layers} layers; "
                f"pass indices in [0, {num_layers - 1}] (or -1 for the last)"
            )
        resolved.append(index)
    if len(set(resolved)) != len(resolved):
        raise ConfigError(f"layers {items} contain duplicates; pass each layer once")
    return resolved


def render_chat(tokenizer: Any, prompt: str, system_prompt: str | None) -> str:
    """Apply a tokenizer's chat template to one user message, with the generation prompt.

    Shared by the local engines so that features and decoding see the same text; a tokenizer
    without a template gets the bare message. A :class:`RenderedPrompt` is returned unchanged.
    """
    if isinstance(prompt, RenderedPrompt):
        return str(prompt)
    messages = [{"role": "user", "content": prompt}]
    if system_prompt is not None:
        messages.insert(0, {"role": "system", "content": system_prompt})
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text)
    return prompt


def transient_retrying(attempts: int, backoff: float) -> Retrying:
    """Retry :class:`~t2_agents.errors.TransientEngineError` with bounded exponential backoff.

    ``attempts`` calls at most, waiting ``backoff`` seconds, then doubling, capped at 8 s; the
    last error is re-raised. Shared by the engines that talk to remote models.

    Example:
        >>> transient_retrying(3, 0.0)(lambda: "ok")
        'ok'
    """
    return Retrying(
        retry=retry_if_exception_type(TransientEngineError),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff, max=8.0),
        reraise=True,
    )
