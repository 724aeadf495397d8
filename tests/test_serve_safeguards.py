"""Calibration awareness and the safe-N fallback of the endpoint (fake engine, TestClient).

A stand-in estimator records calibration settings like the shipped one (``max_tokens`` 48,
temperature 0.7, the instruction); others raise, or read features that are not finite.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from starlette.testclient import TestClient

from t2_agents.backends.base import SamplingParams
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import T2Policy
from t2_agents.errors import ConfigError
from t2_agents.estimator.summary import TrainingSummary
from t2_agents.serve import ServeConfig, ThinkingService, create_app

MODEL = "fake-engine"
INSTRUCTION = "Give only the final answer."
ASKED = [{"role": "user", "content": f"What is 3 + 4? {INSTRUCTION}"}]


class _Estimator:
    """N = 5; ``fail`` makes it raise; ``training`` is its recorded calibration."""

    layers = (1, 2)
    model_identity = MODEL
    hidden_size = 8

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.training = TrainingSummary(max_tokens=48, temperature=0.7, instruction=INSTRUCTION)

    def predict_one(self, features: Any) -> int:
        if self.fail:
            raise RuntimeError("probe weights missing")
        return 5


class _Recording(FakeEngine):
    """Records each ``sample`` call's parameters; ``nan`` makes its features NaN."""

    def __init__(self, *, nan: bool = False) -> None:
        super().__init__(answers={"7": 1.0})
        self.nan = nan
        self.params: list[SamplingParams] = []

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        out = super().encode(prompts, layers)
        return np.full_like(out, np.nan) if self.nan else out

    def sample(self, prompts: Sequence[str], n: int, params: SamplingParams) -> Any:
        self.params.append(params)
        return super().sample(prompts, n, params)


@pytest.fixture()
def app() -> Iterator[Any]:
    """``app(engine, estimator=None, **config)`` -> a TestClient on a fresh app."""
    clients: list[TestClient] = []

    def start(engine: FakeEngine, estimator: Any = None, **config: Any) -> TestClient:
        policy = None if estimator is None else T2Policy(estimator)
        service = ThinkingService(engine, config=ServeConfig(**config), policy=policy)
        clients.append(TestClient(create_app(service)).__enter__())
        return clients[-1]

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _chat(client: TestClient, messages: Any = ASKED, **body: Any) -> Any:
    return client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages, **body})


def test_defaults_come_from_the_estimators_calibration(app: Any) -> None:
    engine = _Recording()
    client = app(engine, _Estimator())
    t2 = _chat(client).json()["t2"]
    assert (t2["calibrated"], t2["calibration_reason"], t2["n"]) == (True, None, 5)
    assert (engine.params[-1].max_tokens, engine.params[-1].temperature) == (48, 0.7)
    explicit = _Recording()
    client = app(explicit, _Estimator(), default_max_tokens=32, default_temperature=0.5)
    _chat(client)
    assert (explicit.params[-1].max_tokens, explicit.params[-1].temperature) == (32, 0.5)
    assert "max_tokens=32 (calibrated at 48)" in _chat(client).json()["t2"]["calibration_reason"]
    plain = _Recording()
    t2 = _chat(app(plain, None)).json()["t2"]  # no estimator: nothing to be calibrated against
    assert (t2["calibrated"], plain.params[-1].max_tokens, plain.params[-1].temperature) == (
        None, 64, 0.7,
    )  # fmt: skip


def test_a_request_outside_the_calibration_is_served_and_flagged(app: Any, caplog: Any) -> None:
    client = app(_Recording(), _Estimator())
    secret = [{"role": "user", "content": "my secret number is 918273; what is 3 + 4?"}]
    with caplog.at_level(logging.INFO, logger="t2_agents.serve"):
        response = _chat(client, messages=secret, temperature=1.0, max_tokens=64)
    assert response.status_code == 200
    t2 = response.json()["t2"]
    assert t2["calibrated"] is False and t2["n"] == 5
    reason = t2["calibration_reason"]
    assert "temperature=1 (calibrated at 0.7)" in reason
    assert "max_tokens=64 (calibrated at 48)" in reason
    assert f"lacks the calibration instruction {INSTRUCTION!r}" in reason
    assert "calibrated=false" in caplog.text and "918273" not in caplog.text
    fixed = _chat(client, temperature=1.0, t2={"n": 2}).json()["t2"]
    assert fixed["calibrated"] is None  # a fixed N: the estimator did not choose
    metrics = client.get("/metrics").text
    assert "t2_uncalibrated_total 1.0" in metrics


def test_an_estimator_error_falls_back_to_the_safe_n(app: Any, caplog: Any) -> None:
    client = app(_Recording(), _Estimator(fail=True), safe_n=3)
    with caplog.at_level(logging.INFO, logger="t2_agents.serve"):
        response = _chat(client)
    assert response.status_code == 200, response.text
    t2 = response.json()["t2"]
    assert (t2["n"], t2["policy"]) == (3, "safe-3")
    assert t2["fallback"] == "the estimator raised RuntimeError: probe weights missing"
    assert "fallback to safe-3" in caplog.text
    assert _chat(client, t2={"n_max": 2}).json()["t2"]["n"] == 2  # clamped to the range
    unset = app(_Recording(), _Estimator(fail=True))
    assert _chat(unset, t2={"n_max": 6}).json()["t2"]["n"] == 6  # default: the request's n_max
    hybrid = _chat(client, t2={"stop_rule": "hybrid"}).json()["t2"]
    assert hybrid["fallback"] is not None and hybrid["policy"].endswith("safe-3")
    streamed = _chat(client, stream=True, t2={"events": True})
    assert streamed.status_code == 200 and "probe weights missing" in streamed.text
    assert "t2_fallbacks_total 4.0" in client.get("/metrics").text


def test_features_that_fail_a_check_or_a_nan_budget_fall_back(app: Any) -> None:
    nan = app(_Recording(nan=True), _Estimator(), safe_n=4)
    t2 = _chat(nan).json()["t2"]
    assert (t2["n"], t2["fallback"]) == (4, "the prompt's features hold NaN or infinite values")
    estimator = _Estimator()
    estimator.predict_one = lambda features: float("nan")  # type: ignore[method-assign]
    t2 = _chat(app(_Recording(), estimator, safe_n=2)).json()["t2"]
    assert t2["n"] == 2 and "ValueError" in t2["fallback"]


def test_on_estimator_error_error_answers_500(app: Any) -> None:
    client = app(_Recording(), _Estimator(fail=True), on_estimator_error="error")
    response = _chat(client)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "estimator_error" and "--on-estimator-error safe" in error["message"]
    assert _chat(client, t2={"n": 2}).status_code == 200  # a fixed N does not ask T2
    with pytest.raises(ConfigError, match="on_estimator_error='maybe'"):
        ServeConfig(on_estimator_error="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="safe_n=32 is above"):
        ServeConfig(safe_n=32)
