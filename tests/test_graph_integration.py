"""The graph in use: subgraph, tool, agent run, async batches, checkpoint resume, chat models."""

from __future__ import annotations

import asyncio
import operator
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import Field

from t2_agents.backends.base import SamplingParams
from t2_agents.backends.chat_model import ChatModelEngine
from t2_agents.backends.fake import FakeEngine
from t2_agents.errors import ConfigError, EngineError, TransientEngineError
from t2_agents.graph import CostLedger, ThinkingContext, as_tool, build_parallel_thinking_graph

Q = "What is 6 * 7?"


# -- subgraph ------------------------------------------------------------------------------
class ParentState(TypedDict, total=False):
    topic: str
    question: str
    answer: str | None
    error: str | None
    notes: Annotated[list[str], operator.add]


@dataclass(frozen=True)
class ParentContext:
    user: str


def _ask(state: ParentState, runtime: Runtime[ParentContext]) -> dict[str, Any]:
    return {"question": f"What is {state['topic']}?", "notes": [f"asked by {runtime.context.user}"]}


def _report(state: ParentState) -> dict[str, Any]:
    return {"notes": [f"answer={state.get('answer')}"]}


@pytest.mark.parametrize("fanout", ["batched", "send"])
def test_subgraph_inside_a_parent(fanout: str) -> None:
    child = build_parallel_thinking_graph(engine=FakeEngine(), fanout=fanout, n_max=5)  # type: ignore[arg-type]
    parent = StateGraph(ParentState, context_schema=ParentContext)
    parent.add_node("ask", _ask)
    parent.add_node("think", child)
    parent.add_node("report", _report)
    parent.add_edge(START, "ask")
    parent.add_edge("ask", "think")
    parent.add_edge("think", "report")
    parent.add_edge("report", END)
    graph = parent.compile()
    context = ParentContext(user="ada")
    out = graph.invoke({"topic": "6 * 7"}, context=context)
    assert out["question"] == "What is 6 * 7?"
    assert out["answer"] in {"41", "42"} and out["error"] is None
    assert out["notes"] == ["asked by ada", f"answer={out['answer']}"]
    assert set(out) == {"topic", "question", "answer", "error", "notes"}  # no child keys leak
    events = [
        data
        for namespace, mode, data in graph.stream(
            {"topic": "6 * 7"}, context=context, stream_mode=["custom", "updates"], subgraphs=True
        )
        if mode == "custom"
    ]
    assert [e["event"] for e in events] == ["budget"] + ["branch"] * 5 + ["verdict"]


# -- tool and agent ------------------------------------------------------------------------
def test_as_tool_with_a_question_string() -> None:
    graph = build_parallel_thinking_graph(engine=FakeEngine(answers={"42": 1.0}), n_max=3)
    tool = as_tool(graph, name="think", description="Think hard.")
    assert tool.name == "think" and tool.description == "Think hard."
    assert tool.invoke("What is 6 * 7?") == "42"
    assert tool.invoke({"question": Q}) == "42"
    message = tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": "think", "args": {"question": Q}}
    )
    assert isinstance(message, ToolMessage) and message.content == "42"
    assert message.artifact["cost"]["samples"] == 3 and message.artifact["verdict"]["share"] == 1.0


def test_as_tool_task_selects_the_extractor() -> None:
    graph = build_parallel_thinking_graph(engine=FakeEngine(answers={"yes, 3": 1.0}), n_max=2)
    tool = as_tool(graph, name="think")
    assert list(tool.args) == ["question", "task"]
    schema = convert_to_openai_tool(tool)["function"]["parameters"]
    assert schema["required"] == ["question"] and "syllogism" in str(schema["properties"]["task"])
    assert tool.invoke({"question": Q}) == "yes, 3"  # the default (automatic) extractor
    assert tool.invoke({"question": Q, "task": "syllogism"}) == "yes"
    assert asyncio.run(tool.ainvoke({"question": Q, "task": "products"})) == "3"
    # the call's task wins over the caller's configurable["t2"]; its other overrides still apply
    call = {"type": "tool_call", "id": "c", "name": "think"}
    message = tool.invoke(
        {**call, "args": {"question": Q, "task": "syllogism"}},
        {"configurable": {"t2": {"task": "products", "n_max": 1}}},
    )
    assert message.content == "yes" and message.artifact["n"] == 1
    message = tool.invoke(
        {**call, "args": {"question": Q}}, {"configurable": {"t2": {"task": "products"}}}
    )
    assert message.content == "3"
    ledger = CostLedger()
    with_ledger = as_tool(graph, ledger=ledger)
    assert with_ledger.invoke({"question": Q, "task": "syllogism"}) == "yes" and len(ledger) == 1


def test_as_tool_errors_become_tool_messages() -> None:
    tool = as_tool(build_parallel_thinking_graph(engine=FakeEngine()), name="think")
    message = tool.invoke(
        {"type": "tool_call", "id": "c", "name": "think", "args": {"question": " "}}
    )
    assert message.status == "error" and "PromptError" in message.content
    failing = FakeEngine(errors={s: [EngineError("down")] for s in range(2)})
    content = as_tool(build_parallel_thinking_graph(engine=failing, n_max=2)).invoke(Q)
    assert content.startswith("no answer: all 2 branches failed")


def test_as_tool_async_and_per_tool_context() -> None:
    engine = FakeEngine(answers={"9": 1.0})
    tool = as_tool(build_parallel_thinking_graph(), context=ThinkingContext(engine=engine, n_max=2))
    assert asyncio.run(tool.ainvoke("What is 3 * 3?")) == "9"
    assert len(engine.sample_calls) == 1


class ToolCallingFake(GenericFakeChatModel):
    """A scripted chat model that accepts bind_tools (the agent's planner)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFake:  # type: ignore[override]
        return self


def test_agent_run_rolls_up_the_ledger() -> None:
    from langchain.agents import create_agent

    ledger = CostLedger()
    graph = build_parallel_thinking_graph(engine=FakeEngine(), n_max=4, fanout="send")
    tool = as_tool(graph, name="think", ledger=ledger)
    calls = [
        {"name": "think", "args": {"question": f"What is {a} * 7?"}, "id": f"c{a}"} for a in (5, 6)
    ]
    script = iter(
        [
            AIMessage(content="", tool_calls=calls),
            AIMessage(
                content="", tool_calls=[{"name": "think", "args": {"question": Q}, "id": "c9"}]
            ),
            AIMessage(content="done"),
        ]
    )
    agent = create_agent(ToolCallingFake(messages=script), tools=[tool])
    out = agent.invoke({"messages": [{"role": "user", "content": "multiply things"}]})
    tool_messages = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 3 and out["messages"][-1].content == "done"
    summary = ledger.summary()
    assert summary["steps"] == 3 and summary["samples"] == 12 and summary["n_max_total"] == 12
    assert sorted(s.question for s in ledger.steps) == sorted(
        ["What is 5 * 7?", "What is 6 * 7?", Q]
    )


# -- async ---------------------------------------------------------------------------------
def test_abatch_runs_questions_concurrently() -> None:
    engine = FakeEngine(delay=0.5)
    graph = build_parallel_thinking_graph(engine=engine, n_max=2)
    questions = [{"question": f"What is {i} * 7?"} for i in range(4)]
    started = time.perf_counter()
    states = asyncio.run(graph.abatch(questions))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert [s["question"] for s in states] == [q["question"] for q in questions]
    assert all(len(s["branches"]) == 2 and s["error"] is None for s in states)
    assert len(engine.sample_calls) == 4
    assert elapsed < 1.6, f"4 x 0.5 s engine calls took {elapsed:.2f} s: not concurrent"


def test_ainvoke_send_mode_streams() -> None:
    graph = build_parallel_thinking_graph(engine=FakeEngine(delay=0.05), n_max=3, fanout="send")

    async def main() -> tuple[dict[str, Any], list[str]]:
        state = await graph.ainvoke({"question": Q})
        kinds = [e["event"] async for e in graph.astream({"question": Q}, stream_mode="custom")]
        return dict(state), kinds

    state, kinds = asyncio.run(main())
    assert len(state["branches"]) == 3
    assert kinds == ["budget", "branch", "branch", "branch", "verdict"]


# -- checkpointing -------------------------------------------------------------------------
@pytest.fixture
def saver(tmp_path: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(tmp_path / "checkpoints.sqlite", check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def test_resume_does_not_recompute_finished_branches(saver: SqliteSaver) -> None:
    """Branch 3 fails (after the others finished) on its first attempt; no RetryPolicy.

    The failed run keeps the finished branches' writes; resuming the thread re-runs only
    branch 3, and the final state equals an uninterrupted run's.
    """
    n, failing = 6, 3
    engine = FakeEngine(
        errors={failing: [TransientEngineError("link dropped")]}, delay={failing: 0.3}
    )
    graph = build_parallel_thinking_graph(
        engine=engine, fanout="send", n_max=n, retry=None, checkpointer=saver,
        context=ThinkingContext(seed=0, branch_errors="raise"),
    )  # fmt: skip
    config = {"configurable": {"thread_id": "resume-1"}}
    with pytest.raises(TransientEngineError):
        graph.invoke({"question": Q}, config)  # type: ignore[arg-type]
    assert sorted(call[2] for call in engine.sample_calls) == list(range(n))
    snapshot = graph.get_state(config)  # type: ignore[arg-type]
    assert snapshot.next == ("branch",)
    assert sum(task.error is not None for task in snapshot.tasks) == 1

    resumed = graph.invoke(None, config)  # type: ignore[arg-type]
    seeds_called = [call[2] for call in engine.sample_calls]
    assert len(seeds_called) == n + 1 and seeds_called[n:] == [failing]  # only branch 3 again
    reference = build_parallel_thinking_graph(engine=FakeEngine(), fanout="send", n_max=n)
    expected = reference.invoke({"question": Q})
    assert resumed["answers"] == expected["answers"]  # no answer lost or duplicated
    assert len(resumed["branches"]) == n and resumed["verdict"] == expected["verdict"]
    assert resumed["error"] is None


def test_thread_reuse_starts_each_step_clean(saver: SqliteSaver) -> None:
    graph = build_parallel_thinking_graph(engine=FakeEngine(), n_max=3, checkpointer=saver)
    config = {"configurable": {"thread_id": "reuse"}}
    graph.invoke({"question": Q}, config)  # type: ignore[arg-type]
    second = graph.invoke({"question": "What is 5 * 7?"}, config)  # type: ignore[arg-type]
    assert second["question"] == "What is 5 * 7?"
    assert len(second["branches"]) == 3 and len(second["answers"]) == 3


# -- chat models as samplers -----------------------------------------------------------------
class RecordingChat(BaseChatModel):
    """Answers 'The answer is <seed mod 3>.' and records the kwargs of every call."""

    calls: list[dict[str, Any]] = Field(default_factory=list)
    fail_with: list[Exception] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(dict(kwargs))
        if self.fail_with:
            raise self.fail_with.pop(0)
        text = f"The answer is {kwargs.get('seed', 0) % 3}."
        message = AIMessage(
            content=text,
            usage_metadata={"input_tokens": 11, "output_tokens": 5, "total_tokens": 16},
            response_metadata={"finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def test_chat_model_serves_branches() -> None:
    chat = RecordingChat()
    features = FakeEngine()
    sampler = ChatModelEngine(chat, features=features, identity="remote")
    graph = build_parallel_thinking_graph(
        engine=features, fanout="send", n_max=4, context=ThinkingContext(sampler=sampler, seed=3)
    )
    state = graph.invoke({"question": Q})
    assert sorted(call["seed"] for call in chat.calls) == [3, 4, 5, 6]
    assert all(call["temperature"] == 0.7 and call["max_tokens"] == 64 for call in chat.calls)
    assert state["answers"] == ["0", "1", "2", "0"] and state["answer"] == "0"
    assert state["cost"]["prompt_tokens"] == 44 and state["cost"]["completion_tokens"] == 20
    assert features.sample_calls == []  # the local engine only rendered
    batched = graph.invoke(
        {"question": Q}, context=ThinkingContext(fanout="batched", seed=3, n_max=4)
    )
    assert batched["answers"] == state["answers"]


def test_chat_model_errors() -> None:
    chat = RecordingChat(fail_with=[TimeoutError("slow"), ValueError("bad request")])
    sampler = ChatModelEngine(chat, retries=1)  # no engine-level retry: see each error kind
    with pytest.raises(TransientEngineError):
        sampler.sample([Q], 1, SamplingParams(seed=0))
    with pytest.raises(EngineError, match="bad request") as info:
        sampler.sample([Q], 1, SamplingParams(seed=0))
    assert not isinstance(info.value, TransientEngineError)
    with pytest.raises(ConfigError, match="features"):
        sampler.encode([Q], [0])
    assert sampler.render(Q) == Q and sampler.identity == "chat:recording"
    with pytest.raises(ConfigError):
        ChatModelEngine(object())  # type: ignore[arg-type]
