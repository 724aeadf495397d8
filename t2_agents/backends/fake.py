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

:class:`FaultyEngine` wraps any engine and injects faults (an engine error, a timeout, an empty
or a garbage completion) into a seeded fraction of the sampled paths, counting what it injected:
the graph's fault-handling tests run on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import (
    Completion,
    Engine,
    FinishReason,
    RenderedPrompt,
    SamplingParams,
    check_layers,
    check_n,
    check_prompts,
    per_path_seeds,
)
from t2_agents.confidence import PathConfidence
from t2_agents.early_stop import check_floor
from t2_agents.errors import ConfigError, EngineError, TransientEngineError

__all__ = ["FAULT_KINDS", "FakeEngine", "FaultKind", "FaultyEngine"]

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
        confidence: Final answer (None: no answer) -> the mean token confidence of its paths;
            each path gets a :class:`~t2_agents.confidence.PathConfidence` around it (a
            seeded jitter of +-0.5 per path). None: paths carry no confidence, like a backend
            without log-probabilities. Answers missing from the mapping get 1.0.

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
        confidence: Mapping[str | None, float] | None = None,
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
        self.confidence = None if confidence is None else dict(confidence)
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
        """A toy chat template (a :class:`RenderedPrompt` is returned unchanged)."""
        if isinstance(prompt, RenderedPrompt):
            return str(prompt)
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

    def sample_stopping_weak(
        self, prompts: Sequence[str], n: int, params: SamplingParams, *, floor: float
    ) -> list[list[Completion]]:
        """:meth:`sample`, with paths whose ``lowest_group`` confidence is below ``floor``
        stopped half way: their first half of words (no answer), half their tokens, finish
        reason ``low_confidence`` (a stand-in for the real engines' token-by-token test).

        Raises:
            ConfigError: The fake was built without ``confidence`` (no log-probabilities).
        """
        if self.confidence is None:
            raise ConfigError(
                "stopping weak paths needs confidences: build FakeEngine(confidence={...})"
            )
        check_floor(floor)
        out = self.sample(prompts, n, params)
        return [[self._stopped(path, floor) for path in paths] for paths in out]

    @staticmethod
    def _stopped(path: Completion, floor: float) -> Completion:
        if path.confidence is None or path.confidence.lowest_group >= floor:
            return path
        words = path.text.split()
        return dataclasses.replace(
            path,
            text=" ".join(words[: max(1, len(words) // 2)]),
            completion_tokens=max(1, path.completion_tokens // 2),
            finish_reason="low_confidence",
        )

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
        paths = [self._completion(rng, prompt_tokens, params) for rng in rngs]
        if self.confidence is None:
            return paths
        return [
            dataclasses.replace(path, confidence=self._confidence(prompt, params.seed, k, path))
            for k, path in enumerate(paths)
        ]

    def _confidence(
        self, prompt: str, seed: int | None, k: int, path: Completion
    ) -> PathConfidence:
        assert self.confidence is not None
        answer = None if path.text == _NO_ANSWER else path.text.rsplit(" ", 1)[-1].rstrip(".")
        level = float(self.confidence.get(answer, 1.0))
        rng = random.Random(_digest(f"{prompt}|confidence|{seed}|{k}"))
        jitter = rng.uniform(-0.5, 0.5)
        return PathConfidence(
            mean=level + jitter,
            lowest_group=level + jitter - 0.25,
            tail=level + 0.5 * jitter,
            tokens=max(1, path.completion_tokens),
        )

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


FaultKind = Literal["error", "timeout", "empty", "garbage"]
"""What :class:`FaultyEngine` injects into a faulty path.

- ``error``: the call raises :class:`~t2_agents.errors.EngineError` (every call with that path);
- ``timeout``: the call sleeps ``timeout_seconds`` and raises
  :class:`~t2_agents.errors.TransientEngineError` (or the builtin ``TimeoutError``), for the
  path's first ``timeouts`` calls only: a retry after that succeeds;
- ``empty``: the path's completion text is ``""`` (no error);
- ``garbage``: the path's completion text is junk: control characters, U+FFFD, brackets and
  box-drawing characters, with no letter and no digit (no error).
"""

FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
"""Every :data:`FaultKind`, the default mix of :class:`FaultyEngine`."""

_JUNK = "\x00\x01\x07\x1b\x7f\ufffd{}[]()<>#@&*^~|\\/;:`\u2500\u2502\u253c\u2588\u00a7\u00b6\u00bf"


class FaultyEngine:
    """Wrap an engine and inject faults into a seeded fraction of the paths it samples.

    Path ``k`` of ``sample(prompts, n, SamplingParams(seed=s))`` has the key ``s + k``: the seed
    of branch ``k`` in the graph, so send mode (one call per branch) and batched mode (one call
    for all) see the same faulty branches. Whether a path is faulty, and with which kind, is a
    pure function of ``(seed, key)`` (:meth:`fault_for`): a path is faulty with probability
    ``rate``, its kind drawn uniformly from ``kinds``. Unseeded calls draw from a stream seeded
    with ``seed`` instead.

    Every call first runs the wrapped engine (which validates the arguments and does the work),
    then injects: when a path of the call has an ``error`` fault the whole call raises
    :class:`~t2_agents.errors.EngineError`; else when a path has a pending ``timeout`` it raises
    a timeout (one batched call fails together, as a failed ``generate`` does); else the
    ``empty`` and ``garbage`` paths get their text replaced. :attr:`injected` counts what was
    injected (per raised call for ``error`` and ``timeout``, per path for the others) and
    :attr:`log` lists it in order.

    Args:
        inner: The engine to wrap (render, encode and the model properties pass through).
        rate: Probability in [0, 1] that a path is faulty.
        kinds: The fault kinds to draw from.
        seed: Seed of the fault draws (independent of the sampling seeds).
        timeouts: How many calls of a ``timeout`` path time out before it answers; a
            ``RetryPolicy`` with more attempts than that recovers the path.
        timeout_seconds: How long a timed-out call sleeps before raising.
        transient: Raise :class:`~t2_agents.errors.TransientEngineError` on a timeout (what
            engines raise, and what the graph retries); False raises the builtin
            ``TimeoutError``, which the graph records as a failure without retrying.

    Raises:
        ConfigError: ``rate`` outside [0, 1], no or unknown ``kinds``, or ``timeouts < 0``.

    Example:
        >>> engine = FaultyEngine(FakeEngine(), rate=1.0, kinds=("empty",))
        >>> engine.sample(["3+4?"], 2, SamplingParams(seed=0))[0][1].text
        ''
        >>> engine.injected["empty"], engine.fault_for(1)
        (2, 'empty')
    """

    def __init__(
        self,
        inner: Engine,
        *,
        rate: float,
        kinds: Sequence[FaultKind] = FAULT_KINDS,
        seed: int = 0,
        timeouts: int = 1,
        timeout_seconds: float = 0.01,
        transient: bool = True,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"rate={rate!r} must be in [0, 1]")
        chosen = tuple(kinds)
        unknown = sorted(set(chosen) - set(FAULT_KINDS))
        if not chosen or unknown:
            raise ConfigError(f"kinds={chosen!r} must be a non-empty subset of {FAULT_KINDS}")
        if timeouts < 0:
            raise ConfigError(f"timeouts={timeouts!r} must be >= 0")
        self.inner = inner
        self.rate = float(rate)
        self.kinds: tuple[FaultKind, ...] = chosen
        self.seed = seed
        self.timeouts = timeouts
        self.timeout_seconds = timeout_seconds
        self.transient = transient
        self._lock = threading.Lock()
        self._stream = random.Random(_digest(f"faults|{seed}|stream"))
        self._timed_out: Counter[int] = Counter()
        self.injected: Counter[FaultKind] = Counter()
        """How many faults of each kind were injected."""
        self.log: list[tuple[int | None, FaultKind]] = []
        """Every injected fault in order: (path key, kind); a raised call logs its first
        faulty path."""
        self.calls: list[tuple[int | None, int, float]] = []
        """Every ``sample`` call: (seed, n, ``time.monotonic()`` when it started)."""

    @property
    def identity(self) -> str:
        """The wrapped engine's identity."""
        return self.inner.identity

    @property
    def num_layers(self) -> int:
        """The wrapped engine's number of layers."""
        return self.inner.num_layers

    @property
    def hidden_size(self) -> int:
        """The wrapped engine's feature width."""
        return self.inner.hidden_size

    @property
    def per_path_seeds(self) -> bool:
        """The wrapped engine's ``per_path_seeds`` (faults are keyed by path seed too)."""
        return per_path_seeds(self.inner)

    def render(self, prompt: str) -> str:
        """The wrapped engine's chat template."""
        return self.inner.render(prompt)

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """The wrapped engine's features (no faults: the budget node is not under test)."""
        return self.inner.encode(prompts, layers)

    def fault_for(self, key: int) -> FaultKind | None:
        """The fault planned for the path with key (branch seed) ``key``, or None.

        Example:
            >>> FaultyEngine(FakeEngine(), rate=0.0).fault_for(3) is None
            True
        """
        return self._draw(random.Random(_digest(f"faults|{self.seed}|{key}")))

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """The wrapped engine's completions, with this call's faults injected (see the class)."""
        with self._lock:
            self.calls.append((params.seed, n, time.monotonic()))
        out = self.inner.sample(prompts, n, params)
        keys = [None if params.seed is None else params.seed + k for k in range(n)]
        with self._lock:
            plan = [
                self._draw(self._stream) if key is None else self.fault_for(key) for key in keys
            ]
            raised = self._raised(keys, plan)
            if raised is not None:
                self.injected[raised[1]] += 1
                self.log.append(raised)
        if raised is not None:
            where, what = raised
            if what == "error":
                raise EngineError(f"injected engine failure (path seed {where})")
            time.sleep(self.timeout_seconds)
            message = f"timed out after {self.timeout_seconds:g} s (injected, path seed {where})"
            raise TransientEngineError(message) if self.transient else TimeoutError(message)
        rows: list[list[Completion]] = []
        for row in out:
            paths = list(row)
            for k, (key, kind) in enumerate(zip(keys, plan, strict=True)):
                if kind == "empty":
                    paths[k] = dataclasses.replace(
                        paths[k], text="", completion_tokens=0, finish_reason="stop"
                    )
                elif kind == "garbage":
                    paths[k] = dataclasses.replace(paths[k], text=self._junk(key, k))
                else:
                    continue
                with self._lock:
                    self.injected[kind] += 1
                    self.log.append((key, kind))
            rows.append(paths)
        return rows

    def _draw(self, rng: random.Random) -> FaultKind | None:
        if rng.random() >= self.rate:
            return None
        return self.kinds[rng.randrange(len(self.kinds))]

    def _raised(
        self, keys: list[int | None], plan: list[FaultKind | None]
    ) -> tuple[int | None, FaultKind] | None:
        """The exception fault of a call (``error`` first, then a pending ``timeout``)."""
        for key, kind in zip(keys, plan, strict=True):
            if kind == "error":
                return key, kind
        pending = [
            key
            for key, kind in zip(keys, plan, strict=True)
            if kind == "timeout" and (key is None or self._timed_out[key] < self.timeouts)
        ]
        for key in pending:
            if key is not None:
                self._timed_out[key] += 1
        return (pending[0], "timeout") if pending else None

    def _junk(self, key: int | None, index: int) -> str:
        rng = random.Random(_digest(f"faults|{self.seed}|junk|{key}|{index}"))
        body = "".join(rng.choice(_JUNK) for _ in range(rng.randint(8, 56)))
        return "\x00\ufffd}{]]" + body

    def __repr__(self) -> str:
        return f"FaultyEngine({self.inner!r}, rate={self.rate}, kinds={self.kinds})"


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
