"""The agent families: short questions, instructions and word problems, gold in code."""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Sequence

from t2_agents.families._core import Family, Instance, Operand, Template, register_family
from t2_agents.families._phrasing import (
    NAMES,
    Fields,
    number_answer,
    shuffled,
    word_answer,
    yesno_answer,
)

__all__: list[str] = []


# ---------------------------------------------------------------------------- extractors
_COUNT_WORDS = {"once": 1, "twice": 2, "thrice": 3, "one": 1, "two": 2, "three": 3, "four": 4}
_COUNT_WORDS |= {"five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_COUNT_WORD_RE = re.compile(r"(?i)\b(" + "|".join(_COUNT_WORDS) + r")\b")


def _count(text: str, /) -> str | None:
    """A number, with count words ("twice", "three times") read as digits."""
    return number_answer(_COUNT_WORD_RE.sub(lambda m: str(_COUNT_WORDS[m.group(1).lower()]), text))


_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_weekday = word_answer(_DAYS)


# ---------------------------------------------------------------------------- helpers
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


def _listing(values: Sequence[Operand], last: str) -> str:
    text = [str(v) for v in values]
    return f"{', '.join(text[:-1])} {last} {text[-1]}"


def _per_kind(kinds: Sequence[str], *rows: Sequence[str]) -> tuple[Template, ...]:
    """Templates from rows of patterns, one row per kind (row ``i`` holds kind ``i``)."""
    return tuple(dict(zip(kinds, column, strict=True)) for column in zip(*rows, strict=True))


def _ints(inst: Instance) -> list[int]:
    return [int(op) for op in inst.operands]


# ---------------------------------------------------------------------------- the families
def _arithmetic_space() -> list[Instance]:
    adds = [Instance("sum", p) for p in _pairs(2, 50, same=True)]
    subs = [Instance("sum", (-b, a)) for a in range(11, 61) for b in range(2, a)]
    return adds + subs + [Instance("mul", (a, b)) for a in range(2, 13) for b in range(a, 21)]


def _arithmetic(inst: Instance, rng: random.Random) -> Fields:
    x, y = _ints(inst)
    if inst.kind == "mul":
        a, b = shuffled(rng, (x, y))
        return str(x * y), {"a": a, "b": b, "sym": "*", "word": "times"}
    if x < 0:
        return str(x + y), {"a": y, "b": -x, "sym": "-", "word": "minus"}
    a, b = shuffled(rng, (x, y))
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


def _word(inst: Instance, rng: random.Random) -> Fields:
    x, y = _ints(inst)
    a, b = shuffled(rng, (x, y)) if inst.kind in ("wp_more", "wp_groups") else (x, y)
    gold = {"wp_more": x + y, "wp_left": x - y, "wp_groups": x * y, "wp_share": x // max(y, 1)}
    fields: dict[str, object] = {"a": a, "b": b, "name": rng.choice(NAMES)}
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


def _speed(inst: Instance, rng: random.Random) -> Fields:
    speed, hours = _ints(inst)
    vehicle = rng.choice(("car", "train", "bus", "cyclist", "boat"))
    unit = rng.choice(("km", "miles"))
    fields = {"speed": speed, "hours": hours, "vehicle": vehicle, "unit": unit}
    return str(speed * hours), {**fields, "name": rng.choice(NAMES)}


register_family(Family("agent_rates", ("distance",), lambda: [
    Instance("distance", (s, h)) for s in range(10, 100) for h in range(2, 7)
], _speed, (
    "A {vehicle} goes {speed} {unit} per hour for {hours} hours. How many {unit} does it go?",
    "How far does a {vehicle} go in {hours} hours at {speed} {unit} per hour?",
    "Compute the distance covered at {speed} {unit}/h over {hours} hours.",
    "What's the distance after {hours} hours at a steady {speed} {unit} per hour?",
    "Find the distance in {unit}: speed {speed} {unit} per hour, time {hours} hours.",
)))  # fmt: skip


def _shopping(inst: Instance, rng: random.Random) -> Fields:
    price, qty = _ints(inst)
    item = rng.choice(("notebooks", "mugs", "tickets", "shirts", "lamps", "plants"))
    return str(price * qty), {"price": price, "qty": qty, "item": item, "name": rng.choice(NAMES)}


register_family(Family("agent_shopping", ("cost",), lambda: [
    Instance("cost", (p, q)) for p in range(2, 41) for q in range(2, 16)
], _shopping, (
    "{name} buys {qty} {item} at ${price} each. How much does {name} pay in dollars?",
    "What is the total cost of {qty} {item} if one costs {price} dollars?",
    "Compute the price of {qty} {item} at ${price} apiece.",
    "What's the bill for {qty} {item} priced at {price} dollars each?",
    "Find the total in dollars: {qty} {item}, {price} dollars per item.",
)))  # fmt: skip


def _gcd_lcm(inst: Instance, rng: random.Random) -> Fields:
    x, y = _ints(inst)
    a, b = shuffled(rng, (x, y))
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


def _compare(inst: Instance, rng: random.Random) -> Fields:
    values = _ints(inst)
    shown = shuffled(rng, values)
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
        "name": rng.choice(NAMES),
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


def _counting(inst: Instance, rng: random.Random) -> Fields:
    if inst.kind == "letters":
        word, letter = (str(op) for op in inst.operands)
        return str(word.count(letter)), {"word": word, "letter": letter}
    items = ", ".join(str(v) for v in shuffled(rng, inst.operands))
    return str(len(inst.operands)), {"items": items, "name": rng.choice(NAMES)}


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


def _weekdays(inst: Instance, rng: random.Random) -> Fields:
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


def _logic(inst: Instance, rng: random.Random) -> Fields:
    rel, x, t = str(inst.operands[0]), int(inst.operands[1]), int(inst.operands[2])
    holds = x > t if rel == "gt" else x < t
    words = "greater than" if rel == "gt" else "less than"
    return ("yes" if holds else "no"), {"rel": words, "x": x, "t": t, "name": rng.choice(NAMES)}


register_family(Family("agent_logic", ("threshold",), lambda: [
    Instance("threshold", (r, x, t)) for r in ("gt", "lt") for x in range(1, 61)
    for t in range(1, 61) if x != t
], _logic, (
    "If a number is {rel} {t}, the alarm rings. The number is {x}. Does the alarm ring?",
    "Is {x} {rel} {t}? Answer yes or no.",
    "Rule: orders {rel} {t} dollars ship free. An order is {x} dollars. Does it ship free?",
    "True or false: {x} is {rel} {t}.",
    "A score {rel} {t} passes. {name} scored {x}. Does {name} pass? Answer yes or no.",
), yesno_answer))  # fmt: skip


def _remainders(inst: Instance, rng: random.Random) -> Fields:
    a, b = _ints(inst)
    return str(a % b), {"a": a, "b": b, "name": rng.choice(NAMES)}


register_family(Family("agent_remainders", ("mod",), lambda: [
    Instance("mod", (a, b)) for a in range(10, 100) for b in range(2, 13)
], _remainders, (
    "What is the remainder when {a} is divided by {b}?",
    "Compute {a} mod {b}.",
    "What's {a} % {b}?",
    "Find the remainder of {a} divided by {b}.",
    "{a} cookies are packed into boxes of {b}. How many cookies are left over?",
)))  # fmt: skip
