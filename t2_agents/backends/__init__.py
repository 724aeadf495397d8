"""Engines behind one protocol: transformers (in-process), vLLM and OpenAI-compatible servers.

Example:
    >>> from t2_agents.backends import SamplingParams
    >>> SamplingParams().temperature
    0.7
"""

from __future__ import annotations

from t2_agents.backends.base import (
    Completion,
    Engine,
    FinishReason,
    SamplingParams,
    check_layers,
    check_n,
    check_prompts,
    render_chat,
)

__all__ = [
    "Completion",
    "Engine",
    "FinishReason",
    "SamplingParams",
    "check_layers",
    "check_n",
    "check_prompts",
    "render_chat",
]
