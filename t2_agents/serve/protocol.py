"""The OpenAI wire format: request models, the ``t2`` extension, error objects, responses.

Requests are parsed with pydantic models that accept (and ignore) the OpenAI fields this server
does not use (``user``, ``frequency_penalty``, ``logit_bias``...), so stock clients work
unchanged. The ``t2`` extension field (``extra_body={"t2": {...}}`` with the OpenAI client,
:class:`~t2_agents.serve.config.T2Options`) is strict: an unknown key there is a 400, since it
is certainly a typo.

Errors are :class:`ApiError` exceptions carrying the HTTP status and the OpenAI error object
``{"error": {"message", "type", "param", "code"}}``.

Example:
    >>> ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}],
    ...                             "t2": {"n": 4}}).t2.n
    4
    >>> ApiError(400, "bad n", param="n").body()["error"]["param"]
    'n'
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from t2_agents.serve.config import T2Options

__all__ = [
    "SEED_MAX",
    "ApiError",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "T2Cost",
    "T2Extension",
    "T2Path",
    "ToolSpec",
    "chunk",
    "new_id",
    "parse_request",
]

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "not_found_error",
    "rate_limit_error",
    "server_error",
    "timeout_error",
]


SEED_MAX = 2**63 - 2**16
"""Largest ``seed`` a request may send: path ``i`` decodes with ``seed + i``, which must stay a
signed 64-bit integer for every engine (vLLM, torch)."""


class ApiError(Exception):
    """An error answered as an OpenAI error object with an HTTP status.

    Args:
        status: HTTP status (400, 401, 404, 413, 429, 500, 502, 504...).
        message: What went wrong and how to fix it.
        type: The OpenAI error type.
        param: The request field at fault, when there is one.
        code: A short machine-readable code.

    Example:
        >>> ApiError(429, "busy", type="rate_limit_error").status
        429
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: ErrorType = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ChatMessage(_Lenient):
    """One message of a chat request (``content`` may be text, parts or null)."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ToolSpec(_Lenient):
    """One entry of ``tools``: ``{"type": "function", "function": {...}}``."""

    type: Literal["function"] = "function"
    function: dict[str, Any]


class _Common(_Lenient):
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, le=SEED_MAX)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    t2: T2Options = Field(default_factory=T2Options)


class ChatRequest(_Common):
    """A ``/v1/chat/completions`` request (the fields this server reads)."""

    messages: list[ChatMessage]
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[ToolSpec] | None = None
    tool_choice: str | dict[str, Any] | None = None


class CompletionRequest(_Common):
    """A ``/v1/completions`` request (one text prompt)."""

    prompt: str | list[str]


class T2Cost(BaseModel):
    """What a request cost (the ``t2.cost`` field of a response)."""

    model_config = ConfigDict(frozen=True)

    samples: int
    """Paths sampled."""
    prompt_tokens: int
    """Prompt tokens, counted once."""
    completion_tokens: int
    """Tokens decoded by all paths."""
    seconds: dict[str, float | None]
    """Seconds per graph node, and ``wall`` for the whole step."""


class T2Path(BaseModel):
    """One path of a response (``t2.paths``, with ``"t2": {"paths": true}``)."""

    model_config = ConfigDict(frozen=True)

    text: str
    """The path's text, cut at a stop string."""
    answer: str | None
    """Its extracted answer (the vote key with tools)."""
    tokens: int
    """Tokens it decoded."""
    finish_reason: str
    """``stop``, ``length``, ``cancelled`` or ``error``."""
    error: str | None
    """Why it failed; None when it ran."""


class T2Extension(BaseModel):
    """The ``t2`` field of every response: the budget, the vote and the cost.

    Example:
        >>> cost = T2Cost(samples=2, prompt_tokens=5, completion_tokens=9, seconds={"wall": 0.1})
        >>> T2Extension(n=2, policy="fixed-2", n_min=1, n_max=4, answer="7", share=1.0,
        ...             distribution={"7": 2.0}, valid=2, invalid=0, chosen_path=0,
        ...             failed_paths=0, cost=cost).wire()["cost"]["samples"]
        2
    """

    model_config = ConfigDict(frozen=True)

    n: int
    """Paths sampled."""
    policy: str
    """The policy (and stop rule) that chose N."""
    n_min: int
    """Lower end of the budget range."""
    n_max: int
    """Upper end of the budget range."""
    out_of_distribution: bool = False
    """T2's distribution guard flagged the prompt and gave it the safe budget."""
    calibrated: bool | None = None
    """Whether the request's sampling settings (``temperature``, ``max_tokens``, the
    instruction) match those the T2 estimator was calibrated with; None when the estimator did
    not choose N (a fixed N) or records no settings. False: served all the same, see
    :attr:`calibration_reason`."""
    calibration_reason: str | None = None
    """Why :attr:`calibrated` is False (each setting that differs, with both values)."""
    fallback: str | None = None
    """Why T2 could not choose N (the estimator raised, or the features failed a check) and the
    server's safe N was sampled instead; None when T2 chose."""
    warning: str | None = None
    """Why N was clamped or changed, when it was."""
    answer: str | None
    """The voted answer (the vote key with tools)."""
    share: float
    """The winner's share of the valid votes."""
    distribution: dict[str, float]
    """Answer -> votes."""
    valid: int
    """Paths with an answer."""
    invalid: int
    """Paths without one."""
    vote: str = "majority"
    """The vote rule that decided (``majority`` after a confidence rule fell back)."""
    vote_warning: str | None = None
    """Why the requested vote rule was not applied (paths without confidence)."""
    arguments_vote: dict[str, Any] | None = None
    """With tools: the vote over the winning call's arguments."""
    chosen_path: int
    """Index of the path whose text is returned."""
    failed_paths: int
    """Paths that failed."""
    waves: list[int] = Field(default_factory=list)
    """Paths per wave when a stop rule ran."""
    stopped: str | None = None
    """Why the stop rule stopped; None without one."""
    weak_stopped: int = 0
    """Paths stopped while decoded for low confidence (``t2.early_stop_floor`` or
    ``early_stop_warmup``): their tokens are in the cost, they did not vote."""
    cost: T2Cost
    """What the request cost."""
    paths: list[T2Path] | None = None
    """Every path, when the request asked for them."""

    def wire(self) -> dict[str, Any]:
        """The JSON form sent to clients (``paths`` only when asked for)."""
        body = self.model_dump()
        if self.paths is None:
            del body["paths"]
        return body


def parse_request(
    model: type[ChatRequest] | type[CompletionRequest], body: object
) -> ChatRequest | CompletionRequest:
    """Validate a decoded JSON body, turning pydantic's errors into a 400 :class:`ApiError`.

    Example:
        >>> parse_request(CompletionRequest, {"model": "m", "prompt": "2+2="}).prompt
        '2+2='
    """
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            message = f"{param} is required; send it"
        elif param is not None and not message.startswith(param.rsplit(".", 1)[-1] + "="):
            message = f"{param}={_short(first.get('input'))} is invalid: {message}"
        raise ApiError(400, message, param=param, code=str(first["type"])) from None


def _short(value: object, limit: int = 60) -> str:
    """A bounded ``repr`` for error messages (a request may hold megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def new_id(prefix: str) -> str:
    """A fresh response id such as ``chatcmpl-3f2a...``."""
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def chunk(
    *,
    kind: Literal["chat", "text"],
    response_id: str,
    model: str,
    created: int | None = None,
    delta: dict[str, Any] | None = None,
    text: str | None = None,
    finish_reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One streamed chunk (``chat.completion.chunk`` or a ``text_completion`` piece).

    Example:
        >>> chunk(kind="chat", response_id="x", model="m", delta={"content": "4"})["object"]
        'chat.completion.chunk'
    """
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason, "logprobs": None}
    if kind == "chat":
        choice["delta"] = delta or {}
    else:
        choice["text"] = text or ""
    out: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [choice],
    }
    if extra:
        out.update(extra)
    return out
