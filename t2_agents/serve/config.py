"""Settings of the endpoint: the server's (:class:`ServeConfig`), a request's (:class:`T2Options`).

:class:`ServeConfig` holds the limits, defaults, network and privacy settings of one server.
:class:`T2Options` is the ``t2`` extension field of a request (``extra_body={"t2": {...}}``
with the OpenAI client): how that request chooses and spends N, within the server's limits.

Every limit is per request (N, ``max_tokens``, body size, JSON depth, messages, tools, time to
send the headers and the body, wall time) or per server (requests in flight); a request beyond
one gets an OpenAI-style error object with the matching HTTP status (400, 408, 413, 429, 504)
and the server keeps serving.

Example:
    >>> config = ServeConfig(max_n=16, max_concurrency=8)
    >>> config.host, config.port
    ('127.0.0.1', 8100)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from t2_agents.answers import get_extractor, registered_tasks
from t2_agents.budget.stop_rules import check_stop_kind
from t2_agents.calibrate.record import RecordConfig
from t2_agents.checks import check_budget_range, check_int
from t2_agents.confidence import ConfidenceStatistic
from t2_agents.errors import ConfigError
from t2_agents.vote_rules import check_vote_kind

__all__ = ["EstimatorErrorMode", "ServeConfig", "T2Options", "check_task"]

EstimatorErrorMode = Literal["safe", "error"]
"""What the endpoint does when T2 cannot choose N (the estimator raised, or the prompt's
features failed a check): ``safe`` samples the safe N and says so in the response's ``t2``
field, ``error`` answers 500."""

_FIX_DEFAULTS = "leave it None to use the estimator's calibration settings"


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """How the endpoint listens, what it allows and what it does by default.

    Example:
        >>> ServeConfig(api_key="s3cret").requires_key
        True
    """

    host: str = "127.0.0.1"
    """Interface to bind; loopback by default (use 0.0.0.0 only behind a proxy or a firewall)."""
    port: int = 8100
    """TCP port (0 picks a free one)."""
    model_name: str | None = None
    """The model name clients ask for (``model`` of a request, ``/v1/models``); None uses the
    engine's identity (``SmolLM2-135M-Instruct`` for the default model)."""
    api_key: str | None = None
    """When set, every ``/v1`` request needs ``Authorization: Bearer <key>`` (compared in
    constant time); ``/health`` stays open."""
    max_n: int = 16
    """Cap on the paths of one request: the largest N a policy may choose and a request may ask
    for (``t2.n``, ``t2.n_max`` or ``n``); above it the request is refused with 400."""
    n_min: int = 1
    """Smallest N the policy may choose (a request may raise it with ``t2.n_min``)."""
    n_max: int = 16
    """Default largest N the policy may choose (a request may change it up to ``max_n``)."""
    max_tokens_cap: int = 512
    """Cap on ``max_tokens`` (or ``max_completion_tokens``) per path; above it: 400."""
    default_max_tokens: int | None = None
    """``max_tokens`` per path when a request leaves it out; None: the estimator's calibration
    setting (48 for the shipped one), else 64."""
    default_temperature: float | None = None
    """Sampling temperature when a request leaves it out; None: the estimator's calibration
    setting (0.7 for the shipped one), else 0.7 (OpenAI's own default of 1.0 would give noisier
    paths than T2 was calibrated on)."""
    max_concurrency: int = 64
    """Requests being answered at once; one more gets 429 with ``Retry-After: 1``."""
    max_body_bytes: int = 1_000_000
    """Largest request body in bytes; a larger one gets 413 before it is parsed."""
    request_timeout: float = 600.0
    """Seconds one request may take from arrival to its vote; then 504 and its work is
    cancelled."""
    header_timeout: float = 10.0
    """Seconds a connection may take to send a request's headers (counted from the connection,
    or from the end of its previous response); then 408 and the connection is closed. A slow
    client never holds a concurrency slot."""
    body_timeout: float = 30.0
    """Seconds a client may take to send a request's body once its headers are in; then 408.
    The concurrency slot is taken only after the whole body is read and validated."""
    max_json_depth: int = 32
    """Deepest nesting of objects and arrays allowed in a request body (an OpenAI request with
    tool schemas needs about 10); deeper: 400."""
    max_messages: int = 512
    """Most ``messages`` in one chat request; more: 400."""
    max_tools: int = 128
    """Most ``tools`` in one chat request (OpenAI's own limit); more: 400."""
    on_estimator_error: EstimatorErrorMode = "safe"
    """When the T2 estimator raises or the prompt's features fail a check: ``safe`` serves the
    request with :attr:`safe_n` paths and says so in ``t2.fallback``; ``error`` answers 500."""
    safe_n: int | None = None
    """Paths sampled when T2 cannot choose (clamped to the request's ``n_min..n_max``); None:
    the request's ``n_max``, the most it allows."""
    ignore_arguments: tuple[str, ...] = ()
    """Tool-call arguments left out when tool calls are voted on their arguments (e.g. a free
    text ``reason`` field); a request may add more with ``t2.ignore_arguments``."""
    log_prompts: bool = False
    """Log each request's rendered prompt (off: only ids, sizes, N, tokens and times)."""
    record: RecordConfig | None = None
    """Record full answer pools for a sampled share of eligible requests
    (:mod:`t2_agents.serve.recording`, ``t2 serve --record DIR``); None records nothing."""

    def __post_init__(self) -> None:
        check_budget_range(self.n_min, self.n_max)
        if self.n_max > self.max_n:
            raise ConfigError(
                f"n_max={self.n_max} is above the per-request cap max_n={self.max_n}; lower "
                "n_max or raise max_n"
            )
        for name in ("max_n", "max_tokens_cap", "max_concurrency", "max_messages", "max_tools"):
            check_int(name, getattr(self, name), low=1)
        check_int("max_json_depth", self.max_json_depth, low=4)
        for name in ("default_max_tokens", "safe_n"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1)
        if self.safe_n is not None and self.safe_n > self.max_n:
            raise ConfigError(
                f"safe_n={self.safe_n} is above the per-request cap max_n={self.max_n}; lower "
                "safe_n or raise max_n"
            )
        if self.default_max_tokens is not None and self.default_max_tokens > self.max_tokens_cap:
            raise ConfigError(
                f"default_max_tokens={self.default_max_tokens} is above "
                f"max_tokens_cap={self.max_tokens_cap}; lower it, raise the cap or " + _FIX_DEFAULTS
            )
        if self.on_estimator_error not in get_args(EstimatorErrorMode):
            raise ConfigError(
                f"on_estimator_error={self.on_estimator_error!r} is not one of "
                f"{', '.join(get_args(EstimatorErrorMode))}; pass safe (serve with safe_n) or "
                "error (answer 500)"
            )
        if self.max_body_bytes < 1024:
            raise ConfigError(f"max_body_bytes={self.max_body_bytes} must be at least 1024")
        for name in ("request_timeout", "header_timeout", "body_timeout"):
            seconds = getattr(self, name)
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not (math.isfinite(seconds) and seconds > 0)
            ):
                raise ConfigError(f"{name}={seconds!r} must be > 0 seconds; pass e.g. 30")
        temperature = self.default_temperature
        if temperature is not None and not (math.isfinite(temperature) and temperature >= 0):
            raise ConfigError(
                f"default_temperature={temperature!r} must be >= 0; pass e.g. 0.7 or "
                + _FIX_DEFAULTS
            )
        if not 0 <= self.port < 65536:
            raise ConfigError(f"port={self.port} must be in [0, 65535]")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key is blank; pass a real key or None for an open endpoint")

    @property
    def requires_key(self) -> bool:
        """Whether requests must carry the API key."""
        return self.api_key is not None


class T2Options(BaseModel):
    """The ``t2`` extension field of a request: how this request chooses and spends N.

    Example:
        >>> T2Options(policy="fixed", n=8).n
        8
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    n: int | None = Field(default=None, ge=1)
    """Sample exactly this many paths (a fixed budget; the policy is not asked)."""
    policy: str | None = None
    """``t2`` (default: the probe estimator chooses N) or ``fixed`` (``n`` paths, default
    ``n_max``); ``fixed-8`` is short for ``policy="fixed", n=8``."""
    tolerance: float | None = Field(default=None, ge=0.0, le=1.0)
    """The cost knob of a curve-head estimator: accuracy you accept to lose for fewer paths."""
    n_min: int | None = Field(default=None, ge=1)
    """Smallest N the policy may choose for this request."""
    n_max: int | None = Field(default=None, ge=1)
    """Largest N the policy may choose for this request (at most the server's cap)."""
    stop_rule: str | None = None
    """Sample in waves and stop early, by a registered stop rule
    (:mod:`t2_agents.budget.stop_rules`): ``hybrid`` (the policy's N, then waves of 4 until the
    vote is decisive or T2's predicted curve peaks), ``adaptive`` (Adaptive-Consistency, one
    path at a time), ``esc`` (windows of 4) or a rule registered since; at most ``n_max``
    paths. Left out: one wave of N."""
    task: str | None = None
    """Answer extractor used for the vote: a task registered with
    :func:`t2_agents.answers.register_extractor` (e.g. ``syllogism`` for yes/no, ``products``
    for a number, an ``agent_*`` family); left out: the automatic extractor. Another name: 400
    listing the registered tasks."""
    vote: str | None = None
    """How the paths' answers are combined, by a registered vote rule
    (:mod:`t2_agents.vote_rules`): ``majority`` (the default), ``weighted`` (each path votes
    with its confidence from the engine's token log-probabilities) or ``filtered`` (the
    ``vote_eta`` % most confident paths, then majority). Without confidences the response's
    ``t2.vote`` says ``majority`` and ``t2.vote_warning`` why. Another name: 400 listing the
    registered rules."""
    vote_eta: float | None = Field(default=None, gt=0.0, le=100.0)
    """``filtered``: the percentage of the paths with an answer kept; in (0, 100]."""
    vote_statistic: ConfidenceStatistic | None = None
    """The confidence the rules read: ``mean``, ``lowest_group`` (default) or ``tail``."""
    early_stop_floor: float | None = Field(default=None, allow_inf_nan=False)
    """Stop a path while it is decoded once its mean token confidence over the last 16 tokens
    falls below this (DeepConf-online, :mod:`t2_agents.early_stop`); stopped paths do not vote,
    their tokens count. Needs an engine with token log-probabilities (transformers; vLLM with
    ``confidence_top_k``), else 400."""
    early_stop_warmup: int | None = Field(default=None, ge=0)
    """Instead of a fixed floor: decode this many paths to the end first; their lowest group
    confidences set the floor for the others."""
    early_stop_keep: float | None = Field(default=None, gt=0.0, le=100.0)
    """With a warm-up: the percentage of warm-up paths at or above the floor (default 90)."""
    ignore_arguments: list[str] = Field(default_factory=list)
    """Tool-call arguments ignored when calls are voted on their arguments."""
    paths: bool = False
    """Also return every sampled path (text, answer, tokens) in the ``t2`` response field."""
    events: bool = False
    """With ``stream=true``: stream the graph's ``budget``, ``branch`` and ``verdict`` events as
    they happen (chunks with empty ``choices`` and a ``t2_event`` field), before the answer."""
    chat_template: bool = False
    """``/v1/completions`` only: treat ``prompt`` as a user message and apply the chat template
    (the estimator was trained on chat-templated prompts); off: the prompt is used as is."""

    @field_validator("stop_rule")
    @classmethod
    def _registered_rule(cls, value: str | None) -> str | None:
        """A stop rule of the registry (the message lists the registered kinds)."""
        return None if value is None else check_stop_kind(value, option="stop_rule")

    @field_validator("vote")
    @classmethod
    def _registered_vote(cls, value: str | None) -> str | None:
        """A vote rule of the registry (the message lists the registered kinds)."""
        return None if value is None else check_vote_kind(value, option="vote")

    @field_validator("task")
    @classmethod
    def _registered_task(cls, value: str | None) -> str | None:
        """A task with a registered extractor (the message lists them)."""
        return None if value is None else check_task(value)


def check_task(task: str) -> str:
    """``task`` when an answer extractor is registered for it.

    Raises:
        ValueError: An unregistered task (the message lists the registered ones); pydantic
            turns it into the 400 of the ``t2.task`` field.

    Example:
        >>> check_task("products")
        'products'
    """
    if get_extractor(task) is not get_extractor(None):
        return task
    known = registered_tasks()
    raise ValueError(
        f"task={task!r} has no registered answer extractor; use one of {', '.join(known)}, or "
        "leave t2.task out for the automatic extractor"
    )
