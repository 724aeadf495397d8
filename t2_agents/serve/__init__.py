"""``t2 serve``: budget-aware self-consistency behind an OpenAI-compatible endpoint.

Any client of the OpenAI chat/completions API (LangChain's ``ChatOpenAI``, LangGraph agents, the
``openai`` package) gets T2 by changing its base URL: per request the server renders the prompt
with the model's chat template, reads the final-prompt-token features, lets the policy choose N
(T2 by default), samples N paths in one engine call, votes (tool calls: name, then arguments)
and answers with one choice, the voted answer's best path, plus a ``t2`` field (N, shares,
cost) and a ``usage`` block counting every path.

Modules: :mod:`~t2_agents.serve.config` (limits), :mod:`~t2_agents.serve.protocol` (wire
format, errors), :mod:`~t2_agents.serve.intake` (time, size and depth limits on reading a
request), :mod:`~t2_agents.serve.prompts` (chat templates), :mod:`~t2_agents.serve.tools`
(tool-call parsing and voting), :mod:`~t2_agents.serve.safeguards` (calibration settings, the
safe-N fallback), :mod:`~t2_agents.serve.service` (one request through the graph),
:mod:`~t2_agents.serve.metrics` (Prometheus ``/metrics``), :mod:`~t2_agents.serve.app` (the
Starlette app), :mod:`~t2_agents.serve.runner` (uvicorn).

Example:
    >>> from t2_agents.backends.fake import FakeEngine
    >>> service = ThinkingService(FakeEngine(), config=ServeConfig(max_n=8, n_max=8))
    >>> service.model_name
    'fake-engine'
"""

from __future__ import annotations

from t2_agents.serve.app import create_app
from t2_agents.serve.config import EstimatorErrorMode, ServeConfig, T2Options
from t2_agents.serve.metrics import ServeMetrics
from t2_agents.serve.protocol import ApiError, ChatRequest, CompletionRequest
from t2_agents.serve.runner import load_engine, load_service, serve, serve_in_thread
from t2_agents.serve.safeguards import Calibration, EstimatorFailure, FallbackPolicy
from t2_agents.serve.service import Job, Outcome, ThinkingService
from t2_agents.serve.tools import ToolCall, ToolSet, check_tools, parse_tool_calls

__all__ = [
    "ApiError",
    "Calibration",
    "ChatRequest",
    "CompletionRequest",
    "EstimatorErrorMode",
    "EstimatorFailure",
    "FallbackPolicy",
    "Job",
    "Outcome",
    "ServeConfig",
    "ServeMetrics",
    "T2Options",
    "ThinkingService",
    "ToolCall",
    "ToolSet",
    "check_tools",
    "create_app",
    "load_engine",
    "load_service",
    "parse_tool_calls",
    "serve",
    "serve_in_thread",
]
