"""Extract and normalise the final answer of a reasoning completion.

Self-consistency votes on final answers, so two completions that mean the same answer must map
to the same string. :func:`normalize_answer` gives that canonical string and
:func:`extract_answer` finds the final answer in a completion and returns it normalised. Neither
raises on any text. A small registry maps task names to extractors.

A task may declare **math answers** (:func:`declare_math_answers`): its extractor then maps each
answer to a canonical mathematical form with the ``math-verify`` package
(:func:`math_answer_key`), so ``0.5``, ``1/2``, ``\\frac{1}{2}`` and ``50%`` vote together
(``pip install "t2-agents[math]"``; imported on first use).

Example:
    >>> extract_answer("We add them up. The answer is 1,234.0.")
    '1234'
    >>> get_extractor("syllogism")("So the conclusion holds. Answer: Yes")
    'yes'
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from t2_agents.errors import ConfigError, DependencyError

__all__ = [
    "AnswerExtractor",
    "AnswerKind",
    "MathExtractor",
    "declare_math_answers",
    "extract_answer",
    "get_extractor",
    "math_answer_key",
    "normalize_answer",
    "register_extractor",
    "registered_tasks",
    "same_answer",
]

AnswerKind = Literal["auto", "number", "choice", "yesno", "text"]
"""How :func:`extract_answer` looks for the answer."""

_KINDS: tuple[str, ...] = get_args(AnswerKind)
_MAX_PASSES = 32
_SHORT_TEXT = 40
_EDGE_CHARS = ".,;:!?\"'`\u201c\u201d\u2018\u2019"
_LATEX_WRAP_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|operatorname|boxed|fbox)\s*\{([^{}]*)\}"
)
_LATEX_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_NOISE_RE = re.compile(r"\\[,!;]|\\(?:left|right)(?![A-Za-z])")
_INT = r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)"
_DEC = rf"(?:{_INT}(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_NORM_NUMBER_RE = re.compile(rf"(?<![\w.,+-])[-+]?{_DEC}(?![\w.]|,[0-9])")
_NUMBER_RE = re.compile(rf"(?<![\w.])[-+]?{_DEC}(?:/{_DEC})?")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_RE = re.compile(r"(?i)\banswer\b[*_\s]*(?:is\b[*_\s]*:?|:)[*_\s]*(?P<span>[^\n]*)")
_CHOICE_SPAN_RE = re.compile(r"(?<![A-Za-z])\(?([A-E])\)?(?![A-Za-z])")
_CHOICE_PHRASE_RE = re.compile(r"\b(?i:option|choice)\s*+(?:is\s*+)?(?::\s*+)?\(?([A-E])\b")
_CHOICE_PAREN_RE = re.compile(r"\(([A-E])\)")
_CHOICE_CLOSE_RE = re.compile(r"(?:^|(?<=\s))([A-E])\)")
_YESNO_RE = re.compile(r"(?i)\b(yes|no|true|false)\b")
_YESNO_LEAD_RE = re.compile(r"(?i)^\W*(yes|no|true|false)\b")
_YESNO_MAP = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
_LEADING_EDGE_RE = re.compile(rf"(?:(?!\.[0-9])[{re.escape(_EDGE_CHARS)}]\s*)*")
_BRACE_RE = re.compile(r"[{}]")


class AnswerExtractor(Protocol):
    """Anything that maps a completion to its normalised final answer, or None.

    Example:
        >>> extractor: AnswerExtractor = lambda text: extract_answer(text, kind="number")
        >>> extractor("x = 7")
        '7'
    """

    def __call__(self, text: str, /) -> str | None:
        """Return the normalised final answer of ``text``, or None if it has none."""
        ...


def normalize_answer(text: str) -> str:
    """Return the canonical form of an answer, used to compare answers for equality.

    Strips whitespace, surrounding punctuation and quotes, ``$``, ``\\(...\\)``, ``\\text{}``
    and similar LaTeX wrappers; lowercases; removes thousands separators and canonicalises
    numbers (``"12.0"`` -> ``"12"``, ``"-0"`` -> ``"0"``, ``"1.5e3"`` -> ``"1500"``, exponents
    of 100 or more stay scientific, so a number grows by at most 100 digits); collapses
    whitespace. Fractions and comma-separated lists are kept. Never raises, and takes time
    linear in the length of ``text``. Idempotent for any text whose LaTeX markup and
    ``\\(...\\)`` delimiters nest fewer than 32 levels deep; deeper nesting is unwrapped
    32 levels per call (the cap that keeps the cost linear).

    Args:
        text: A raw answer string.

    Returns:
        The canonical string; empty if nothing is left.

    Example:
        >>> normalize_answer(" $\\\\text{1,234.50}$. ")
        '1234.5'
    """
    current = text
    for _ in range(_MAX_PASSES):
        following = _normalize_pass(current)
        if following == current:
            break
        current = following
    return current


def _normalize_pass(text: str) -> str:
    text = text.replace("\\$", "").replace("$", "").replace("\u2212", "-")
    text = _LATEX_NOISE_RE.sub("", text)
    text = _LATEX_FRAC_RE.sub(r"\1/\2", text)
    text = _LATEX_WRAP_RE.sub(r"\1", text)
    text = _strip_edges(" ".join(text.split()))
    for opening, closing in (("\\(", "\\)"), ("\\[", "\\]")):
        if len(text) >= 4 and text.startswith(opening) and text.endswith(closing):
            text = text[2:-2]
    return _NORM_NUMBER_RE.sub(lambda match: _canonical_number(match.group()), text.lower())


def _strip_edges(text: str) -> str:
    # One regex match instead of stripping a character at a time (quadratic on long runs).
    text = text.strip().rstrip(_EDGE_CHARS).strip()
    match = _LEADING_EDGE_RE.match(text)
    return text[match.end() :] if match else text


def _canonical_number(token: str) -> str:
    if "/" in token:
        return "/".join(_canonical_number(part) for part in token.split("/"))
    token = token.replace(",", "").replace("\u2212", "-").lower()
    mantissa, _, exponent = token.partition("e")
    sign = "-" if mantissa.startswith("-") else ""
    whole, _, fraction = mantissa.lstrip("+-").partition(".")
    digits = _shifted(whole, fraction, exponent)
    return "0" if digits == "0" else sign + digits


def _shifted(whole: str, fraction: str, exponent: str) -> str:
    power = exponent.lstrip("+-").lstrip("0")
    negative = exponent.startswith("-")
    if len(power) > 2:
        plain = _plain(whole, fraction)
        return "0" if plain == "0" else f"{plain}e{'-' if negative else ''}{power}"
    point = len(whole) + int(power or "0") * (-1 if negative else 1)
    digits = whole + fraction
    if point < 0:
        digits, point = "0" * -point + digits, 0
    digits = digits.ljust(point, "0")
    return _plain(digits[:point], digits[point:])


def _plain(whole: str, fraction: str) -> str:
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def extract_answer(text: str, *, kind: AnswerKind = "auto") -> str | None:
    """Find the final answer in a completion and return it normalised.

    ``"auto"`` tries, in order: the last ``\\boxed{...}``, the last ``Answer: X`` /
    ``the answer is X`` line, the whole text if it is one short line (<= 40 characters), then
    the last number. ``"number"``, ``"choice"`` (letters A-E, returned lowercased like every
    normalised answer), ``"yesno"`` (true/false map to yes/no) and ``"text"`` restrict the
    search to one kind of answer.

    Args:
        text: The completion. Any value is accepted; non-strings give None.
        kind: The kind of answer to look for.

    Returns:
        The normalised answer, or None if no answer is found.

    Raises:
        ConfigError: ``kind`` is not one of the :data:`AnswerKind` values.

    Example:
        >>> extract_answer("so x = \\\\boxed{\\\\frac{3}{4}}")
        '3/4'
        >>> extract_answer("I pick (B) because ...", kind="choice")
        'b'
    """
    if kind not in _KINDS:
        raise ConfigError(f"kind={kind!r} is not a known answer kind; pass one of {_KINDS}")
    if not isinstance(text, str) or not text.strip():
        return None
    return _KIND_FUNCTIONS[kind](text)


def _finish(text: str | None) -> str | None:
    if text is None:
        return None
    answer = normalize_answer(text)
    # Garbage such as "\x00\ufffd}{]]" (no letter or digit in any script) is not an answer: it
    # must not vote.
    return answer if any(ch.isalnum() for ch in answer) else None


def _last_boxed(text: str) -> str | None:
    starts = [match.end() for match in _BOXED_RE.finditer(text)]
    if not starts:
        return None
    closing = _closing_braces(text)
    for start in reversed(starts):
        end = closing.get(start - 1)
        if end is not None:
            return text[start:end]
    return None


def _closing_braces(text: str) -> dict[int, int]:
    """Map the index of every balanced ``{`` to the index of its ``}``, in one pass."""
    pairs: dict[int, int] = {}
    opened: list[int] = []
    for match in _BRACE_RE.finditer(text):
        if match.group() == "{":
            opened.append(match.start())
        elif opened:
            pairs[opened.pop()] = match.start()
    return pairs


def _answer_span(text: str) -> str | None:
    for match in reversed(list(_ANSWER_RE.finditer(text))):
        span = match.group("span").strip().strip("*").strip()
        if normalize_answer(span):
            return span
    return None


def _spans(text: str) -> list[str]:
    return [span for span in (_last_boxed(text), _answer_span(text)) if span is not None]


def _last_number(text: str) -> str | None:
    tokens = _NUMBER_RE.findall(normalize_answer(text))
    return _canonical_number(tokens[-1]) if tokens else None


def _extract_auto(text: str) -> str | None:
    for span in _spans(text):
        if answer := _finish(span):
            return answer
    stripped = text.strip()
    if "\n" not in stripped and len(stripped) <= _SHORT_TEXT:
        # "17 * 23 = 391." answers with its right-hand side; a short text with a number in it
        # ("It is 12 apples") answers with the number; other short texts ("Paris") are the answer.
        short = stripped.rsplit("=", 1)[-1]
        number = _last_number(short)
        if number is not None and number != normalize_answer(short):
            return _finish(number)
        if answer := _finish(short):
            return answer
    return _finish(_last_number(text))


def _extract_number(text: str) -> str | None:
    for source in [*_spans(text), text]:
        if (number := _last_number(source)) is not None:
            return _finish(number)
    return None


def _extract_choice(text: str) -> str | None:
    for span in _spans(text):
        if match := _CHOICE_SPAN_RE.search(span):
            return _finish(match.group(1))
        if (single := normalize_answer(span).strip("()")) in {"a", "b", "c", "d", "e"}:
            return single
    for pattern in (_CHOICE_PHRASE_RE, _CHOICE_PAREN_RE, _CHOICE_CLOSE_RE):
        if found := pattern.findall(text):
            return _finish(found[-1])
    whole = normalize_answer(text).strip("()")
    return whole if whole in {"a", "b", "c", "d", "e"} else None


def _extract_yesno(text: str) -> str | None:
    for span in _spans(text):
        if match := _YESNO_RE.search(span):
            return _YESNO_MAP[match.group(1).lower()]
    if match := _YESNO_LEAD_RE.search(text):
        return _YESNO_MAP[match.group(1).lower()]
    found = _YESNO_RE.findall(text)
    return _YESNO_MAP[found[-1].lower()] if found else None


def _extract_text(text: str) -> str | None:
    for span in _spans(text):
        if answer := _finish(span):
            return answer
    return _finish(text)


_KIND_FUNCTIONS: dict[str, Callable[[str], str | None]] = {
    "auto": _extract_auto,
    "number": _extract_number,
    "choice": _extract_choice,
    "yesno": _extract_yesno,
    "text": _extract_text,
}


@dataclass(frozen=True)
class _KindExtractor:
    kind: AnswerKind

    def __call__(self, text: str, /) -> str | None:
        return extract_answer(text, kind=self.kind)


_MATH_LIMIT = 64  # longer answers are not parsed (bounds math-verify's time without a timer)
_LATEX_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_LETTER_RE = re.compile(r"[A-Za-z]")
_MATH_HINT = 'math answers need the math-verify package: pip install "t2-agents[math]"'


def math_answer_key(answer: str) -> str:
    """The canonical form of a mathematical answer: equivalent answers get the same key.

    The normalised answer (:func:`normalize_answer`) is parsed with ``math-verify`` (its LaTeX
    and expression grammars) into a sympy expression; a number becomes an exact rational
    (``0.5``, ``1/2``, ``2/4``, ``\\frac{1}{2}`` and ``50%`` all give ``"1/2"``), anything else
    sympy's printed form (sets: ``"{1, 2}"``). Answers with letters outside LaTeX commands
    (``"yes"``, ``"x+1"``: symbols would be guesses), longer than 64 characters or that do not
    parse keep their normalised text. Never raises on odd text.

    Raises:
        DependencyError: ``math-verify`` is not installed (the message says how to install it).

    Example:
        >>> [math_answer_key(a) for a in ("0.5", "1/2", "\\\\frac{1}{2}", "50%", "yes")]
        ['1/2', '1/2', '1/2', '1/2', 'yes']
    """
    text = normalize_answer(answer)
    if not text or len(text) > _MATH_LIMIT or _LETTER_RE.search(_LATEX_COMMAND_RE.sub("", text)):
        return text
    parse, sympy = _math_verify()
    try:
        parsed = parse(f"${text}$", parsing_timeout=None)
        expr = next((item for item in parsed if isinstance(item, sympy.Basic)), None)
        if expr is None:
            return text
        value = expr.doit()
        if value.is_number:
            value = sympy.nsimplify(value, rational=True)
        return str(value)
    except Exception:  # a grammar corner math-verify or sympy chokes on: keep the text
        return text


def _math_verify() -> tuple[Callable[..., list[object]], Any]:
    try:
        import math_verify.parser as mv_parser
        import sympy
        from math_verify import parse
    except ImportError as exc:
        raise DependencyError(f"{_MATH_HINT} ({exc})") from exc
    # Inputs are at most _MATH_LIMIT characters, so no timer is needed: math-verify's timer uses
    # SIGALRM, which fails outside the main thread (graph nodes run in worker threads); this
    # flag only silences its one-time warning about running without one.
    mv_parser.TIMEOUT_WARNING_SHOWN = True
    return parse, sympy


@dataclass(frozen=True)
class MathExtractor:
    """The extractor of a task with math answers: the final answer, then its math key.

    Example:
        >>> MathExtractor()("Half of it, so the answer is \\\\frac{2}{4}.")
        '1/2'
    """

    kind: AnswerKind = "auto"
    """How the final answer is found first (:func:`extract_answer`)."""

    def __call__(self, text: str, /) -> str | None:
        """The canonical math key of the completion's final answer, or None."""
        answer = extract_answer(text, kind=self.kind)
        return None if answer is None else math_answer_key(answer)


def declare_math_answers(task: str, *, kind: AnswerKind = "auto") -> None:
    """Declare that ``task`` has math answers: register a :class:`MathExtractor` for it.

    Its votes then merge equivalent answers, and :func:`same_answer` (the grader's first test)
    compares gold answers the same way.

    Example:
        >>> declare_math_answers("my_math_task")
        >>> get_extractor("my_math_task")("The answer is 0.50")
        '1/2'
    """
    if kind not in _KINDS:
        raise ConfigError(f"kind={kind!r} is not a known answer kind; pass one of {_KINDS}")
    register_extractor(task, MathExtractor(kind))


def same_answer(answer: str, gold: str, *, task: str | None = None) -> bool:
    """Whether two answers are the same: equal normalised, or equal math keys for a math task.

    Example:
        >>> same_answer("0.5", "1/2"), same_answer("0.5", "1/2", task="my_math_task")
        (False, True)
    """
    if normalize_answer(answer) == normalize_answer(gold):
        return True
    if task is None or not isinstance(get_extractor(task), MathExtractor):
        return False
    return math_answer_key(answer) == math_answer_key(gold)


_DEFAULT_EXTRACTOR: AnswerExtractor = _KindExtractor("auto")
_REGISTRY: dict[str, AnswerExtractor] = {}


def register_extractor(task: str, extractor: AnswerExtractor) -> None:
    """Register the extractor used for ``task``, replacing any earlier one.

    Args:
        task: The task name, e.g. a reasoning-gym dataset name.
        extractor: A callable mapping a completion to its normalised answer or None.

    Raises:
        ConfigError: ``task`` is empty or ``extractor`` is not callable.

    Example:
        >>> register_extractor("my_task", lambda text: extract_answer(text, kind="choice"))
        >>> get_extractor("my_task")("Answer: (C)")
        'c'
    """
    if not isinstance(task, str) or not task.strip():
        raise ConfigError(f"task={task!r} is not a task name; pass a non-empty string")
    if not callable(extractor):
        raise ConfigError(
            f"extractor={extractor!r} is not callable; pass a function (text: str) -> str | None"
        )
    _REGISTRY[task] = extractor


_FAMILY_PREFIX = "agent_"
"""Task names of :mod:`t2_agents.families` start with it (a test checks ``FAMILY_PREFIX``)."""


def get_extractor(task: str | None = None) -> AnswerExtractor:
    """Return the extractor registered for ``task``, or the ``"auto"`` default.

    Args:
        task: The task name; None or an unregistered name give the default.

    Returns:
        The extractor.

    Example:
        >>> get_extractor("lcm")("The LCM is 12, so the answer is 36.")
        '36'
    """
    if task is None:
        return _DEFAULT_EXTRACTOR
    if task not in _REGISTRY and task.startswith(_FAMILY_PREFIX):
        # The agent-phrased families register their extractors when their module loads; a graph
        # or endpoint that names one (t2.task="agent_logic") may not have imported it yet.
        importlib.import_module("t2_agents.families")
    return _REGISTRY.get(task, _DEFAULT_EXTRACTOR)


def registered_tasks() -> tuple[str, ...]:
    """The task names with a registered answer extractor, sorted (the agent families included).

    Example:
        >>> {"products", "syllogism", "agent_logic"} <= set(registered_tasks())
        True
    """
    importlib.import_module("t2_agents.families")  # registers the families' extractors
    return tuple(sorted(_REGISTRY))


def _register_defaults() -> None:
    numeric = (
        "lcm",
        "gcd",
        "products",
        "chain_sum",
        "basic_arithmetic",
        "leg_counting",
        "decimal_arithmetic",
        "power_function",
        "count_bits",
        "aiw",
        "simple_equations",
    )
    for task in numeric:
        register_extractor(task, _KindExtractor("number"))
    register_extractor("syllogism", _KindExtractor("yesno"))


_register_defaults()
