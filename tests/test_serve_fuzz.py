"""Property-based fuzzing of the endpoint: no request body, however malformed, gets a 5xx.

The bodies come from hypothesis strategies derived from the request models
(:class:`~t2_agents.serve.protocol.ChatRequest`, :class:`CompletionRequest` and the ``t2``
field, :class:`~t2_agents.serve.config.T2Options`): every field of each model has a strategy
(a test checks that none is missing, so a new field is fuzzed too) that mixes plausible values,
edge values and random JSON junk; whole bodies are also replaced by junk or raw bytes. They go to
the Starlette app through its ``TestClient`` on the fake engine with a stand-in T2 estimator (a
curve head with the tolerance knob), so every policy branch runs. Each case asserts a status
below 500 with an OpenAI error object for every 4xx, then a valid request is answered 200.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from t2_agents.answers import registered_tasks
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import T2Policy
from t2_agents.budget.stop_rules import stop_rule_kinds
from t2_agents.confidence import CONFIDENCE_STATISTICS
from t2_agents.serve import ServeConfig, T2Options, ThinkingService, create_app
from t2_agents.serve.protocol import SEED_MAX, ChatMessage, ChatRequest, CompletionRequest
from t2_agents.vote_rules import vote_rule_kinds

MODEL = "fake-engine"
EXAMPLES = 400
"""Generated cases per endpoint (two endpoints: twice that many in all)."""
VALID = {"model": MODEL, "messages": [{"role": "user", "content": "What is 3 + 4?"}],
         "t2": {"n": 1}}  # fmt: skip


class _Estimator:
    """A curve-head estimator stand-in: N = 3, with the knob N = 2 (tolerance >= 0.1) or 5."""

    layers = (1, 2)
    n_min, n_max = 1, 16
    model_identity = MODEL
    hidden_size = 8
    has_knob = True

    def predict_one(self, features: Any, tolerance: float | None = None) -> int:
        assert np.asarray(features).shape == (2, 8)
        if tolerance is None:
            return 3
        return 2 if tolerance >= 0.1 else 5


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    engine = FakeEngine(answers={"7": 0.6, "8": 0.4})
    service = ThinkingService(
        engine,
        config=ServeConfig(max_n=16, n_max=8, max_tokens_cap=256, max_messages=16, max_tools=8),
        policy=T2Policy(_Estimator(), engine=engine),
    )
    with TestClient(create_app(service)) as test_client:
        yield test_client


# -- strategies --------------------------------------------------------------------------------
_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
junk = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8,
)  # fmt: skip
"""Any JSON value."""


def _or_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``strategy`` two times in three, else any JSON value."""
    return st.integers(min_value=0, max_value=2).flatmap(lambda k: junk if k == 0 else strategy)


@st.composite
def _request(
    draw: st.DrawFn,
    fields: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]],
    required: tuple[str, ...],
) -> dict[str, Any]:
    """A request of valid values for the required and about half the optional fields, then up
    to three fields replaced by wild values (this recurses into ``t2``, messages, tools)."""
    body: dict[str, Any] = {}
    for name, (valid, _) in fields.items():
        if name in required or draw(st.booleans()):
            body[name] = draw(valid)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        body[name] = draw(fields[name][1])
    return body


# Valid values of each field (a request built from them alone is mostly answered 200) and wild
# ones (edge values, wrong types, junk) that replace one or two fields of such a request.
_text = st.text(max_size=30)
_words = st.text(alphabet="abc xyz0123456789?+", min_size=1, max_size=20)
_ints = st.integers(min_value=-3, max_value=40) | st.sampled_from([0, 2**63, 2**64, -(2**64)])
_part = st.fixed_dictionaries({"type": st.just("text"), "text": _words})
_call = st.fixed_dictionaries(
    {"id": _text, "type": st.just("function"),
     "function": st.fixed_dictionaries({"name": st.sampled_from(["add", "f"]),
                                        "arguments": st.sampled_from(['{"a": 2}', "{}", "x"])})}
)  # fmt: skip
_wild_call = st.fixed_dictionaries(
    {"id": _text, "type": st.just("function"),
     "function": _or_junk(st.fixed_dictionaries({"name": _text, "arguments": _or_junk(_text)}))}
)  # fmt: skip
_roles = st.sampled_from(["system", "developer", "user", "assistant", "tool"])
MESSAGE_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "role": (_roles, _or_junk(_roles | _text)),
    "content": (_words | st.lists(_part, min_size=1, max_size=2),
                _or_junk(_text | st.lists(_part | _or_junk(_part), max_size=3) | st.none())),
    "name": (st.sampled_from(["alice", "bob"]), _or_junk(_text)),
    "tool_calls": (st.lists(_call, min_size=1, max_size=2),
                   _or_junk(st.lists(_wild_call, max_size=2))),
    "tool_call_id": (st.sampled_from(["call_1"]), _or_junk(_text)),
}  # fmt: skip
_valid_message = _request({k: (v[0], v[0]) for k, v in MESSAGE_FIELDS.items()}, ("role", "content"))
_wild_message = _request(MESSAGE_FIELDS, ("role", "content"))
_schema = st.fixed_dictionaries(
    {"type": st.just("object")},
    optional={"properties": st.just({"a": {"type": "integer"}}), "required": st.just(["a"])},
)
_wild_schema = st.fixed_dictionaries(
    {"type": st.sampled_from(["object", "string", 5])},
    optional={"properties": st.dictionaries(
        st.sampled_from(["a", "b"]),
        st.fixed_dictionaries({"type": st.sampled_from(["integer", "string", "nope"])},
                              optional={"pattern": st.sampled_from(["^a", "(", "[z-a]"])}),
        max_size=2), "required": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2)},
)  # fmt: skip
_tool = st.fixed_dictionaries(
    {"type": st.just("function"),
     "function": st.fixed_dictionaries({"name": st.sampled_from(["add", "get_weather"])},
                                       optional={"parameters": _schema})}
)  # fmt: skip
_wild_tool = st.fixed_dictionaries(
    {"type": _or_junk(st.just("function")),
     "function": _or_junk(st.fixed_dictionaries(
         {"name": st.sampled_from(["add", "get_weather", "bad name!", ""]) | _text},
         optional={"parameters": _or_junk(_wild_schema), "description": _text}))}
)  # fmt: skip
_policies = st.sampled_from(["t2", "fixed", "fixed-3"])
_bad_policies = st.sampled_from(["fixed-0", "fixed-\u00b2", "fixed-x", "fixed-99", "fixed-"])
T2_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "n": (st.integers(min_value=1, max_value=8), _or_junk(_ints)),
    "policy": (_policies, _or_junk(_policies | _bad_policies | _text)),
    "tolerance": (st.floats(min_value=0, max_value=1),
                  _or_junk(st.floats(min_value=-0.5, max_value=1.5))),
    "n_min": (st.integers(min_value=1, max_value=3), _or_junk(_ints)),
    "n_max": (st.integers(min_value=4, max_value=16), _or_junk(_ints)),
    "stop_rule": (st.sampled_from(stop_rule_kinds()),
                  _or_junk(st.sampled_from([*stop_rule_kinds(), "beta"]))),
    "task": (st.sampled_from(registered_tasks()),
             _or_junk(st.sampled_from(["poetry", "agent_nope", "auto", ""]) | _text)),
    "vote": (st.sampled_from(vote_rule_kinds()),
             _or_junk(st.sampled_from([*vote_rule_kinds(), "borda", ""]) | _text)),
    "vote_eta": (st.floats(min_value=0.5, max_value=100),
                 _or_junk(st.floats(min_value=-5, max_value=150))),
    "vote_statistic": (st.sampled_from(CONFIDENCE_STATISTICS),
                       _or_junk(st.sampled_from(["median", "MEAN"]))),
    "early_stop_floor": (st.floats(min_value=0, max_value=10),
                         _or_junk(st.floats(allow_nan=True, allow_infinity=True))),
    "early_stop_warmup": (st.integers(min_value=0, max_value=4), _or_junk(_ints)),
    "early_stop_keep": (st.floats(min_value=1, max_value=100),
                        _or_junk(st.floats(min_value=-5, max_value=150))),
    "ignore_arguments": (st.lists(st.sampled_from(["a", "why"]), max_size=2),
                         _or_junk(st.lists(_text, max_size=3))),
    "paths": (st.booleans(), junk),
    "events": (st.booleans(), junk),
    "chat_template": (st.booleans(), junk),
}  # fmt: skip
_valid_t2 = _request({k: (v[0], v[0]) for k, v in T2_FIELDS.items()}, ())
_wild_t2 = _or_junk(_request(T2_FIELDS, ()) | st.fixed_dictionaries({"typo": junk}))
_tool_choice = st.sampled_from(["none", "auto", "required"]) | st.just(
    {"type": "function", "function": {"name": "add"}}
)
_wild_choice = st.fixed_dictionaries(
    {"type": st.just("function"), "function": _or_junk(st.fixed_dictionaries({"name": _text}))}
)
COMMON_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "model": (st.just(MODEL), _or_junk(st.sampled_from(["gpt-4o", "", MODEL.upper()]))),
    "max_tokens": (st.integers(min_value=1, max_value=256),
                   _or_junk(_ints | st.sampled_from([256, 257, 10**6]))),
    "temperature": (st.floats(min_value=0, max_value=2),
                    _or_junk(st.floats(min_value=-1, max_value=3))),
    "top_p": (st.floats(min_value=0.01, max_value=1),
              _or_junk(st.floats(min_value=-0.5, max_value=1.5))),
    "n": (st.integers(min_value=1, max_value=8), _or_junk(_ints)),
    "seed": (st.integers(min_value=0, max_value=SEED_MAX),
             _or_junk(_ints | st.integers(min_value=SEED_MAX, max_value=2**64))),
    "stop": (_words | st.lists(_words, max_size=2), _or_junk(_text | st.lists(_text, max_size=3))),
    "stream": (st.booleans(), junk),
    "stream_options": (st.fixed_dictionaries({"include_usage": st.booleans()}), junk),
    "t2": (_valid_t2, _wild_t2),
}  # fmt: skip
CHAT_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    **COMMON_FIELDS,
    "messages": (st.lists(_valid_message, min_size=1, max_size=3),
                 _or_junk(st.lists(_wild_message, max_size=4)
                          | st.lists(_valid_message, min_size=17, max_size=18))),
    "max_completion_tokens": (st.integers(min_value=1, max_value=256), _or_junk(_ints)),
    "tools": (st.lists(_tool, min_size=1, max_size=2, unique_by=lambda t: t["function"]["name"]),
              _or_junk(st.lists(_wild_tool, max_size=3))),
    "tool_choice": (_tool_choice,
                    _or_junk(_tool_choice | st.sampled_from(["add", "sometimes"]) | _wild_choice)),
}  # fmt: skip
COMPLETION_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    **COMMON_FIELDS,
    "prompt": (_words | st.lists(_words, min_size=1, max_size=1),
               _or_junk(_text | st.lists(_text, max_size=2))),
}  # fmt: skip


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON value: the places a mutation can hit."""
    out: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        keys = item.keys() if isinstance(item, dict) else range(len(item))
        for key in keys:
            out.append((item, key))
            if isinstance(item[key], dict | list):
                stack.append(item[key])
    return out


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A ``base`` body with up to three values anywhere in it (at any depth) replaced by junk of
    another JSON type."""
    body = copy.deepcopy(draw(base))  # st.just() values are shared between cases
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        container, key = draw(st.sampled_from(_slots(body)))
        kind = type(container[key])
        container[key] = draw(junk.filter(lambda value, kind=kind: type(value) is not kind))
    return body


def _bodies(
    fields: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]], required: str
) -> st.SearchStrategy[Any]:
    """Mostly :func:`_request` bodies (valid, some fields wild) with a value anywhere replaced
    by junk now and then (:func:`_mutated`); one in ten is junk."""
    shaped = _mutated(_request(fields, ("model", required)))
    return st.integers(min_value=0, max_value=9).flatmap(lambda k: junk if k == 0 else shaped)


_raw = st.binary(max_size=64) | st.sampled_from(
    [b"", b"{", b'{"model": ', b"[" * 5000, b'{"a": NaN}', b'"\\ud800"', b"\xff"]
)


def test_every_model_field_has_a_strategy() -> None:
    assert set(CHAT_FIELDS) == set(ChatRequest.model_fields)
    assert set(COMPLETION_FIELDS) == set(CompletionRequest.model_fields)
    assert set(T2_FIELDS) == set(T2Options.model_fields)
    assert set(MESSAGE_FIELDS) == set(ChatMessage.model_fields)


def _check(client: TestClient, path: str, body: Any, raw: bytes | None) -> None:
    content = raw if raw is not None else json.dumps(body).encode()
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code < 500, (response.status_code, response.text[:500], content[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert client.post("/v1/chat/completions", json=VALID).status_code == 200


CASES: dict[str, int] = {"/v1/chat/completions": 0, "/v1/completions": 0}
"""Cases run per endpoint (printed at the end: ``pytest -s`` shows them)."""
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(body=_bodies(CHAT_FIELDS, "messages"), raw=st.none() | st.none() | st.none() | _raw)
def test_chat_endpoint_never_answers_5xx(client: TestClient, body: Any, raw: bytes | None) -> None:
    CASES["/v1/chat/completions"] += 1
    _check(client, "/v1/chat/completions", body, raw)


@_SETTINGS
@given(body=_bodies(COMPLETION_FIELDS, "prompt"), raw=st.none() | st.none() | st.none() | _raw)
def test_completions_endpoint_never_answers_5xx(
    client: TestClient, body: Any, raw: bytes | None
) -> None:
    CASES["/v1/completions"] += 1
    _check(client, "/v1/completions", body, raw)


def test_fuzz_case_counts(client: TestClient) -> None:
    """Runs after the two fuzz tests (file order): report and check how many cases ran."""
    print(f"\nfuzz cases: {CASES} ({sum(CASES.values())} in all)")
    if all(CASES.values()):  # both fuzz tests ran in this session
        assert min(CASES.values()) >= EXAMPLES // 2
    assert client.post("/v1/chat/completions", json=VALID).status_code == 200
