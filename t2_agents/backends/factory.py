"""One way to build an engine by name: transformers, vLLM, or vLLM servers for decoding.

The command line (``--engine``), the endpoint (``t2 serve``) and scripts build engines here, so
the names, defaults and errors are the same everywhere. Heavy packages load only for the kind
asked for.

Example:
    >>> load_engine(kind="tpu")
    Traceback (most recent call last):
    ...
    t2_agents.errors.ConfigError: --engine 'tpu' is not one of transformers, vllm, server
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any, Literal

from t2_agents.backends.base import Engine
from t2_agents.errors import ConfigError

__all__ = ["ENGINE_KINDS", "EngineKind", "load_engine", "preferred_local_kind"]

EngineKind = Literal["transformers", "vllm", "server"]
"""``transformers`` or ``vllm`` in process; ``server``: decode on ``vllm serve`` replicas."""

ENGINE_KINDS: tuple[str, ...] = ("transformers", "vllm", "server")
"""Every name :func:`load_engine` accepts."""


def preferred_local_kind() -> EngineKind:
    """The fastest in-process engine installed: ``vllm`` when vLLM is there, else ``transformers``.

    Only looks the package up (``importlib.util.find_spec``); nothing is imported.

    Example:
        >>> preferred_local_kind() in ("vllm", "transformers")
        True
    """
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def load_engine(
    *,
    kind: str = "transformers",
    model: str | None = None,
    cache_dir: str | None = None,
    base_urls: Sequence[str] = (),
    upstream_api_key: str | None = None,
    **overrides: Any,
) -> Engine:
    """Build the engine ``kind`` for ``model`` (None: the default model).

    Args:
        kind: ``transformers``, ``vllm`` or ``server`` (a local transformers engine reads the
            features; ``vllm serve`` replicas at ``base_urls`` decode).
        model: Model folder or hub id; None for the default model.
        cache_dir: Cache root of the default model.
        base_urls: ``server`` only: the replicas' roots, e.g. ``http://127.0.0.1:8000``.
        upstream_api_key: ``server`` only: the replicas' ``--api-key``.
        overrides: Config fields of the in-process engine (e.g. ``dtype="float32"``).

    Raises:
        ConfigError: Unknown kind, ``server`` without base URLs, or base URLs for another kind.
    """
    if kind not in ENGINE_KINDS:
        raise ConfigError(f"--engine {kind!r} is not one of {', '.join(ENGINE_KINDS)}")
    if kind == "server" and not base_urls:
        raise ConfigError("--engine server needs --base-url http://host:port (one per replica)")
    if kind != "server" and base_urls:
        raise ConfigError(
            f"--base-url is for --engine server (decoding on vllm serve replicas), not {kind!r}; "
            "drop --base-url or pass --engine server"
        )
    if kind == "vllm":
        from t2_agents.backends.vllm import VLLMEngine

        return VLLMEngine(model=model, cache_dir=cache_dir, **overrides)
    from t2_agents.backends.transformers import TransformersEngine

    local = TransformersEngine(model=model, cache_dir=cache_dir, **overrides)
    if kind == "transformers":
        return local
    from t2_agents.backends.server import ServerEngine

    return ServerEngine(local, base_urls=tuple(base_urls), api_key=upstream_api_key)
