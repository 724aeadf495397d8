"""Render a chat request's messages (and tools) with the model's chat template.

The engines render one user message themselves; a conversation with system, assistant and tool
turns, or with tool definitions, is rendered here with the engine's tokenizer and handed to the
engine as a :class:`~t2_agents.backends.base.RenderedPrompt`, so features and decoding see
exactly this text. A lone user message is rendered by the engine itself, which is exactly what
the in-process graph (and the T2 estimator's training data) uses.

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> render_messages(FakeEngine(), [{"role": "user", "content": "2+2?"}])
    '2+2?'
    >>> render_messages(FakeEngine(), [{"role": "system", "content": "Be brief."},
    ...                                {"role": "user", "content": "2+2?"}])
    '<|system|>Be brief.<|user|>2+2?<|assistant|>'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from t2_agents.backends.base import Engine, RenderedPrompt
from t2_agents.serve.protocol import ApiError
from t2_agents.serve.tools import ToolSet, tool_prompt

__all__ = ["message_text", "render_messages"]


def message_text(content: str | list[dict[str, Any]] | None, *, where: str) -> str:
    """The text of a message's ``content``: a string, text parts joined, or ``""`` for null.

    Raises:
        ApiError: 400 for a non-text part (images, audio: this model reads text only).

    Example:
        >>> message_text([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], where="m")
        'ab'
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    pieces: list[str] = []
    for i, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400,
                f"{where}.content[{i}] is of type {part.get('type')!r}; only text parts are "
                "supported",
                param=f"{where}.content",
            )
        pieces.append(part["text"])
    return "".join(pieces)


def render_messages(
    engine: Engine, messages: Sequence[dict[str, Any]], *, tools: ToolSet | None = None
) -> str:
    """The prompt for a conversation, ready for ``encode`` and ``sample``.

    Args:
        engine: The engine whose chat template (its tokenizer's, or the feature engine's for
            a server engine) renders the prompt.
        messages: OpenAI messages (``role``, ``content``, ``tool_calls``...).
        tools: Declared tools, rendered by the template when it supports them, else declared in
            the system message (see :func:`t2_agents.serve.tools.tool_prompt`).

    Returns:
        The user message itself for a lone user message without tools (the engine renders it),
        else a :class:`~t2_agents.backends.base.RenderedPrompt`.

    Raises:
        ApiError: 400 when there are no messages or no message has any text.
    """
    if not messages:
        raise ApiError(400, "messages is empty; send at least one user message", param="messages")
    turns = [_turn(message, f"messages[{i}]") for i, message in enumerate(messages)]
    if not any(turn["content"].strip() for turn in turns):
        raise ApiError(400, "every message is empty; send some text", param="messages")
    if len(turns) == 1 and turns[0]["role"] == "user" and tools is None:
        return turns[0]["content"]
    tokenizer = _tokenizer(engine)
    template = str(getattr(tokenizer, "chat_template", None) or "")
    native_tools = tools is not None and "tools" in template
    if tools is not None and not native_tools:
        turns = _with_system(turns, tool_prompt(tools))
    elif not any(turn["role"] == "system" for turn in turns):
        system = _system_prompt(engine)
        if system is not None:
            turns = [{"role": "system", "content": system}, *turns]
    if not template:
        text = "".join(f"<|{turn['role']}|>{turn['content']}" for turn in turns)
        return RenderedPrompt(text + "<|assistant|>")
    extra: dict[str, Any] = {"tools": list(_native(tools))} if native_tools and tools else {}
    rendered = tokenizer.apply_chat_template(
        turns, tokenize=False, add_generation_prompt=True, **extra
    )
    return RenderedPrompt(str(rendered))


def _turn(message: dict[str, Any], where: str) -> dict[str, str]:
    role = str(message.get("role"))
    text = message_text(message.get("content"), where=where)
    if role == "developer":
        role = "system"
    calls = message.get("tool_calls") or []
    if role == "assistant" and calls:
        blocks = []
        for j, call in enumerate(calls):
            function = call.get("function")
            field = f"{where}.tool_calls[{j}].function"
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise ApiError(
                    400,
                    f"{field}={_short(function)} is not an object with a string name; send "
                    '{"name": "...", "arguments": "{...}"}',
                    param=field,
                )
            arguments = function.get("arguments", "{}")
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
            except ValueError:
                parsed = arguments
            payload = json.dumps({"name": function.get("name"), "arguments": parsed})
            blocks.append(f"<tool_call>\n{payload}\n</tool_call>")
        text = "\n".join([text, *blocks]) if text else "\n".join(blocks)
    if role == "tool":
        text = f"<tool_response>\n{text}\n</tool_response>"
    return {"role": role, "content": text}


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _with_system(turns: list[dict[str, str]], extra: str) -> list[dict[str, str]]:
    if turns and turns[0]["role"] == "system":
        first = {"role": "system", "content": f"{turns[0]['content']}\n\n{extra}"}
        return [first, *turns[1:]]
    return [{"role": "system", "content": extra}, *turns]


def _native(tools: ToolSet) -> list[dict[str, Any]]:
    return [{"type": "function", "function": d} for d in tools.definitions]


def _tokenizer(engine: Engine) -> Any:
    for owner in (engine, getattr(engine, "features", None), getattr(engine, "inner", None)):
        tokenizer = getattr(owner, "tokenizer", None)
        if tokenizer is not None:
            return tokenizer
    return None


def _system_prompt(engine: Engine) -> str | None:
    for owner in (engine, getattr(engine, "features", None)):
        config = getattr(owner, "config", None)
        prompt = getattr(config, "system_prompt", None)
        if isinstance(prompt, str):
            return prompt
    return None
