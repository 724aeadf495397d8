"""What an estimator was trained on (:class:`TrainingSummary`) and what readers of a fitted one use.

``t2 train`` records the training folders, each folder's task settings, seed and a SHA-256 of its
records (:class:`CollectionSource`), the label settings, ``N_D`` and the identity key of every
training question. :func:`~t2_agents.calibrate.training_set.load_training_set` builds the summary,
``T2Estimator.fit`` stores it and ``T2Estimator.load`` reads it back once; evaluation and the
demo read ``training_keys``, ``training_instance_keys`` and ``n_d`` from it to leave training
questions out (by text *or* by instance: another phrasing or operand order of a training
question is a training question too). Dicts appear
only at the on-disk boundary (:meth:`TrainingSummary.to_dict`, :meth:`TrainingSummary.from_dict`).

Every field is optional (None: not recorded; artifacts from before a field existed have none),
and keys this library does not know are kept in :attr:`TrainingSummary.other`, so a summary
re-saves byte for byte.

:class:`FittedEstimator` is what evaluation (``t2 eval``) reads from a fitted estimator: its
identity, its head's knob, its training questions and its predictions. ``T2Estimator`` has all
of it; a stand-in for tests needs only these members.

Example:
    >>> s = TrainingSummary.from_dict({"n_d": 16, "question_keys": ["b", "a"], "note": "toy"})
    >>> s.n_d, sorted(s.keys), s.other
    (16, ['a', 'b'], {'note': 'toy'})
    >>> s.to_dict()
    {'n_d': 16, 'question_keys': ['b', 'a'], 'note': 'toy'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from t2_agents.errors import ConfigError

__all__ = ["CollectionSource", "FittedEstimator", "TrainingSummary"]

_FIX = "record it with t2 train (or pass plain JSON values in data_summary)"


@dataclass(frozen=True, kw_only=True)
class CollectionSource:
    """One training folder: where it was, what it holds and how it was made.

    Example:
        >>> CollectionSource(folder="runs/lcm", task="lcm", seed=1, questions=2,
        ...                  records_sha256="ab").to_dict()["task_config"]
        {}
    """

    folder: str
    """The folder, as given to ``t2 train``."""
    task: str
    """The reasoning-gym task (or the JSONL file the questions came from; ``recorded`` for pools
    recorded from live requests)."""
    task_config: Mapping[str, Any] = field(default_factory=dict)
    """The task's options (``{}``: reasoning-gym's defaults)."""
    seed: int
    """The dataset seed the folder was collected with."""
    questions: int
    """Questions in the folder."""
    records_sha256: str
    """SHA-256 of the folder's records without completion texts, in order (its fingerprint)."""

    def to_dict(self) -> dict[str, object]:
        """The on-disk form."""
        return {"folder": self.folder, "task": self.task, "task_config": dict(self.task_config),
                "seed": self.seed, "questions": self.questions,
                "records_sha256": self.records_sha256}  # fmt: skip

    @classmethod
    def from_dict(cls, raw: object) -> CollectionSource:
        """Read :meth:`to_dict`'s form back.

        Raises:
            ConfigError: A field is missing or of the wrong type.
        """
        if not isinstance(raw, Mapping) or set(raw) != set(_SOURCE_TYPES):
            raise ConfigError(
                f"training_data collection entry {raw!r} does not hold exactly "
                f"{sorted(_SOURCE_TYPES)}; {_FIX}"
            )
        for key, kind in _SOURCE_TYPES.items():
            _check(f"collections[].{key}", raw[key], kind)
        return cls(**{key: raw[key] for key in _SOURCE_TYPES})


_SOURCE_TYPES: dict[str, type | tuple[type, ...]] = {
    "folder": str, "task": str, "task_config": Mapping, "seed": int, "questions": int,
    "records_sha256": str,
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TrainingSummary:
    """What an estimator was trained on (None: not recorded).

    Example:
        >>> TrainingSummary().keys
        frozenset()
    """

    folders: tuple[str, ...] | None = None
    """Collection folders, as given to ``t2 train``."""
    collections: tuple[CollectionSource, ...] | None = None
    """Each folder's task, settings, seed and records fingerprint, in :attr:`folders` order."""
    questions: int | None = None
    """Training questions (after dropping repeats)."""
    tasks: Mapping[str, int] | None = None
    """Questions per task."""
    samples_per_question: tuple[int, ...] | None = None
    """Pool size M of each folder."""
    dropped: Mapping[str, int] | None = None
    """Records left out: ``duplicates`` (a question already in the set) and ``excluded``."""
    draw: str | None = None
    """Label model: ``pool`` (without replacement) or ``iid``."""
    eps: float | None = None
    """Tolerance of the ``N*_x`` labels."""
    n_d: int | None = None
    """Dataset-optimal budget ``N_D`` of the training set (evaluation's fixed baseline)."""
    mean_optimal: float | None = None
    """Mean ``N*_x`` of the training set."""
    max_tokens: int | None = None
    """Completion-token cap the pools were sampled with."""
    temperature: float | None = None
    """Sampling temperature of the pools."""
    instruction: str | None = None
    """Instruction appended to every question."""
    question_keys: tuple[str, ...] | None = None
    """Identity key of every training question (``t2_agents.tasks.question_key``), sorted."""
    instance_keys: tuple[str, ...] | None = None
    """Instance key of every training question (``Question.instance_key``: what it asks, in any
    phrasing or operand order; its text key when the instance is unknown), sorted. None in
    artifacts trained before instances were recorded: then only :attr:`keys` can exclude."""
    other: Mapping[str, Any] = field(default_factory=dict)
    """Keys this library does not read (e.g. a test fixture's notes), kept for the file."""

    @property
    def keys(self) -> frozenset[str]:
        """The training questions' keys (empty when not recorded: nothing can be excluded)."""
        return frozenset(self.question_keys or ())

    @property
    def instances(self) -> frozenset[str]:
        """The training questions' instance keys.

        Empty when not recorded (artifacts trained before instances were): other phrasings
        or operand orders of a training question cannot be recognised then, only its text.

        Example:
            >>> TrainingSummary.from_dict({"instance_keys": ["c"]}).instances
            frozenset({'c'})
            >>> TrainingSummary.from_dict({"question_keys": ["a"]}).instances
            frozenset()
        """
        return frozenset(self.instance_keys or ())

    def to_dict(self) -> dict[str, Any]:
        """The on-disk form: recorded fields in declaration order, then :attr:`other`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "other" or value is None:
                continue
            if f.name == "collections":
                value = [c.to_dict() for c in value]
            out[f.name] = list(value) if isinstance(value, tuple) else _plain(value)
        return out | {k: _plain(v) for k, v in self.other.items()}

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> TrainingSummary:
        """Read :meth:`to_dict`'s form (any JSON object: unknown keys go to :attr:`other`).

        Raises:
            ConfigError: A known field of the wrong type, or values that are not plain JSON.

        Example:
            >>> TrainingSummary.from_dict({"questions": "many"})  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            t2_agents.errors.ConfigError: training_data questions='many' is not of type int; ...
        """
        try:
            plain = json.loads(json.dumps(dict(raw)))
        except (TypeError, ValueError) as exc:
            msg = f"training_data is not JSON-serialisable ({exc}); pass plain values"
            raise ConfigError(msg) from exc
        known: dict[str, Any] = {}
        for name, kind in _FIELD_TYPES.items():
            value = plain.pop(name, None)
            if value is None:
                continue
            if isinstance(kind, list):  # a list of entries of type kind[0]
                _check(name, value, list)
                for entry in value:
                    _check(f"{name}[]", entry, kind[0])
                value = tuple(value)
            elif isinstance(kind, dict):  # an object of int values
                _check(name, value, Mapping)
                for entry in value.values():
                    _check(f"{name}{{}}", entry, int)
            else:
                _check(name, value, kind)
            known[name] = value
        if "collections" in known:
            sources = known["collections"]
            known["collections"] = tuple(CollectionSource.from_dict(c) for c in sources)
        return cls(**known, other=plain)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> TrainingSummary:
        """The summary in an estimator's ``metadata`` (empty when it has none).

        Example:
            >>> TrainingSummary.from_metadata({"training_data": {"n_d": 8}}).n_d
            8
        """
        raw = metadata.get("training_data")
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"training_data={raw!r} is not an object; {_FIX}")
        return cls.from_dict(raw)


_FIELD_TYPES: dict[str, type | tuple[type, ...] | list[type] | dict[str, type]] = {
    "folders": [str], "collections": [Mapping], "questions": int, "tasks": {"": int},
    "samples_per_question": [int], "dropped": {"": int}, "draw": str, "eps": (int, float),
    "n_d": int, "mean_optimal": (int, float), "max_tokens": int, "temperature": (int, float),
    "instruction": str, "question_keys": [str], "instance_keys": [str],
}  # fmt: skip
"""How each known ``training_data`` field is checked: a type, ``[type]`` (a list of them) or
``{"": int}`` (an object of ints)."""


def _check(name: str, value: object, kind: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"training_data {name}={value!r} is not of type {names}; {_FIX}")


def _plain(value: object) -> object:
    """A JSON-ready copy of a mapping (others unchanged)."""
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


class FittedEstimator(Protocol):
    """What readers of a fitted estimator use (``T2Estimator`` is one).

    Example:
        >>> from t2_agents.estimator.estimator import T2Estimator
        >>> members = ("layers", "has_knob", "training_keys", "training_instance_keys",
        ...            "predict", "predict_curve")
        >>> all(hasattr(T2Estimator, m) for m in members)
        True
    """

    @property
    def layers(self) -> tuple[int, ...]:
        """Feature layers, in the order of the features' second axis."""
        ...

    @property
    def model_identity(self) -> str:
        """Model the estimator was fitted on."""
        ...

    @property
    def hidden_size(self) -> int:
        """Feature width."""
        ...

    @property
    def metadata(self) -> dict[str, Any]:
        """The on-disk form (``TrainingSummary.from_metadata`` reads its ``training_data``)."""
        ...

    @property
    def has_knob(self) -> bool:
        """True when :meth:`predict` takes a ``tolerance`` and :meth:`predict_curve` works."""
        ...

    @property
    def training_keys(self) -> frozenset[str]:
        """Identity keys of the training questions (empty when not recorded)."""
        ...

    @property
    def training_instance_keys(self) -> frozenset[str]:
        """Instance keys of the training questions (empty when not recorded)."""
        ...

    def predict(
        self, features: np.ndarray, *, tolerance: float | None = None
    ) -> npt.NDArray[np.int64]:
        """Budgets for features ``[Q, L, d]`` (``tolerance``: a head with a knob only)."""
        ...

    def predict_log2(self, features: np.ndarray) -> npt.NDArray[np.float64]:
        """Log2 budget estimates for features ``[Q, L, d]``."""
        ...

    def predict_curve(self, features: np.ndarray, *, guard: bool = True) -> npt.NDArray[np.float64]:
        """Predicted accuracy curves ``[Q, G]`` (a head with a knob only)."""
        ...
