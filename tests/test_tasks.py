"""Tests of t2_agents.tasks: reasoning-gym tasks, JSONL files and their graders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from t2_agents.errors import ConfigError, DataError
from t2_agents.tasks import (
    DEFAULT_INSTRUCTION,
    Question,
    _expression_instance,
    load_jsonl,
    load_task,
    question_key,
)


# ------------------------------------------------------------------------------ load_task
def test_load_task_ids_prompts_and_grading() -> None:
    questions = load_task("lcm", size=3, seed=7)
    assert [q.id for q in questions] == ["lcm-7-0", "lcm-7-1", "lcm-7-2"]
    for q in questions:
        assert q.task == "lcm"
        assert q.prompt.endswith(DEFAULT_INSTRUCTION)
        assert q.text in q.prompt
        assert q.is_correct(q.gold)
        assert q.is_correct(f" {q.gold}. ")  # normalised match
        assert not q.is_correct(str(int(q.gold) + 1))
        assert not q.is_correct(None)
        assert q.extract(f"So the answer is {q.gold}.") == q.gold


def test_load_task_is_deterministic_and_seeded() -> None:
    a = load_task("lcm", size=4, seed=3)
    b = load_task("lcm", size=4, seed=3)
    c = load_task("lcm", size=4, seed=4)
    assert [(q.text, q.gold) for q in a] == [(q.text, q.gold) for q in b]
    assert [q.text for q in a] != [q.text for q in c]


def test_growing_size_keeps_the_first_questions() -> None:
    small = load_task("lcm", size=5, seed=0)
    large = load_task("lcm", size=8, seed=0)
    assert [q.text for q in large[:5]] == [q.text for q in small]


def test_custom_instruction() -> None:
    (q,) = load_task("lcm", size=1, seed=0, instruction="Answer: <n>.")
    assert q.prompt.endswith("Answer: <n>.")
    assert DEFAULT_INSTRUCTION not in q.prompt


def test_syllogism_lowercase_yes_is_correct() -> None:
    questions = load_task("syllogism", size=6, seed=0)
    yes = [q for q in questions if q.gold == "Yes"]
    assert yes, "expected at least one 'Yes' question among the first six"
    q = yes[0]
    answer = q.extract("Both premises hold, so the conclusion follows. Answer: yes")
    assert answer == "yes"
    assert q.is_correct(answer)
    assert not q.is_correct("no")


def test_unknown_task_is_config_error() -> None:
    with pytest.raises(ConfigError, match="no_such_task_xyz"):
        load_task("no_such_task_xyz", size=2, seed=0)


def test_bad_task_options_are_config_error() -> None:
    with pytest.raises(ConfigError, match="options"):
        load_task("lcm", size=2, seed=0, config={"not_an_option": 1})


@pytest.mark.parametrize("size", [0, -1, True, 2.0])
def test_bad_size(size: object) -> None:
    with pytest.raises(ConfigError, match="size="):
        load_task("lcm", size=size, seed=0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ question identity
def test_question_key_normalises_case_whitespace_and_unicode() -> None:
    base = question_key("What is 2 + 2?")
    assert base == question_key("what IS  2 +\t2?\n")
    assert base == question_key("  What is 2 + 2?  ")
    assert base == question_key("\uff37hat is \uff12 + 2?")  # fullwidth W and 2 (NFKC)
    assert base == question_key("What\u00a0is 2 + 2?")  # no-break space (NFKC -> space)
    assert len(base) == 16 and int(base, 16) >= 0
    assert base != question_key("What is 2 + 3?")
    assert base != question_key("What is 2 + 2")
    assert base != question_key("Whatis 2 + 2?")  # whitespace collapses, it does not vanish


def test_question_key_is_the_key_of_the_text_not_of_the_id() -> None:
    (a,) = load_task("lcm", size=1, seed=0)
    (b,) = load_task("lcm", size=1, seed=0, instruction="Other instruction.")
    assert a.key == question_key(a.text) == b.key
    assert a.prompt != b.prompt


def test_old_shipped_lcm_data_overlapped_across_seeds() -> None:
    """The old calibration set (lcm, max_value 12, 200 items of seed 1 for training and 50 of
    seed 1001 for testing) repeated questions inside each split and across the two."""
    import reasoning_gym

    def raw_keys(seed: int, size: int) -> list[str]:
        items = reasoning_gym.create_dataset("lcm", size=size, seed=seed, max_value=12)
        return [question_key(str(items[i]["question"])) for i in range(size)]

    train, test = raw_keys(1, 200), raw_keys(1001, 50)
    assert len(set(train)) < 200 and len(set(test)) < 50  # duplicates within each split
    assert set(train) & set(test)  # and test questions that training saw

    # load_task now refuses the impossible size and names how many distinct questions exist
    with pytest.raises(ConfigError, match=r"only \d+ distinct questions") as info:
        load_task("lcm", size=200, seed=1, config={"max_value": 12})
    assert "size=200" in str(info.value)

    # distinct within each split, but seeds still do not separate the splits: compare keys
    a = load_task("lcm", size=100, seed=1, config={"max_value": 12})
    b = load_task("lcm", size=50, seed=1001, config={"max_value": 12})
    by_key = {q.key: q for q in a}
    shared = [q for q in b if q.key in by_key]
    assert len(shared) > 0
    for q in shared:
        assert q.id != by_key[q.key].id
        assert q.text == by_key[q.key].text


@pytest.mark.parametrize(
    ("name", "config", "size"),
    [("lcm", {"max_value": 12}, 144), ("lcm", {"max_value": 6}, 36), ("gcd", {}, 60)],
)
def test_load_task_never_returns_a_duplicate(
    name: str, config: dict[str, object], size: int
) -> None:
    questions = load_task(name, size=size, seed=1, config=config)
    assert len(questions) == size
    assert len({q.key for q in questions}) == size
    assert len({q.id for q in questions}) == size
    # ids keep the item index: skipped repeats leave gaps, indices only grow
    indices = [int(q.id.rsplit("-", 1)[1]) for q in questions]
    assert indices == sorted(indices) and indices[0] == 0


def test_larger_size_extends_a_smaller_one_with_repeats_skipped() -> None:
    config = {"max_value": 12}
    small = load_task("lcm", size=20, seed=1, config=config)
    large = load_task("lcm", size=120, seed=1, config=config)
    assert [q.id for q in large[:20]] == [q.id for q in small]
    assert [q.key for q in large[:20]] == [q.key for q in small]
    assert int(large[-1].id.rsplit("-", 1)[1]) >= 120  # repeats were skipped on the way


def test_too_small_question_space_names_the_distinct_count() -> None:
    # lcm with max_value 4 has 4 x 4 = 16 distinct questions
    with pytest.raises(ConfigError, match=r"only 16 distinct questions.*size=30"):
        load_task("lcm", size=30, seed=1, config={"max_value": 4})
    assert len(load_task("lcm", size=16, seed=1, config={"max_value": 4})) == 16


# ------------------------------------------------------------------------ instance identity
def test_lcm_with_swapped_operands_is_one_instance_but_two_texts() -> None:
    """Issue 19: held-out questions were training questions with the operands swapped."""
    questions = load_task("lcm", size=60, seed=1, config={"max_value": 12})
    by_instance: dict[str, set[str]] = {}
    for q in questions:
        numbers = sorted(int(n) for n in q.text.rsplit(":", 1)[1].split(","))
        assert q.instance == "lcm:" + ",".join(map(str, numbers))
        by_instance.setdefault(q.instance_key, set()).add(q.key)
    assert any(len(keys) == 2 for keys in by_instance.values())  # "a, b" and "b, a"
    assert len(by_instance) < len(questions)


@pytest.mark.parametrize(
    ("name", "config", "pattern"),
    [
        ("gcd", {"max_value": 60}, r"gcd:\d+,\d+"),
        ("products", {"max_digits": 2}, r"mul:-?\d+,-?\d+"),
        ("chain_sum", {"max_digits": 2, "max_terms": 3}, r"sum:(-?\d+,)+-?\d+"),
        ("basic_arithmetic", {"max_digits": 1, "max_terms": 3, "allow_parentheses": False,
                              "operators": ["+", "-", "*"]}, r"(sum|mul|expr):\S+"),
        ("leg_counting", {"min_animals": 1, "max_animals": 2}, r"legs:([a-z ]+=\d+,?)+"),
        ("syllogism", {}, r"syllogism:[a-z ]+,[a-z ]+,[a-z ]+"),
        ("number_format", {}, r"number_format_(largest|smallest):[\d.,e+]+"),
        ("number_sequence", {}, r"sequence:(-?\d+,)+-?\d+"),
    ],
)  # fmt: skip
def test_reasoning_gym_instances_come_from_metadata(
    name: str, config: dict[str, object], pattern: str
) -> None:
    for q in load_task(name, size=8, seed=3, config=config):
        assert re.fullmatch(pattern, q.instance), q.instance
        assert q.instance_key == question_key(q.instance) != q.key
        assert q.template is None


def test_without_an_instance_the_instance_key_is_the_text_key(tmp_path: Path) -> None:
    (aiw,) = load_task("aiw", size=1, seed=0)  # its metadata names no operands
    path = _write(tmp_path / "q.jsonl", [json.dumps({"question": "What is 2+2?", "answer": "4"})])
    (row,) = load_jsonl(path)
    for q in (aiw, row):
        assert q.instance == "" and q.instance_key == q.key


def test_question_key_and_record_keys_are_unchanged() -> None:
    q = Question("x", "lcm", "Find the LCM of 2, 3", "6", instance="lcm:2,3", template=1)
    assert q.key == question_key("Find the LCM of 2, 3")  # records on disk store this key
    assert q.instance_key == question_key("lcm:2,3")


@pytest.mark.parametrize(
    ("expression", "instance"),
    [
        ("7 - 3", "sum:-3,7"),
        ("-3 + 7", "sum:-3,7"),
        ("4 + 1 - 9", "sum:-9,1,4"),
        ("1 - 9 + 4", "sum:-9,1,4"),
        ("12 * 3", "mul:3,12"),
        ("3 * 12", "mul:3,12"),
        ("3 * 4 + 1", "expr:3*4+1"),
        ("(3 + 4) * 2", "expr:(3+4)*2"),
        ("8 / 2", "expr:8/2"),
    ],
)
def test_expression_instances(expression: str, instance: str) -> None:
    assert _expression_instance(expression) == instance


# ------------------------------------------------------------------------------ load_jsonl
def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_jsonl_valid(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "qs.jsonl",
        [
            json.dumps({"id": "a", "question": "What is 2+2?", "answer": "4"}),
            "",
            json.dumps({"question": "Is the sky blue?", "answer": "Yes", "task": "syllogism"}),
            json.dumps({"question": "Café: ½ of 10?", "answer": 5}),
        ],
    )
    questions = load_jsonl(path)
    assert [q.id for q in questions] == ["a", "qs-3", "qs-4"]  # default ids use line numbers
    assert [q.task for q in questions] == ["jsonl", "syllogism", "jsonl"]
    assert questions[0].prompt == f"What is 2+2? {DEFAULT_INSTRUCTION}"
    assert questions[2].text == "Café: ½ of 10?"
    assert questions[2].gold == "5"
    assert questions[0].is_correct("4.0")
    assert not questions[0].is_correct("5")
    assert questions[1].is_correct(questions[1].extract("Answer: yes"))


def test_load_jsonl_task_argument_is_the_default_task(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jsonl", [json.dumps({"question": "q", "answer": "1"})])
    assert load_jsonl(path, task="lcm")[0].task == "lcm"


def test_load_jsonl_reads_instance_and_template(tmp_path: Path) -> None:
    rows = [
        {"question": "What is 3 + 5?", "answer": "8", "instance": "sum:3,5", "template": 0},
        {"question": "Compute 5 plus 3.", "answer": "8", "instance": "sum:3,5"},
    ]
    path = _write(tmp_path / "i.jsonl", [json.dumps(r) for r in rows])
    first, second = load_jsonl(path)
    assert (first.instance, first.template, second.template) == ("sum:3,5", 0, None)
    assert first.instance_key == second.instance_key and first.key != second.key


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("instance", 35, "instance=35"), ("template", -1, "template=-1"),
     ("template", "0", "template='0'"), ("template", True, "template=True")],
)  # fmt: skip
def test_load_jsonl_refuses_a_bad_instance_or_template(
    tmp_path: Path, field: str, value: object, match: str
) -> None:
    row = {"question": "q", "answer": "1", field: value}
    path = _write(tmp_path / "b.jsonl", [json.dumps(row)])
    with pytest.raises(DataError, match=match):
        load_jsonl(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_jsonl(tmp_path / "nope.jsonl")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"question": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(DataError, match="UTF-8"):
        load_jsonl(path)


def test_bad_json_line_names_the_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.jsonl",
        [json.dumps({"question": "q", "answer": "1"}), '{"question": "q2", "answer": '],
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:2 is not valid JSON"):
        load_jsonl(path)


def test_non_object_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "list.jsonl", ['["q", "a"]'])
    with pytest.raises(DataError, match=r"list\.jsonl:1 is not a JSON object"):
        load_jsonl(path)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"question": "q"}, "answer"),
        ({"answer": "1"}, "question"),
        ({"question": "  ", "answer": "1"}, "question"),
        ({"question": "q", "answer": ""}, "answer"),
        ({"question": "q", "answer": None}, "answer"),
    ],
)
def test_missing_or_empty_field(tmp_path: Path, row: dict[str, object], field: str) -> None:
    path = _write(
        tmp_path / "m.jsonl", [json.dumps({"question": "ok", "answer": "1"}), json.dumps(row)]
    )
    with pytest.raises(DataError, match=rf"m\.jsonl:2 has no non-empty '{field}' field"):
        load_jsonl(path)


def test_duplicate_ids(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "dup.jsonl",
        [
            json.dumps({"id": "x", "question": "q1", "answer": "1"}),
            json.dumps({"id": "y", "question": "q2", "answer": "2"}),
            json.dumps({"id": "x", "question": "q3", "answer": "3"}),
        ],
    )
    with pytest.raises(DataError, match="repeats the id 'x'"):
        load_jsonl(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match="holds no questions"):
        load_jsonl(path)


# ------------------------------------------------------------------ hostile files (issue 7)
ROW = json.dumps({"question": "What is 2+2?", "answer": "4"}).encode()
ROW2 = json.dumps({"question": "What is 3+3?", "answer": "6"}).encode()


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbf"
        + ROW
        + b"\n"
        + ROW2
        + b"\n",  # was "Unexpected UTF-8 BOM ... fix that line"
        ROW + b"\r\n" + ROW2 + b"\r\n",
        ROW + b"\r" + ROW2,
        ROW + b"\n\n\r\n" + ROW2,
    ],
    ids=["bom", "crlf", "cr", "blank-lines"],
)
def test_line_endings_and_bom(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "q.jsonl"
    path.write_bytes(content)
    questions = load_jsonl(path)
    assert [(q.text, q.gold) for q in questions] == [("What is 2+2?", "4"), ("What is 3+3?", "6")]
    assert questions[0].id == "q-1"


def test_unicode_line_separators_inside_strings_are_text(tmp_path: Path) -> None:
    # U+2028, U+2029, U+0085, \v and \f may stand unescaped inside JSON strings; str.splitlines()
    # split the line there and the file was rejected as invalid JSON.
    text = "a\u2028b\u2029c\x85d\x0be\x0cf"
    path = tmp_path / "u.jsonl"
    row = json.dumps({"question": text, "answer": "1"}, ensure_ascii=False)
    path.write_text(row + "\n" + ROW.decode() + "\n", encoding="utf-8")
    questions = load_jsonl(path)
    assert [q.text for q in questions] == [text, "What is 2+2?"]
    assert [q.id for q in questions] == ["u-1", "u-2"]


def test_raw_nul_byte_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "nul.jsonl"
    path.write_bytes(ROW + b'\n{"question": "a\x00b", "answer": "1"}\n')
    with pytest.raises(DataError, match=r"nul\.jsonl:2 is not valid JSON \(Invalid control"):
        load_jsonl(path)


def test_escaped_nul_is_kept_as_text(tmp_path: Path) -> None:
    path = tmp_path / "nul.jsonl"
    path.write_bytes(b'{"question": "a\\u0000b", "answer": "1"}\n')
    (question,) = load_jsonl(path)
    assert question.text == "a\x00b" and question.prompt.startswith("a\x00b ")


def test_ten_megabyte_line(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"question": "x" * 10_000_000, "answer": "1"}) + "\n")
    (question,) = load_jsonl(path)
    assert len(question.text) == 10_000_000 and question.gold == "1"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b'{"question": ' + b"[" * 100_000 + b"]" * 100_000 + b', "answer": "1"}',
         r"b\.jsonl:1 is not valid JSON \(maximum recursion depth"),  # was a bare RecursionError
        (b'{"question": "q", "answer": NaN}', r"b\.jsonl:1 is not valid JSON \(NaN is not JSON"),
        (b'{"question": "q", "answer": -Infinity}', r"-Infinity is not JSON"),
        (b'{"question": {"text": "q"}, "answer": "1"}', r"JSON object as 'question'"),
        (b'{"question": "q", "answer": [1, 2]}', r"JSON array as 'answer'"),
        (b'{"question": "a\\ud800b", "answer": "1"}',
         r"b\.jsonl:1 has a lone surrogate in 'question' \('\\ud800' at character 1\)"),
    ],
    ids=["deep", "nan", "infinity", "object", "array", "lone-surrogate"],
)  # fmt: skip
def test_hostile_lines(tmp_path: Path, line: bytes, match: str) -> None:
    path = tmp_path / "b.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(DataError, match=match):
        load_jsonl(path)


def test_surrogate_pairs_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "emoji.jsonl"
    path.write_bytes(b'{"question": "smile \\ud83d\\ude00", "answer": "1"}\n')
    assert load_jsonl(path)[0].text == "smile \U0001f600"
