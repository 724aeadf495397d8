"""Intake: read a request within time and size limits, parse it strictly, refuse what is too big.

A request is in hand only when its headers and its whole body have arrived and the body is a
JSON object within the limits; only then does the endpoint take a concurrency slot (so a slow
or stalled client never holds one). The limits, all from
:class:`~t2_agents.serve.config.ServeConfig`:

==========================================  ====================================  ======
what                                         setting                               answer
==========================================  ====================================  ======
headers not complete in time                 ``header_timeout`` (10 s)             408
body not complete in time                    ``body_timeout`` (30 s)               408
body larger than the cap                     ``max_body_bytes`` (1 MB)             413
not JSON (also ``NaN``, lone surrogates)     —                                     400
nested deeper than the cap                   ``max_json_depth`` (32)               400
too many ``messages`` / ``tools``            ``max_messages`` / ``max_tools``      400
==========================================  ====================================  ======

The header limit is enforced in the HTTP protocol (:func:`header_deadline_protocol`, a thin
subclass of uvicorn's), since the application only sees a request once its headers are in;
everything else happens in :func:`read_request` inside the application.

Example:
    >>> parse_json(b'{"model": "m", "messages": []}', ServeConfig())
    {'model': 'm', 'messages': []}
    >>> parse_json(b"[" * 40 + b"]" * 40, ServeConfig())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    t2_agents.serve.protocol.ApiError: the body nests objects and arrays more than 32 deep, ...
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from t2_agents.serve.config import ServeConfig
from t2_agents.serve.protocol import ApiError

__all__ = ["check_counts", "header_deadline_protocol", "parse_json", "read_request", "timeout_body"]

_SURROGATE_RE = re.compile("[\ud800-\udfff]")


async def read_request(request: Request, config: ServeConfig) -> object:
    """The request's decoded JSON body, read within ``body_timeout`` and ``max_body_bytes``.

    Raises:
        ApiError: 408 (the body did not arrive in time), 413 (too large), 400 (not strict JSON,
            too deep, too many messages or tools).
    """
    declared = request.headers.get("content-length")
    limit = config.max_body_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413,
            f"the body is {declared} bytes, above this server's limit of {limit} bytes; send a "
            "smaller request (fewer or shorter messages)",
            param="body",
            code="request_too_large",
        )
    body = bytearray()
    try:
        async with asyncio.timeout(config.body_timeout):
            async for piece in request.stream():
                body.extend(piece)
                if len(body) > limit:
                    raise ApiError(
                        413,
                        f"the body is above this server's limit of {limit} bytes; send a "
                        "smaller request (fewer or shorter messages)",
                        param="body",
                        code="request_too_large",
                    )
    except TimeoutError:
        raise ApiError(
            408,
            f"the body did not arrive within {config.body_timeout:g} s ({len(body)} bytes "
            "received); send the whole request at once, or ask the operator to raise "
            "--body-timeout",
            type="timeout_error",
            param="body",
            code="request_timeout",
        ) from None
    parsed = parse_json(bytes(body), config)
    check_counts(parsed, config)
    return parsed


def parse_json(raw: bytes, config: ServeConfig) -> object:
    """Decode strict JSON: no ``NaN``/``Infinity``, no lone surrogates, at most
    ``max_json_depth`` levels of objects and arrays.

    Raises:
        ApiError: 400 naming what is wrong.
    """
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise _too_deep(config.max_json_depth) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, f"the body is not valid JSON: {exc}; send a JSON object", code="invalid_json"
        ) from None
    if _check_tree(value, config.max_json_depth) > config.max_json_depth:
        raise _too_deep(config.max_json_depth)
    return value


def check_counts(body: object, config: ServeConfig) -> None:
    """Refuse more ``messages`` or ``tools`` than the server allows (before any validation).

    Raises:
        ApiError: 400 naming the field, its length and the limit.
    """
    if not isinstance(body, dict):
        return
    for field, limit, option in (
        ("messages", config.max_messages, "--max-messages"),
        ("tools", config.max_tools, "--max-tools"),
    ):
        items = body.get(field)
        if isinstance(items, list) and len(items) > limit:
            raise ApiError(
                400,
                f"{field} holds {len(items)} entries, above this server's limit of {limit}; "
                f"send at most {limit} (or ask the operator to raise {option})",
                param=field,
                code="array_too_long",
            )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (use a number or null)")


def _too_deep(limit: int) -> ApiError:
    return ApiError(
        400,
        f"the body nests objects and arrays more than {limit} deep, this server's limit; "
        "flatten it (an OpenAI request with tool schemas needs about 10 levels)",
        param="body",
        code="json_too_deep",
    )


def _check_tree(value: object, limit: int) -> int:
    """The nesting depth of ``value`` (stops early past ``limit``); refuses lone surrogates."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return deepest


def _check_text(text: str) -> None:
    if _SURROGATE_RE.search(text):
        raise ApiError(
            400,
            "the body holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is no "
            "character; send valid Unicode text",
            param="body",
            code="invalid_json",
        )


def timeout_body(seconds: float) -> bytes:
    """The 408 answer to a connection whose headers did not arrive in time (a whole HTTP/1.1
    response with an OpenAI error object, closing the connection).

    Example:
        >>> timeout_body(10).split(b"\\r\\n")[0]
        b'HTTP/1.1 408 Request Timeout'
    """
    error = ApiError(
        408,
        f"the request headers did not arrive within {seconds:g} s; send the request at once, "
        "or ask the operator to raise --header-timeout",
        type="timeout_error",
        param="headers",
        code="request_timeout",
    )
    payload = json.dumps(error.body()).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + payload


def header_deadline_protocol(
    base: type[asyncio.Protocol], seconds: float, *, on_timeout: Callable[[], None] | None = None
) -> type[asyncio.Protocol]:
    """``base`` (a uvicorn HTTP protocol class) with a deadline on each request's headers.

    The deadline starts when the connection opens and again when a response completes (the
    next request's turn); when it passes before the next request's headers are complete, the
    connection gets :func:`timeout_body` and is closed (an idle one, which sent nothing, is
    closed silently). ``on_timeout`` is called for each 408 (the metrics count them).

    It relies on two things both uvicorn protocols (h11, httptools) have: a ``cycle`` attribute
    replaced when a request's headers are complete, and ``on_response_complete``.
    """

    class HeaderDeadline(base):  # type: ignore[valid-type, misc]
        _deadline: asyncio.TimerHandle | None = None
        _waiting_for: object = None
        _heard: bool = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._heard = True
            super().data_received(data)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._waiting_for, self._heard = self.cycle, False
            self._deadline = asyncio.get_running_loop().call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            cycle = self.cycle
            busy = cycle is not None and not cycle.response_complete
            if cycle is not self._waiting_for or busy or self.transport.is_closing():
                return  # a request's headers arrived: the app's own limits take over
            if self._heard:  # a request began; an idle connection is closed silently
                self.transport.write(timeout_body(seconds))
                if on_timeout is not None:
                    on_timeout()
            self.transport.close()

    HeaderDeadline.__name__ = HeaderDeadline.__qualname__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline
