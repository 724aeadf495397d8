"""Engines behind one protocol: transformers (in-process), vLLM and OpenAI-compatible servers.

Every way of running a model lives here, and the graph never imports one: engines come in
through its context. :mod:`~t2_agents.backends.base` (the protocol, sampling parameters, checks),
:mod:`~t2_agents.backends.factory` (``load_engine(kind=...)``),
:mod:`~t2_agents.backends.transformers`, :mod:`~t2_agents.backends.vllm` (with its worker
extension), :mod:`~t2_agents.backends.server` (decoding on ``vllm serve`` replicas),
:mod:`~t2_agents.backends.chat_model` (branches from any LangChain chat model),
:mod:`~t2_agents.backends.fake` (deterministic fakes for tests and docs),
:mod:`~t2_agents.backends.pool` (recorded pools served as an engine, for replays),
:mod:`~t2_agents.backends.lazy` (the default engine, loaded on first use) and
:mod:`~t2_agents.backends.default_model` (materialising the default model).

Example:
    >>> from t2_agents.backends import SamplingParams
    >>> SamplingParams().temperature
    0.7
"""

from __future__ import annotations

from t2_agents.backends.base import (
    Completion,
    Encoder,
    Engine,
    FinishReason,
    Sampler,
    SamplingParams,
    check_layers,
    check_n,
    check_prompts,
    render_chat,
)

__all__ = [
    "Completion",
    "Encoder",
    "Engine",
    "FinishReason",
    "Sampler",
    "SamplingParams",
    "check_layers",
    "check_n",
    "check_prompts",
    "render_chat",
]
