"""Label recorded pools: which of each pool's answers are right (``t2 label``).

Three sources of labels, one per run:

* **answers**: a JSONL file of ``{"question": TEXT, "answer": GOLD}`` lines (or ``"key"``
  instead of ``"question"``: the :func:`~t2_agents.tasks.question_key` the record stores); an
  answer is right when it matches the gold under the task's normalisation (``same_answer``).
  Questions without a line stay unlabelled.
* **grader**: a Python function given as ``module:function``, called as
  ``function(question, answer) -> bool`` for every distinct answer of a pool (``question`` is
  the recorded text: record with ``--record-texts``).
* **plurality** (label-free): the pool's most common answer counts as right. Measured in
  ``bench/adapt_curve.py`` against gold labels: see the README before relying on it.

The labelled folder is written to ``out`` (a copy: the recording stays as it was) batch by
batch, each batch renamed into place, so a rerun after a crash redoes only unfinished batches.

Example:
    >>> gold = load_answers("gold.jsonl")  # doctest: +SKIP
    >>> report = label_folder("traffic", "traffic_labelled", answers=gold)  # doctest: +SKIP
    >>> report.labelled  # doctest: +SKIP
    412
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.answers import same_answer
from t2_agents.calibrate.collect import atomic_write, finished_batches
from t2_agents.checks import import_callable
from t2_agents.errors import ConfigError, DataError
from t2_agents.tasks import question_key

__all__ = ["LabelReport", "label_folder", "load_answers", "load_grader"]

Grader = Callable[[str, str], bool]
"""``grader(question, answer) -> bool``: is ``answer`` right for ``question``?"""


@dataclass(frozen=True)
class LabelReport:
    """What :func:`label_folder` did."""

    questions: int
    """Records in the folder."""
    labelled: int
    """Records that now carry a label (earlier labels included)."""
    unlabelled: int
    """Records left out of ``out`` (no answer line for their question, or an empty pool)."""
    source: str
    """``answers``, ``grader`` or ``plurality``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def load_answers(path: str | Path) -> dict[str, str]:
    """Gold answers by question key from a JSONL file of ``question``/``key`` and ``answer``.

    Raises:
        DataError: A missing file, a line that is not a JSON object with a string ``answer``
            and a ``question`` or ``key``, or one key with two different answers (the message
            names the line).
    """
    source = Path(path)
    if not source.is_file():
        raise DataError(f"answers file {str(source)!r} does not exist; pass a JSONL file")
    gold: dict[str, str] = {}
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}:{number} is not JSON ({exc}); fix that line") from exc
        answer = row.get("answer") if isinstance(row, dict) else None
        text, key = (row.get("question"), row.get("key")) if isinstance(row, dict) else (None, None)
        if not isinstance(answer, str) or not (isinstance(text, str) or isinstance(key, str)):
            raise DataError(
                f"{source}:{number} needs a string 'answer' and a 'question' (text) or 'key' "
                '(the recorded question key); e.g. {"question": "What is 7 * 8?", "answer": "56"}'
            )
        k = question_key(text) if isinstance(text, str) else str(key)
        if gold.get(k, answer) != answer:
            raise DataError(
                f"{source}:{number} gives {answer!r} for a question that an earlier line "
                f"answered {gold[k]!r}; keep one answer per question"
            )
        gold[k] = answer
    return gold


def load_grader(spec: str) -> Grader:
    """Import ``module:function`` from the current directory or ``PYTHONPATH`` (as uvicorn
    finds an app).

    Raises:
        ConfigError: Not of the form ``module:function``, the module cannot be imported or has
            no such callable.
    """
    return import_callable(spec, role="grader")  # type: ignore[return-value]


def label_folder(
    folder: str | Path,
    out: str | Path,
    *,
    answers: Mapping[str, str] | None = None,
    grader: Grader | None = None,
    plurality: bool = False,
) -> LabelReport:
    """Write a labelled copy of the recorded (or collected) folder ``folder`` to ``out``.

    Exactly one of ``answers``, ``grader`` and ``plurality`` is given. A record the source
    cannot label keeps its previous label, and is left out of ``out`` if it has none.

    Raises:
        ConfigError: Not exactly one source, ``out`` equal to ``folder``, or a grader without
            recorded texts.
        DataError: ``folder`` is not a collection; a grader that raises (the message names the
            question key).
    """
    chosen = [name for name, given in (("answers", answers is not None),
              ("grader", grader is not None), ("plurality", plurality)) if given]  # fmt: skip
    if len(chosen) != 1:
        raise ConfigError(
            f"pass exactly one label source (--answers FILE, --grader module:function or "
            f"--plurality); got {chosen or 'none'}"
        )
    src, dst = Path(folder), Path(out)
    if src.resolve() == dst.resolve():
        raise ConfigError(f"out={str(dst)!r} is the recorded folder; write labels to a new one")
    if not (src / "config.json").is_file():
        raise DataError(f"{src} holds no config.json, so it is not a recorded folder")
    (dst / "batches").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "config.json", dst / "config.json")
    total = done = 0
    for index in sorted(finished_batches(src, with_features=False)):
        stem = f"{index:05d}"
        text = (src / "batches" / f"{stem}.jsonl").read_text("utf-8")
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        labelled = [_label(r, answers, grader, chosen[0]) for r in records]
        keep = [i for i, r in enumerate(labelled) if r.get("label", "gold") is not None]
        total += len(labelled)
        done += len(keep)
        if keep:
            _write_batch(src, dst, stem, [labelled[i] for i in keep], keep)
    return LabelReport(questions=total, labelled=done, unlabelled=total - done, source=chosen[0])


def _write_batch(
    src: Path, dst: Path, stem: str, records: list[dict[str, Any]], rows: list[int]
) -> None:
    """The labelled records of one batch and their feature rows (features first, records last:
    the records file marks the batch done)."""
    from safetensors import safe_open
    from safetensors.numpy import save

    path = src / "batches" / f"{stem}.safetensors"
    if path.is_file():
        with safe_open(str(path), framework="np") as handle:  # one read: metadata and tensor
            meta = dict(handle.metadata() or {})
            features = handle.get_tensor("features")[rows]  # [B', L, d]
        meta["ids"] = json.dumps([r["id"] for r in records])
        blob = save({"features": features}, metadata=meta)
        atomic_write(dst / "batches" / f"{stem}.safetensors", blob)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write(dst / "batches" / f"{stem}.jsonl", lines.encode())


def _graded(grader: Grader, question: str, answer: str, key: object) -> bool:
    try:
        verdict = grader(question, answer)
    except Exception as exc:
        raise DataError(
            f"the grader raised {type(exc).__name__}: {exc} on question {key}; fix the grader "
            "(it must return True or False)"
        ) from exc
    if not isinstance(verdict, bool | np.bool_):
        raise DataError(
            f"the grader returned {verdict!r} ({type(verdict).__name__}) for answer {answer!r} "
            f"of question {key}; it must return True or False"
        )
    return bool(verdict)


def _label(
    record: dict[str, Any], answers: Mapping[str, str] | None, grader: Grader | None, source: str
) -> dict[str, Any]:
    counts: dict[str, int] = dict(record.get("counts") or {})
    task = str(record.get("task", ""))
    gold: str | None
    if source == "plurality":
        if not counts:
            return record
        top = max(counts.values())
        gold = sorted(a for a, c in counts.items() if c == top)[0]
        correct = [gold]
    elif answers is not None:
        gold = answers.get(str(record.get("key")))
        if gold is None:
            return record
        correct = sorted(a for a in counts if same_answer(a, gold, task=task))
    else:
        assert grader is not None
        text = record.get("question")
        if not isinstance(text, str):
            raise ConfigError(
                "a grader needs each question's text, and this folder was recorded without "
                "texts; record with --record-texts, or label with --answers keyed by question"
            )
        correct = sorted(a for a in counts if _graded(grader, text, a, record.get("key")))
        gold = correct[0] if correct else None
    right = sum(counts[a] for a in correct)
    samples = len(record.get("samples") or []) or max(1, sum(counts.values()))
    return {**record, "gold": gold, "correct": correct, "accuracy": right / samples,
            "label": source}  # fmt: skip
