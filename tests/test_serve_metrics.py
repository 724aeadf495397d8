"""``GET /metrics``: scraped after requests, parsed with prometheus-client's own parser.

The app runs under Starlette's ``TestClient`` on the fake engine (no socket needed: the header
deadline's counter is tested over a socket in ``test_serve_intake.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import T2Policy
from t2_agents.budget.protocols import BudgetEstimator
from t2_agents.serve import ServeConfig, ThinkingService, create_app

MODEL = "fake-engine"
QUESTION = [{"role": "user", "content": "What is 3 + 4?"}]


class _Flagging(BudgetEstimator):
    """An estimator whose guard flags every question (N = 4)."""

    layers, model_identity, hidden_size = (1, 2), MODEL, 8
    guard = object()

    def predict_one(self, features: Any, **options: Any) -> int:
        return 4

    def out_of_distribution(self, features: Any) -> Any:
        return np.ones(len(features), dtype=bool)


@pytest.fixture()
def app() -> Iterator[Any]:
    """``app(policy=None, **config)`` -> a TestClient on a fresh app."""
    clients: list[TestClient] = []

    def start(policy: Any = None, engine: Any = None, **config: Any) -> TestClient:
        engine = engine or FakeEngine(answers={"7": 1.0})
        service = ThinkingService(engine, config=ServeConfig(**config), policy=policy)
        clients.append(TestClient(create_app(service)).__enter__())
        return clients[-1]

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``(sample name, sorted labels) -> value`` of every sample on ``/metrics``."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _chat(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/chat/completions", json={"model": MODEL, "messages": QUESTION, **body})


def test_metrics_after_requests(app: Any) -> None:
    client = app()
    bodies = [_chat(client, t2={"n": 3}).json(), _chat(client, t2={"n": 2}).json()]
    streamed = _chat(client, t2={"n": 1, "events": True}, stream=True)
    assert streamed.status_code == 200
    waves = _chat(client, t2={"n": 4, "stop_rule": "adaptive"}).json()["t2"]
    assert _chat(client, t2={"n": 99}).status_code == 400
    client.get("/v1/nothing")
    chat = (("route", "/v1/chat/completions"),)
    got = _scrape(client)
    assert got[("t2_requests_total", (*chat, ("status", "200")))] == 4
    assert got[("t2_requests_total", (*chat, ("status", "400")))] == 1
    assert got[("t2_requests_total", (("route", "other"), ("status", "404")))] == 1
    assert got[("t2_request_seconds_count", chat)] == 5
    assert got[("t2_intake_seconds_count", ())] == 4  # the 400 never became a job
    assert got[("t2_chosen_n_count", ())] == 4
    assert got[("t2_chosen_n_sum", ())] == 3 + 2 + 1 + waves["n"]
    assert got[("t2_chosen_n_bucket", (("le", "2.0"),))] == 2 + (waves["n"] <= 2)
    assert got[("t2_paths_total", ())] == 3 + 2 + 1 + waves["cost"]["samples"]
    completion = sum(b["usage"]["completion_tokens"] for b in bodies)
    assert got[("t2_tokens_total", (("kind", "completion"),))] >= completion
    assert got[("t2_tokens_total", (("kind", "prompt"),))] > 0
    for node in ("budget", "aggregate", "wall"):
        assert got[("t2_node_seconds_count", (("node", node),))] == 4, node
    assert got[("t2_stop_rule_waves_count", ())] == 1
    assert got[("t2_stop_rule_waves_sum", ())] == len(waves["waves"])
    assert got[("t2_stop_rule_stops_total", (("reason", waves["stopped"]),))] == 1
    assert got[("t2_in_flight", ())] == 0 and got[("t2_reading", ())] == 0
    for name in ("t2_out_of_distribution_total", "t2_fallbacks_total", "t2_uncalibrated_total",
                 "t2_failed_paths_total", "t2_header_timeouts_total"):  # fmt: skip
        assert got[(name, ())] == 0, name
    scrape = ("t2_requests_total", (("route", "/metrics"), ("status", "200")))
    assert scrape not in got and _scrape(client)[scrape] == 1  # counted once it is answered


def test_two_apps_share_no_counters(app: Any) -> None:
    first, second = app(), app()
    assert _chat(first, t2={"n": 2}).status_code == 200
    chat_ok = ("t2_requests_total", (("route", "/v1/chat/completions"), ("status", "200")))
    assert _scrape(first)[chat_ok] == 1
    assert chat_ok not in _scrape(second)
    assert _scrape(second)[("t2_paths_total", ())] == 0


def test_out_of_distribution_requests_are_counted(app: Any) -> None:
    engine = FakeEngine(answers={"7": 1.0})
    client = app(T2Policy(_Flagging(), engine=engine), engine)
    t2 = _chat(client).json()["t2"]
    assert t2["out_of_distribution"] is True and t2["n"] == 4
    assert _scrape(client)[("t2_out_of_distribution_total", ())] == 1
