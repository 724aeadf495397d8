"""``GET /metrics``: Prometheus counters, histograms and gauges of one endpoint.

Every app gets its own :class:`prometheus_client.CollectorRegistry` (two apps in one process
share nothing). Recording is a few counter increments per request, done after the answer is
computed; the text format is generated only when ``/metrics`` is scraped.

=====================================  ==========  =================================================
metric                                 type        what
=====================================  ==========  =================================================
``t2_requests_total{route,status}``    counter     answered requests by route and HTTP status (499:
                                                   the client left first)
``t2_request_seconds{route}``          histogram   time from the headers to the last byte sent
``t2_intake_seconds``                  histogram   reading, parsing and validating a request body
``t2_node_seconds{node}``              histogram   graph time per node (``budget``, ``sample``,
                                                   ``aggregate``...) and ``wall`` for the whole step
``t2_chosen_n``                        histogram   N chosen per answered request (with a stop rule:
                                                   its first wave; ``t2_paths_total`` counts all)
``t2_paths_total``                     counter     paths sampled
``t2_failed_paths_total``              counter     paths that failed
``t2_tokens_total{kind}``              counter     ``prompt`` (once per request) and ``completion``
                                                   (all paths) tokens
``t2_out_of_distribution_total``       counter     requests T2's distribution guard flagged
``t2_uncalibrated_total``              counter     requests sampled outside the estimator's
                                                   calibration settings
``t2_fallbacks_total``                 counter     requests served with the safe N because T2
                                                   could not choose
``t2_stop_rule_waves``                 histogram   waves per request when a stop rule ran
``t2_stop_rule_stops_total{reason}``   counter     why stop rules stopped
``t2_header_timeouts_total``           counter     requests answered 408 because their headers were
                                                   late (they never reach the app's counters)
``t2_in_flight``                       gauge       requests holding a concurrency slot
``t2_reading``                         gauge       requests whose body is being read (no slot yet)
=====================================  ==========  =================================================

Example:
    >>> metrics = ServeMetrics(in_flight=lambda: 0, reading=lambda: 0)
    >>> metrics.header_timeouts.inc()
    >>> b"t2_header_timeouts_total 1.0" in metrics.render()
    True
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from t2_agents.errors import DependencyError
from t2_agents.serve.protocol import T2Extension

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
except ImportError as _exc:  # pragma: no cover - installed with the serve extra
    raise DependencyError(
        "t2 serve's /metrics needs prometheus-client: pip install 't2-agents[serve]'"
    ) from _exc

__all__ = ["CONTENT_TYPE", "MetricsMiddleware", "ServeMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of the Prometheus text format."""

_ROUTES = ("/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions")
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_PATHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
_WAVES = (1, 2, 3, 4, 6, 8, 12, 16, 32)


class ServeMetrics:
    """The metrics of one app, in their own registry.

    Args:
        in_flight: Reads the number of requests holding a concurrency slot.
        reading: Reads the number of requests whose body is being read.
    """

    def __init__(self, *, in_flight: Callable[[], int], reading: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "t2_requests", "Answered requests by route and HTTP status (499: the client left)",
            ["route", "status"], registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "t2_request_seconds", "Seconds from the request's headers to its last byte",
            ["route"], buckets=_SECONDS, registry=registry,
        )  # fmt: skip
        self.intake = Histogram(
            "t2_intake_seconds", "Seconds reading, parsing and validating a request body",
            buckets=_SECONDS, registry=registry,
        )  # fmt: skip
        self.node_seconds = Histogram(
            "t2_node_seconds", "Graph seconds per node, and wall for the whole step",
            ["node"], buckets=_SECONDS, registry=registry,
        )  # fmt: skip
        self.chosen_n = Histogram(
            "t2_chosen_n",
            "N chosen per request (a stop rule's first wave)",
            buckets=_PATHS,
            registry=registry,
        )
        self.paths = Counter("t2_paths", "Paths sampled", registry=registry)
        self.failed_paths = Counter("t2_failed_paths", "Paths that failed", registry=registry)
        self.tokens = Counter(
            "t2_tokens", "Prompt tokens (once per request) and completion tokens (all paths)",
            ["kind"], registry=registry,
        )  # fmt: skip
        self.out_of_distribution = Counter(
            "t2_out_of_distribution", "Requests T2's distribution guard flagged", registry=registry
        )
        self.uncalibrated = Counter(
            "t2_uncalibrated", "Requests sampled outside the estimator's calibration settings",
            registry=registry,
        )  # fmt: skip
        self.fallbacks = Counter(
            "t2_fallbacks", "Requests served with the safe N because T2 could not choose",
            registry=registry,
        )  # fmt: skip
        self.waves = Histogram(
            "t2_stop_rule_waves", "Waves per request when a stop rule ran", buckets=_WAVES,
            registry=registry,
        )  # fmt: skip
        self.stops = Counter(
            "t2_stop_rule_stops", "Why stop rules stopped", ["reason"], registry=registry
        )
        self.header_timeouts = Counter(
            "t2_header_timeouts", "Requests answered 408 because their headers were late",
            registry=registry,
        )  # fmt: skip
        in_flight_gauge = Gauge(
            "t2_in_flight", "Requests holding a concurrency slot", registry=registry
        )
        in_flight_gauge.set_function(lambda: float(in_flight()))
        reading_gauge = Gauge(
            "t2_reading", "Requests whose body is being read (no slot yet)", registry=registry
        )
        reading_gauge.set_function(lambda: float(reading()))

    def observe(self, t2: T2Extension) -> None:
        """Record one answered request's budget, paths, tokens, node times and flags."""
        self.chosen_n.observe(t2.n)
        self.paths.inc(t2.cost.samples)
        if t2.failed_paths:
            self.failed_paths.inc(t2.failed_paths)
        self.tokens.labels("prompt").inc(t2.cost.prompt_tokens)
        self.tokens.labels("completion").inc(t2.cost.completion_tokens)
        for node, seconds in t2.cost.seconds.items():
            if seconds is not None:
                self.node_seconds.labels(node).observe(seconds)
        if t2.out_of_distribution:
            self.out_of_distribution.inc()
        if t2.calibrated is False:
            self.uncalibrated.inc()
        if t2.fallback is not None:
            self.fallbacks.inc()
        if t2.waves:
            self.waves.observe(len(t2.waves))
        if t2.stopped is not None:
            self.stops.labels(t2.stopped).inc()

    def render(self) -> bytes:
        """The Prometheus text format of every metric (what ``GET /metrics`` answers)."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware counting each HTTP request by route and status, with its latency.

    A request whose client left before any answer is counted with status 499.
    """

    def __init__(self, app: Any, *, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        route = path if path in _ROUTES else "other"
        if route == "other" and path.startswith("/v1/models/"):
            route = "/v1/models/{model_id}"
        status, sent = 500, False
        started = time.perf_counter()

        async def sending(message: Any) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status, sent = int(message["status"]), True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            if not sent:
                status = 499
            raise
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
