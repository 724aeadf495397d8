"""The OpenAI-compatible endpoint on the fake engine: wiring, budgets, errors, limits, streaming.

Every test talks HTTP to a real uvicorn server on a loopback port (``serve_in_thread``); the
engine is :class:`~t2_agents.backends.fake.FakeEngine` or a scripted variant, so the whole file
runs in seconds. Tool-call voting has its own file (``test_serve_tools.py``); the real model in
``test_serve_real.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import numpy as np
import pytest

from t2_agents.backends.base import (
    Completion,
    RenderedPrompt,
    SamplingParams,
    cancel_requested,
)
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import T2Policy
from t2_agents.errors import EngineError
from t2_agents.serve import ServeConfig, ThinkingService, serve_in_thread

MODEL = "fake-engine"
QUESTION = [{"role": "user", "content": "What is 3 + 4?"}]


class _Estimator:
    """A T2 estimator stand-in: N = 5, or with the knob N = 2 when tolerance >= 0.1 else 6."""

    layers = (1, 2)
    n_min, n_max = 1, 16
    model_identity = "fake-engine"
    hidden_size = 8

    def __init__(self, *, knob: bool = False) -> None:
        self.has_knob = knob
        self.tolerances: list[float | None] = []

    def predict_one(self, features: Any, tolerance: float | None = None) -> int:
        assert np.asarray(features).shape == (2, 8)
        self.tolerances.append(tolerance)
        if tolerance is None:
            return 5
        return 2 if tolerance >= 0.1 else 6


@pytest.fixture()
def serve() -> Iterator[Any]:
    """``serve(engine=..., policy=..., **config)`` -> an httpx client on a running server."""
    stack: list[Any] = []

    def start(engine: Any = None, policy: Any = None, **config: Any) -> httpx.Client:
        service = ThinkingService(
            engine or FakeEngine(answers={"7": 1.0}),
            config=ServeConfig(port=0, **config),
            policy=policy,
        )
        context = serve_in_thread(service)
        base = context.__enter__()
        client = httpx.Client(base_url=base, timeout=30)
        stack.append((context, client))
        return client

    yield start
    for context, client in stack:
        client.close()
        context.__exit__(None, None, None)


def _chat(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"model": MODEL, "messages": QUESTION, **body})


def test_health_models_and_a_fixed_n_chat(serve: Any) -> None:
    client = serve()
    assert client.get("/health").json()["status"] == "ok"
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [MODEL]
    body = _chat(client, t2={"n": 3}, seed=1).json()
    assert body["object"] == "chat.completion" and len(body["choices"]) == 1
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Let me think. The answer is 7.",
    }
    t2 = body["t2"]
    assert (t2["n"], t2["policy"], t2["answer"], t2["share"]) == (3, "fixed-3", "7", 1.0)
    usage = body["usage"]
    assert usage["completion_tokens"] == 3 * 7  # every path is counted
    assert usage["prompt_tokens"] == t2["cost"]["prompt_tokens"] > 0  # the prompt once
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert _chat(client, n=2).json()["t2"]["n"] == 2  # OpenAI's n is an alias of t2.n
    assert _chat(client, t2={"policy": "fixed-4"}).json()["t2"]["n"] == 4


def test_t2_policy_chooses_n_and_tolerance_reaches_the_estimator(serve: Any) -> None:
    engine = FakeEngine(answers={"7": 1.0})
    knob = _Estimator(knob=True)
    client = serve(engine, T2Policy(knob, engine=engine))
    assert _chat(client).json()["t2"]["n"] == 5  # default: the estimator, no knob
    assert _chat(client, t2={"tolerance": 0.2}).json()["t2"]["n"] == 2
    assert _chat(client, t2={"tolerance": 0.01}).json()["t2"]["n"] == 6
    assert knob.tolerances == [None, 0.2, 0.01]
    clamped = _chat(client, t2={"n_max": 3}).json()["t2"]
    assert (clamped["n"], clamped["policy"]) == (3, "t2") and "clamped" in clamped["warning"]
    plain = serve(engine, T2Policy(_Estimator(), engine=engine))
    refused = _chat(plain, t2={"tolerance": 0.2})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "t2.tolerance"
    assert "curve head" in refused.json()["error"]["message"]


def test_same_features_as_the_in_process_graph(serve: Any) -> None:
    engine = FakeEngine(answers={"7": 1.0})
    client = serve(engine, T2Policy(_Estimator(), engine=engine))
    _chat(client)
    # A lone user message is rendered by the engine itself, like the in-process graph does.
    assert engine.encode_calls == [("What is 3 + 4?",)]
    system = [{"role": "system", "content": "Be brief."}, *QUESTION]
    _chat(client, messages=system)
    rendered = engine.sample_calls[-1][0]
    assert isinstance(rendered, RenderedPrompt)
    assert rendered == "<|system|>Be brief.<|user|>What is 3 + 4?<|assistant|>"
    assert engine.encode_calls[-1] == (rendered,)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "gpt-4o", "messages": QUESTION}, 404, "model"),
        ({"model": MODEL, "messages": []}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "  "}]}, 400, "messages"),
        ({"model": MODEL, "messages": QUESTION, "t2": {"n": 17}}, 400, "n"),
        ({"model": MODEL, "messages": QUESTION, "n": 99}, 400, "n"),
        ({"model": MODEL, "messages": QUESTION, "t2": {"n_max": 64}}, 400, "t2.n_max"),
        ({"model": MODEL, "messages": QUESTION, "max_tokens": 100_000}, 400, "max_tokens"),
        ({"model": MODEL, "messages": QUESTION, "max_completion_tokens": 9999}, 400, None),
        ({"model": MODEL, "messages": QUESTION, "t2": {"nn": 3}}, 400, "t2.nn"),
        ({"model": MODEL, "messages": QUESTION, "t2": {"policy": "magic"}}, 400, "t2.policy"),
        ({"model": MODEL, "messages": QUESTION, "t2": {"policy": "t2"}}, 400, "t2.policy"),
        ({"model": MODEL, "messages": QUESTION, "temperature": -1}, 400, "temperature"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, 400, None),
        ({"model": MODEL}, 400, "messages"),
        ([1, 2], 400, None),
        (
            {
                "model": MODEL,
                "messages": QUESTION,
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}
                ],
            },
            400,
            "tools[0].function.parameters",
        ),
        (
            {
                "model": MODEL,
                "messages": QUESTION,
                "tools": [{"type": "function", "function": {"name": "bad name!"}}],
            },
            400,
            "tools[0].function.name",
        ),
    ],
)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(
    serve: Any, body: Any, status: int, param: str | None
) -> None:
    client = serve(max_tokens_cap=512)
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    assert _chat(client, t2={"n": 1}).status_code == 200


def test_malformed_json_unknown_route_and_a_too_large_body(serve: Any) -> None:
    client = serve(max_body_bytes=4096)
    bad = client.post(
        "/v1/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    huge = [{"role": "user", "content": "x" * 10_000}]
    too_large = client.post("/v1/chat/completions", json={"model": MODEL, "messages": huge})
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"model": "fake-engine", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    streamed = client.post("/v1/chat/completions", content=chunks())
    assert streamed.status_code == 413
    assert _chat(client, t2={"n": 1}).status_code == 200


def test_api_key(serve: Any) -> None:
    client = serve(api_key="s3cret")
    assert client.get("/health").status_code == 200  # open
    assert client.get("/v1/models").status_code == 401
    wrong = client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": QUESTION},
        headers={"Authorization": "Bearer s3cre"},
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    cases = [
        ({"X-API-Key": "s3cret"}, "x-api-key"),
        ({"api-key": "s3cret"}, "api-key"),
        ({"Authorization": "s3cret"}, "Authorization without 'Bearer '"),
    ]
    for headers, where in cases:
        body = {"model": MODEL, "messages": QUESTION}
        misplaced = client.post("/v1/chat/completions", json=body, headers=headers)
        message = misplaced.json()["error"]["message"]
        assert misplaced.status_code == 401 and where in message, message
        assert "s3cret" not in misplaced.text  # the key is never echoed
    ok = client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": QUESTION, "t2": {"n": 1}},
        headers={"Authorization": "Bearer s3cret"},
    )
    assert ok.status_code == 200


def test_concurrency_limit_answers_429_then_recovers(serve: Any) -> None:
    client = serve(FakeEngine(answers={"7": 1.0}, delay=1.0), max_concurrency=1)
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(_chat(client, t2={"n": 1}).status_code))
    first.start()
    deadline = time.monotonic() + 5
    while client.get("/health").json()["active"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    busy = _chat(client, t2={"n": 1})
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["type"] == "rate_limit_error"
    first.join()
    assert results == [200]
    assert _chat(client, t2={"n": 1}).status_code == 200


def test_timeout_answers_504(serve: Any) -> None:
    client = serve(FakeEngine(answers={"7": 1.0}, delay=3.0), request_timeout=0.3)
    started = time.monotonic()
    response = _chat(client, t2={"n": 1})
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < 2.5


class _WaitsForCancel(FakeEngine):
    """Samples slowly, checking :func:`cancel_requested` like the real engines do."""

    def __init__(self) -> None:
        super().__init__(answers={"7": 1.0})
        self.saw_cancel = threading.Event()

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if cancel_requested():
                self.saw_cancel.set()
                raise EngineError("cancelled")
            time.sleep(0.02)
        return super().sample(prompts, n, params)


def test_client_disconnect_cancels_the_engine_work(serve: Any) -> None:
    engine = _WaitsForCancel()
    client = serve(engine)
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": QUESTION, "t2": {"n": 2}},
            timeout=0.5,
        )
    assert engine.saw_cancel.wait(5), "the engine never saw the cancellation"
    deadline = time.monotonic() + 5
    while client.get("/health").json()["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/health").json()["active"] == 0
    assert serve().post("/v1/chat/completions", json={"model": MODEL, "messages": QUESTION,
                        "t2": {"n": 1}}).status_code == 200  # fmt: skip


def _events(response: httpx.Response) -> list[Any]:
    lines = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_streaming_sends_the_voted_answer_in_chunks(serve: Any) -> None:
    client = serve()
    plain = _chat(client, t2={"n": 3}, seed=2).json()
    streamed = _chat(
        client, t2={"n": 3}, seed=2, stream=True, stream_options={"include_usage": True}
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = _events(streamed)
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert len(events) > 3  # several content pieces
    finish = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert finish[0]["choices"][0]["finish_reason"] == "stop" and finish[0]["t2"]["n"] == 3
    assert events[-1]["choices"] == [] and events[-1]["usage"] == plain["usage"]


def test_openai_client_with_extra_body_and_streaming(serve: Any) -> None:
    openai = pytest.importorskip("openai")
    client = serve()
    api = openai.OpenAI(base_url=str(client.base_url) + "/v1", api_key="unused")
    reply = api.chat.completions.create(
        model=MODEL, messages=QUESTION, extra_body={"t2": {"n": 4}}, max_tokens=32
    )
    assert reply.choices[0].message.content == "Let me think. The answer is 7."
    assert reply.usage is not None and reply.usage.completion_tokens == 4 * 7
    assert reply.model_extra is not None and reply.model_extra["t2"]["n"] == 4
    pieces = api.chat.completions.create(
        model=MODEL, messages=QUESTION, stream=True, extra_body={"t2": {"n": 2}}
    )
    text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    assert text == "Let me think. The answer is 7."
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="gpt-4o", messages=QUESTION)
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model=MODEL, messages=QUESTION, extra_body={"t2": {"n": 99}})


def test_completions_endpoint_uses_the_prompt_as_is(serve: Any) -> None:
    engine = FakeEngine(answers={"7": 1.0})
    client = serve(engine)
    body = client.post(
        "/v1/completions", json={"model": MODEL, "prompt": "3+4=", "t2": {"n": 2}}
    ).json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "Let me think. The answer is 7."
    assert engine.sample_calls[-1][0] == "3+4="  # no chat template
    client.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": ["3+4="], "t2": {"n": 1, "chat_template": True}},
    )
    assert engine.render(engine.sample_calls[-1][0]) == "<|user|>3+4=<|assistant|>"
    two = client.post("/v1/completions", json={"model": MODEL, "prompt": ["a", "b"]})
    assert two.status_code == 400 and two.json()["error"]["param"] == "prompt"
    events = _events(
        client.post("/v1/completions", json={"model": MODEL, "prompt": "3+4=", "stream": True})
    )
    assert "".join(e["choices"][0]["text"] for e in events) == "Let me think. The answer is 7."


def test_stop_strings_cut_the_paths_before_the_vote(serve: Any) -> None:
    client = serve()
    body = _chat(client, t2={"n": 2, "paths": True}, stop=["answer"]).json()
    assert body["choices"][0]["message"]["content"] == "Let me think. The "
    assert body["choices"][0]["finish_reason"] == "stop"
    assert [p["text"] for p in body["t2"]["paths"]] == ["Let me think. The "] * 2


def test_all_paths_failing_is_a_502(serve: Any) -> None:
    engine = FakeEngine(answers={"7": 1.0}, errors={5: [EngineError("boom")]})
    client = serve(engine)
    failed = _chat(client, t2={"n": 1}, seed=5)
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "engine_error"
    assert _chat(client, t2={"n": 1}, seed=5).status_code == 200


def test_prompts_are_not_logged_unless_asked(serve: Any, caplog: Any) -> None:
    secret = [{"role": "user", "content": "my secret number is 918273"}]
    with caplog.at_level(logging.INFO, logger="t2_agents.serve"):
        assert _chat(serve(), messages=secret, t2={"n": 1}).status_code == 200
        assert "n=1" in caplog.text and "918273" not in caplog.text
        _chat(serve(log_prompts=True), messages=secret, t2={"n": 1})
        assert "918273" in caplog.text


def test_cli_serve_reports_a_bad_engine_as_json() -> None:
    from typer.testing import CliRunner

    from t2_agents.cli import app

    result = CliRunner().invoke(app, ["serve", "--engine", "tpu", "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ConfigError" and "transformers, vllm, server" in error["message"]


def test_event_stream_shows_the_budget_before_the_answer(serve: Any) -> None:
    engine = FakeEngine(answers={"7": 1.0})
    client = serve(engine, T2Policy(_Estimator(), engine=engine))
    response = _chat(client, stream=True, t2={"events": True, "paths": True})
    events = _events(response)
    kinds = [e["t2_event"]["event"] for e in events if "t2_event" in e]
    assert kinds == ["budget"] + ["branch"] * 5 + ["verdict"]
    assert all(e["choices"] == [] for e in events if "t2_event" in e)
    budget = events[0]["t2_event"]
    assert budget["n"] == 5 and "question" not in budget
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "Let me think. The answer is 7."
    deadline = time.monotonic() + 5  # the slot is freed once the response has been sent
    while client.get("/health").json()["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/health").json()["active"] == 0
    openai = pytest.importorskip("openai")
    api = openai.OpenAI(base_url=str(client.base_url) + "/v1", api_key="unused")
    pieces = list(
        api.chat.completions.create(
            model=MODEL, messages=QUESTION, stream=True, extra_body={"t2": {"events": True}}
        )
    )
    assert next(p.model_extra["t2_event"]["event"] for p in pieces if not p.choices) == "budget"
    assert "".join(p.choices[0].delta.content or "" for p in pieces if p.choices).endswith("7.")


def test_event_stream_errors_and_disconnects(serve: Any) -> None:
    engine = _WaitsForCancel()
    client = serve(engine)
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": QUESTION, "stream": True,
                  "t2": {"events": True, "n": 2}},
            timeout=0.5,
        )  # fmt: skip
    assert engine.saw_cancel.wait(5)
    deadline = time.monotonic() + 5
    while client.get("/health").json()["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.get("/health").json()["active"] == 0
    failing = serve(FakeEngine(answers={"7": 1.0}, errors={5: [EngineError("boom")]}))
    events = _events(_chat(failing, stream=True, seed=5, t2={"events": True, "n": 1}))
    assert events[-1]["error"]["code"] == "engine_error"


def test_a_stop_rule_samples_in_waves_and_reports_them(serve: Any) -> None:
    split = FakeEngine(answers={"1": 0.34, "2": 0.33, "3": 0.33})
    estimator = _Estimator(knob=True)
    client = serve(split, T2Policy(estimator, engine=split))
    t2 = _chat(client, t2={"stop_rule": "hybrid"}, seed=0).json()["t2"]
    # T2's N (5) first; the cap is T2's predicted peak (tolerance 0 -> 6 here), then stop
    assert t2["policy"] == "hybrid+t2" and t2["waves"][0] == 5 and sum(t2["waves"]) <= 6
    assert t2["stopped"] in {"cap", "decisive"} and t2["cost"]["samples"] == sum(t2["waves"])
    assert estimator.tolerances[-1] == 0.0
    agreeing = serve(FakeEngine(answers={"7": 1.0}))
    t2 = _chat(agreeing, t2={"stop_rule": "adaptive", "n": 8}).json()["t2"]
    assert (t2["waves"], t2["stopped"], t2["answer"]) == ([1, 1, 1, 1], "adaptive", "7")
    assert _chat(agreeing, t2={"n": 3}).json()["t2"]["waves"] == []  # no rule: one wave
    too_small = _chat(agreeing, t2={"stop_rule": "esc", "n": 2})
    assert too_small.status_code == 400 and "window" in too_small.json()["error"]["message"]
    unknown = _chat(agreeing, t2={"stop_rule": "beta"})
    assert unknown.status_code == 400 and "stop_rule" in json.dumps(unknown.json())


def test_early_stop_options_reach_the_graph_and_the_response(serve: Any) -> None:
    """t2.early_stop_floor stops weak paths (their tokens counted, no vote); bad values 400."""
    engine = FakeEngine(answers={"7": 0.5, "8": 0.5}, confidence={"7": 8.0, "8": 2.0})
    client = serve(engine)
    plain = _chat(client, t2={"n": 8}, seed=3).json()
    early = _chat(client, t2={"n": 8, "early_stop_floor": 5.0}, seed=3).json()
    assert plain["t2"]["weak_stopped"] == 0 and early["t2"]["weak_stopped"] > 0
    assert early["t2"]["answer"] == "7" and set(early["t2"]["distribution"]) == {"7"}
    assert early["usage"]["completion_tokens"] < plain["usage"]["completion_tokens"]
    warm = _chat(client, t2={"n": 8, "early_stop_warmup": 3, "early_stop_keep": 50}, seed=3)
    assert warm.status_code == 200, warm.text
    for t2 in (
        {"early_stop_floor": 5.0, "early_stop_warmup": 2},
        {"early_stop_keep": 0},
        {"early_stop_warmup": -1},
    ):
        bad = _chat(client, t2={"n": 4, **t2}, seed=3)
        assert bad.status_code == 400, (t2, bad.text)
    nan = client.post(
        "/v1/chat/completions",
        content=b'{"model": "%s", "messages": [{"role": "user", "content": "q"}], '
        b'"t2": {"early_stop_floor": NaN}}' % MODEL.encode(),
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400
