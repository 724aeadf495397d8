"""Tool calls: check the declared tools, read calls out of paths, vote name first, then arguments.

A path *calls tools* when its text holds one or more well-formed calls to declared tools, either
Hermes-style ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (what the tool
prompt asks for) or a bare JSON object (or list of objects) with ``name`` and ``arguments``.
Nothing is evaluated: the text is only parsed as JSON. A call to an undeclared tool, arguments
that are not a JSON object, or arguments that break the tool's JSON schema make the call
malformed, and a path with a malformed call does not vote.

The vote has two stages, both with :func:`t2_agents.voting.vote`:

1. every path gets a key: ``call:<name>[+<name>...]`` for a path that calls tools, its extracted
   final answer for a plain-text path (as in the graph), None for a path that cannot vote; the
   graph's aggregate node votes on these keys;
2. when a tool call wins, the paths with the winning names vote on their arguments (canonical
   JSON with sorted keys, the ignored arguments left out).

Example:
    >>> tools = check_tools([{"type": "function", "function": {"name": "add",
    ...     "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}])
    >>> calls = parse_tool_calls('<tool_call>{"name": "add", "arguments": {"a": 2}}</tool_call>',
    ...                          tools)
    >>> calls[0].name, calls[0].arguments
    ('add', {'a': 2})
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from t2_agents.errors import DependencyError
from t2_agents.serve.protocol import ApiError
from t2_agents.voting import Verdict, vote

__all__ = [
    "CALL_PREFIX",
    "ToolCall",
    "ToolSet",
    "arguments_key",
    "call_key",
    "check_tools",
    "parse_tool_calls",
    "tool_prompt",
    "vote_arguments",
]

CALL_PREFIX = "call:"
"""Prefix of the stage-1 vote key of a path that calls tools."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BLOCK_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE_RE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One parsed tool call."""

    name: str
    """The declared tool's name."""
    arguments: dict[str, Any]
    """The call's arguments, a JSON object."""

    def to_openai(self, call_id: str) -> dict[str, Any]:
        """The call in the OpenAI ``tool_calls`` format (arguments as a JSON string)."""
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments)},
        }


@dataclass(frozen=True, slots=True)
class ToolSet:
    """The declared tools of a request, checked: name -> definition and argument validator."""

    definitions: tuple[dict[str, Any], ...]
    """Each tool's ``function`` object (name, description, parameters)."""
    validators: dict[str, Callable[[Any], bool]]
    """Name -> a function telling whether arguments satisfy the tool's parameter schema."""

    @property
    def names(self) -> tuple[str, ...]:
        """The declared names, in order."""
        return tuple(str(d["name"]) for d in self.definitions)


def check_tools(tools: Sequence[Any]) -> ToolSet:
    """Check ``tools`` of a request: function names and valid JSON-schema parameters.

    Raises:
        ApiError: 400 naming the bad tool (``param`` = ``tools[i]...``).
    """
    meta, validator_for = _jsonschema()
    definitions: list[dict[str, Any]] = []
    validators: dict[str, Callable[[Any], bool]] = {}
    for i, tool in enumerate(tools):
        raw = tool.model_dump() if hasattr(tool, "model_dump") else tool
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict):
            raise ApiError(400, f"tools[{i}] has no function object", param=f"tools[{i}]")
        name = function.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ApiError(
                400,
                f"tools[{i}].function.name={name!r} must be 1-64 letters, digits, _ or -",
                param=f"tools[{i}].function.name",
            )
        if name in validators:
            raise ApiError(400, f"tool {name!r} is declared twice", param=f"tools[{i}]")
        schema = function.get("parameters", {"type": "object", "properties": {}})
        where = f"tools[{i}].function.parameters"
        if not isinstance(schema, dict) or not meta.is_valid(schema):
            raise ApiError(400, f"{where} of {name!r} is not a valid JSON schema", param=where)
        if schema.get("type", "object") != "object":
            raise ApiError(400, f"{where} of {name!r} must describe an object", param=where)
        try:
            validators[name] = validator_for(schema).is_valid
        except Exception as exc:  # jsonschema_rs: bad regex, unresolvable $ref...
            raise ApiError(
                400, f"{where} of {name!r} cannot be compiled: {exc}", param=where
            ) from None
        definitions.append({**function, "parameters": schema})
    return ToolSet(definitions=tuple(definitions), validators=validators)


def _jsonschema() -> tuple[Any, Any]:
    try:
        import jsonschema_rs
    except ImportError as exc:  # pragma: no cover - installed with the serve extra
        raise DependencyError(
            "checking tool schemas needs jsonschema-rs: pip install 't2-agents[serve]'"
        ) from exc
    return jsonschema_rs.meta, jsonschema_rs.validator_for


def tool_prompt(tools: ToolSet) -> str:
    """The system text that declares the tools and the call format (Hermes style).

    Used when the model's chat template has no tools support (SmolLM2's has none).
    """
    lines = "\n".join(json.dumps({"type": "function", "function": d}) for d in tools.definitions)
    return (
        "You may call one or more functions to assist with the user query. You are provided "
        f"with function signatures within <tools></tools> XML tags:\n<tools>\n{lines}\n</tools>\n"
        "For each function call, return a json object with function name and arguments within "
        '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
        '"arguments": <args-json-object>}\n</tool_call>'
    )


def parse_tool_calls(text: str, tools: ToolSet) -> list[ToolCall] | None:
    """The tool calls in a path: a list, ``[]`` for a plain-text path, None when malformed.

    Example:
        >>> parse_tool_calls("The answer is 4.", ToolSet(definitions=(), validators={}))
        []
    """
    blocks = [match.group(1) for match in _BLOCK_RE.finditer(text)]
    if blocks:
        objects: list[Any] = []
        for block in blocks:
            found = _first_json(block)
            if found is None:
                return None
            objects.extend(found if isinstance(found, list) else [found])
    else:
        stripped = text.strip()
        fenced = _FENCE_RE.match(stripped)
        candidate = fenced.group(1) if fenced else stripped
        if not candidate.startswith(("{", "[")):
            return []
        found = _first_json(candidate)
        if found is None:
            return []
        objects = found if isinstance(found, list) else [found]
        if not all(isinstance(o, dict) and "name" in o for o in objects) or not objects:
            return []
    calls = [_call(obj, tools) for obj in objects]
    if not calls or any(call is None for call in calls):
        return None
    return [call for call in calls if call is not None]


def _first_json(text: str) -> Any:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return value


def _call(obj: Any, tools: ToolSet) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(name, str) or name not in tools.validators:
        return None
    if not isinstance(arguments, dict) or not tools.validators[name](arguments):
        return None
    return ToolCall(name=name, arguments=arguments)


def call_key(calls: Sequence[ToolCall]) -> str:
    """The stage-1 vote key of a path's calls: ``call:`` and the tool names joined by ``+``.

    Example:
        >>> call_key([ToolCall("add", {}), ToolCall("mul", {})])
        'call:add+mul'
    """
    return CALL_PREFIX + "+".join(call.name for call in calls)


def arguments_key(calls: Sequence[ToolCall], ignore: Sequence[str] = ()) -> str:
    """The stage-2 vote key: the calls' arguments as canonical JSON, ignored names dropped.

    Example:
        >>> arguments_key([ToolCall("f", {"b": 1, "a": 2, "why": "x"})], ignore=["why"])
        '[{"a":2,"b":1}]'
    """
    dropped = set(ignore)
    kept = [{k: v for k, v in call.arguments.items() if k not in dropped} for call in calls]
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def vote_arguments(
    calls: Sequence[Sequence[ToolCall] | None],
    keys: Sequence[str | None],
    winner: str,
    *,
    ignore: Sequence[str] = (),
    seed: int = 0,
) -> tuple[Verdict, list[str | None]]:
    """Stage 2: among the paths whose stage-1 key is ``winner``, vote on the arguments.

    Args:
        calls: Each path's parsed calls (None: malformed or not a call).
        keys: Each path's stage-1 key.
        winner: The stage-1 winner (a ``call:`` key).
        ignore: Argument names left out of the comparison.
        seed: Tie-break seed.

    Returns:
        The arguments verdict and each path's arguments key (None for other paths).

    Example:
        >>> a, b = [ToolCall("f", {"x": 1})], [ToolCall("f", {"x": 2})]
        >>> verdict, _ = vote_arguments([a, a, b], ["call:f"] * 3, "call:f")
        >>> verdict.answer, round(verdict.share, 2)
        ('[{"x":1}]', 0.67)
    """
    per_path: list[str | None] = [
        arguments_key(path, ignore) if key == winner and path else None
        for path, key in zip(calls, keys, strict=True)
    ]
    return vote(per_path, seed=seed), per_path
