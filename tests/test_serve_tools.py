"""Tool-call voting through the endpoint, on scripted (fake-engine) paths.

The default 135M model rarely writes a well-formed tool call, so the voting rules are tested
here on scripted paths (the real model's own calls are tested in ``test_serve_real.py``): name
first, then arguments, ignored arguments, malformed calls, ``tool_choice`` and a LangChain
``ChatOpenAI`` agent bound to tools.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from t2_agents.backends.base import Completion, SamplingParams
from t2_agents.backends.fake import FakeEngine
from t2_agents.serve import ServeConfig, ThinkingService, check_tools, parse_tool_calls
from t2_agents.serve.protocol import ApiError

MODEL = "fake-engine"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "reason": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def _call(name: str, **arguments: Any) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {json.dumps(arguments)}}}\n</tool_call>'


class _Scripted(FakeEngine):
    """Path ``k`` of every ``sample`` call is ``texts[k % len(texts)]``."""

    def __init__(self, texts: Sequence[str]) -> None:
        super().__init__()
        self.texts = list(texts)

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        super().sample(prompts, n, params)  # records the call
        return [
            [
                Completion(
                    text=self.texts[k % len(self.texts)],
                    prompt_tokens=11,
                    completion_tokens=5,
                    finish_reason="stop",
                )
                for k in range(n)
            ]
            for _ in prompts
        ]


@pytest.fixture()
def serve() -> Iterator[Any]:
    from t2_agents.serve import serve_in_thread

    stack: list[Any] = []

    def start(texts: Sequence[str], **config: Any) -> tuple[httpx.Client, _Scripted]:
        engine = _Scripted(texts)
        service = ThinkingService(engine, config=ServeConfig(port=0, **config))
        context = serve_in_thread(service)
        client = httpx.Client(base_url=context.__enter__(), timeout=30)
        stack.append((context, client))
        return client, engine

    yield start
    for context, client in stack:
        client.close()
        context.__exit__(None, None, None)


def _post(client: httpx.Client, n: int, **body: Any) -> dict[str, Any]:
    body = {"model": MODEL, "messages": ASK, "tools": [WEATHER, CLOCK], "t2": {"n": n}, **body}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_votes_on_the_name_first_then_on_the_arguments(serve: Any) -> None:
    texts = [
        _call("get_weather", city="Paris"),
        _call("get_weather", city="Lyon"),
        "I think it is sunny. The answer is 21.",
        _call("get_weather", city="Paris"),
        _call("get_time"),
    ]
    client, engine = serve(texts)
    body = _post(client, 5)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    t2 = body["t2"]
    assert t2["answer"] == "call:get_weather" and t2["share"] == pytest.approx(0.6)
    assert t2["distribution"] == {"call:get_weather": 3.0, "21": 1.0, "call:get_time": 1.0}
    assert t2["arguments_vote"]["answer"] == '[{"city":"Paris"}]'
    assert t2["arguments_vote"]["share"] == pytest.approx(2 / 3)
    assert t2["chosen_path"] == 0
    prompt = engine.sample_calls[-1][0]  # the tools are declared in the system message
    assert "<tools>" in prompt and '"get_weather"' in prompt


def test_ignored_arguments_do_not_split_the_vote(serve: Any) -> None:
    texts = [
        _call("get_weather", city="Lyon", reason="user asked"),
        _call("get_weather", city="Paris", reason="a"),
        _call("get_weather", city="Paris", reason="b"),
    ]
    client, _ = serve(texts, ignore_arguments=("reason",))
    winner = _post(client, 3)["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(winner["function"]["arguments"]) == {"city": "Paris", "reason": "a"}
    client, _ = serve(texts)
    split = _post(client, 3)["t2"]["arguments_vote"]  # every argument set differs: a 3-way tie
    assert split["share"] == pytest.approx(1 / 3) and len(split["tied"]) == 3
    per_request = _post(client, 3, t2={"n": 3, "ignore_arguments": ["reason"]})
    assert per_request["t2"]["arguments_vote"]["share"] == pytest.approx(2 / 3)


def test_malformed_calls_do_not_vote_and_text_can_win(serve: Any) -> None:
    texts = [
        _call("launch_rockets", target="moon"),  # undeclared tool
        _call("get_weather"),  # missing the required city
        '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>',  # bad JSON
        "It is sunny. The answer is 21.",
    ]
    client, _ = serve(texts)
    body = _post(client, 4)
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "It is sunny. The answer is 21.",
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert (body["t2"]["valid"], body["t2"]["invalid"]) == (1, 3)


def test_tool_choice_required_named_and_none(serve: Any) -> None:
    texts = ["The answer is 21.", "The answer is 21.", _call("get_time")]
    client, engine = serve(texts)
    assert _post(client, 3)["choices"][0]["message"]["content"] == "The answer is 21."
    required = _post(client, 3, tool_choice="required")["choices"][0]
    assert required["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    named = {"type": "function", "function": {"name": "get_weather"}}
    forced = _post(client, 3, tool_choice=named)
    assert forced["t2"]["valid"] == 0 and "tool_calls" not in forced["choices"][0]["message"]
    _post(client, 3, tool_choice="none")
    assert "<tools>" not in engine.sample_calls[-1][0]
    unknown = client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": ASK, "tools": [WEATHER],
              "tool_choice": {"type": "function", "function": {"name": "nope"}}},
    )  # fmt: skip
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "tool_choice"


def test_streamed_tool_call(serve: Any) -> None:
    client, _ = serve([_call("get_weather", city="Paris")])
    response = client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": ASK, "tools": [WEATHER], "stream": True,
              "t2": {"n": 2}},
    )  # fmt: skip
    events = [
        json.loads(line[6:])
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]  # fmt: skip
    calls = [c for e in events for c in e["choices"][0]["delta"].get("tool_calls", [])]
    assert [c["function"]["name"] for c in calls] == ["get_weather"] and calls[0]["index"] == 0
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_conversation_with_tool_results_renders(serve: Any) -> None:
    client, engine = serve(["It is 21 degrees in Paris. The answer is 21."])
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 C, sunny"},
    ]  # fmt: skip
    body = _post(client, 1, messages=messages)
    assert body["choices"][0]["message"]["content"].startswith("It is 21 degrees")
    prompt = engine.sample_calls[-1][0]
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt
    assert "<tool_response>\n21 C, sunny\n</tool_response>" in prompt


def test_bare_json_calls_and_prose_before_a_call(serve: Any) -> None:
    bare = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    client, _ = serve([bare])
    message = _post(client, 2)["choices"][0]["message"]
    assert message["content"] is None and len(message["tool_calls"]) == 1
    client, _ = serve(["Let me check. " + _call("get_time")])
    message = _post(client, 1)["choices"][0]["message"]
    assert message["content"] == "Let me check."
    assert message["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}


def test_parse_tool_calls_formats() -> None:
    tools = check_tools([WEATHER, CLOCK])
    bare = '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    assert parse_tool_calls(bare, tools)[0].arguments == {"city": "Oslo"}  # type: ignore[index]
    fenced = '```json\n[{"name": "get_time", "arguments": "{}"}]\n```'
    assert [c.name for c in parse_tool_calls(fenced, tools) or []] == ["get_time"]
    two = _call("get_time") + "\n" + _call("get_weather", city="Rome")
    assert [c.name for c in parse_tool_calls(two, tools) or []] == ["get_time", "get_weather"]
    assert parse_tool_calls("The answer is {42}.", tools) == []
    assert parse_tool_calls('{"name": "get_weather", "arguments": {"city": 3}}', tools) is None
    with pytest.raises(ApiError) as bad:
        check_tools([WEATHER, WEATHER])
    assert bad.value.status == 400


def test_langchain_chat_openai_bound_to_tools(serve: Any) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return f"21 C in {city}"

    client, _ = serve([_call("get_weather", city="Paris")] * 2 + ["The answer is 3."])
    llm = langchain_openai.ChatOpenAI(
        base_url=str(client.base_url) + "/v1",
        api_key="unused",
        model=MODEL,
        extra_body={"t2": {"n": 3}},
    )
    message = llm.bind_tools([get_weather]).invoke("What is the weather in Paris?")
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": message.tool_calls[0]["id"],
         "type": "tool_call"}
    ]  # fmt: skip
    assert message.response_metadata["token_usage"]["completion_tokens"] == 15


class _TwoStep(_Scripted):
    """First request: every path calls the tool; later requests (with the result): text."""

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        self.texts = (
            ["It is 21 C in Paris. The answer is 21."]
            if "<tool_response>" in prompts[0]
            else [_call("get_weather", city="Paris")]
        )
        return super().sample(prompts, n, params)


def test_a_langchain_agent_runs_unchanged_against_the_endpoint() -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from t2_agents.serve import serve_in_thread

    seen: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        seen.append(city)
        return f"21 C, sunny in {city}"

    engine = _TwoStep([])
    service = ThinkingService(engine, config=ServeConfig(port=0))
    with serve_in_thread(service) as base_url:
        llm = langchain_openai.ChatOpenAI(
            base_url=base_url + "/v1", api_key="unused", model=MODEL, extra_body={"t2": {"n": 3}}
        )
        agent = create_agent(llm, tools=[get_weather])
        result = agent.invoke({"messages": [{"role": "user", "content": "Weather in Paris?"}]})
    assert seen == ["Paris"]
    assert result["messages"][-1].content == "It is 21 C in Paris. The answer is 21."
    assert "21 C, sunny in Paris" in engine.sample_calls[-1][0]  # the tool result reached it
