"""The endpoint on the in-process vLLM engine (runs in the vLLM venv: ``pytest -m vllm``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from t2_agents.backends.base import CANCEL_EVENT, SamplingParams
from t2_agents.errors import EngineError
from t2_agents.serve import ServeConfig, load_service, serve_in_thread

pytestmark = pytest.mark.vllm

QUESTION = [{"role": "user", "content": "What is 6 * 7? Give only the final answer."}]


def test_cancel_event_aborts_a_running_vllm_request(vllm_engine: Any) -> None:
    event = threading.Event()
    outcome: list[BaseException | None] = []

    def run() -> None:
        CANCEL_EVENT.set(event)
        try:
            vllm_engine.sample(["Write a very long story."], 8, SamplingParams(max_tokens=1500))
            outcome.append(None)
        except EngineError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)
    event.set()
    worker.join(timeout=10)
    assert isinstance(outcome[0], EngineError) and "cancelled" in str(outcome[0])
    deadline = time.monotonic() + 10
    while vllm_engine._engine.get_num_unfinished_requests() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert vllm_engine._engine.get_num_unfinished_requests() == 0  # vLLM aborted it


def test_endpoint_on_vllm_and_a_disconnect(vllm_engine: Any) -> None:
    service = load_service(vllm_engine, config=ServeConfig(port=0))
    with serve_in_thread(service) as base_url:
        url = base_url + "/v1/chat/completions"
        body = httpx.post(
            url,
            json={"model": service.model_name, "messages": QUESTION, "max_tokens": 16,
                  "t2": {"n": 4, "paths": True}},
            timeout=120,
        ).json()  # fmt: skip
        assert body["t2"]["n"] == 4
        assert body["usage"]["completion_tokens"] == sum(p["tokens"] for p in body["t2"]["paths"])
        long = {"model": service.model_name, "max_tokens": 500, "t2": {"n": 16},
                "messages": [{"role": "user", "content": "Write a very long story."}]}  # fmt: skip
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url, json=long, timeout=1.5)
        deadline = time.monotonic() + 15
        while vllm_engine._engine.get_num_unfinished_requests() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert vllm_engine._engine.get_num_unfinished_requests() == 0
        again = httpx.post(
            url, json={"model": service.model_name, "messages": QUESTION, "max_tokens": 8},
            timeout=120,
        )  # fmt: skip
        assert again.status_code == 200
