"""A deterministic fake engine for tests, examples and docs (no model, no randomness leaks).

:class:`FakeEngine` implements the engine protocol. Path ``k`` of ``sample(n, seed=s)`` is drawn
from a generator seeded with ``(prompt, s + k)`` (so it declares ``per_path_seeds``); with
``per_path_seeds=False`` it instead draws all ``n`` paths from one generator seeded with
``(prompt, s)``, like a real batched ``generate``. Answers follow a fixed distribution. It can
sleep, and raise scripted errors per seed, and it counts its calls, which is what the graph's
tests need (retries, checkpoint resume, concurrency).

Example:
    >>> engine = FakeEngine(answers={"7": 1.0})
    >>> engine.sample(["3+4?"], 2, SamplingParams(seed=0))[0][1].text
    'Let me think. The answer is 7.'
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import (
    Completion,
    FinishReason,
    SamplingParams,
    check_layers,
    check_n,
    check_prompts,
)

__all__ = ["FakeEngine"]

_NO_ANSWER = "Hmm, I cannot tell which one it is without more information about it."
_DEFAULT_ANSWERS: dict[str | None, float] = {"42": 0.55, "41": 0.3, None: 0.15}


class FakeEngine:
    """A seeded stand-in for a model (see the module docs).

    Args:
        answers: Final answer -> probability weight; None stands for a path with no answer.
        identity: The engine identity.
        num_layers: Number of fake decoder layers.
        hidden_size: Width of the fake features.
        per_path_seeds: Whether path ``k`` uses seed ``seed + k`` (see the module docs).
        delay: Seconds each ``sample`` call sleeps; a mapping gives it per base seed.
        errors: Base seed -> exceptions raised by the first calls with that seed, in order
            (call ``i`` raises ``errors[seed][i]`` while there is one; later calls succeed).
        max_n: Largest ``n`` per call.

    Example:
        >>> FakeEngine().encode(["q"], [0, 2]).shape
        (1, 2, 8)
    """

    def __init__(
        self,
        *,
        answers: Mapping[str | None, float] | None = None,
        identity: str = "fake-engine",
        num_layers: int = 4,
        hidden_size: int = 8,
        per_path_seeds: bool = True,
        delay: float | Mapping[int | None, float] = 0.0,
        errors: Mapping[int | None, Sequence[BaseException]] | None = None,
        max_n: int = 256,
    ) -> None:
        weights = dict(_DEFAULT_ANSWERS if answers is None else answers)
        self._answers = list(weights)
        self._weights = [float(weight) for weight in weights.values()]
        self._identity = identity
        self._num_layers = num_layers
        self._hidden_size = hidden_size
        self.per_path_seeds = per_path_seeds
        self.delay = delay
        self._errors = {seed: list(excs) for seed, excs in (errors or {}).items()}
        self.max_n = max_n
        self._lock = threading.Lock()
        self.sample_calls: list[tuple[str, int, int | None]] = []
        """Every ``sample`` call that started: (prompt, n, seed)."""
        self.encode_calls: list[tuple[str, ...]] = []
        """Every ``encode`` call: its prompts."""

    @property
    def identity(self) -> str:
        """The engine identity."""
        return self._identity

    @property
    def num_layers(self) -> int:
        """Number of fake layers."""
        return self._num_layers

    @property
    def hidden_size(self) -> int:
        """Width of the fake features."""
        return self._hidden_size

    def render(self, prompt: str) -> str:
        """A toy chat template."""
        return f"<|user|>{prompt}<|assistant|>"

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """Deterministic pseudo-features from a hash of each prompt and layer."""
        items = check_prompts(prompts)
        wanted = check_layers(layers, self._num_layers)
        with self._lock:
            self.encode_calls.append(tuple(items))
        out = np.empty((len(items), len(wanted), self._hidden_size), dtype=np.float32)
        for i, prompt in enumerate(items):
            for j, layer in enumerate(wanted):
                rng = np.random.default_rng(_digest(f"{prompt}|layer{layer}"))
                out[i, j] = rng.standard_normal(self._hidden_size)
        return out

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """``n`` seeded fake completions per prompt (raises scripted errors first)."""
        items = check_prompts(prompts)
        n = check_n(n, self.max_n)
        with self._lock:
            for prompt in items:
                self.sample_calls.append((prompt, n, params.seed))
            pending = self._errors.get(params.seed)
            error = pending.pop(0) if pending else None
        delay = self.delay.get(params.seed, 0.0) if isinstance(self.delay, Mapping) else self.delay
        if delay:
            time.sleep(delay)
        if error is not None:
            raise error
        return [self._paths(prompt, n, params) for prompt in items]

    def answer_for(self, prompt: str, seed: int) -> str | None:
        """The answer of the single path ``sample([prompt], 1, seed=seed)`` would return."""
        return self._answers[self._pick(random.Random(_digest(f"{prompt}|{seed}")))]

    def _paths(self, prompt: str, n: int, params: SamplingParams) -> list[Completion]:
        if params.seed is None:
            rngs = [random.Random() for _ in range(n)]
        elif self.per_path_seeds:
            rngs = [random.Random(_digest(f"{prompt}|{params.seed + k}")) for k in range(n)]
        else:
            shared = random.Random(_digest(f"{prompt}|batch|{params.seed}"))
            rngs = [shared] * n
        prompt_tokens = len(self.render(prompt).split()) + 4
        return [self._completion(rng, prompt_tokens, params) for rng in rngs]

    def _pick(self, rng: random.Random) -> int:
        if self._weights and max(self._weights) > 0:
            return rng.choices(range(len(self._answers)), weights=self._weights)[0]
        return 0

    def _completion(
        self, rng: random.Random, prompt_tokens: int, params: SamplingParams
    ) -> Completion:
        answer = self._answers[self._pick(rng)] if self._answers else None
        text = _NO_ANSWER if answer is None else f"Let me think. The answer is {answer}."
        tokens = len(text.split())
        finish: FinishReason = "length" if tokens >= params.max_tokens else "stop"
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=min(tokens, params.max_tokens),
            finish_reason=finish,
        )

    def __repr__(self) -> str:
        return f"FakeEngine(identity={self.identity!r}, per_path_seeds={self.per_path_seeds})"


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
