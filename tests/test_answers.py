"""Tests of t2_agents.answers: extraction, normalisation and the extractor registry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2_agents.answers import (
    AnswerKind,
    extract_answer,
    get_extractor,
    normalize_answer,
    register_extractor,
)
from t2_agents.errors import ConfigError

KINDS: tuple[AnswerKind, ...] = ("auto", "number", "choice", "yesno", "text")
ANSWERISH = st.text(
    alphabet=st.sampled_from(list("0123456789,.-+/ $\\{}()abAB:;!?'\"\n\t")), max_size=40
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12.0", "12"),
        ("012", "12"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("1.50", "1.5"),
        ("+3", "3"),
        (".5", "0.5"),
        ("3/4", "3/4"),
        ("1, 2, 3", "1, 2, 3"),
        ("1,234", "1234"),
        ("1,234,567.000", "1234567"),
        ("1,23", "1,23"),
        (" 42. ", "42"),
        ('"Hello   World!"', "hello world"),
        ("$x + 1$", "x + 1"),
        ("\\(x\\)", "x"),
        ("\\text{Paris}", "paris"),
        ("5 \\text{ apples}", "5 apples"),
        ("\\mathrm{}", ""),
        ("\\frac{3}{4}", "3/4"),
        ("\u22125", "-5"),
        ("1.50E+03", "1500"),
        ("2.5e-3", "0.0025"),
        ("1e100", "1e100"),
        ("-0.0e-7", "0"),
        ("", ""),
        ("...", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{\\frac{1}{2}} wins", "1/2"),
        ("\\boxed{1} then \\boxed{{a}+{b}}", "{a}+{b}"),
        ("\\boxed{unclosed and Answer: 7", "7"),
        ("Answer: 1,234.", "1234"),
        ("Work...\nFinal answer: 9\nThanks", "9"),
        ("Thus the answer is 12.0", "12"),
        ("**Answer:** 42", "42"),
        ("Paris", "paris"),
        ("We had 3 apples and ate 2 of them, so there is 1 apple left over now.", "1"),
        ("No numbers or answer marker in this rather long piece of prose.", None),
        ("", None),
        ("   \n ", None),
    ],
)
def test_extract_auto(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The total is 1,234 so the answer is 1,234.", "1234"),
        ("Answer: x = -3.50 (checked 4 times)", "4"),
        ("\\boxed{\\dfrac{3}{4}} after 9 steps", "3/4"),
        ("The temperature falls from 3 to -7 degrees.", "-7"),
        ("It is 3/4 of 8", "8"),
        ("so x = 1.7574e-22.", "0.00000000000000000000017574"),
        ("no digits here", None),
    ],
)
def test_extract_number(text: str, expected: str | None) -> None:
    assert extract_answer(text, kind="number") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I pick (B) since A is wrong.", "b"),
        ("B) is right", "b"),
        ("So the answer is C.", "c"),
        ("Answer: D", "d"),
        ("\\boxed{E}", "e"),
        ("A", "a"),
        ("I am not sure at all", None),
    ],
)
def test_extract_choice(text: str, expected: str | None) -> None:
    assert extract_answer(text, kind="choice") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("No, because the premise fails.", "no"),
        ("The statement is true.", "yes"),
        ("Answer: False", "no"),
        ("It does not follow. Answer: No", "no"),
        ("maybe", None),
    ],
)
def test_extract_yesno(text: str, expected: str | None) -> None:
    assert extract_answer(text, kind="yesno") == expected


def test_extract_text() -> None:
    assert extract_answer("Blah.\nAnswer: New York.", kind="text") == "new york"
    assert extract_answer("  Just This  ", kind="text") == "just this"


def test_extract_rejects_unknown_kind() -> None:
    with pytest.raises(ConfigError, match="kind="):
        extract_answer("1", kind="nope")  # type: ignore[arg-type]


def test_extract_non_string_gives_none() -> None:
    assert extract_answer(None) is None  # type: ignore[arg-type]


def test_registry_defaults_and_fallback() -> None:
    assert get_extractor("lcm")("The lcm of 4 and 6 is 12.") == "12"
    assert get_extractor("syllogism")("Answer: Yes") == "yes"
    assert get_extractor(None)("Answer: Paris") == "paris"
    assert get_extractor("unregistered-task")("Answer: 5") == "5"


def test_register_extractor() -> None:
    register_extractor("test-task", lambda text: "fixed")
    assert get_extractor("test-task")("anything") == "fixed"
    with pytest.raises(ConfigError, match="task="):
        register_extractor("  ", lambda text: None)
    with pytest.raises(ConfigError, match="extractor="):
        register_extractor("x", "not callable")  # type: ignore[arg-type]


@settings(max_examples=500)
@given(st.text() | ANSWERISH)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once


@settings(max_examples=300)
@given(st.text() | ANSWERISH, st.sampled_from(KINDS))
def test_extract_never_raises(text: str, kind: AnswerKind) -> None:
    answer = extract_answer(text, kind=kind)
    assert answer is None or (isinstance(answer, str) and answer != "")
    if answer is not None:
        assert normalize_answer(answer) == answer
