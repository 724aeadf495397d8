"""Scale-out on loopback: ``--engine server`` fanning decoding out to two replicas, two endpoints.

The replicas are scripted OpenAI ``/v1/completions`` servers (stdlib ``http.server`` on loopback
ports), so the endpoint's server engine, its rotation and its retries run for real; a real
two-replica ``vllm serve`` set-up is in the README (too heavy for this 2-core machine's tests).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from t2_agents.backends.fake import FakeEngine
from t2_agents.backends.server import ServerEngine
from t2_agents.serve import ServeConfig, ThinkingService, serve_in_thread


class _Replica:
    """A fake ``vllm serve``: answers every path with ``The answer is 42.`` and logs prompts."""

    def __init__(self) -> None:
        self.prompts: list[Any] = []
        replica = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply({"data": [{"id": "fake"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                replica.prompts.append(body["prompt"])
                n = int(body["n"])
                self._reply(
                    {
                        "choices": [
                            {"index": i, "text": " The answer is 42.", "finish_reason": "stop",
                             "token_ids": [1] * 6}
                            for i in range(n)
                        ],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 6 * n},
                    }
                )  # fmt: skip

            def _reply(self, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def replicas() -> Iterator[tuple[_Replica, _Replica]]:
    pair = (_Replica(), _Replica())
    yield pair
    for replica in pair:
        replica.close()


def _endpoint(urls: tuple[str, ...]) -> Any:
    engine = ServerEngine(FakeEngine(identity="fake"), base_urls=urls, retries=3, backoff=0.0)
    return serve_in_thread(ThinkingService(engine, config=ServeConfig(port=0)))


def test_two_replicas_share_the_decoding(replicas: tuple[_Replica, _Replica]) -> None:
    first, second = replicas
    with _endpoint((first.url, second.url)) as base_url:
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 6 * 7?"},
        ]
        for _ in range(4):
            body = httpx.post(
                base_url + "/v1/chat/completions",
                json={"model": "fake", "messages": messages, "t2": {"n": 3}},
                timeout=30,
            ).json()
            assert body["choices"][0]["message"]["content"] == "The answer is 42."
            assert body["usage"] == {
                "prompt_tokens": 9,
                "completion_tokens": 18,
                "total_tokens": 27,
            }
    assert len(first.prompts) == len(second.prompts) == 2  # one n=3 request each, in turn
    assert first.prompts[0] == "<|system|>Be brief.<|user|>What is 6 * 7?<|assistant|>"


def test_a_dead_replica_is_skipped(replicas: tuple[_Replica, _Replica]) -> None:
    alive, dead = replicas
    dead.close()
    with _endpoint((dead.url, alive.url)) as base_url:
        for _ in range(2):
            response = httpx.post(
                base_url + "/v1/chat/completions",
                json={"model": "fake", "messages": [{"role": "user", "content": "6*7?"}],
                      "t2": {"n": 2}},
                timeout=30,
            )  # fmt: skip
            assert response.status_code == 200
    assert len(alive.prompts) == 2


def test_two_stateless_endpoints_answer_alike(replicas: tuple[_Replica, _Replica]) -> None:
    urls = (replicas[0].url, replicas[1].url)
    request = {"model": "fake", "messages": [{"role": "user", "content": "6*7?"}], "seed": 3}
    with _endpoint(urls) as one, _endpoint(urls) as two:
        answers = [
            httpx.post(url + "/v1/chat/completions", json=request, timeout=30).json()
            for url in (one, two, one)
        ]
    assert len({json.dumps(a["choices"]) for a in answers}) == 1
    assert {a["t2"]["n"] for a in answers} == {16}  # no estimator: fixed n_max
