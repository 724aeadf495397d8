"""Collect answer pools and latent features for calibration and evaluation.

For each question the engine samples M completions; each is reduced to an extracted answer and
graded. A question's record keeps its prompt, gold answer, every sample (text, answer, tokens,
finish reason and, when the engine returns it, the path's confidence as ``"conf": [mean,
lowest_group, tail, tokens]``, :meth:`~t2_agents.confidence.PathConfidence.compact`),
the answer counts, which answers are correct and how many samples gave none. Collections made
before confidences were recorded load unchanged (their samples simply have no ``conf``).
The prompt's features at the configured layers go to a safetensors file.

Layout of an output folder::

    config.json                 what was collected (a rerun must match it)
    batches/00000.safetensors   features [B, L, d] of questions 0..B-1 (+ their ids)
    batches/00000.jsonl         their records; written last, so it marks the batch done
    records.jsonl               all records in order, rewritten when the run ends

Every file is written to a temporary name and renamed, so a killed run leaves only whole
batches (and the temporary files it was writing, which the next run deletes). Rerunning the
same command skips the finished batches and produces the same folder as an uninterrupted run
(batch b samples with seed ``seed * 1_000_003 + b``). A rerun with another configuration is
refused; only ``questions`` may grow.

Example:
    >>> cfg = CollectConfig(task="lcm", questions=8, samples=16, model="SmolLM2-135M-Instruct")
    >>> cfg.batch_questions
    16
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import Completion, Engine, SamplingParams
from t2_agents.curves.exact import AnswerPool
from t2_agents.errors import ConfigError, DataError
from t2_agents.tasks import DEFAULT_INSTRUCTION, Question, load_jsonl, load_task

__all__ = [
    "CollectConfig",
    "Collection",
    "atomic_write",
    "collect",
    "finished_batches",
    "load_collection",
    "load_plan",
    "prepare_folder",
    "questions_for",
]

_FORMAT = "t2-collection"
_VERSION = 1
_GROWABLE = {"questions"}
_ADDED_LATER = {"keep_texts": True, "recorded": False}
"""Fields newer than format version 1, with the value older ``config.json`` files imply."""
ProgressFn = Callable[[int, int, int], None]
"""``progress(questions_done, questions_total, samples_this_run)``."""


@dataclass(frozen=True, kw_only=True)
class CollectConfig:
    """What a collection folder holds; stored as ``config.json`` and checked on resume."""

    task: str | None = None
    """reasoning-gym task name (or None when ``data`` is given)."""
    task_config: dict[str, Any] = field(default_factory=dict)
    """Options for ``reasoning_gym.create_dataset``."""
    data: str | None = None
    """A JSONL file with ``question`` and ``answer`` fields (instead of ``task``)."""
    questions: int
    """Number of questions (for JSONL: the first ``questions`` lines)."""
    samples: int
    """Completions per question (the pool size M)."""
    seed: int = 0
    """Dataset seed and base sampling seed."""
    temperature: float = 0.7
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_tokens: int = 64
    """Cap on completion tokens."""
    layers: tuple[int, ...] | None = None
    """Layers whose features are stored; None stores all layers."""
    instruction: str = DEFAULT_INSTRUCTION
    """Appended to each question."""
    model: str
    """The engine's model identity (features belong to one model)."""
    batch_questions: int = 0
    """Questions per batch; 0 picks ``max(1, 256 // samples)``."""
    keep_texts: bool = True
    """Store each completion's text. ``False`` keeps only its answer, tokens and finish reason
    (about 20x smaller records: what a calibration set of thousands of questions needs)."""
    recorded: bool = False
    """Pools recorded from live requests (``t2 serve --record``,
    :mod:`t2_agents.calibrate.record`) rather than sampled for a task or a JSONL file: neither
    ``task`` nor ``data`` is set, and records stay unlabelled until ``t2 label``."""

    def __post_init__(self) -> None:
        if self.recorded and (self.task is not None or self.data is not None):
            raise ConfigError("a recorded folder has no task= or data=; drop them")
        if not self.recorded and (self.task is None) == (self.data is None):
            raise ConfigError("give exactly one of task=NAME or data=FILE.jsonl")
        for name in ("questions", "samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be an int >= 1")
        if self.batch_questions == 0:
            object.__setattr__(self, "batch_questions", max(1, 256 // self.samples))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``config.json`` stores)."""
        data = asdict(self)
        data["layers"] = None if self.layers is None else list(self.layers)
        return data


@dataclass(frozen=True)
class Collection:
    """A loaded collection folder: records aligned with their features."""

    config: CollectConfig
    """How it was collected."""
    layers: tuple[int, ...]
    """The layer id of each feature slot."""
    records: list[dict[str, Any]]
    """One dict per question, in order."""
    features: npt.NDArray[np.float32]
    """``[n_questions, n_layers, d]`` float32."""

    def pools(self) -> list[AnswerPool]:
        """Each question's answer pool, for the curse analysis."""
        return [_pool(r) for r in self.records]

    @property
    def tasks(self) -> list[str]:
        """Each record's task name."""
        return [str(r["task"]) for r in self.records]


def _pool(record: dict[str, Any]) -> AnswerPool:
    return AnswerPool(
        counts=dict(record["counts"]),
        correct=frozenset(record["correct"]),
        invalid=int(record["invalid"]),
    )


def questions_for(config: CollectConfig) -> list[Question]:
    """The questions a configuration covers, in order.

    Raises:
        ConfigError: A recorded folder's configuration (its questions came from live traffic).
    """
    if config.recorded:
        raise ConfigError(
            "this folder was recorded from live requests (t2 serve --record); it has no question "
            "list to collect: label it with t2 label and train on it"
        )
    if config.task is not None:
        return load_task(
            config.task,
            size=config.questions,
            seed=config.seed,
            config=config.task_config,
            instruction=config.instruction,
        )
    assert config.data is not None
    found = load_jsonl(config.data, instruction=config.instruction)
    if len(found) < config.questions:
        raise ConfigError(
            f"questions={config.questions} but {config.data} holds {len(found)}; "
            f"pass --questions {len(found)} or fewer"
        )
    return found[: config.questions]


def collect(
    engine: Engine, config: CollectConfig, out: str | Path, *, progress: ProgressFn | None = None
) -> Path:
    """Collect (or resume collecting) pools and features into ``out``.

    Args:
        engine: Any engine; its identity must equal ``config.model``.
        config: What to collect.
        out: Output folder (created if missing).
        progress: Called after each batch.

    Returns:
        The output folder.

    Raises:
        DataError: ``out`` holds a collection with another configuration.
        ConfigError: Bad configuration (layers out of range, engine of another model).
    """
    if engine.identity != config.model:
        raise ConfigError(
            f"config.model={config.model!r} but the engine serves {engine.identity!r}; "
            "collect with the engine of the model the config names"
        )
    folder = Path(out)
    prepare_folder(folder, config)
    layers = list(config.layers) if config.layers is not None else list(range(engine.num_layers))
    questions = questions_for(config)
    size = config.batch_questions
    starts = range(0, len(questions), size)
    # A batch finished before `questions` grew may be short; it is redone with its new questions.
    done: set[int] = set()
    for b in finished_batches(folder, with_features=False):
        stored = _batch_ids(folder, b)
        wanted = [q.id for q in questions[b * size : (b + 1) * size]]
        if stored == wanted:
            done.add(b)
        elif stored != wanted[: len(stored)]:
            raise DataError(
                f"{folder}: batch {b} holds questions {stored[:3]}... but this configuration "
                f"now gives {wanted[:3]}... (load_task skips repeated questions since the "
                "folder was collected); collect into a new --out folder"
            )
    # Records travel without their features (a git checkout of a calibration set): encode again.
    for index in sorted(done - finished_batches(folder)):
        _encode_batch(engine, folder, index, questions[index * size : (index + 1) * size], layers)
    questions_done = sum(min(size, len(questions) - s) for s in starts if s // size in done)
    samples_run = 0
    for start in starts:
        index = start // size
        if index in done:
            continue
        batch = questions[start : start + size]
        _run_batch(engine, config, folder, index, batch, layers)
        questions_done += len(batch)
        samples_run += len(batch) * config.samples
        if progress is not None:
            progress(questions_done, len(questions), samples_run)
    _write_merged(folder, len(starts))
    return folder


def prepare_folder(folder: Path, config: CollectConfig) -> None:
    """Create ``folder`` for ``config`` or check that it holds the same configuration.

    Raises:
        DataError: The folder was made with another configuration (only ``questions`` may
            grow); the message names each changed setting and the fix.
    """
    (folder / "batches").mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder)
    path = folder / "config.json"
    wanted = {"format": _FORMAT, "version": _VERSION, **config.to_dict()}
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} is not valid JSON; delete the folder or fix it") from exc
        stored = {**_ADDED_LATER, **stored}
        changed = sorted(k for k in wanted.keys() | stored.keys() if stored.get(k) != wanted.get(k))
        refused = [k for k in changed if k not in _GROWABLE]
        if refused:
            detail = ", ".join(f"{k}: {stored.get(k)!r} -> {wanted.get(k)!r}" for k in refused)
            raise DataError(
                f"{folder} was collected with another configuration ({detail}); "
                "rerun with the original options or use a new --out folder"
            )
        if wanted["questions"] < stored["questions"]:
            raise DataError(
                f"{folder} already targets {stored['questions']} questions; "
                f"questions can only grow (got {wanted['questions']})"
            )
    atomic_write(path, json.dumps(wanted, indent=2).encode())


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete the ``.NAME.PID.tmp`` files of runs that were killed (their PID is gone)."""
    for directory in (folder, folder / "batches"):
        for path in directory.glob(".*.tmp"):
            pid = path.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _other_process_alive(int(pid)):
                path.unlink(missing_ok=True)


def _other_process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a reused PID: this run has written nothing yet
    if os.name != "posix":
        return True  # no harmless liveness probe: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. another user's live process
    return True


def finished_batches(folder: Path, *, with_features: bool = True) -> set[int]:
    """Batches whose records exist (and, with ``with_features``, whose features do too)."""
    found: set[int] = set()
    for path in (folder / "batches").glob("*.jsonl"):
        if not path.stem.isdigit():
            continue
        if not with_features or (folder / "batches" / f"{path.stem}.safetensors").is_file():
            found.add(int(path.stem))
    return found


def _batch_ids(folder: Path, index: int) -> list[str]:
    """The question ids of a batch's records (none when the file is unreadable: redo it)."""
    text = (folder / "batches" / f"{index:05d}.jsonl").read_text(encoding="utf-8")
    try:
        return [str(json.loads(line)["id"]) for line in text.splitlines() if line.strip()]
    except (json.JSONDecodeError, KeyError, TypeError):
        return []


def _run_batch(
    engine: Engine,
    config: CollectConfig,
    folder: Path,
    index: int,
    batch: Sequence[Question],
    layers: list[int],
) -> None:
    prompts = [q.prompt for q in batch]
    params = SamplingParams(
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        seed=config.seed * 1_000_003 + index,
    )
    completions = engine.sample(prompts, config.samples, params)
    records = [
        _record(q, paths, keep_texts=config.keep_texts)
        for q, paths in zip(batch, completions, strict=True)
    ]
    _encode_batch(engine, folder, index, batch, layers)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write(folder / "batches" / f"{index:05d}.jsonl", lines.encode())


def _encode_batch(
    engine: Engine, folder: Path, index: int, batch: Sequence[Question], layers: list[int]
) -> None:
    from safetensors.numpy import save

    features = engine.encode([q.prompt for q in batch], layers)  # [B, L, d]
    meta = {"ids": json.dumps([q.id for q in batch]), "layers": json.dumps(layers)}
    blob = save({"features": np.ascontiguousarray(features, dtype=np.float32)}, metadata=meta)
    atomic_write(folder / "batches" / f"{index:05d}.safetensors", blob)


def _record(question: Question, paths: Sequence[Completion], *, keep_texts: bool) -> dict[str, Any]:
    answers = [question.extract(c.text) for c in paths]
    counts = Counter(a for a in answers if a is not None)
    correct = sorted(a for a in counts if question.is_correct(a))
    right = sum(counts[a] for a in correct)
    samples: list[dict[str, Any]] = [
        {"answer": a, "tokens": c.completion_tokens, "finish": c.finish_reason}
        for c, a in zip(paths, answers, strict=True)
    ]
    for sample, c in zip(samples, paths, strict=True):
        if c.confidence is not None:
            sample["conf"] = c.confidence.compact()
    if keep_texts:
        samples = [{"text": c.text, **s} for c, s in zip(paths, samples, strict=True)]
    return {
        "id": question.id,
        "key": question.key,
        "instance": question.instance,
        "instance_key": question.instance_key,
        "template": question.template,
        "task": question.task,
        "prompt": question.prompt,
        "gold": question.gold,
        "counts": dict(counts.most_common()),
        "correct": correct,
        "invalid": sum(a is None for a in answers),
        "accuracy": right / len(paths),
        "samples": samples,
        "prompt_tokens": paths[0].prompt_tokens if paths else 0,
    }


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, sync it, and rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _write_merged(folder: Path, n_batches: int) -> None:
    parts = [folder / "batches" / f"{i:05d}.jsonl" for i in range(n_batches)]
    merged = b"".join(p.read_bytes() for p in parts)
    atomic_write(folder / "records.jsonl", merged)


def load_collection(folder: str | Path) -> Collection:
    """Load a collection folder (finished batches only) with records aligned to features.

    Raises:
        DataError: Missing or corrupt folder, or features that do not match the records.
    """
    root = Path(folder)
    path = root / "config.json"
    if not path.is_file():
        raise DataError(f"{root} holds no config.json, so it is not a collection; run t2 collect")
    try:
        raw = json.loads(path.read_text())
        raw.pop("format", None)
        raw.pop("version", None)
        config = CollectConfig(**{**_ADDED_LATER, **raw})
    except (json.JSONDecodeError, TypeError, ConfigError) as exc:
        raise DataError(f"{path} is corrupt ({exc}); recollect into a new folder") from exc
    batches = sorted(finished_batches(root))
    featureless = sorted(finished_batches(root, with_features=False) - set(batches))
    if featureless:
        raise DataError(
            f"{root}: {len(featureless)} batches have records but no features (e.g. batch "
            f"{featureless[0]}); rerun the same t2 collect command: it encodes them without "
            "sampling again"
        )
    if not batches:
        raise DataError(f"{root} has no finished batches yet; run t2 collect until some finish")
    loaded = [_load_batch(root, b) for b in batches]
    layers = loaded[0][2]
    records = [r for part in loaded for r in part[0]]
    features = np.concatenate([part[1] for part in loaded], axis=0)
    return Collection(config=config, layers=tuple(layers), records=records, features=features)


def _load_batch(
    root: Path, index: int
) -> tuple[list[dict[str, Any]], npt.NDArray[np.float32], list[int]]:
    from safetensors import safe_open

    stem = root / "batches" / f"{index:05d}"
    try:
        records = [json.loads(x) for x in stem.with_suffix(".jsonl").read_text().splitlines()]
        with safe_open(str(stem.with_suffix(".safetensors")), framework="np") as handle:
            meta = handle.metadata() or {}
            features = handle.get_tensor("features")
    except Exception as exc:
        raise DataError(
            f"batch {stem} is corrupt ({exc}); delete both of its files and rerun"
        ) from exc
    ids = json.loads(meta.get("ids", "[]"))
    if ids != [r["id"] for r in records] or features.shape[0] != len(records):
        raise DataError(
            f"features of {stem} do not match its records ({len(ids)} ids, {features.shape[0]} "
            f"rows, {len(records)} records); delete both files of that batch and rerun"
        )
    return records, features.astype(np.float32), [int(x) for x in json.loads(meta["layers"])]


_PLAN_KEYS = {"defaults", "collections"}


def load_plan(path: str | Path, *, model: str) -> list[tuple[CollectConfig, Path]]:
    """Read a collection plan: many collections, run in order with one engine.

    A plan is a JSON object ``{"defaults": {...}, "collections": [{"out": DIR, ...}, ...]}``;
    each entry holds :class:`CollectConfig` fields (``task``, ``task_config``, ``questions``,
    ``seed``...) and wins over ``defaults``. A relative ``out`` is relative to the plan's folder.
    The same ``out`` may appear again with more ``questions`` (a later stage grows it), so a plan
    can fill every folder a little before filling any of them completely. An entry whose folder
    already targets more questions (a later stage started in an earlier run) is left out: the
    later stage covers it.

    Example:
        >>> plan = load_plan("bench/calibration_plan.json", model="SmolLM2-135M-Instruct")
        >>> plan[0][0].samples, plan[0][1].name  # doctest: +SKIP
        (32, 'basic_arithmetic')

    Raises:
        DataError: Missing or malformed file.
        ConfigError: An entry is not a valid configuration (the message names the entry).
    """
    source = Path(path)
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"plan {str(source)!r} does not exist; pass a plan JSON file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"plan {source} is not valid JSON ({exc}); fix the file") from exc
    if not isinstance(raw, dict) or set(raw) - _PLAN_KEYS or not raw.get("collections"):
        raise DataError(
            f"plan {source} must be an object with 'collections' (a non-empty list) and "
            "optionally 'defaults'; see bench/calibration_plan.json"
        )
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict) or not isinstance(raw["collections"], list):
        raise DataError(
            f"plan {source}: 'defaults' must be an object and 'collections' a list of objects; "
            "see bench/calibration_plan.json"
        )
    plan: list[tuple[CollectConfig, Path]] = []
    for number, entry in enumerate(raw["collections"], start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"plan {source} entry {number} is not an object; fix that entry")
        fields = {**defaults, **entry}
        out = fields.pop("out", None)
        if not isinstance(out, str) or not out:
            raise ConfigError(f"plan {source} entry {number} has no 'out' folder; add one")
        if "model" in fields:
            raise ConfigError(
                f"plan {source} entry {number} sets 'model'; a plan runs on the engine's model "
                "(choose it with --model): drop the field"
            )
        try:
            config = CollectConfig(**fields, model=model)
        except TypeError as exc:
            raise ConfigError(f"plan {source} entry {number}: {exc}; fix that entry") from exc
        except ConfigError as exc:
            raise ConfigError(f"plan {source} entry {number}: {exc}") from exc
        folder = Path(out) if Path(out).is_absolute() else source.parent / out
        if _stored_target(folder) <= config.questions:
            plan.append((config, folder))
    return plan


def _stored_target(folder: Path) -> int:
    """The ``questions`` a collection folder targets (0 when it holds none yet)."""
    try:
        stored = json.loads((folder / "config.json").read_text())
        return int(stored["questions"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return 0
