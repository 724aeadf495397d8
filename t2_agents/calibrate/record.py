"""Record answer pools from live requests, to calibrate T2 on your own traffic.

``t2 serve --record DIR`` (or a :class:`Recorder` given to your own code) picks a sampled
fraction of the requests T2 budgets, samples the rest of a full pool of M paths for each (M =
the estimator's calibration pool size), and stores the pool's answers with the prompt's
features in a collection folder (:mod:`t2_agents.calibrate.collect`'s layout, ``recorded``
set in its ``config.json``). The request itself is answered from the first N paths of the pool,
the ones T2 chose, so its answer and its cost are what T2 alone would have given; the extra
M - N paths are sampled after the response is sent.

Records hold no gold answer (``"label": null``) until ``t2 label`` grades them
(:mod:`t2_agents.calibrate.labels`); then ``t2 adapt`` or ``t2 train`` use them like any
collection. A record stores the question's identity (:func:`~t2_agents.tasks.question_key` of
its text); the text itself only with ``keep_texts`` (``--record-texts``).

Writes are whole batches, each to a temporary file renamed into place, so a killed server
loses at most the questions of its unfinished batch; a restarted one continues the folder
(its settings must match: the model, sampling settings and pool size). ``max_questions``
bounds the disk use (about 70 KB of features per question for the default model).

Example:
    >>> rec = Recorder(RecordConfig(directory="traffic"), collect=config)  # doctest: +SKIP
    >>> rec.wants()  # doctest: +SKIP
    False
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.calibrate.collect import (
    CollectConfig,
    atomic_write,
    finished_batches,
    prepare_folder,
)
from t2_agents.checks import check_int
from t2_agents.errors import ConfigError
from t2_agents.tasks import question_key

__all__ = ["RecordConfig", "RecordedPath", "Recorder"]


@dataclass(frozen=True, kw_only=True)
class RecordConfig:
    """Where and how much live traffic to record.

    Example:
        >>> RecordConfig(directory="traffic", fraction=0.05).fraction
        0.05
    """

    directory: str
    """The folder the recorded collection goes to (created; a restart continues it)."""
    fraction: float = 0.1
    """Share of eligible requests recorded, in (0, 1] (each one costs a full pool)."""
    keep_texts: bool = False
    """Store each question's text (``--record-texts``); off, only its identity key is stored
    (enough to label it with answers keyed by question, not enough for a grader function)."""
    max_questions: int = 5000
    """Stop recording once the folder holds this many questions (bounds the disk use)."""
    batch_questions: int = 8
    """Questions buffered before a batch is written (a crash loses at most these)."""
    seed: int = 0
    """Seed of the sampling of requests to record."""

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, int | float) and 0 < self.fraction <= 1):
            raise ConfigError(
                f"record fraction={self.fraction!r} must be in (0, 1]; pass e.g. 0.1 to record "
                "one request in ten"
            )
        check_int("max_questions", self.max_questions, low=1)
        check_int("batch_questions", self.batch_questions, low=1)
        if not str(self.directory).strip():
            raise ConfigError("record directory is empty; pass a folder, e.g. --record traffic/")


@dataclass(frozen=True)
class RecordedPath:
    """One path of a recorded pool."""

    answer: str | None
    """The extracted answer (None: no answer found)."""
    tokens: int
    """Completion tokens."""
    finish: str
    """Finish reason (``stop`` or ``length``)."""


class Recorder:
    """Buffers recorded pools and writes them as collection batches (thread-safe).

    Args:
        config: Where and how much.
        collect: The folder's collection settings (``recorded=True``, the model, the pool size
            as ``samples``, the sampling settings and instruction of the estimator's
            calibration, ``layers``).

    Raises:
        ConfigError: ``collect`` is not a recorded configuration.
        DataError: The folder holds a collection with other settings.
    """

    def __init__(self, config: RecordConfig, *, collect: CollectConfig) -> None:
        if not collect.recorded:
            raise ConfigError("Recorder needs a CollectConfig with recorded=True")
        self.config, self.collect = config, collect
        self.folder = Path(config.directory)
        prepare_folder(self.folder, collect)
        done = sorted(finished_batches(self.folder, with_features=False))
        self._next_batch = (done[-1] + 1) if done else 0
        self._stored = sum(_count_lines(self.folder, b) for b in done)
        self._pending = 0  # chosen by wants() but not yet added
        self._buffer: list[tuple[dict[str, Any], npt.NDArray[np.float32]]] = []
        self._rng = random.Random(config.seed + self._stored)
        self._lock = threading.Lock()

    @property
    def stored(self) -> int:
        """Questions written to the folder so far (earlier runs included)."""
        return self._stored

    @property
    def full(self) -> bool:
        """True once ``max_questions`` are stored or on their way."""
        return self._stored + len(self._buffer) + self._pending >= self.config.max_questions

    def wants(self) -> bool:
        """Draw whether to record the next eligible request (reserves a place when True; call
        :meth:`add` or :meth:`release` after)."""
        with self._lock:
            if self.full or self._rng.random() >= self.config.fraction:
                return False
            self._pending += 1
            return True

    def release(self) -> None:
        """Give back a place :meth:`wants` reserved (the request failed or was not eligible)."""
        with self._lock:
            self._pending = max(0, self._pending - 1)

    def add(
        self,
        *,
        question: str,
        task: str,
        features: npt.NDArray[np.float32],
        paths: Sequence[RecordedPath],
        served_n: int,
        prompt_tokens: int,
    ) -> None:
        """Store one question's pool: ``features`` [L, d] at the folder's layers, ``paths``
        the whole pool (the first ``served_n`` are the ones the request was answered from).

        Raises:
            ConfigError: A pool of another size than the folder's, or features of the wrong
                shape.
        """
        if len(paths) != self.collect.samples:
            raise ConfigError(
                f"a recorded pool has {len(paths)} paths but this folder holds pools of "
                f"{self.collect.samples}; record full pools"
            )
        layers = self.collect.layers or ()
        if features.ndim != 2 or (layers and features.shape[0] != len(layers)):
            raise ConfigError(
                f"features of shape {list(features.shape)} do not match the folder's layers "
                f"{list(layers)}; pass [layers, d]"
            )
        answers = [p.answer for p in paths]
        counts = Counter(a for a in answers if a is not None)
        record: dict[str, Any] = {
            "key": question_key(question),
            "instance_key": question_key(question),
            "task": task,
            "prompt": "",
            "gold": None,
            "label": None,
            "counts": dict(counts.most_common()),
            "correct": [],
            "invalid": sum(a is None for a in answers),
            "accuracy": None,
            "samples": [
                {"answer": p.answer, "tokens": p.tokens, "finish": p.finish} for p in paths
            ],
            "served_n": int(served_n),
            "prompt_tokens": int(prompt_tokens),
        }
        if self.config.keep_texts:
            record["question"] = question
        with self._lock:
            self._pending = max(0, self._pending - 1)
            self._buffer.append((record, np.asarray(features, dtype=np.float32)))
            if len(self._buffer) >= self.config.batch_questions:
                self._write_locked()

    def flush(self) -> None:
        """Write the buffered questions now (a short batch); the server calls this on exit."""
        with self._lock:
            if self._buffer:
                self._write_locked()

    def _write_locked(self) -> None:
        from safetensors.numpy import save

        index = self._next_batch
        records = [r for r, _ in self._buffer]
        for j, record in enumerate(records):
            record["id"] = f"rec-{index:05d}-{j}"
        features = np.stack([f for _, f in self._buffer])  # [B, L, d]
        layers = list(self.collect.layers or range(features.shape[1]))
        meta = {"ids": json.dumps([r["id"] for r in records]), "layers": json.dumps(layers)}
        stem = self.folder / "batches" / f"{index:05d}"
        atomic_write(stem.with_suffix(".safetensors"), save({"features": features}, metadata=meta))
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write(stem.with_suffix(".jsonl"), lines.encode())  # last: marks the batch done
        self._stored += len(records)
        self._next_batch += 1
        self._buffer = []


def _count_lines(folder: Path, index: int) -> int:
    path = folder / "batches" / f"{index:05d}.jsonl"
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
