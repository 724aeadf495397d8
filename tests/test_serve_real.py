"""The endpoint on the real default model (transformers engine, shipped T2 estimator).

The 135M model does not call tools from the tool declaration alone (0 well-formed calls in 16
paths of two tool prompts, measured while writing these tests), but with two earlier rounds of
tool use in the conversation it calls the tool for the new question in most paths: that is the
real-response tool-voting test below. The voting rules on every other case run on scripted paths
(``test_serve_tools.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from t2_agents.graph import build_parallel_thinking_graph
from t2_agents.serve import ServeConfig, ThinkingService, load_service, serve_in_thread

pytestmark = pytest.mark.slow

QUESTION = "What is 6 * 7? Give only the final answer."


@pytest.fixture(scope="module")
def served(engine: Any) -> Iterator[tuple[str, ThinkingService]]:
    service = load_service(engine, config=ServeConfig(port=0))
    with serve_in_thread(service) as base_url:
        yield base_url, service


def test_t2_budget_and_usage_match_the_in_process_graph(
    served: tuple[str, ThinkingService], engine: Any
) -> None:
    openai = pytest.importorskip("openai")
    base_url, service = served
    api = openai.OpenAI(base_url=base_url + "/v1", api_key="unused")
    reply = api.chat.completions.create(
        model=service.model_name,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=24,
        seed=0,
        extra_body={"t2": {"paths": True}},
    )
    t2 = reply.model_extra["t2"]  # type: ignore[index]
    graph = build_parallel_thinking_graph(engine=engine, policy=service.policy, n_max=16)
    state = graph.invoke({"question": QUESTION}, {"configurable": {"t2": {"max_tokens": 1}}})
    assert t2["policy"] == "t2" and t2["n"] == state["n"]  # same features, same budget
    assert len(t2["paths"]) == t2["n"]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == sum(p["tokens"] for p in t2["paths"])
    assert reply.usage.prompt_tokens == state["branches"][0]["prompt_tokens"]
    assert reply.choices[0].message.content == t2["paths"][t2["chosen_path"]]["text"]


def test_langchain_chat_openai_gets_a_voted_tool_call_from_the_model(
    served: tuple[str, ThinkingService],
) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return f"20 C in {city}"

    base_url, service = served
    llm = langchain_openai.ChatOpenAI(
        base_url=base_url + "/v1",
        api_key="unused",
        model=service.model_name,
        max_tokens=32,
        seed=0,
        extra_body={"t2": {"n": 8}},
    ).bind_tools([get_weather])
    history: list[Any] = []
    for city, weather in (("Rome", "18 C, cloudy"), ("Oslo", "2 C, snow")):
        call = {"name": "get_weather", "args": {"city": city}, "id": f"call_{city}"}
        history += [
            HumanMessage(f"What is the weather in {city}?"),
            AIMessage("", tool_calls=[call]),
            ToolMessage(weather, tool_call_id=f"call_{city}"),
            AIMessage(f"It is {weather} in {city}."),
        ]
    message = llm.invoke([*history, HumanMessage("What is the weather in Paris?")])
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    cold = llm.invoke("What is the weather in Paris?")  # no history: the model answers in text
    assert isinstance(cold.content, str) and cold.response_metadata["finish_reason"] in (
        "stop", "length", "tool_calls",
    )  # fmt: skip


def test_real_model_tool_vote_shares(served: tuple[str, ThinkingService]) -> None:
    base_url, service = served
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]  # fmt: skip
    messages: list[dict[str, Any]] = []
    for city, weather in (("Rome", "18 C, cloudy"), ("Oslo", "2 C, snow")):
        messages += [
            {"role": "user", "content": f"What is the weather in {city}?"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": city, "type": "function",
                "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'}}]},
            {"role": "tool", "tool_call_id": city, "content": weather},
            {"role": "assistant", "content": f"It is {weather} in {city}."},
        ]  # fmt: skip
    messages.append({"role": "user", "content": "What is the weather in Tokyo?"})
    body = httpx.post(
        base_url + "/v1/chat/completions",
        json={"model": service.model_name, "messages": messages, "tools": tools,
              "max_tokens": 32, "seed": 0, "t2": {"n": 8, "paths": True}},
        timeout=300,
    ).json()  # fmt: skip
    t2 = body["t2"]
    calls = sum(1 for p in t2["paths"] if (p["answer"] or "").startswith("call:"))
    assert calls >= 4 and t2["answer"] == "call:get_weather"
    assert t2["arguments_vote"]["answer"] == '[{"city":"Tokyo"}]'
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_record_stores_a_real_pool_that_labels_and_trains(engine: Any, tmp_path: Any) -> None:
    """``--record``: one request on the real model and the shipped estimator leaves a full pool
    of 32 paths (the served ones first) with the real features of all 30 layers."""
    from t2_agents.calibrate.collect import load_collection
    from t2_agents.calibrate.labels import label_folder, load_answers
    from t2_agents.calibrate.record import RecordConfig
    from t2_agents.calibrate.training_set import load_training_set

    record = RecordConfig(directory=str(tmp_path / "traffic"), fraction=1.0, batch_questions=1)
    service = load_service(engine, config=ServeConfig(port=0, record=record))
    assert service.recording is not None
    with serve_in_thread(service) as base_url:
        body = {"model": service.model_name, "t2": {"paths": True},
                "messages": [{"role": "user", "content": QUESTION}]}  # fmt: skip
        t2 = httpx.post(base_url + "/v1/chat/completions", json=body, timeout=600).json()["t2"]
        deadline = time.monotonic() + 600  # the pool's other paths are sampled after the reply
        while service.recording.recorder.stored < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
    assert t2["calibrated"] is True
    (record_,) = load_collection(tmp_path / "traffic").records
    answers = [s["answer"] for s in record_["samples"]]
    assert len(answers) == 32 and record_["served_n"] == t2["n"]
    assert answers[: t2["n"]] == [p["answer"] for p in t2["paths"]]
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"question": "What is 6 * 7?", "answer": "42"}\n')
    labelled = label_folder(tmp_path / "traffic", tmp_path / "gold", answers=load_answers(gold))
    assert labelled.labelled == 1
    data = load_training_set([tmp_path / "gold"])
    assert data.features.shape == (1, 30, 576)
    assert data.curves[0, 0] == pytest.approx(answers.count("42") / 32)
