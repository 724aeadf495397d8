"""The t2-agents exception hierarchy.

Every error the library raises on purpose derives from :class:`T2Error`. Messages name the bad
value, the allowed values or limit, and the fix, so a user can act on them without reading code.

Example:
    >>> from t2_agents.errors import ConfigError
    >>> try:
    ...     raise ConfigError("n=0 is below the minimum 1; pass n >= 1")
    ... except ConfigError as exc:
    ...     print(exc)
    n=0 is below the minimum 1; pass n >= 1
"""

from __future__ import annotations

__all__ = [
    "AllBranchesFailedError",
    "ArtifactError",
    "CancelledCallError",
    "ConfigError",
    "DataError",
    "DependencyError",
    "EngineError",
    "ModelError",
    "PromptError",
    "T2Error",
    "TransientEngineError",
]


class T2Error(Exception):
    """Base class of every error raised on purpose by t2-agents."""


class ConfigError(T2Error, ValueError):
    """A parameter is out of range or of the wrong kind (n, layers, grid, tolerances...)."""


class PromptError(ConfigError):
    """A prompt is empty, whitespace only, or longer than the model's context."""


class ModelError(T2Error):
    """A model path or id does not exist, cannot be loaded, or is not a causal language model."""


class EngineError(T2Error):
    """An engine failed while encoding or sampling."""


class TransientEngineError(EngineError):
    """An engine failure worth retrying (timeouts, 5xx answers, dropped connections)."""


class CancelledCallError(EngineError):
    """The caller cancelled an engine call (a stop rule fired); it carries what was generated.

    Example:
        >>> CancelledCallError("cut", prompt_tokens=30, completion_tokens=12).completion_tokens
        12
    """

    def __init__(self, message: str, *, prompt_tokens: int = 0, completion_tokens: int = 0):
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        """Prompt tokens the engine had prefilled for the call (0: none reached the engine)."""
        self.completion_tokens = completion_tokens
        """Tokens decoded before the cancel was seen (the ledger's cost of the cut paths)."""


class AllBranchesFailedError(EngineError):
    """Every reasoning branch of a step failed, so there is nothing to vote on."""


class DataError(T2Error):
    """A data folder, JSONL file or features file is missing, corrupt or inconsistent."""


class ArtifactError(T2Error):
    """An estimator artifact is corrupt, of the wrong format, or made for another model."""


class DependencyError(T2Error, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""
