"""Server mode: sample from OpenAI-compatible vLLM servers, read features from a local engine.

When one process or one machine is not enough, decoding moves to ``vllm serve`` (one replica or
many behind a router, or several base URLs that this engine rotates through), while the budget
node still needs the model's hidden states. :class:`ServerEngine` therefore pairs a **feature
engine** (a local :class:`~t2_agents.backends.transformers.TransformersEngine` or
:class:`~t2_agents.backends.vllm.VLLMEngine` of the *same weights*) with the servers:

- ``render`` / ``encode`` / ``identity`` / ``num_layers`` / ``hidden_size`` come from the feature
  engine (the estimator was trained on those features; another model's features would give
  meaningless budgets);
- ``sample`` sends the feature engine's rendered prompt *as token ids* to ``/v1/completions``
  with ``n``, temperature, top_p, ``max_tokens``, ``seed`` and optional ``logprobs``, so the
  server decodes exactly the prompt that was encoded.

Before its first request to a base URL the engine reads ``/v1/models`` and refuses a server that
does not serve ``model`` (by default the feature engine's identity: start the server with
``--served-model-name <identity>``). Timeouts, dropped connections, 429 and 5xx answers are
retried with bounded exponential backoff (tenacity), moving to the next replica; then they raise
:class:`~t2_agents.errors.TransientEngineError`, which the graph's retry policy and failed-branch
handling understand.

Example:
    >>> features = TransformersEngine()  # doctest: +SKIP
    >>> engine = ServerEngine(features, base_urls=("http://127.0.0.1:8000",))  # doctest: +SKIP
    >>> engine.sample(["2+2?"], n=8, params=SamplingParams(seed=0))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import (
    Completion,
    Engine,
    FinishReason,
    SamplingParams,
    cancel_requested,
    check_n,
    check_prompts,
    transient_retrying,
)
from t2_agents.errors import (
    CancelledCallError,
    ConfigError,
    EngineError,
    ModelError,
    TransientEngineError,
)

__all__ = ["ServerConfig", "ServerEngine"]


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Where and how to reach the OpenAI-compatible servers."""

    base_urls: tuple[str, ...] = ("http://127.0.0.1:8000",)
    """Server roots (without ``/v1``); several are used in turn, a failed call moves on."""
    model: str | None = None
    """The served model name to ask for; None uses the feature engine's identity."""
    api_key: str | None = None
    """Bearer token, when the server was started with ``--api-key``."""
    timeout: float = 120.0
    """Seconds one HTTP request may take before it counts as a transient failure."""
    retries: int = 4
    """Attempts per call (across replicas) before the failure is raised."""
    backoff: float = 0.5
    """First backoff wait in seconds; doubles per attempt, capped at 8 s."""
    max_n: int = 256
    """Largest number of paths one ``sample`` call may ask for per prompt."""
    logprobs: bool = False
    """Ask for sampled-token log-probabilities (fills ``Completion.logprob``)."""

    def __post_init__(self) -> None:
        urls = self.base_urls
        if not urls or any(not str(url).startswith(("http://", "https://")) for url in urls):
            raise ConfigError(
                f"base_urls={self.base_urls!r} must be a non-empty tuple of http(s) URLs, "
                "e.g. ('http://127.0.0.1:8000',)"
            )
        if self.timeout <= 0 or self.retries < 1 or self.backoff < 0:
            raise ConfigError(
                f"timeout={self.timeout}, retries={self.retries}, backoff={self.backoff}: "
                "need timeout > 0, retries >= 1, backoff >= 0"
            )


class ServerEngine:
    """An :class:`~t2_agents.backends.base.Engine` that decodes on servers (see the module docs).

    Args:
        features: A local engine of the same model; it renders, tokenises and encodes.
        config: Server settings; keyword overrides (``base_urls=...``) build one for you.
        client: An ``httpx.Client`` to use (tests, proxies); one is made otherwise.
    """

    per_path_seeds = False  # vLLM seeds path k with seed + k, but batching changes numerics

    def __init__(
        self,
        features: Engine,
        config: ServerConfig | None = None,
        *,
        client: httpx.Client | None = None,
        **overrides: Any,
    ) -> None:
        self.config = replace(config or ServerConfig(), **overrides)
        self.features = features
        self.model = self.config.model or features.identity
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        self._client = client or httpx.Client(timeout=self.config.timeout, headers=headers)
        self._urls = itertools.cycle([url.rstrip("/") for url in self.config.base_urls])
        self._checked: set[str] = set()
        self._lock = threading.Lock()

    # -- delegated to the feature engine -------------------------------------------------
    @property
    def identity(self) -> str:
        """The feature engine's model identity (the servers must serve the same model)."""
        return self.features.identity

    @property
    def num_layers(self) -> int:
        """Number of decoder layers (of the feature engine)."""
        return self.features.num_layers

    @property
    def hidden_size(self) -> int:
        """Residual stream width (of the feature engine)."""
        return self.features.hidden_size

    def render(self, prompt: str) -> str:
        """The feature engine's chat-template rendering."""
        return self.features.render(prompt)

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """Features from the local feature engine."""
        return self.features.encode(prompts, layers)

    # -- sampling on the servers -----------------------------------------------------------
    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """``n`` completions per prompt: one ``/v1/completions`` request per prompt.

        Raises:
            TransientEngineError: The servers stayed unreachable, slow or 5xx after the retries.
            ModelError: A server serves another model than the feature engine.
            EngineError: A server rejected the request (4xx) or answered malformed JSON.
        """
        items = check_prompts(prompts)
        n = check_n(n, self.config.max_n)
        return [self._sample_one(prompt, n, params) for prompt in items]

    def _sample_one(self, prompt: str, n: int, params: SamplingParams) -> list[Completion]:
        greedy = params.temperature == 0  # vLLM refuses greedy n > 1: decode once, repeat
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": self._prompt(prompt),
            "n": 1 if greedy else n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "return_token_ids": True,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if self.config.logprobs:
            body["logprobs"] = 1
        retrying = transient_retrying(self.config.retries, self.config.backoff)
        reply = retrying(self._post, "/v1/completions", body)
        paths = _completions(reply, body["n"], self.config.logprobs)
        return paths * n if greedy else paths

    def _prompt(self, prompt: str) -> list[int] | str:
        rendered = self.features.render(prompt)
        tokenizer = getattr(self.features, "tokenizer", None)
        if tokenizer is None:
            return rendered
        return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if cancel_requested():
            raise CancelledCallError(f"the caller cancelled this call before POST {path}")
        with self._lock:
            url = next(self._urls)
        self._check_model(url)
        return _json(self._request("POST", url + path, body), url + path)

    def _check_model(self, url: str) -> None:
        if url in self._checked:
            return
        listing = _json(self._request("GET", url + "/v1/models", None), url + "/v1/models")
        served = [str(item.get("id")) for item in listing.get("data", []) if isinstance(item, dict)]
        if self.model not in served:
            raise ModelError(
                f"the server at {url} serves {served}, not {self.model!r} (the feature engine's "
                "model); features and decoding must come from the same weights: start it with "
                f"`vllm serve <path> --served-model-name {self.model}` or fix base_urls"
            )
        self._checked.add(url)

    def _request(self, method: str, url: str, body: dict[str, Any] | None) -> httpx.Response:
        where = f"{method} {url}"
        try:
            response = self._client.request(method, url, json=body)
        except httpx.TimeoutException as exc:
            raise TransientEngineError(f"{where} timed out after {self.config.timeout} s") from exc
        except httpx.TransportError as exc:
            raise TransientEngineError(f"{where} failed: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientEngineError(f"{where} answered {status}: {response.text[:200]}")
        if status >= 400:
            raise EngineError(f"{where} answered {status}: {response.text[:500]}")
        return response

    def close(self) -> None:
        """Close the HTTP client (the feature engine stays open: it is the caller's)."""
        self._client.close()

    def __enter__(self) -> ServerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise EngineError(f"{url} answered non-JSON: {response.text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise EngineError(f"{url} answered {type(data).__name__}, not a JSON object")
    return data


def _completions(reply: dict[str, Any], n: int, logprobs: bool) -> list[Completion]:
    choices = reply.get("choices")
    if not isinstance(choices, list) or len(choices) != n:
        count = len(choices) if isinstance(choices, list) else choices
        raise EngineError(f"the server returned {count} choices for n={n}")
    usage = reply.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens", 0))
    fallback = int(usage.get("completion_tokens", 0)) // n
    out: list[Completion] = []
    for choice in sorted(choices, key=lambda c: int(c.get("index", 0))):
        reason = choice.get("finish_reason")
        if reason not in ("stop", "length"):
            raise TransientEngineError(f"the server ended a path with finish_reason={reason!r}")
        finish: FinishReason = "stop" if reason == "stop" else "length"
        token_ids = choice.get("token_ids")
        out.append(
            Completion(
                text=str(choice.get("text", "")).strip(),
                prompt_tokens=prompt_tokens,
                completion_tokens=len(token_ids) if isinstance(token_ids, list) else fallback,
                finish_reason=finish,
                logprob=_logprob(choice) if logprobs else None,
            )
        )
    return out


def _logprob(choice: dict[str, Any]) -> float | None:
    values = (choice.get("logprobs") or {}).get("token_logprobs")
    if not isinstance(values, list):
        return None
    return float(sum(v for v in values if isinstance(v, int | float)))
