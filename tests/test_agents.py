"""Tests of t2_agents.agents: the scripted tool caller and the agent harness.

All run on :class:`~t2_agents.backends.fake.FakeEngine` (fast); the agent on the real default
model is covered by ``test_graphs.py`` and ``test_examples.py``.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from t2_agents.agents import ScriptedToolCaller, make_agent, run_agent
from t2_agents.backends.fake import FakeEngine
from t2_agents.errors import ConfigError
from t2_agents.evaluate.questions import heldout_questions
from t2_agents.graph import CostLedger, build_parallel_thinking_graph


def test_scripted_tool_caller_is_deterministic() -> None:
    model = ScriptedToolCaller(parallel=True, instruction="Be brief.")
    message = model.invoke([{"role": "user", "content": "a?\n---\nb? Be brief.\n---\n"}])
    assert [c["args"]["question"] for c in message.tool_calls] == ["a? Be brief.", "b? Be brief."]
    assert len({c["id"] for c in message.tool_calls}) == 2
    with pytest.raises(ConfigError, match="tools are"):
        model.bind_tools([{"type": "function", "function": {"name": "other"}}])


def test_scripted_tool_caller_asks_one_question_per_turn() -> None:
    model = ScriptedToolCaller()
    first = model.invoke([HumanMessage("a?\n---\nb?")])
    assert [c["args"]["question"] for c in first.tool_calls] == ["a? Give only the final answer."]
    assert model.invoke([]).content.startswith("Ask me")


def test_run_agent_grades_every_tool_call() -> None:
    ledger = CostLedger()
    graph = build_parallel_thinking_graph(engine=FakeEngine(), n_max=2)
    agent = make_agent(graph, ledger=ledger)
    questions = heldout_questions(3, tasks=("products", "lcm"), seed=1)
    out = run_agent(agent, questions)
    calls = out["calls"]
    assert [call["id"] for call in calls] == [q.id for q in questions]
    assert [call["n"] for call in calls] == [2, 2, 2]
    assert all(call["samples"] == 2 and isinstance(call["correct"], bool) for call in calls)
    assert out["final"].splitlines()[0].startswith("1. ")
    assert ledger.summary()["samples"] == 6
    with pytest.raises(ConfigError, match="at least one question"):
        run_agent(agent, [])


# ---------------------------------------------------------------------------- chained plans
def _turns(model: ScriptedToolCaller, plan: str, results: list[str]) -> list[object]:
    """Play the model against scripted tool results; return its messages."""
    from langchain_core.messages import AIMessage, ToolMessage

    messages: list[object] = [HumanMessage(plan)]
    replies = iter(results)
    for _ in range(10):
        reply = model.invoke(messages)  # type: ignore[arg-type]
        messages.append(reply)
        assert isinstance(reply, AIMessage)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            messages.append(ToolMessage(next(replies), tool_call_id=str(call["id"])))
    return messages


def test_a_chained_plan_fills_in_the_previous_answer() -> None:
    model = ScriptedToolCaller(instruction="", final="last")
    plan = "What is 2 + 3?\n---\nIs {previous} greater than 4?"
    messages = _turns(model, plan, ["5", "yes"])
    questions = [m.tool_calls[0]["args"]["question"] for m in messages
                 if getattr(m, "tool_calls", None)]  # fmt: skip
    assert questions == ["What is 2 + 3?", "Is 5 greater than 4?"]
    assert messages[-1].content == "yes"  # type: ignore[attr-defined]


def test_a_chained_plan_stops_when_a_step_has_no_answer() -> None:
    model = ScriptedToolCaller(instruction="")
    messages = _turns(model, "a?\n---\nb {previous}?\n---\nc {previous}?",
                      ["no answer: every path failed"])  # fmt: skip
    calls = [m for m in messages if getattr(m, "tool_calls", None)]
    assert len(calls) == 1  # the later steps are not asked (nor paid for)
    assert "stopped at step 2" in messages[-1].content  # type: ignore[attr-defined]


def test_a_chained_plan_cannot_run_in_parallel() -> None:
    model = ScriptedToolCaller(parallel=True)
    with pytest.raises(ConfigError, match="parallel=True"):
        model.invoke([HumanMessage("a?\n---\nb {previous}?")])
