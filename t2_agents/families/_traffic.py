"""Families kept out of the shipped estimator's calibration: a stand-in for a user's own traffic.

The shipped estimator never saw these operations (no training question of its calibration
shares their kinds), so they measure what adapting to new traffic takes (issue 20's learning
curve, ``bench/adapt_curve.py``): parity, divisibility, primes, picking the even number and
letters in words, each phrased as an agent would hand it to a thinking tool. Each was kept
because the default model is right on it sometimes but not always
(``bench/results/family_probe_traffic.json``).
"""

from __future__ import annotations

import math
import random

from t2_agents.families._core import Family, Instance, register_family
from t2_agents.families._phrasing import NAMES, Fields, shuffled, word_answer, yesno_answer

__all__: list[str] = []

_parity_word = word_answer(("even", "odd"))


def _parity(inst: Instance, rng: random.Random) -> Fields:
    n = int(inst.operands[0])
    return ("even" if n % 2 == 0 else "odd"), {"n": n, "name": rng.choice(NAMES)}


register_family(Family("agent_parity", ("parity",), lambda: [
    Instance("parity", (n,)) for n in range(11, 1000)
], _parity, (
    "Is {n} even or odd?",
    "Is the number {n} odd or even?",
    "Determine whether {n} is even or odd.",
    "What's the parity of {n}: even or odd?",
    "{name} has {n} marbles. Is that an even or an odd number?",
), _parity_word))  # fmt: skip


def _divides(inst: Instance, rng: random.Random) -> Fields:
    n, d = (int(op) for op in inst.operands)
    return ("yes" if n % d == 0 else "no"), {"n": n, "d": d, "name": rng.choice(NAMES)}


# Multiples and multiples plus one, so that "yes" and "no" are equally common.
register_family(Family("agent_divisible", ("divides",), lambda: [
    Instance("divides", (d * k + r, d)) for d in range(3, 13) for k in range(3, 40)
    for r in (0, 1)
], _divides, (
    "Is {n} divisible by {d}?",
    "Does {d} divide {n} evenly? Answer yes or no.",
    "Check whether {n} is a multiple of {d}. Yes or no?",
    "Can {n} be split into groups of {d} with none left over?",
    "{name} has {n} cookies. Can they be packed in boxes of {d} with no cookie left over?",
), yesno_answer))  # fmt: skip


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % p for p in range(2, math.isqrt(n) + 1))


def _prime(inst: Instance, rng: random.Random) -> Fields:
    n = int(inst.operands[0])
    return ("yes" if _is_prime(n) else "no"), {"n": n, "name": rng.choice(NAMES)}


# Every prime from 11 to 1000 and as many odd composites (not multiples of 5), so the answer
# is not "no" by default.
_PRIMES = [n for n in range(11, 1000) if _is_prime(n)]
_ODD_COMPOSITES = [n for n in range(11, 1000) if n % 2 and n % 5 and not _is_prime(n)]

register_family(Family("agent_primes", ("prime",), lambda: [
    Instance("prime", (n,)) for n in sorted(_PRIMES + _ODD_COMPOSITES[: len(_PRIMES)])
], _prime, (
    "Is {n} a prime number?",
    "Is {n} prime? Answer yes or no.",
    "Check whether {n} is prime. Yes or no?",
    "Is {n} divisible only by 1 and itself?",
    "{name} picked the number {n}. Is it a prime number?",
), yesno_answer))  # fmt: skip


def _pick_even(inst: Instance, rng: random.Random) -> Fields:
    values = [int(op) for op in inst.operands]
    gold = next(v for v in values if v % 2 == 0)
    shown = shuffled(rng, values)
    return str(gold), {"a": shown[0], "b": shown[1], "c": shown[2], "name": rng.choice(NAMES)}


# One even number and two odd ones, as a sorted triple (the order shown is drawn per question).
register_family(Family("agent_pick_even", ("pick_even",), lambda: [
    Instance("pick_even", tuple(sorted((e, o1, o2))))
    for e in range(12, 60, 2) for o1 in range(11, 60, 6) for o2 in range(13, 60, 6) if o1 != o2
], _pick_even, (
    "Which of these numbers is even: {a}, {b}, {c}?",
    "Pick the even number among {a}, {b} and {c}.",
    "Find the even one in this list: {a}, {b}, {c}.",
    "Of {a}, {b} and {c}, which is divisible by 2?",
    "{name} has three tickets numbered {a}, {b} and {c}. Which ticket number is even?",
)))  # fmt: skip


_WORDS = (
    "banana", "window", "garden", "pencil", "rocket", "silver", "market", "planet", "button",
    "candle", "forest", "island", "jacket", "ladder", "mirror", "orange", "pillow", "rabbit",
    "saddle", "tunnel", "violin", "wallet", "yellow", "zipper", "anchor", "basket", "castle",
    "dragon", "engine", "falcon",
)  # fmt: skip


def _contains(inst: Instance, rng: random.Random) -> Fields:
    word, letter = str(inst.operands[0]), str(inst.operands[1])
    return ("yes" if letter in word else "no"), {"word": word, "letter": letter}


# For each word, every letter it has and as many letters it lacks, so "yes" and "no" balance.
register_family(Family("agent_has_letter", ("has_letter",), lambda: [
    Instance("has_letter", (w, c)) for w in _WORDS
    for c in sorted(set(w)) + [x for x in "bcdfghkmpqrstvwxz" if x not in w][: len(set(w))]
], _contains, (
    "Does the word '{word}' contain the letter '{letter}'?",
    "Is there a '{letter}' in '{word}'? Answer yes or no.",
    "Check whether '{word}' has the letter {letter} in it. Yes or no?",
    "Does '{letter}' appear in the word {word}?",
    "A password is '{word}'. Does it use the letter '{letter}'?",
), yesno_answer))  # fmt: skip
