"""Questions to think about: reasoning-gym tasks, agent question families and JSONL files.

A :class:`Question` carries the user message the model sees (the task text plus an instruction),
its gold answer and a grader. reasoning-gym questions are graded by the task's own
``score_answer`` (a score of 1 is correct) or by exact match of normalised answers; JSONL
questions and the agent-phrased families of :mod:`t2_agents.families` (task names starting with
``agent_``) by exact match of normalised answers.

A question has two identities: :attr:`Question.key` (its normalised text) and
:attr:`Question.instance_key` (what it asks: the operation and its operands, the same in any
phrasing or operand order; the text key when the instance is unknown).

Example:
    >>> qs = load_task("lcm", size=2, seed=1)
    >>> qs[0].id
    'lcm-1-0'
    >>> qs[0].is_correct(qs[0].gold)
    True
    >>> qs[0].instance
    'lcm:58,98'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from t2_agents.errors import ConfigError, DataError
from t2_agents.families import FAMILY_PREFIX, Instance, family_names, generate_family
from t2_agents.question import DEFAULT_INSTRUCTION, Question, question_key

__all__ = [
    "DEFAULT_INSTRUCTION",
    "Question",
    "load_jsonl",
    "load_task",
    "question_key",
]

_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")

_EXPRESSION_TERM_RE = re.compile(r"[-+*]?\d+")
_MAX_DRAW_FACTOR = 16
"""``load_task`` draws at most this many items per wanted question before giving up."""


def load_task(
    name: str,
    *,
    size: int,
    seed: int,
    config: Mapping[str, Any] | None = None,
    instruction: str = DEFAULT_INSTRUCTION,
) -> list[Question]:
    """Generate ``size`` distinct questions of a reasoning-gym task or an agent question family.

    Names starting with ``agent_`` are families (:func:`t2_agents.families.generate_family`);
    their only option is ``templates`` (a list of template indices). For reasoning-gym, items
    are drawn in order (item ``i`` of seed ``s`` is always the same question) and an item
    whose text repeats an earlier one is skipped, so the result never holds a question twice
    and a larger ``size`` extends a smaller one. A question's id keeps its item index.

    Args:
        name: reasoning-gym task name, e.g. ``"lcm"``, or a family name, e.g. ``"agent_rates"``.
        size: Number of distinct questions (>= 1).
        seed: Dataset seed; the same seed gives the same questions.
        config: Task options passed to ``reasoning_gym.create_dataset`` (families:
            ``{"templates": [...]}``).
        instruction: Appended to each question.

    Raises:
        ConfigError: Unknown task, bad size or bad task options, or task settings whose
            question space holds fewer than ``size`` distinct questions.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size={size!r} must be an int >= 1; pass the number of questions")
    if name.startswith(FAMILY_PREFIX):
        options = dict(config or {})
        if set(options) - {"templates"}:
            raise ConfigError(
                f"family {name!r} got options {sorted(set(options) - {'templates'})}; the only "
                "family option is 'templates' (a list of template indices)"
            )
        templates = options.get("templates")
        return generate_family(
            name, size=size, seed=seed, templates=templates, instruction=instruction
        )
    draw = size
    while True:
        dataset = _create(name, draw, seed, config)
        picked: dict[str, int] = {}
        for i in range(draw):
            picked.setdefault(question_key(str(dataset[i]["question"])), i)
            if len(picked) == size:
                break
        if len(picked) == size:
            return [_rg_question(dataset, name, seed, i, instruction) for i in picked.values()]
        if draw >= _MAX_DRAW_FACTOR * size:
            raise ConfigError(
                f"task {name!r} with options {dict(config or {})} gave only {len(picked)} distinct "
                f"questions in {draw} items (seed {seed}), fewer than size={size}; ask for at "
                f"most {len(picked)} questions or widen the task options (larger value ranges, "
                "more terms)"
            )
        draw = min(draw * 2, _MAX_DRAW_FACTOR * size)


def _create(name: str, size: int, seed: int, config: Mapping[str, Any] | None) -> Any:
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(name, size=size, seed=seed, **dict(config or {}))
    except Exception as exc:
        raise ConfigError(
            f"reasoning-gym cannot create task {name!r} with options {dict(config or {})}: {exc}; "
            "check the task name (a reasoning-gym task such as lcm, gcd, products, chain_sum, or "
            f"an agent family: {', '.join(family_names())}) and its options"
        ) from exc


def _rg_question(dataset: Any, name: str, seed: int, index: int, instruction: str) -> Question:
    entry = dataset[index]

    def score(answer: str) -> float:
        return float(dataset.score_answer(answer, entry))

    return Question(
        id=f"{name}-{seed}-{index}",
        task=name,
        text=str(entry["question"]),
        gold=str(entry["answer"]),
        instruction=instruction,
        instance=_rg_instance(name, entry.get("metadata") or {}),
        _score=score,
    )


def _rg_instance(name: str, meta: Mapping[str, Any]) -> str:
    """The instance of a reasoning-gym item from its metadata; "" when it cannot be read.

    Operation names match the agent families' (``lcm``, ``gcd``, ``mul``, ``sum``), so the same
    question from either source has the same instance.
    """
    try:
        if name in ("lcm", "gcd"):
            return Instance(name, tuple(sorted(int(v) for v in meta["numbers"]))).key
        if name in ("products", "chain_sum", "basic_arithmetic"):
            return _expression_instance(str(meta["expression"]))
        if name == "leg_counting":
            animals = sorted(f"{a}={int(n)}" for a, n in meta["animals"].items())
            return Instance("legs", tuple(animals)).key
        if name == "syllogism":
            premises = sorted(
                " ".join(str(meta[k]).casefold().split()) for k in ("premise1", "premise2")
            )
            conclusion = " ".join(str(meta["conclusion"]).casefold().split())
            return Instance("syllogism", (*premises, conclusion)).key
        if name == "number_format":
            values = tuple(repr(float(v)) for v in sorted(meta["candidates"]))
            return Instance(f"number_format_{meta['size']}", values).key
        if name == "number_sequence":
            return Instance("sequence", tuple(int(v) for v in meta["sequence"][:-1])).key
    except (KeyError, TypeError, ValueError, AttributeError):
        return ""
    return ""


def _expression_instance(expression: str) -> str:
    """``mul``/``sum`` of sorted terms for pure products and sums, else ``expr:<text>``.

    Example:
        >>> _expression_instance("7 - 3"), _expression_instance("3 * 4 + 1")
        ('sum:-3,7', 'expr:3*4+1')
    """
    compact = "".join(expression.split())
    terms = _EXPRESSION_TERM_RE.findall(compact)
    if "".join(terms) != compact or not terms:
        return Instance("expr", (compact,)).key
    rest = {t[0] for t in terms[1:]}
    if rest == {"*"} and not terms[0].startswith(("*", "+")):
        return Instance("mul", tuple(sorted(int(t.lstrip("*")) for t in terms))).key
    if rest <= {"+", "-"} and len(terms) > 1 and not terms[0].startswith("*"):
        return Instance("sum", tuple(sorted(int(t) for t in terms))).key
    return Instance("expr", (compact,)).key


def load_jsonl(
    path: str | Path, *, task: str | None = None, instruction: str = DEFAULT_INSTRUCTION
) -> list[Question]:
    """Read questions from a JSONL file with ``question`` and ``answer`` fields.

    Optional fields: ``id`` (else ``<file stem>-<line>``), ``task`` (selects the extractor),
    ``instance`` (what is asked, e.g. ``"sum:3,5"``: the question's identity in any phrasing,
    :attr:`Question.instance_key`) and ``template`` (a phrasing template's index).
    Lines end with ``\\n``, ``\\r\\n`` or ``\\r``; a leading UTF-8 byte order mark is
    skipped. Every field is text handed to the model as is: nothing in a file is executed.

    Raises:
        DataError: Missing file, invalid UTF-8 or JSON (``NaN`` and ``Infinity`` included), a
            missing, empty or non-scalar field, text that is not valid Unicode (a lone
            surrogate), duplicate ids.
    """
    source = Path(path)
    if not source.is_file():
        raise DataError(f"JSONL file {str(source)!r} does not exist; pass a file of questions")
    try:
        text = source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source} is not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8"
        ) from exc
    # Not str.splitlines(): it also splits at U+2028, U+0085 and other characters that are
    # allowed, unescaped, inside JSON strings.
    lines = _LINE_BREAK_RE.split(text)
    questions = [
        _jsonl_question(line, source, number, task, instruction)
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    if not questions:
        raise DataError(
            f"{source} holds no questions; add lines like {{'question':..,'answer':..}}"
        )
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{source} repeats the id {dup!r}; ids must be unique")
    return questions


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON; quote it or drop it")


def _jsonl_question(
    line: str, source: Path, number: int, task: str | None, instruction: str
) -> Question:
    try:
        row = json.loads(line, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}:{number} is not valid JSON ({exc.msg}); fix that line") from exc
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{source}:{number} is not valid JSON ({exc}); fix that line") from exc
    if not isinstance(row, dict):
        raise DataError(
            f"{source}:{number} is not a JSON object; write {{'question':..,'answer':..}}"
        )
    for key in ("question", "answer"):
        if row.get(key) is None or not str(row[key]).strip():  # null would read as 'None'
            raise DataError(f"{source}:{number} has no non-empty {key!r} field; add it")
    for key in ("question", "answer", "id", "task"):
        value = row.get(key)
        if isinstance(value, dict | list):
            kind = "object" if isinstance(value, dict) else "array"
            raise DataError(f"{source}:{number} has a JSON {kind} as {key!r}; write it as a string")
        surrogate = _SURROGATE_RE.search(value) if isinstance(value, str) else None
        if surrogate is not None:
            raise DataError(
                f"{source}:{number} has a lone surrogate in {key!r} ({surrogate.group()!r} at "
                f"character {surrogate.start()}), which is not Unicode text; fix that line"
            )
    instance = row.get("instance", "")
    if not isinstance(instance, str):
        raise DataError(
            f"{source}:{number} has instance={instance!r}; write it as a string like "
            "'sum:3,5' (what is asked, the same in any phrasing) or leave it out"
        )
    template = row.get("template")
    if template is not None and (type(template) is not int or template < 0):
        raise DataError(
            f"{source}:{number} has template={template!r}; write a whole number >= 0 (the "
            "phrasing template's index) or leave it out"
        )
    return Question(
        id=str(row.get("id", f"{source.stem}-{number}")),
        task=str(row.get("task", task or "jsonl")),
        text=str(row["question"]),
        gold=str(row["answer"]),
        instruction=instruction,
        instance=instance,
        template=template,
    )
