"""Start the endpoint: load an engine and the T2 policy, run uvicorn (blocking or in a thread).

``t2 serve`` calls :func:`~t2_agents.backends.factory.load_engine` (re-exported here, the one
engine factory of the library), :func:`load_service` and :func:`serve`; uvicorn's HTTP protocol
gets a deadline on each request's headers (``ServeConfig.header_timeout``:
:func:`~t2_agents.serve.intake.header_deadline_protocol`); tests and the
benchmark use :func:`serve_in_thread`, which runs the same server on a free loopback port and
stops it on exit.

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> service = ThinkingService(FakeEngine(), config=ServeConfig(port=0))
    >>> with serve_in_thread(service) as base_url:  # doctest: +SKIP
    ...     httpx.get(base_url + "/health").json()["status"]
    'ok'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from t2_agents.backends.base import Engine
from t2_agents.backends.factory import load_engine
from t2_agents.budget.policies import T2Policy
from t2_agents.errors import DependencyError, T2Error
from t2_agents.serve.app import create_app
from t2_agents.serve.config import ServeConfig
from t2_agents.serve.intake import header_deadline_protocol
from t2_agents.serve.service import ThinkingService

__all__ = ["load_engine", "load_service", "serve", "serve_in_thread"]


def load_service(
    engine: Engine, *, config: ServeConfig, estimator: str | Path | None = None
) -> ThinkingService:
    """The service with the T2 policy from ``estimator`` (or the shipped one for the model).

    Without any estimator (another model, none shipped) the default budget is a fixed
    ``config.n_max`` paths; an explicit ``estimator`` that does not fit ``engine`` raises.

    Raises:
        ArtifactError: ``estimator`` is missing or fits another model.
    """
    from t2_agents.budget.shipped import choose_policy

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
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    app = create_app(service)
    http = header_deadline_protocol(
        AutoHTTPProtocol,
        service.config.header_timeout,
        on_timeout=app.state.metrics.header_timeouts.inc,
    )
    config = uvicorn.Config(
        app,
        http=http,
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
