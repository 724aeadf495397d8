"""Question families shaped like agent traffic, with gold answers computed in code.

A :class:`Family` enumerates its *instances* (an operation and its canonical operands, e.g.
``lcm:18,22``) and phrases each one through one of several templates: short questions,
"Compute ...", "What's ...", "Find ...", word problems with names and units. The instance is
the question's identity: the same operands in any order (for a symmetric operation) and any
phrasing give the same :attr:`Instance.key`. Operation names are shared with the reasoning-gym
tasks where they ask the same thing (``lcm``, ``gcd``, ``mul``, ``sum``), so
:attr:`t2_agents.tasks.Question.instance_key` matches across the two sources.

Example:
    >>> qs = generate_family("agent_gcd_lcm", size=2, seed=0)
    >>> qs[0].id, qs[0].task, qs[0].template
    ('agent_gcd_lcm-0-0', 'agent_gcd_lcm', 0)
    >>> qs[0].instance.split(":")[0] in ("gcd", "lcm"), qs[0].is_correct(qs[0].gold)
    (True, True)
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from t2_agents.answers import AnswerExtractor, extract_answer, register_extractor
from t2_agents.errors import ConfigError, DataError
from t2_agents.question import DEFAULT_INSTRUCTION, Question

__all__ = [
    "FAMILY_PREFIX",
    "Family",
    "Instance",
    "family_names",
    "generate_family",
    "get_family",
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


def _number(text: str, /) -> str | None:
    return extract_answer(text, kind="number")


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
    extractor: AnswerExtractor = _number
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
        k = chosen[i % len(chosen)]
        gold, fields = fam.render(inst, random.Random(f"{fam.name}/{seed}/{inst.key}"))
        question = Question(
            id=f"{fam.name}-{seed}-{i}",
            task=fam.name,
            text=_phrase(fam, k, inst, fields),
            gold=gold,
            instruction=DEFAULT_INSTRUCTION if instruction is None else instruction,
            instance=inst.key,
            template=k,
        )
        extracted = fam.extractor(gold)
        if not (gold.strip() and question.is_correct(gold) and question.is_correct(extracted)):
            raise DataError(
                f"family {fam.name!r} template {k}: gold {gold!r} of {question.text!r} fails "
                f"the family's own grader (its extractor gives {extracted!r}); fix the family's "
                "render function or its extractor"
            )
        questions.append(question)
    return questions


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


# ---------------------------------------------------------------------------- extractors
_COUNT_WORDS = {"once": 1, "twice": 2, "thrice": 3, "one": 1, "two": 2, "three": 3, "four": 4}
_COUNT_WORDS |= {"five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_COUNT_WORD_RE = re.compile(r"(?i)\b(" + "|".join(_COUNT_WORDS) + r")\b")


def _count(text: str, /) -> str | None:
    """A number, with count words ("twice", "three times") read as digits."""
    return _number(_COUNT_WORD_RE.sub(lambda m: str(_COUNT_WORDS[m.group(1).lower()]), text))


def _yesno(text: str, /) -> str | None:
    return extract_answer(text, kind="yesno")


_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_RE = re.compile(r"\b(" + "|".join(_DAYS) + r")\b", re.IGNORECASE)
_ANSWER_MARK_RE = re.compile(r"(?i)\banswer\b")


def _weekday(text: str, /) -> str | None:
    """The first weekday named after the last "answer" marker, else the last one named."""
    marks = list(_ANSWER_MARK_RE.finditer(text))
    after = _DAY_RE.findall(text[marks[-1].end() :]) if marks else []
    found = after[:1] or _DAY_RE.findall(text)
    return found[-1].lower() if found else None


# ---------------------------------------------------------------------------- helpers
_NAMES = ("Sam", "Maya", "Leo", "Ana", "Omar", "Priya", "Tom", "Lena", "Kofi", "Mei")
_ITEMS = ("apples", "pens", "stickers", "marbles", "cookies", "books", "cards", "stamps")
_FRUITS = ("apple", "pear", "fig", "plum", "kiwi", "lime", "mango", "grape", "peach", "lemon")
_WORDS = (
    "banana", "strawberry", "mississippi", "bookkeeper", "committee", "letter", "balloon",
    "coffee", "parallel", "assessment", "pepper", "tomorrow", "success", "address", "cabbage",
    "engineer", "hello", "bubble", "rhythm", "puzzle", "necessary", "referee", "giraffe",
    "pineapple", "vacuum", "kangaroo", "accommodate", "illness", "mammal", "dessert",
)  # fmt: skip


def _pairs(low: int, high: int, *, same: bool = False) -> list[tuple[int, int]]:
    """Unordered pairs ``a <= b`` (``a < b`` unless ``same``) from ``low..high``."""
    return [(a, b) for a in range(low, high + 1) for b in range(a if same else a + 1, high + 1)]


def _shuffled(rng: random.Random, values: Sequence[Operand]) -> list[Operand]:
    out = list(values)
    rng.shuffle(out)
    return out


def _listing(values: Sequence[Operand], last: str) -> str:
    text = [str(v) for v in values]
    return f"{', '.join(text[:-1])} {last} {text[-1]}"


def _per_kind(kinds: Sequence[str], *rows: Sequence[str]) -> tuple[Template, ...]:
    """Templates from rows of patterns, one row per kind (row ``i`` holds kind ``i``)."""
    return tuple(dict(zip(kinds, column, strict=True)) for column in zip(*rows, strict=True))


def _ints(inst: Instance) -> list[int]:
    return [int(op) for op in inst.operands]


_Fields = tuple[str, dict[str, object]]


# ---------------------------------------------------------------------------- the families
def _arithmetic_space() -> list[Instance]:
    adds = [Instance("sum", p) for p in _pairs(2, 50, same=True)]
    subs = [Instance("sum", (-b, a)) for a in range(11, 61) for b in range(2, a)]
    return adds + subs + [Instance("mul", (a, b)) for a in range(2, 13) for b in range(a, 21)]


def _arithmetic(inst: Instance, rng: random.Random) -> _Fields:
    x, y = _ints(inst)
    if inst.kind == "mul":
        a, b = _shuffled(rng, (x, y))
        return str(x * y), {"a": a, "b": b, "sym": "*", "word": "times"}
    if x < 0:
        return str(x + y), {"a": y, "b": -x, "sym": "-", "word": "minus"}
    a, b = _shuffled(rng, (x, y))
    return str(x + y), {"a": a, "b": b, "sym": "+", "word": "plus"}


register_family(Family("agent_arithmetic", ("sum", "mul"), _arithmetic_space, _arithmetic, (
    "What is {a} {sym} {b}?",
    "Compute {a} {sym} {b}.",
    "What's {a} {word} {b}?",
    "Find the value of {a} {sym} {b}.",
    "{a} {sym} {b} = ?",
)))  # fmt: skip

_WP_KINDS = ("wp_more", "wp_left", "wp_groups", "wp_share")


def _word_space() -> list[Instance]:
    return (
        [Instance("wp_more", p) for p in _pairs(2, 30, same=True)]
        + [Instance("wp_left", (a, b)) for a in range(8, 41) for b in range(1, a)]
        + [Instance("wp_groups", p) for p in _pairs(2, 12, same=True)]
        + [Instance("wp_share", (e * b, b)) for b in range(2, 10) for e in range(2, 13)]
    )


def _word(inst: Instance, rng: random.Random) -> _Fields:
    x, y = _ints(inst)
    a, b = _shuffled(rng, (x, y)) if inst.kind in ("wp_more", "wp_groups") else (x, y)
    gold = {"wp_more": x + y, "wp_left": x - y, "wp_groups": x * y, "wp_share": x // max(y, 1)}
    fields: dict[str, object] = {"a": a, "b": b, "name": rng.choice(_NAMES)}
    return str(gold[inst.kind]), {**fields, "item": rng.choice(_ITEMS)}


register_family(Family("agent_word_problems", _WP_KINDS, _word_space, _word, _per_kind(_WP_KINDS, (
    "{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
    "How many {item} does {name} have after starting with {a} and getting {b} more?",
    "Compute the total number of {item}: {a} at first, then {b} more.",
    "What's the total if {name} had {a} {item} and found {b} more?",
    "Find how many {item} {name} has: {a} to start, plus {b} bought today.",
), (
    "{name} has {a} {item} and gives away {b}. How many {item} are left?",
    "How many {item} remain if {name} starts with {a} and gives away {b}?",
    "Compute the number of {item} left: {a} at first, then {b} given away.",
    "What's left if {name} had {a} {item} and used {b}?",
    "Find how many {item} {name} has left: {a} to start, {b} sold.",
), (
    "{name} has {a} bags with {b} {item} in each bag. How many {item} is that in total?",
    "How many {item} are in {a} boxes of {b} {item} each?",
    "Compute the total number of {item}: {a} packs of {b}.",
    "What's the total number of {item} in {a} rows of {b}?",
    "Find the total {item}: {name} buys {a} packs of {b} {item}.",
), (
    "{name} shares {a} {item} equally among {b} friends. How many {item} does each friend get?",
    "How many {item} does each of {b} friends get if {name} splits {a} {item} evenly?",
    "Compute each share: {a} {item} split evenly among {b} people.",
    "What's each person's share when {a} {item} are divided among {b} people?",
    "Find how many {item} each child gets: {a} {item} shared by {b} children.",
))))  # fmt: skip


def _speed(inst: Instance, rng: random.Random) -> _Fields:
    speed, hours = _ints(inst)
    vehicle = rng.choice(("car", "train", "bus", "cyclist", "boat"))
    unit = rng.choice(("km", "miles"))
    fields = {"speed": speed, "hours": hours, "vehicle": vehicle, "unit": unit}
    return str(speed * hours), {**fields, "name": rng.choice(_NAMES)}


register_family(Family("agent_rates", ("distance",), lambda: [
    Instance("distance", (s, h)) for s in range(10, 100) for h in range(2, 7)
], _speed, (
    "A {vehicle} goes {speed} {unit} per hour for {hours} hours. How many {unit} does it go?",
    "How far does a {vehicle} go in {hours} hours at {speed} {unit} per hour?",
    "Compute the distance covered at {speed} {unit}/h over {hours} hours.",
    "What's the distance after {hours} hours at a steady {speed} {unit} per hour?",
    "Find the distance in {unit}: speed {speed} {unit} per hour, time {hours} hours.",
)))  # fmt: skip


def _shopping(inst: Instance, rng: random.Random) -> _Fields:
    price, qty = _ints(inst)
    item = rng.choice(("notebooks", "mugs", "tickets", "shirts", "lamps", "plants"))
    return str(price * qty), {"price": price, "qty": qty, "item": item, "name": rng.choice(_NAMES)}


register_family(Family("agent_shopping", ("cost",), lambda: [
    Instance("cost", (p, q)) for p in range(2, 41) for q in range(2, 16)
], _shopping, (
    "{name} buys {qty} {item} at ${price} each. How much does {name} pay in dollars?",
    "What is the total cost of {qty} {item} if one costs {price} dollars?",
    "Compute the price of {qty} {item} at ${price} apiece.",
    "What's the bill for {qty} {item} priced at {price} dollars each?",
    "Find the total in dollars: {qty} {item}, {price} dollars per item.",
)))  # fmt: skip


def _gcd_lcm(inst: Instance, rng: random.Random) -> _Fields:
    x, y = _ints(inst)
    a, b = _shuffled(rng, (x, y))
    if inst.kind == "gcd":
        return str(math.gcd(x, y)), {
            "a": a,
            "b": b,
            "abbr": "GCD",
            "long": "greatest common divisor",
        }
    return str(math.lcm(x, y)), {"a": a, "b": b, "abbr": "LCM", "long": "least common multiple"}


register_family(Family("agent_gcd_lcm", ("gcd", "lcm"), lambda: [
    Instance(kind, p) for kind in ("gcd", "lcm") for p in _pairs(2, 40)
], _gcd_lcm, (
    "What is the {abbr} of {a} and {b}?",
    "Compute the {long} of {a} and {b}.",
    "What's the {abbr} of {a}, {b}?",
    "Find the {long} of {a} and {b}.",
    "I need {abbr}({a}, {b}). What is it?",
)))  # fmt: skip


def _compare_space() -> list[Instance]:
    sets = [*_pairs(10, 99), *itertools.combinations(range(1, 21), 3)]
    return [Instance(kind, s) for kind in ("max", "min") for s in sets]


def _compare(inst: Instance, rng: random.Random) -> _Fields:
    values = _ints(inst)
    shown = _shuffled(rng, values)
    big = inst.kind == "max"
    two = len(values) == 2
    fields: dict[str, object] = {
        "adj": ("larger" if big else "smaller") if two else ("largest" if big else "smallest"),
        "sup": "largest" if big else "smallest",
        "best": "highest" if big else "lowest",
        "extreme": "maximum" if big else "minimum",
        "or": _listing(shown, "or"),
        "and": _listing(shown, "and"),
        "list": ", ".join(str(v) for v in shown),
        "games": "two" if two else "three",
        "name": rng.choice(_NAMES),
    }
    return str(max(values) if big else min(values)), fields


register_family(Family("agent_compare", ("max", "min"), _compare_space, _compare, (
    "Which is {adj}, {or}?",
    "Compute the {extreme} of {and}.",
    "What's the {sup} number among {and}?",
    "Find the {sup} value in this list: {list}.",
    "{name} scored {and} points in {games} games. What was the {best} score?",
)))  # fmt: skip

_COUNT_KINDS = ("letters", "list_len")


def _counting_space() -> list[Instance]:
    letters = [Instance("letters", (w, c)) for w in _WORDS for c in sorted(set(w))]
    sizes = range(3, 9)
    lists = [c for n in sizes for c in itertools.combinations(sorted(_FRUITS), n)]
    return letters + [Instance("list_len", c) for c in lists]


def _counting(inst: Instance, rng: random.Random) -> _Fields:
    if inst.kind == "letters":
        word, letter = (str(op) for op in inst.operands)
        return str(word.count(letter)), {"word": word, "letter": letter}
    items = ", ".join(str(v) for v in _shuffled(rng, inst.operands))
    return str(len(inst.operands)), {"items": items, "name": rng.choice(_NAMES)}


register_family(Family("agent_counting", _COUNT_KINDS, _counting_space, _counting, _per_kind(
    _COUNT_KINDS, (
    "How many times does the letter {letter} appear in the word {word}?",
    'Count the letter "{letter}" in "{word}".',
    "Compute how many times {letter} occurs in {word}.",
    "What's the number of {letter}'s in {word}?",
    "Find how many times the letter '{letter}' is used in '{word}'.",
), (
    "How many items are in this list: {items}?",
    "Count the items: {items}.",
    "Compute the number of fruits in: {items}.",
    "What's the length of the list [{items}]?",
    "{name} packed {items}. How many fruits is that?",
)), _count))  # fmt: skip


def _weekdays(inst: Instance, rng: random.Random) -> _Fields:
    day, k = str(inst.operands[0]), int(inst.operands[1])
    gold = _DAYS[(_DAYS.index(day) + k) % 7].capitalize()
    return gold, {"day": day.capitalize(), "k": f"{k} day" if k == 1 else f"{k} days"}


register_family(Family("agent_weekdays", ("weekday_after",), lambda: [
    Instance("weekday_after", (d, k)) for d in _DAYS for k in range(1, 61)
], _weekdays, (
    "Today is {day}. What day of the week will it be in {k}?",
    "What day of the week is {k} after a {day}?",
    "Compute the weekday {k} after {day}.",
    "What's the day of the week {k} from {day}?",
    "Find the weekday that comes {k} after {day}.",
), _weekday))  # fmt: skip


def _logic(inst: Instance, rng: random.Random) -> _Fields:
    rel, x, t = str(inst.operands[0]), int(inst.operands[1]), int(inst.operands[2])
    holds = x > t if rel == "gt" else x < t
    words = "greater than" if rel == "gt" else "less than"
    return ("yes" if holds else "no"), {"rel": words, "x": x, "t": t, "name": rng.choice(_NAMES)}


register_family(Family("agent_logic", ("threshold",), lambda: [
    Instance("threshold", (r, x, t)) for r in ("gt", "lt") for x in range(1, 61)
    for t in range(1, 61) if x != t
], _logic, (
    "If a number is {rel} {t}, the alarm rings. The number is {x}. Does the alarm ring?",
    "Is {x} {rel} {t}? Answer yes or no.",
    "Rule: orders {rel} {t} dollars ship free. An order is {x} dollars. Does it ship free?",
    "True or false: {x} is {rel} {t}.",
    "A score {rel} {t} passes. {name} scored {x}. Does {name} pass? Answer yes or no.",
), _yesno))  # fmt: skip


def _remainders(inst: Instance, rng: random.Random) -> _Fields:
    a, b = _ints(inst)
    return str(a % b), {"a": a, "b": b, "name": rng.choice(_NAMES)}


register_family(Family("agent_remainders", ("mod",), lambda: [
    Instance("mod", (a, b)) for a in range(10, 100) for b in range(2, 13)
], _remainders, (
    "What is the remainder when {a} is divided by {b}?",
    "Compute {a} mod {b}.",
    "What's {a} % {b}?",
    "Find the remainder of {a} divided by {b}.",
    "{a} cookies are packed into boxes of {b}. How many cookies are left over?",
)))  # fmt: skip
