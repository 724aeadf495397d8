"""Intake of the endpoint: slow clients, size and depth limits, and bad values answered with 4xx.

The slow-client tests talk raw HTTP/1.1 over a socket to a real uvicorn server on a loopback
port (``serve_in_thread``), so the header deadline (in uvicorn's protocol) and the body deadline
(in the app) run for real; the engine is the fake one. The only timing in them is a generous
upper bound on how long the staller waits for its 408.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from t2_agents.backends.fake import FakeEngine
from t2_agents.serve import ServeConfig, ThinkingService, serve_in_thread
from t2_agents.serve.protocol import SEED_MAX

MODEL = "fake-engine"
QUESTION = [{"role": "user", "content": "What is 3 + 4?"}]
BODY = json.dumps({"model": MODEL, "messages": QUESTION, "t2": {"n": 1}}).encode()


@pytest.fixture()
def server() -> Iterator[Any]:
    """``server(**config)`` -> the base URL of a running endpoint on the fake engine."""
    contexts: list[Any] = []

    def start(**config: Any) -> str:
        service = ThinkingService(
            FakeEngine(answers={"7": 1.0}), config=ServeConfig(port=0, **config)
        )
        contexts.append(serve_in_thread(service))
        return str(contexts[-1].__enter__())

    yield start
    for context in contexts:
        context.__exit__(None, None, None)


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def _head(length: int) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t2\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (at most 30 s)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _ok(base: str) -> int:
    return httpx.post(base + "/v1/chat/completions", content=BODY, timeout=30).status_code


def test_a_client_stalling_mid_body_holds_no_slot_and_gets_408(server: Any) -> None:
    base = server(max_concurrency=1, body_timeout=1.0)
    stallers = [_connect(base) for _ in range(3)]
    for sock in stallers:
        sock.sendall(_head(len(BODY)) + BODY[:25])  # headers, then a third of the body
    # Every slot would be held by a staller if the slot were taken before the body is read.
    assert [_ok(base) for _ in range(3)] == [200, 200, 200]
    health = httpx.get(base + "/health").json()
    assert health["active"] == 0
    for sock in stallers:
        answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
        assert error["code"] == "request_timeout" and error["param"] == "body"
        assert "--body-timeout" in error["message"] and "25 bytes" in error["message"]
        sock.close()
    assert _ok(base) == 200
    scraped = httpx.get(base + "/metrics").text
    assert 't2_requests_total{route="/v1/chat/completions",status="408"} 3.0' in scraped


def test_a_client_trickling_its_headers_is_cut_off_with_408(server: Any) -> None:
    base = server(header_timeout=0.5)
    slow = _connect(base)
    slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t2\r\n")
    idle = _connect(base)  # connects and sends nothing: closed without an answer
    assert _ok(base) == 200
    answer = _answer(slow)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert error["param"] == "headers" and "--header-timeout" in error["message"]
    assert _answer(idle) == b""
    assert _ok(base) == 200
    assert "t2_header_timeouts_total 1.0" in httpx.get(base + "/metrics").text


def test_a_large_body_arriving_slowly_is_refused_as_soon_as_it_is_too_large(server: Any) -> None:
    base = server(max_body_bytes=4096, body_timeout=20.0)
    sock = _connect(base)
    sock.sendall(_head(100_000)[:-4] + b"\r\nX: y\r\n\r\n")  # declared too large: 413 at once
    assert _answer(sock).startswith(b"HTTP/1.1 413")
    chunked = _connect(base)
    chunked.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t2\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for _ in range(5):  # no length declared: counted while reading, refused past the cap
        chunked.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
    assert _answer(chunked).startswith(b"HTTP/1.1 413")
    assert _ok(base) == 200


def _post(base: str, body: Any) -> httpx.Response:
    return httpx.post(base + "/v1/chat/completions", json=body, timeout=30)


def test_depth_and_count_limits_name_the_field_the_value_and_the_limit(server: Any) -> None:
    base = server(max_json_depth=16, max_messages=4, max_tools=2)
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    too_deep = _post(base, {"model": MODEL, "messages": QUESTION, "metadata": deep})
    assert too_deep.status_code == 400
    error = too_deep.json()["error"]
    assert error["code"] == "json_too_deep" and "16" in error["message"]
    very_deep = httpx.post(
        base + "/v1/chat/completions", content=b"[" * 100_000 + b"]" * 100_000, timeout=30
    )  # past Python's recursion limit: still a 400
    assert very_deep.status_code == 400 and very_deep.json()["error"]["code"] == "json_too_deep"
    many = _post(base, {"model": MODEL, "messages": QUESTION * 5})
    assert many.status_code == 400
    error = many.json()["error"]
    assert error["param"] == "messages" and "5 entries" in error["message"]
    assert "limit of 4" in error["message"] and "--max-messages" in error["message"]
    tool = {"type": "function", "function": {"name": "f"}}
    tools = _post(base, {"model": MODEL, "messages": QUESTION, "tools": [tool] * 3})
    assert tools.status_code == 400 and tools.json()["error"]["param"] == "tools"
    assert _ok(base) == 200


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"model": "fake-engine", "messages": [], "temperature": NaN}', "NaN is not JSON"),
        (b'{"model": "fake-engine", "messages": [], "top_p": Infinity}', "Infinity is not JSON"),
        (b'{"model": "fake-engine", "messages": [{"role": "user", "content": "\\ud800"}]}',
         "surrogate"),
        (b"\xff\xfe not utf-8", "not valid JSON"),
        (b'{"model": "fake-engine", "max_tokens": 1' + b"0" * 5000 + b"}", "not valid JSON"),
    ],
)  # fmt: skip
def test_strict_json(server: Any, raw: bytes, fragment: str) -> None:
    base = server()
    response = httpx.post(base + "/v1/chat/completions", content=raw, timeout=30)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("t2", "extra", "param", "fragments"),
    [
        ({"policy": "fixed-0"}, {}, "t2.policy", ["fixed-0", "from 1 to 16", "fixed-8"]),
        ({"policy": "fixed-²"}, {}, "t2.policy", ["fixed-<n>"]),
        ({"policy": "fixed-99"}, {}, "n", ["99", "cap of 16"]),
        ({"policy": "fixed-3", "n": 4}, {}, "t2.policy", ["disagree"]),
        ({}, {"seed": 2**64}, "seed", [str(2**64), str(SEED_MAX)]),
        ({}, {"seed": -1}, "seed", ["seed=-1", "greater than or equal to 0"]),
        ({"task": "poetry"}, {}, "t2.task", ["'poetry'", "syllogism", "products", "agent_"]),
        ({}, {"temperature": "hot"}, "temperature", ["temperature='hot'"]),
        ({}, {"model": None}, "model", ["model=None"]),
    ],
)
def test_bad_values_are_400s_naming_field_value_and_fix(
    server: Any, t2: dict[str, Any], extra: dict[str, Any], param: str, fragments: list[str]
) -> None:
    base = server()
    response = _post(base, {"model": MODEL, "messages": QUESTION, "t2": t2, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    assert _ok(base) == 200


def test_good_edge_values_are_served(server: Any) -> None:
    base = server()
    for body in (
        {"seed": 0},
        {"seed": SEED_MAX},
        {"t2": {"task": "syllogism", "n": 1}},
        {"t2": {"task": "agent_logic", "n": 1}},
        {"t2": {"policy": "fixed-16"}},
    ):
        response = _post(base, {"model": MODEL, "messages": QUESTION, **body})
        assert response.status_code == 200, (body, response.text)


def test_malformed_tool_calls_and_tool_choice_are_400s(server: Any) -> None:
    """Found by the fuzzer (tests/test_serve_fuzz.py): both were 500s."""
    base = server()
    history = [*QUESTION, {"role": "assistant", "content": "", "tool_calls": [{"function": True}]}]
    calls = _post(base, {"model": MODEL, "messages": history})
    assert calls.status_code == 400, calls.text
    assert calls.json()["error"]["param"] == "messages[1].tool_calls[0].function"
    tool = {"type": "function", "function": {"name": "add"}}
    choice = {"type": "function", "function": "add"}
    named = _post(base, {"model": MODEL, "messages": QUESTION, "tools": [tool],
                         "tool_choice": choice})  # fmt: skip
    assert named.status_code == 400, named.text
    assert "names no declared tool" in named.json()["error"]["message"]
    assert "add" in named.json()["error"]["message"]
