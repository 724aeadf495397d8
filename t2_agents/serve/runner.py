"""Start the endpoint: load an engine and the T2 policy, run uvicorn (blocking or in a thread).

``t2 serve`` calls :func:`load_engine`, :func:`load_service` and :func:`serve`; tests and the
benchmark use :func:`serve_in_thread`, which runs the same server on a free loopback port and
stops it on exit.

Example:
    >>> from t2_agents.graph.testing import FakeEngine
    >>> service = ThinkingService(FakeEngine(), config=ServeConfig(port=0))
    >>> with serve_in_thread(service) as base_url:  # doctest: +SKIP
    ...     httpx.get(base_url + "/health").json()["status"]
    'ok'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from t2_agents.backends.base import Engine
from t2_agents.errors import ConfigError, DependencyError, T2Error
from t2_agents.policies import T2Policy
from t2_agents.serve.app import create_app
from t2_agents.serve.config import ServeConfig
from t2_agents.serve.service import ThinkingService

__all__ = ["EngineKind", "load_engine", "load_service", "serve", "serve_in_thread"]

EngineKind = Literal["transformers", "vllm", "server"]
"""``transformers`` or ``vllm`` in process; ``server``: decode on ``vllm serve`` replicas."""

_KINDS: tuple[str, ...] = ("transformers", "vllm", "server")


def load_engine(
    *,
    kind: str = "transformers",
    model: str | None = None,
    cache_dir: str | None = None,
    base_urls: Sequence[str] = (),
    upstream_api_key: str | None = None,
) -> Engine:
    """Load the engine the endpoint runs on.

    Args:
        kind: ``transformers``, ``vllm`` or ``server`` (a local transformers feature engine plus
            ``vllm serve`` replicas at ``base_urls`` for decoding).
        model: Model folder or hub id; None for the default model.
        cache_dir: Cache root of the default model.
        base_urls: ``server`` only: the replicas' roots, e.g. ``http://127.0.0.1:8000``.
        upstream_api_key: ``server`` only: the replicas' ``--api-key``.

    Raises:
        ConfigError: Unknown kind, or ``server`` without base URLs.

    Example:
        >>> load_engine(kind="tpu")
        Traceback (most recent call last):
        ...
        t2_agents.errors.ConfigError: --engine 'tpu' is not one of transformers, vllm, server
    """
    if kind not in _KINDS:
        raise ConfigError(f"--engine {kind!r} is not one of {', '.join(_KINDS)}")
    if kind == "server" and not base_urls:
        raise ConfigError("--engine server needs --base-url http://host:port (one per replica)")
    if kind == "vllm":
        from t2_agents.backends.vllm import VLLMEngine

        return VLLMEngine(model=model, cache_dir=cache_dir)
    from t2_agents.backends.transformers import TransformersEngine

    local = TransformersEngine(model=model, cache_dir=cache_dir)
    if kind == "transformers":
        return local
    from t2_agents.backends.server import ServerEngine

    return ServerEngine(local, base_urls=tuple(base_urls), api_key=upstream_api_key)


def load_service(
    engine: Engine, *, config: ServeConfig, estimator: str | Path | None = None
) -> ThinkingService:
    """The service with the T2 policy from ``estimator`` (or the shipped one for the model).

    Without any estimator (another model, none shipped) the default budget is a fixed
    ``config.n_max`` paths; an explicit ``estimator`` that does not fit ``engine`` raises.

    Raises:
        ArtifactError: ``estimator`` is missing or fits another model.
    """
    from t2_agents.demo import choose_policy

    policy = choose_policy(engine, None if estimator is None else str(estimator))
    return ThinkingService(
        engine, config=config, policy=policy if isinstance(policy, T2Policy) else None
    )


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - installed with the serve extra
        raise DependencyError(
            "t2 serve needs uvicorn and starlette: pip install 't2-agents[serve]'"
        ) from exc
    return uvicorn


def _server(service: ThinkingService, log_level: str) -> Any:
    uvicorn = _uvicorn()
    config = uvicorn.Config(
        create_app(service),
        host=service.config.host,
        port=service.config.port,
        log_level=log_level,
        access_log=False,  # the app logs each request without its content
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def serve(service: ThinkingService, *, log_level: str = "info") -> None:
    """Run the endpoint until interrupted (Ctrl-C / SIGTERM)."""
    _server(service, log_level).run()


@contextmanager
def serve_in_thread(service: ThinkingService, *, log_level: str = "warning") -> Iterator[str]:
    """Run the endpoint in a background thread; yields its base URL (``http://host:port``).

    Raises:
        T2Error: The server did not start within 30 s.
    """
    server = _server(service, log_level)
    thread = threading.Thread(target=server.run, name="t2-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise T2Error("the endpoint did not start (port taken?)")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{service.config.host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
