"""t2-agents: budget-aware parallel thinking (T2) inside LangGraph agent graphs.

T2 reads a model's final-prompt-token hidden states, predicts how many reasoning paths a
question needs before decoding, samples that many in parallel and votes.

Example:
    >>> from t2_agents import vote
    >>> vote(["4", "4", "5"]).answer
    '4'
"""

from __future__ import annotations

from t2_agents.answers import extract_answer, get_extractor, normalize_answer, register_extractor
from t2_agents.backends.base import Completion, Engine, SamplingParams
from t2_agents.curse import AnswerPool, CurseReport, accuracy_curve, curse_report
from t2_agents.errors import T2Error
from t2_agents.vote import Verdict, vote

__version__ = "0.1.0"

__all__ = [
    "AnswerPool",
    "Completion",
    "CurseReport",
    "Engine",
    "SamplingParams",
    "T2Error",
    "Verdict",
    "__version__",
    "accuracy_curve",
    "curse_report",
    "extract_answer",
    "get_extractor",
    "normalize_answer",
    "register_extractor",
    "vote",
]
