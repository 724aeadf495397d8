"""Families, instances and the registry: how a family turns instances into questions."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from t2_agents.answers import AnswerExtractor, register_extractor
from t2_agents.errors import ConfigError, DataError
from t2_agents.families._phrasing import number_answer
from t2_agents.question import DEFAULT_INSTRUCTION, Question

__all__ = [
    "FAMILY_PREFIX",
    "Family",
    "Instance",
    "family_names",
    "generate_family",
    "get_family",
    "phrase_instance",
    "register_family",
]

FAMILY_PREFIX = "agent_"
"""Every family name starts with this, which is how ``load_task`` tells families apart."""

Operand = int | str
Template = str | Mapping[str, str]
"""A ``str.format`` pattern, or one pattern per instance kind."""


@dataclass(frozen=True)
class Instance:
    """What a question asks, independent of its phrasing.

    Example:
        >>> Instance("lcm", (18, 22)).key
        'lcm:18,22'
    """

    kind: str
    """The operation, e.g. ``"lcm"``; shared with reasoning-gym tasks that ask the same."""
    operands: tuple[Operand, ...]
    """Canonical operands (sorted where the operation is symmetric)."""

    @property
    def key(self) -> str:
        """``kind:op1,op2,...``, the string :attr:`Question.instance` holds."""
        return f"{self.kind}:" + ",".join(str(op) for op in self.operands)


@dataclass(frozen=True)
class Family:
    """A question family: its instance space, phrasings and answer extractor."""

    name: str
    """Task name of its questions; starts with :data:`FAMILY_PREFIX`."""
    kinds: tuple[str, ...]
    """The instance kinds it produces; no two registered families share a kind."""
    space: Callable[[], Sequence[Instance]]
    """Enumerates every instance, in a fixed order."""
    render: Callable[[Instance, random.Random], tuple[str, dict[str, object]]]
    """Gold answer and template fields of an instance (names, operand order drawn from rng)."""
    templates: tuple[Template, ...]
    """Phrasing templates; a question records the index of its template."""
    extractor: AnswerExtractor = number_answer
    """Maps a completion to its normalised answer (registered for :attr:`name`)."""


_REGISTRY: dict[str, Family] = {}


def register_family(family: Family) -> None:
    """Register a family, so that ``load_task`` and :func:`generate_family` accept its name.

    Raises:
        ConfigError: The name lacks the prefix or is taken, a kind belongs to another family,
            there are no templates, or a per-kind template misses a kind.
    """
    if not family.name.startswith(FAMILY_PREFIX) or family.name in _REGISTRY:
        raise ConfigError(
            f"family name {family.name!r} is taken or lacks the prefix {FAMILY_PREFIX!r}; "
            f"pick a new name starting with {FAMILY_PREFIX!r} (taken: {family_names()})"
        )
    _check_family(family)
    _REGISTRY[family.name] = family
    register_extractor(family.name, family.extractor)


def family_names() -> list[str]:
    """Names of the registered families, sorted.

    Example:
        >>> "agent_rates" in family_names()
        True
    """
    return sorted(_REGISTRY)


def get_family(name: str) -> Family:
    """The registered family called ``name``.

    Raises:
        ConfigError: No family has that name; the message lists the names.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown question family {name!r}; pass one of {family_names()}")
    return _REGISTRY[name]


def generate_family(
    family: str | Family,
    *,
    size: int,
    seed: int,
    templates: Sequence[int] | None = None,
    exclude: Collection[str] = (),
    instruction: str | None = None,
) -> list[Question]:
    """Draw ``size`` questions of distinct instances from a family, deterministically.

    Instances come in a seeded order that alternates between the family's kinds, so a larger
    ``size`` extends a smaller one. Question ``i`` uses template ``templates[i % k]``; its
    names and operand order are drawn from ``(family, seed, instance)``. The instance order
    does not depend on ``templates``: to hold out phrasings *and* instances, use another seed
    and ``exclude`` the training instances.

    Args:
        family: A registered family name (or a :class:`Family`, used as is).
        size: Number of questions (>= 1), at most the number of instances left.
        seed: The same seed gives the same questions.
        templates: Template indices to phrase with (default: all).
        exclude: Instance strings (:attr:`Instance.key`) never to draw.
        instruction: Appended to each question (default ``DEFAULT_INSTRUCTION``).

    Returns:
        Questions with ids ``<family>-<seed>-<i>``, ``instance`` and ``template`` set.

    Raises:
        ConfigError: Unknown family, bad size or templates, ``size`` above the instances left,
            or a family whose kinds another registered family produces.
        DataError: An instance outside the family's kinds or repeated, a template naming a
            field the family does not fill, or a gold answer the family's grader rejects.
    """
    fam = get_family(family) if isinstance(family, str) else family
    _check_family(fam)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size={size!r} must be an int >= 1; pass the number of questions")
    chosen = _check_templates(fam, templates)
    space = _checked_space(fam)
    dropped = set(exclude)
    left = [inst for inst in space if inst.key not in dropped]
    if size > len(left):
        raise ConfigError(
            f"size={size} is above the {len(left)} distinct instances family {fam.name!r} has "
            f"({len(space) - len(left)} excluded); ask for at most {len(left)} questions or "
            "add another family"
        )
    questions = []
    for i, inst in enumerate(_ordered(left, fam.kinds, f"{fam.name}/{seed}")[:size]):
        questions.append(
            phrase_instance(
                fam,
                inst,
                template=chosen[i % len(chosen)],
                id=f"{fam.name}-{seed}-{i}",
                rng=random.Random(f"{fam.name}/{seed}/{inst.key}"),
                instruction=instruction,
            )
        )
    return questions


def phrase_instance(
    family: str | Family,
    instance: Instance,
    *,
    template: int,
    id: str,
    rng: random.Random,
    instruction: str | None = None,
) -> Question:
    """One question: ``instance`` phrased by the family's template ``template``.

    This is :func:`generate_family`'s step for a single instance, for callers that build their
    own instances (e.g. a step of a multi-step chain whose operand is the previous answer).
    Instances outside the family's enumerated space are allowed (operands may be larger).

    Args:
        family: A registered family name (or a :class:`Family`).
        instance: What to ask; its kind must be one of the family's kinds.
        template: Index of the phrasing template.
        id: The question's id.
        rng: Draws names and operand order (seed it for reproducible text).
        instruction: Appended to the question (default ``DEFAULT_INSTRUCTION``).

    Raises:
        ConfigError: Unknown family or template index.
        DataError: A kind outside the family's kinds, a template naming a field the family does
            not fill, or a gold answer the family's grader rejects.

    Example:
        >>> q = phrase_instance("agent_arithmetic", Instance("sum", (3, 5)), template=0,
        ...                     id="q", rng=random.Random(0))
        >>> q.gold, q.instance, q.template
        ('8', 'sum:3,5', 0)
    """
    fam = get_family(family) if isinstance(family, str) else family
    (k,) = _check_templates(fam, [template])
    if instance.kind not in fam.kinds:
        raise DataError(
            f"instance {instance.key!r} is of kind {instance.kind!r}, which family "
            f"{fam.name!r} does not ask; use one of its kinds {fam.kinds}"
        )
    gold, fields = fam.render(instance, rng)
    question = Question(
        id=id,
        task=fam.name,
        text=_phrase(fam, k, instance, fields),
        gold=gold,
        instruction=DEFAULT_INSTRUCTION if instruction is None else instruction,
        instance=instance.key,
        template=k,
    )
    extracted = fam.extractor(gold)
    if not (gold.strip() and question.is_correct(gold) and question.is_correct(extracted)):
        raise DataError(
            f"family {fam.name!r} template {k}: gold {gold!r} of {question.text!r} fails "
            f"the family's own grader (its extractor gives {extracted!r}); fix the family's "
            "render function or its extractor"
        )
    return question


# ---------------------------------------------------------------------------- checks, order
def _check_family(fam: Family) -> None:
    if not fam.kinds or not fam.templates:
        raise ConfigError(f"family {fam.name!r} needs at least one kind and one template")
    for other in _REGISTRY.values():
        shared = set(other.kinds) & set(fam.kinds)
        if other is not fam and shared:
            raise ConfigError(
                f"family {fam.name!r} produces instances of kind {sorted(shared)}, as family "
                f"{other.name!r} does: two families must not produce the same instance; "
                "rename the kind or merge the families"
            )
    for k, template in enumerate(fam.templates):
        if not isinstance(template, str) and set(fam.kinds) - set(template):
            raise ConfigError(
                f"family {fam.name!r} template {k} has no pattern for kinds "
                f"{sorted(set(fam.kinds) - set(template))}; add them"
            )


def _check_templates(fam: Family, templates: Sequence[int] | None) -> list[int]:
    count = len(fam.templates)
    chosen = list(range(count) if templates is None else templates)
    in_range = all(type(k) is int and 0 <= k < count for k in chosen)
    if not chosen or not in_range or len(set(chosen)) != len(chosen):
        raise ConfigError(
            f"templates={templates!r} for family {fam.name!r} must be distinct indices in "
            f"0..{count - 1}; pass e.g. templates=[0, 1] or None for all {count}"
        )
    return chosen


def _checked_space(fam: Family) -> list[Instance]:
    space = list(fam.space())
    seen: set[str] = set()
    for inst in space:
        if inst.kind not in fam.kinds or inst.key in seen:
            problem = "repeats" if inst.key in seen else f"is outside its kinds {fam.kinds}"
            raise DataError(
                f"family {fam.name!r} instance {inst.key!r} {problem}; fix its space function"
            )
        seen.add(inst.key)
    return space


def _ordered(space: list[Instance], kinds: tuple[str, ...], seed: str) -> list[Instance]:
    """Each kind shuffled, then taken in turn, so every prefix is balanced across kinds."""
    rng = random.Random(seed)
    queues = []
    for kind in kinds:
        queue = [inst for inst in space if inst.kind == kind]
        rng.shuffle(queue)
        queues.append(queue)
    rounds = itertools.zip_longest(*queues)
    return [inst for round_ in rounds for inst in round_ if inst is not None]


def _phrase(fam: Family, k: int, inst: Instance, fields: Mapping[str, object]) -> str:
    template = fam.templates[k]
    pattern = template if isinstance(template, str) else template[inst.kind]
    try:
        return pattern.format(**fields)
    except (KeyError, IndexError) as exc:
        raise DataError(
            f"family {fam.name!r} template {k} names the field {exc} that its render function "
            f"does not fill (fields: {sorted(fields)}); fix the template or the render function"
        ) from exc
