"""An engine that serves recorded pools: replay a graph or an agent on collected questions.

:class:`PoolEngine` reads ``t2 collect`` folders (or ``t2 serve --record`` folders) and answers
as the model did when they were collected, without a model: ``encode`` returns a question's
stored prompt features, ``sample`` returns paths of its stored pool. So any graph, agent or
``t2 compare`` run costs nothing to repeat on questions that were already collected
(``t2 compare --replay DIR``), and its live code path is exercised end to end.

How paths are drawn: each prompt's pool of ``M`` paths is shuffled once (seeded by the prompt and
``order_seed``); the path of seed ``s`` is entry ``s mod M`` of that order, so a call
``sample(n, seed=s)`` returns the paths of seeds ``s .. s + n - 1`` (``per_path_seeds``). A stop
rule's later waves continue the seeds, so a step never draws a path twice until it has used the
whole pool; asking for more than ``M`` paths in one call is an error (the pool has no more).
A path's text is ``"The answer is <answer>."`` (the pools store answers, not texts, unless they
were collected with ``keep_texts``), so the graph's extractor reads back the stored answer; its
token count and finish reason are the stored ones.

Example:
    >>> engine = PoolEngine(["calibration/smollm2-135m-instruct/multistep"])  # doctest: +SKIP
    >>> engine.sample([engine.render(prompt)], 4, SamplingParams(seed=0))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import (
    Completion,
    SamplingParams,
    check_layers,
    check_n,
    check_prompts,
)
from t2_agents.errors import ConfigError, DataError

__all__ = ["PoolEngine"]

_NO_ANSWER_TEXT = "I cannot tell."


@dataclass(frozen=True)
class _Pool:
    texts: tuple[str, ...]
    tokens: tuple[int, ...]
    finish: tuple[str, ...]
    prompt_tokens: int
    row: tuple[int, int]  # (collection, record)


class PoolEngine:
    """Answers from recorded pools (see the module docs).

    Args:
        folders: ``t2 collect`` folders of one model (their features must share the layers).
        order_seed: Seeds the order each pool is drawn in (another seed, another replay).

    Raises:
        DataError: No folder, folders of different models or layers, or one prompt recorded
            twice with different pools.
    """

    per_path_seeds = True

    def __init__(self, folders: Sequence[str | Path], *, order_seed: int = 0) -> None:
        from t2_agents.calibrate.collect import load_collection

        if not folders:
            raise DataError("PoolEngine needs at least one collection folder (from t2 collect)")
        self._collections = [load_collection(f) for f in folders]
        first = self._collections[0]
        for folder, c in zip(folders, self._collections, strict=True):
            if c.config.model != first.config.model or c.layers != first.layers:
                raise DataError(
                    f"{folder} holds model {c.config.model!r} with layers {list(c.layers)}, "
                    f"but {folders[0]} holds {first.config.model!r} with {list(first.layers)}; "
                    "replay folders of one model collected with the same layers"
                )
        self._identity = str(first.config.model)
        self._layers = tuple(int(x) for x in first.layers)
        self._hidden = int(first.features.shape[2])
        self._order_seed = int(order_seed)
        self._pools: dict[str, _Pool] = {}
        for c_index, c in enumerate(self._collections):
            for r_index, record in enumerate(c.records):
                self._add(str(record["prompt"]), record, (c_index, r_index))
        self.sample_calls: list[tuple[str, int, int | None]] = []

    def _add(self, prompt: str, record: dict[str, Any], row: tuple[int, int]) -> None:
        samples = record.get("samples") or []
        texts = tuple(
            str(s["text"]) if "text" in s else
            (_NO_ANSWER_TEXT if s.get("answer") is None else f"The answer is {s['answer']}.")
            for s in samples
        )  # fmt: skip
        pool = _Pool(
            texts=texts,
            tokens=tuple(int(s.get("tokens", 0)) for s in samples),
            finish=tuple(str(s.get("finish") or "stop") for s in samples),
            prompt_tokens=int(record.get("prompt_tokens", 0)),
            row=row,
        )
        if not texts:
            raise DataError(f"record {record.get('id')!r} has no paths; recollect it")
        old = self._pools.get(prompt)
        if old is not None and old.texts != pool.texts:
            raise DataError(
                f"the prompt {prompt[:60]!r} is recorded twice with different pools; replay one "
                "of the folders at a time"
            )
        self._pools[prompt] = pool

    # -- the engine protocol -------------------------------------------------------------
    @property
    def identity(self) -> str:
        """The recorded model's identity (estimators check it)."""
        return self._identity

    @property
    def num_layers(self) -> int:
        """One more than the deepest stored layer."""
        return max(self._layers) + 1

    @property
    def hidden_size(self) -> int:
        """Width of the stored features."""
        return self._hidden

    @property
    def prompts(self) -> list[str]:
        """Every recorded prompt (the questions this engine can answer)."""
        return list(self._pools)

    def render(self, prompt: str) -> str:
        """The prompt itself: pools are keyed by the recorded user message."""
        return str(prompt)

    def _pool(self, prompt: str) -> _Pool:
        pool = self._pools.get(str(prompt))
        if pool is None:
            raise DataError(
                f"no recorded pool for the prompt {str(prompt)[:80]!r} ({len(self._pools)} "
                "recorded); replay only questions of the folders given, phrased as collected "
                "(text + instruction), or run live"
            )
        return pool

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        """The stored final-prompt-token features of each prompt at ``layers``.

        Raises:
            DataError: A prompt without a pool, or a layer the folders did not store.
        """
        items = check_prompts(prompts)
        wanted = check_layers(layers, self.num_layers)
        missing = [x for x in wanted if x not in self._layers]
        if missing:
            raise DataError(
                f"layers {missing} were not stored in the recorded folders (they hold "
                f"{list(self._layers)}); collect with those layers or use another estimator"
            )
        slots = [self._layers.index(x) for x in wanted]
        out = np.empty((len(items), len(wanted), self._hidden), dtype=np.float32)
        for i, prompt in enumerate(items):
            c, r = self._pool(prompt).row
            out[i] = self._collections[c].features[r, slots, :]
        return out

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        """The paths of seeds ``seed .. seed + n - 1`` of each prompt's shuffled pool.

        Raises:
            ConfigError: ``n`` above the prompt's pool size (the pool has no more paths).
            DataError: A prompt without a pool.
        """
        items = check_prompts(prompts)
        n = check_n(n, 1 << 30)  # the pool size check below names the fix
        seed = 0 if params.seed is None else int(params.seed)
        out = []
        for prompt in items:
            pool = self._pool(prompt)
            size = len(pool.texts)
            if n > size:
                raise ConfigError(
                    f"n={n} paths asked of a recorded pool of {size}; lower n_max to at most "
                    f"{size} for replay, or collect larger pools"
                )
            self.sample_calls.append((prompt, n, params.seed))
            order = self._order(prompt, size)
            paths = [order[(seed + k) % size] for k in range(n)]
            out.append(
                [
                    Completion(
                        text=pool.texts[i],
                        prompt_tokens=pool.prompt_tokens,
                        completion_tokens=pool.tokens[i],
                        finish_reason="length" if pool.finish[i] == "length" else "stop",
                    )
                    for i in paths
                ]
            )
        return out

    def _order(self, prompt: str, size: int) -> list[int]:
        digest = hashlib.sha256(f"{self._order_seed}/{prompt}".encode()).hexdigest()
        order = list(range(size))
        random.Random(int(digest[:16], 16)).shuffle(order)
        return order
