"""A scripted tool-calling chat model: the agent's control flow is scripted, its tool thinks.

:class:`ScriptedToolCaller` stands in for a tool-calling model in the examples, the served agent
graph and the tests, because the 135M default model cannot call tools.

Example:
    >>> ScriptedToolCaller().questions("What is 2+3?\\n---\\nWhat is 4*5?")[1]
    'What is 4*5? Give only the final answer.'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from t2_agents.errors import ConfigError
from t2_agents.families import PREVIOUS
from t2_agents.tasks import DEFAULT_INSTRUCTION

__all__ = ["PREVIOUS", "FinalAnswer", "ScriptedToolCaller", "message_text"]

_CALL_PREFIX = "call"
_NO_ANSWER = "no answer"
"""How the thinking tool's content starts when the vote found no answer (``as_tool``)."""

FinalAnswer = Literal["all", "last"]
"""What :class:`ScriptedToolCaller` answers once every question has a result: every result
numbered, or the last one alone (a chained plan's answer)."""


def message_text(message: BaseMessage) -> str:
    """The text of a message (its text parts joined by newlines when the content is a list).

    Example:
        >>> message_text(HumanMessage("hi"))
        'hi'
    """
    content = message.content
    if isinstance(content, str):
        return content
    parts = [
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or (isinstance(part, dict) and part.get("type") == "text")
    ]
    return "\n".join(parts)


def _split_questions(text: str) -> list[str]:
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            blocks.append([])
        else:
            blocks[-1].append(line)
    return [joined for block in blocks if (joined := "\n".join(block).strip())]


class ScriptedToolCaller(BaseChatModel):
    """A deterministic chat model that calls one tool per question, then sums up.

    It stands in for a tool-calling model in examples and served graphs (the 135M default model
    cannot call tools): the agent's control flow is scripted, the tool does the real work. On the
    last user message it splits questions on lines holding only ``---``, appends
    ``instruction`` to each (unless the question already contains it), and then

    - sequential (default): answers each turn with one call ``tool_name(question=...)`` for the
      next question not yet asked, so every call is its own agent step;
    - ``parallel=True``: answers the first turn with all the calls at once.

    When every question has a tool result it answers ``"1. <result>\\n2. <result>..."`` (or,
    with ``final="last"``, the last result alone).

    **Chained plans**: a question holding :data:`PREVIOUS` (``{previous}``) is asked with the
    previous question's tool result in its place, so a step can use the answer of the one
    before (sequential mode only). When that result is no answer (``"no answer: ..."``) the plan
    stops there and the model says so: the run has failed, and no later step is paid for.

    Example:
        >>> model = ScriptedToolCaller()
        >>> call = model.invoke([HumanMessage("What is 2+3?\\n---\\nWhat is 4*5?")])
        >>> call.tool_calls[0]["args"]
        {'question': 'What is 2+3? Give only the final answer.'}
        >>> result = ToolMessage("5", tool_call_id="call-0-0")
        >>> model.invoke([HumanMessage("What is 2+3?"), call, result]).content
        '1. 5'
    """

    tool_name: str = "solve"
    """Name of the tool to call (it must be among the tools bound by the agent)."""
    instruction: str = DEFAULT_INSTRUCTION
    """Appended to each question that does not contain it already."""
    parallel: bool = False
    """Call the tool for all questions in one turn instead of one per turn."""
    final: FinalAnswer = "all"
    """The final message: ``all`` results numbered, or the ``last`` one alone."""
    bound_tools: tuple[str, ...] = ()
    """Names of the tools the agent bound (set by :meth:`bind_tools`)."""

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Record the bound tools' names; the model must find ``tool_name`` among them.

        Raises:
            ConfigError: ``tool_name`` is not one of the tools.
        """
        names = tuple(_tool_name(tool) for tool in tools)
        if names and self.tool_name not in names:
            raise ConfigError(
                f"ScriptedToolCaller calls {self.tool_name!r} but the agent's tools are "
                f"{list(names)}; pass tool_name=..."
            )
        return self.model_copy(update={"bound_tools": names})

    def questions(self, text: str) -> list[str]:
        """The tool inputs for one user message (split on ``---``, instruction appended).

        Example:
            >>> ScriptedToolCaller(instruction="Be brief.").questions("a?\\n---\\nb? Be brief.")
            ['a? Be brief.', 'b? Be brief.']
        """
        out = []
        for question in _split_questions(text):
            if self.instruction and self.instruction not in question:
                question = f"{question.rstrip()} {self.instruction}"
            out.append(question)
        return out

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._next(messages)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _next(self, messages: Sequence[BaseMessage]) -> AIMessage:
        last_user = max(
            (i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=None
        )
        if last_user is None:
            return AIMessage(content="Ask me one or more questions (separate them with ---).")
        turn = messages[last_user + 1 :]
        asked = [call for m in turn if isinstance(m, AIMessage) for call in m.tool_calls]
        results = {m.tool_call_id: message_text(m) for m in turn if isinstance(m, ToolMessage)}
        unknown = sorted(set(results) - {str(call["id"]) for call in asked})
        if unknown:
            raise ConfigError(
                f"tool result for {unknown[0]!r} matches no call of ScriptedToolCaller"
            )
        questions = self.questions(message_text(messages[last_user]))
        if not questions:
            return AIMessage(content="There is no question to answer.")
        if self.parallel and any(PREVIOUS in q for q in questions[1:]):
            raise ConfigError(
                f"a question holds {PREVIOUS} (the previous answer) but parallel=True asks every "
                "question at once; use parallel=False for a chained plan"
            )
        todo = questions[len(asked) :]
        previous = results.get(str(asked[-1]["id"]), "") if asked else ""
        if todo and PREVIOUS in todo[0] and asked:
            if not previous.strip() or previous.startswith(_NO_ANSWER):
                return AIMessage(
                    content=f"The plan stopped at step {len(asked) + 1}: step {len(asked)} gave "
                    f"no answer to use ({previous or '(no result)'!r})."
                )
            todo = [todo[0].replace(PREVIOUS, previous.strip()), *todo[1:]]
        if todo:
            batch = todo if self.parallel else todo[:1]
            calls = [
                {
                    "name": self.tool_name,
                    "args": {"question": question},
                    "id": f"{_CALL_PREFIX}-{last_user}-{len(asked) + k}",
                    "type": "tool_call",
                }
                for k, question in enumerate(batch)
            ]
            return AIMessage(content="", tool_calls=calls)
        if self.final == "last":
            return AIMessage(content=previous or "(no result)")
        lines = [
            f"{k}. {results.get(str(call['id']), '(no result)')}"
            for k, call in enumerate(asked, start=1)
        ]
        return AIMessage(content="\n".join(lines))


def _tool_name(tool: object) -> str:
    if isinstance(tool, BaseTool):
        return tool.name
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and "name" in function:
            return str(function["name"])
        return str(tool.get("name", "?"))
    return str(getattr(tool, "__name__", "?"))
