"""The ASGI application (Starlette): routes, API key, limits, cancellation, streaming, errors.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /v1/models/{id}``, ``GET /health`` and ``GET /metrics`` (Prometheus,
:mod:`~t2_agents.serve.metrics`). Every failure is an OpenAI error object
(``{"error": {"message", "type", "param", "code"}}``) with its HTTP status:

========================================  ======
malformed JSON, bad field, n/max_tokens    400
above the cap, empty messages, bad tools,
unknown task, too deep, too many messages
missing or wrong API key                   401
unknown model, unknown route               404
headers or body not sent in time           408 (the connection is closed)
body above ``max_body_bytes``              413
``max_concurrency`` requests in flight     429 (``Retry-After: 1``)
T2 failed (``on_estimator_error=error``)   500
every path failed, engine error            502
``request_timeout`` exceeded               504
========================================  ======

A request takes a concurrency slot only once it is in hand: headers, the whole body, valid
JSON within the limits, a valid request (:mod:`~t2_agents.serve.intake`); a slow or stalled
client holds no slot and is cut off by the header and body time limits.

While a request's graph runs, the server watches the connection: when the client goes away the
run is cancelled (the transformers engine stops generating at the next token, the vLLM engine
aborts its requests; the graph runs no further node) and its concurrency slot is freed.
Requests are logged by id, status, N, tokens and time; the prompt text only with
``log_prompts``.

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> from t2_agents.serve.service import Job, Outcome, ThinkingService
    >>> app = create_app(ThinkingService(FakeEngine(), config=ServeConfig()))
    >>> sorted(route.path for route in app.routes)[:2]
    ['/health', '/metrics']
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from t2_agents.backends.base import CANCEL_EVENT
from t2_agents.errors import ConfigError, DependencyError

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route
except ImportError as _exc:  # pragma: no cover - installed with the serve extra
    raise DependencyError(
        "t2 serve needs starlette and uvicorn: pip install 't2-agents[serve]'"
    ) from _exc
from t2_agents.serve.config import ServeConfig
from t2_agents.serve.intake import read_request
from t2_agents.serve.metrics import CONTENT_TYPE, MetricsMiddleware, ServeMetrics
from t2_agents.serve.protocol import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    new_id,
    parse_request,
)
from t2_agents.serve.service import Job, Outcome, ThinkingService

__all__ = ["create_app"]

_log = logging.getLogger("t2_agents.serve")
_T = TypeVar("_T")


def create_app(service: ThinkingService) -> Starlette:
    """The ASGI app serving ``service`` (run it with uvicorn: :func:`t2_agents.serve.serve`).

    Args:
        service: The service (engine, graph, default policy) and its :class:`ServeConfig`.

    Returns:
        A Starlette application; ``app.state.slots.active`` counts the requests in flight,
        ``app.state.metrics`` is its :class:`~t2_agents.serve.metrics.ServeMetrics`.
    """
    config = service.config
    slots = _Slots(config.max_concurrency)
    metrics = ServeMetrics(in_flight=lambda: slots.active, reading=lambda: slots.reading)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "model": service.model_name,
                "active": slots.active,
                "max_concurrency": config.max_concurrency,
            }
        )

    async def scrape(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def models(request: Request) -> Response:
        _authorize(request, config)
        return JSONResponse({"object": "list", "data": [_model_card(service)]})

    async def model(request: Request) -> Response:
        _authorize(request, config)
        if request.path_params["model_id"] != service.model_name:
            raise ApiError(
                404, f"no model {request.path_params['model_id']!r} here",
                type="not_found_error", code="model_not_found",
            )  # fmt: skip
        return JSONResponse(_model_card(service))

    def endpoint(schema: type[ChatRequest] | type[CompletionRequest], prefix: str) -> Any:
        async def handle(request: Request) -> Response:
            _authorize(request, config)
            request_id = new_id(prefix)
            started = time.perf_counter()
            job = await _intake(request, schema, service, slots)
            metrics.intake.observe(time.perf_counter() - started)
            if config.log_prompts:
                _log.info("%s prompt %r", request_id, job.prompt)
            if job.calibration:
                _log.info("%s calibrated=false: %s", request_id, "; ".join(job.calibration))
            slots.acquire()  # only now: the request is in hand and valid
            handed_off = False
            try:
                if job.events:  # the run happens while streaming; the stream frees the slot
                    handed_off = True
                    return _ReleasingStream(
                        _event_stream(service, job, request_id, metrics),
                        release=slots.release,
                        media_type="text/event-stream",
                        headers={"Cache-Control": "no-cache"},
                    )
                outcome = await _cancellable(
                    request, service.run(job), timeout=config.request_timeout
                )
            finally:
                if not handed_off:
                    slots.release()
            _observe(metrics, request_id, outcome)
            _log.info(
                "%s 200 n=%s policy=%s prompt_tokens=%d completion_tokens=%d seconds=%.2f",
                request_id, outcome.t2.n, outcome.t2.policy,
                outcome.usage["prompt_tokens"], outcome.usage["completion_tokens"],
                time.perf_counter() - started,
            )  # fmt: skip
            if job.stream:
                return StreamingResponse(
                    _sse(service.chunks(job, outcome, response_id=request_id)),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache"},
                )
            return JSONResponse(service.response(job, outcome, response_id=request_id))

        return handle

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        _log.info("%s %s %d %s", request.method, request.url.path, exc.status, exc.code or "")
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        if exc.status == 408:  # the client is still sending (or stalled): do not read on
            headers = {"Connection": "close"}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = ApiError(
            exc.status_code,
            f"{request.method} {request.url.path}: {exc.detail}",
            type="not_found_error" if exc.status_code == 404 else "invalid_request_error",
        )
        return JSONResponse(error.body(), status_code=exc.status_code)

    async def on_crash(request: Request, exc: Exception) -> Response:
        _log.exception("%s %s failed", request.method, request.url.path)
        error = ApiError(500, f"internal error: {type(exc).__name__}", type="server_error")
        return JSONResponse(error.body(), status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # LangGraph runs the graph's synchronous nodes in the loop's default executor, whose
        # default size (min(32, CPUs + 4)) would cap concurrent engine calls far below
        # max_concurrency (measured in bench/load.py): give every slot a thread.
        executor = ThreadPoolExecutor(max_workers=config.max_concurrency + 4)
        asyncio.get_running_loop().set_default_executor(executor)
        yield
        if service.recording is not None:
            await service.recording.close()
            _log.info("recorded pools: %s", service.recording.status())
        executor.shutdown(wait=False, cancel_futures=True)

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", scrape, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", model, methods=["GET"]),
            Route("/v1/chat/completions", endpoint(ChatRequest, "chatcmpl"), methods=["POST"]),
            Route("/v1/completions", endpoint(CompletionRequest, "cmpl"), methods=["POST"]),
        ],
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_crash,
        },
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        lifespan=lifespan,
    )
    app.state.slots = slots
    app.state.metrics = metrics
    return app


class _Slots:
    """A non-blocking concurrency limit: a request beyond it is refused at once with 429
    (``reading`` counts the requests still arriving, which hold no slot)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.reading = 0

    def acquire(self) -> None:
        if self.active >= self.limit:
            raise ApiError(
                429,
                f"{self.active} requests are in flight, the limit is {self.limit}; retry shortly",
                type="rate_limit_error",
                code="concurrency_limit",
            )
        self.active += 1

    def release(self) -> None:
        self.active -= 1


def _authorize(request: Request, config: ServeConfig) -> None:
    if config.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip().encode() if scheme.lower() == "bearer" else b""
    if not hmac.compare_digest(given, config.api_key.encode()):
        # Name the header a key arrived in (never the key): the usual mistake is another header.
        misplaced = [h for h in _KEY_HEADERS if h in request.headers]
        if header and scheme.lower() != "bearer":
            misplaced.insert(0, "Authorization without 'Bearer '")
        where = f" (found a key in {', '.join(misplaced)})" if misplaced else ""
        raise ApiError(
            401,
            f"missing or wrong API key{where}; send Authorization: Bearer <key>",
            type="authentication_error",
            code="invalid_api_key",
        )


_KEY_HEADERS = ("x-api-key", "api-key", "openai-api-key")
"""Headers other clients put an API key in (Azure's ``api-key``, Anthropic-style ``x-api-key``)."""


async def _intake(
    request: Request,
    schema: type[ChatRequest] | type[CompletionRequest],
    service: ThinkingService,
    slots: _Slots,
) -> Job:
    """Read, parse and validate a request (no slot held meanwhile) into its :class:`Job`."""
    slots.reading += 1
    try:
        body = await read_request(request, service.config)
        return service.prepare(parse_request(schema, body))
    except ConfigError as exc:  # a library check the request's values failed
        raise ApiError(400, str(exc)) from None
    finally:
        slots.reading -= 1


def _observe(metrics: ServeMetrics, request_id: str, outcome: Outcome) -> None:
    metrics.observe(outcome.t2)
    if outcome.t2.fallback is not None:
        _log.warning("%s fallback to %s: %s", request_id, outcome.t2.policy, outcome.t2.fallback)


async def _cancellable(request: Request, work: Awaitable[_T], *, timeout: float) -> _T:
    """Await ``work``; cancel it when the client disconnects or ``timeout`` passes.

    The disconnect is awaited, not polled: once the body is read, the server's ``receive``
    returns only when the client has gone, so a request in flight costs no CPU while it waits
    (a poll every 0.1 s per request showed among the busiest frames of a profile at 32 clients).
    """
    event = threading.Event()
    task = asyncio.ensure_future(_within(event, work))
    watcher = asyncio.ensure_future(_disconnect(request))
    try:
        done, _ = await asyncio.wait(
            {task, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            return task.result()
        if watcher in done:
            _log.info("client disconnected; cancelling its run")
            raise asyncio.CancelledError
        raise ApiError(504, f"the request took longer than {timeout:g} s",
                       type="timeout_error", code="timeout")  # fmt: skip
    finally:
        watcher.cancel()
        if not task.done():
            event.set()
            task.cancel()


async def _disconnect(request: Request) -> None:
    """Return when the client disconnects (the body has been read: nothing else arrives)."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return


async def _within(event: threading.Event, work: Awaitable[_T]) -> _T:
    token = CANCEL_EVENT.set(event)  # this task's own context: followed into worker threads
    try:
        return await work
    finally:
        CANCEL_EVENT.reset(token)


class _ReleasingStream(StreamingResponse):
    """A streaming response that frees its concurrency slot when it ends, however it ends
    (also when the client left before the stream started, so its generator never ran)."""

    def __init__(self, content: AsyncIterator[str], *, release: Callable[[], None],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _event_stream(
    service: ThinkingService, job: Job, request_id: str, metrics: ServeMetrics
) -> AsyncIterator[str]:
    """Stream the run's events, then the voted answer; cancel the run if the client leaves."""
    config = service.config
    event = threading.Event()
    CANCEL_EVENT.set(event)  # the context of the task that streams this response
    finished = False
    started = time.perf_counter()
    try:
        outcome: Outcome | None = None
        async with asyncio.timeout(config.request_timeout):
            async for item in service.run_events(job):
                if isinstance(item, Outcome):
                    outcome = item
                else:
                    chunk = service.event_chunk(job, item, response_id=request_id)
                    yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        assert outcome is not None
        _observe(metrics, request_id, outcome)
        async for line in _sse(service.chunks(job, outcome, response_id=request_id)):
            yield line
        finished = True
        _log.info("%s 200 n=%s events seconds=%.2f", request_id, outcome.t2.n,
                  time.perf_counter() - started)  # fmt: skip
    except ApiError as exc:
        finished = True
        yield f"data: {json.dumps(exc.body())}\n\ndata: [DONE]\n\n"
    except TimeoutError:
        error = ApiError(504, f"the request took longer than {config.request_timeout:g} s",
                         type="timeout_error", code="timeout")  # fmt: skip
        yield f"data: {json.dumps(error.body())}\n\ndata: [DONE]\n\n"
    finally:
        if not finished:
            event.set()


async def _sse(chunks: Iterator[dict[str, Any]]) -> AsyncIterator[str]:
    for item in chunks:
        yield f"data: {json.dumps(item, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


def _model_card(service: ThinkingService) -> dict[str, Any]:
    return {"id": service.model_name, "object": "model", "created": 0, "owned_by": "t2-agents"}
