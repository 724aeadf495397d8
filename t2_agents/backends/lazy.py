"""The default engine, loaded on first use, so modules that build graphs at import time import fast.

``langgraph dev`` imports ``graphs/*.py``, which build their graphs at import time; a
:class:`LazyEngine` answers ``identity``, ``num_layers`` and ``hidden_size`` from the model
folder's ``config.json`` and loads the weights on the first ``render``/``encode``/``sample``.

Example:
    >>> shared_default_engine() is shared_default_engine()
    True
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import Completion, Engine, SamplingParams

__all__ = ["LazyEngine", "shared_default_engine"]


class LazyEngine:
    """The default :class:`~t2_agents.backends.transformers.TransformersEngine`, loaded on use.

    ``identity``, ``num_layers`` and ``hidden_size`` are read from the model folder's
    ``config.json`` without loading the weights, so a graph (and a T2 policy's engine check) can
    be built at import time; the first ``render``/``encode``/``sample`` loads the model (once,
    thread-safe). Other attributes are looked up on the loaded engine.

    Args:
        factory: Builds the real engine; None builds ``TransformersEngine(**overrides)``.
        **overrides: ``TransformersConfig`` fields for the default factory (``model``,
            ``cache_dir``...).

    Example:
        >>> engine = LazyEngine()  # doctest: +SKIP
        >>> engine.identity, engine.loaded  # doctest: +SKIP
        ('SmolLM2-135M-Instruct', False)
    """

    def __init__(self, factory: Callable[[], Engine] | None = None, **overrides: Any) -> None:
        self._factory = factory
        self._overrides = dict(overrides)
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the real engine has been built."""
        return self._engine is not None

    def get(self) -> Engine:
        """The real engine (built on the first call)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._build()
        return self._engine

    def _build(self) -> Engine:
        if self._factory is not None:
            return self._factory()
        from t2_agents.backends.transformers import TransformersEngine

        return TransformersEngine(**self._overrides)

    @functools.cached_property
    def _config(self) -> dict[str, Any] | None:
        if self._factory is not None:
            return None
        from t2_agents.backends.default_model import resolve_model

        spec = resolve_model(
            self._overrides.get("model"), cache_dir=self._overrides.get("cache_dir")
        )
        path = Path(spec.path) / "config.json"
        if not path.is_file():
            return None
        config = json.loads(path.read_text(encoding="utf-8"))
        return {
            "identity": spec.identity,
            "num_layers": config.get("num_hidden_layers"),
            "hidden_size": config.get("hidden_size"),
        }

    def _peek(self, name: str) -> Any:
        if self._engine is None and self._config is not None and self._config.get(name):
            return self._config[name]
        return getattr(self.get(), name)

    @property
    def identity(self) -> str:
        """The model's identity."""
        return str(self._peek("identity"))

    @property
    def num_layers(self) -> int:
        """Number of decoder layers."""
        return int(self._peek("num_layers"))

    @property
    def hidden_size(self) -> int:
        """Residual stream width."""
        return int(self._peek("hidden_size"))

    def render(self, prompt: str) -> str:
        """Apply the chat template (loads the model)."""
        return self.get().render(prompt)

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """Final-prompt-token features (loads the model)."""
        return self.get().encode(prompts, layers)

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """``n`` completions per prompt (loads the model)."""
        return self.get().sample(prompts, n, params)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        return f"LazyEngine(loaded={self.loaded})"


@functools.cache
def shared_default_engine() -> LazyEngine:
    """One process-wide :class:`LazyEngine` for the default model (shared by served graphs).

    Example:
        >>> shared_default_engine() is shared_default_engine()
        True
    """
    return LazyEngine()
