"""Tests of t2_agents.families: agent-phrased question families and identity by instance."""

from __future__ import annotations

import random
import re
from collections import defaultdict

import pytest

from t2_agents.answers import get_extractor
from t2_agents.errors import ConfigError, DataError
from t2_agents.families import (
    FAMILY_PREFIX,
    Family,
    Instance,
    family_names,
    generate_family,
    get_family,
    register_family,
)
from t2_agents.tasks import DEFAULT_INSTRUCTION, Question, load_task

FAMILIES = family_names()
_NUMBER_RE = re.compile(r"\d+")


def test_at_least_ten_families_with_four_templates_each() -> None:
    assert len(FAMILIES) >= 10
    for name in FAMILIES:
        assert name.startswith(FAMILY_PREFIX)
        assert len(get_family(name).templates) >= 4, name


@pytest.mark.parametrize("name", FAMILIES)
def test_every_template_phrases_gold_answers_its_grader_accepts(name: str) -> None:
    family = get_family(name)
    questions = generate_family(name, size=8 * len(family.templates), seed=11)
    assert {q.template for q in questions} == set(range(len(family.templates)))
    for q in questions:
        assert q.task == name and q.prompt == f"{q.text} {DEFAULT_INSTRUCTION}"
        assert q.instance.split(":", 1)[0] in family.kinds
        assert q.is_correct(q.gold)
        assert q.is_correct(q.extract(f"Let me think. The answer is {q.gold}."))
        assert q.is_correct(q.extract(q.gold))
        assert not q.is_correct(q.extract("The answer is 1234567."))
        assert get_extractor(name) is family.extractor  # registered for the task name


@pytest.mark.parametrize("name", FAMILIES)
def test_deterministic_distinct_and_extendable(name: str) -> None:
    a = generate_family(name, size=40, seed=3)
    b = generate_family(name, size=40, seed=3)
    assert [(q.id, q.text, q.gold, q.instance) for q in a] == [
        (q.id, q.text, q.gold, q.instance) for q in b
    ]
    assert len({q.instance_key for q in a}) == 40  # no instance twice in one call
    assert [q.id for q in a[:3]] == [f"{name}-3-0", f"{name}-3-1", f"{name}-3-2"]
    assert [q.text for q in generate_family(name, size=10, seed=3)] == [q.text for q in a[:10]]
    assert [q.text for q in generate_family(name, size=40, seed=4)] != [q.text for q in a]


def test_a_call_can_use_the_whole_instance_space() -> None:
    space = len(get_family("agent_weekdays").space())
    questions = generate_family("agent_weekdays", size=space, seed=0)
    assert len({q.instance for q in questions}) == space


@pytest.mark.parametrize(
    ("name", "kinds"),
    [("agent_arithmetic", {"mul"}), ("agent_gcd_lcm", {"gcd", "lcm"}), ("agent_compare", None)],
)
def test_symmetric_operands_give_one_instance_in_any_order(
    name: str, kinds: set[str] | None
) -> None:
    """The text shows the operands in either order; the instance holds them sorted."""
    orders: dict[str, set[tuple[int, ...]]] = defaultdict(set)
    for seed in range(4):
        for q in generate_family(name, size=150, seed=seed):
            kind, operands = q.instance.split(":")
            if kinds is None or kind in kinds:
                shown = tuple(int(n) for n in _NUMBER_RE.findall(q.text))
                values = tuple(int(v) for v in operands.split(","))
                assert sorted(shown) == list(values)
                orders[q.instance].add(shown)
    assert any(len(shown) > 1 for shown in orders.values())  # both orders seen, one instance
    a, b = (Question(x, name, t, "1", instance=i) for x, t, i in [("a", "A", "k"), ("b", "B", "k")])
    assert a.instance_key == b.instance_key and a.key != b.key


def test_subtraction_is_a_sum_and_keeps_its_order() -> None:
    questions = generate_family("agent_arithmetic", size=300, seed=1)
    subs = [q for q in questions if q.instance.startswith("sum:-")]
    assert subs
    for q in subs:
        big, small = (int(n) for n in _NUMBER_RE.findall(q.text))
        assert q.instance == Instance("sum", (-small, big)).key and q.gold == str(big - small)


def test_same_instance_across_phrasings_and_sources() -> None:
    by_template = {
        k: generate_family("agent_gcd_lcm", size=40, seed=5, templates=[k]) for k in range(3)
    }
    assert [q.instance for q in by_template[0]] == [q.instance for q in by_template[2]]
    assert [q.text for q in by_template[0]] != [q.text for q in by_template[2]]
    # a reasoning-gym lcm item and the family's phrasing of the same operands share an instance
    (rg,) = load_task("lcm", size=1, seed=1, config={"max_value": 30})  # LCM of 25, 15
    own = [
        q for q in generate_family("agent_gcd_lcm", size=1482, seed=0) if q.instance == rg.instance
    ]
    assert len(own) == 1 and own[0].instance_key == rg.instance_key and own[0].key != rg.key


def test_templates_and_exclude_select_phrasings_and_instances() -> None:
    held = generate_family("agent_rates", size=10, seed=2, templates=[3, 4])
    assert [q.template for q in held] == [3, 4] * 5
    first = generate_family("agent_rates", size=10, seed=2)
    rest = generate_family("agent_rates", size=10, seed=2, exclude={q.instance for q in first})
    assert not {q.instance for q in first} & {q.instance for q in rest}


# ------------------------------------------------------------------------------ bad input
def test_unknown_family_lists_the_names() -> None:
    with pytest.raises(ConfigError, match=r"'agent_nope'.*agent_arithmetic"):
        generate_family("agent_nope", size=1, seed=0)


def test_size_above_the_instance_space_names_the_limit() -> None:
    with pytest.raises(ConfigError, match=r"size=421 is above the 420 .*at most 420"):
        generate_family("agent_weekdays", size=421, seed=0)
    excluded = {q.instance for q in generate_family("agent_weekdays", size=400, seed=0)}
    with pytest.raises(ConfigError, match=r"above the 20 .*\(400 excluded\)"):
        generate_family("agent_weekdays", size=21, seed=0, exclude=excluded)


@pytest.mark.parametrize("size", [0, -3, True, 1.5])
def test_bad_size(size: object) -> None:
    with pytest.raises(ConfigError, match="size="):
        generate_family("agent_rates", size=size, seed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("templates", [[], [9], [0, 0], [True], [-1]])
def test_bad_templates_name_the_range(templates: list[int]) -> None:
    with pytest.raises(ConfigError, match=r"templates=.*in 0\.\.4"):
        generate_family("agent_rates", size=2, seed=0, templates=templates)


def _weekday_render(inst: Instance, rng: random.Random) -> tuple[str, dict[str, object]]:
    return "Friday", {"n": inst.operands[0]}


def _bad(name: str = "agent_test_bad", **changes: object) -> Family:
    parts: dict[str, object] = {
        "name": name,
        "kinds": ("test_kind",),
        "space": lambda: [Instance("test_kind", (n,)) for n in range(5)],
        "render": lambda inst, rng: (str(inst.operands[0]), {"n": inst.operands[0]}),
        "templates": ("What is {n}?", "Say {n}.", "Find {n}.", "What's {n}?"),
    }
    return Family(**{**parts, **changes})  # type: ignore[arg-type]


def test_a_valid_custom_family_generates() -> None:
    golds = [q.gold for q in generate_family(_bad(), size=5, seed=0)]
    assert sorted(golds) == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("family", "error", "match"),
    [
        (_bad(render=_weekday_render), DataError, r"gold 'Friday' .* fails the family's own"),
        (_bad(templates=("What is {m}?",)), DataError, r"template 0 names the field 'm'"),
        (_bad(space=lambda: [Instance("test_kind", (1,))] * 2), DataError, "repeats"),
        (_bad(space=lambda: [Instance("other", (1,))]), DataError, "outside its kinds"),
        (_bad(kinds=("lcm",)), ConfigError, r"kind \['lcm'\], as family 'agent_gcd_lcm'"),
        (_bad(kinds=("test_kind", "k2"), templates=({"test_kind": "{n}"},)), ConfigError, "'k2'"),
    ],
    ids=["gold-fails-grader", "missing-field", "repeated-instance", "foreign-kind",
         "shared-kind", "template-misses-kind"],
)  # fmt: skip
def test_broken_families_are_refused(family: Family, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        generate_family(family, size=2, seed=0)


def test_registering_a_clashing_family_is_refused_and_changes_nothing() -> None:
    before = family_names()
    with pytest.raises(ConfigError, match="must not produce the same instance"):
        register_family(_bad(kinds=("sum",)))
    with pytest.raises(ConfigError, match="is taken or lacks the prefix"):
        register_family(_bad(name="agent_rates"))
    with pytest.raises(ConfigError, match="lacks the prefix 'agent_'"):
        register_family(_bad(name="rates2"))
    assert family_names() == before


# ------------------------------------------------------------------------------ load_task
def test_load_task_accepts_family_names() -> None:
    questions = load_task("agent_shopping", size=4, seed=9, instruction="Answer: <n>.")
    assert questions == generate_family(
        "agent_shopping", size=4, seed=9, instruction="Answer: <n>."
    )
    assert all(q.prompt.endswith("Answer: <n>.") for q in questions)
    held = load_task("agent_shopping", size=4, seed=9, config={"templates": [4]})
    assert {q.template for q in held} == {4}


def test_load_task_family_errors() -> None:
    with pytest.raises(ConfigError, match=r"'agent_typo'.*\['agent_arithmetic'"):
        load_task("agent_typo", size=2, seed=0)
    with pytest.raises(ConfigError, match=r"\['max_value'\].*only family option is 'templates'"):
        load_task("agent_rates", size=2, seed=0, config={"max_value": 3})
    with pytest.raises(ConfigError, match=r"no_such_task.*agent family: agent_arithmetic"):
        load_task("no_such_task", size=2, seed=0)


def test_weekday_extractor() -> None:
    extract = get_extractor("agent_weekdays")
    assert extract("Friday") == "friday"
    assert extract("Today is Monday, so in 3 days it is Thursday.") == "thursday"
    assert extract("The answer is Sunday (Monday + 6).") == "sunday"
    assert extract("It will be 5 days later.") is None


def test_counting_reads_count_words() -> None:
    extract = get_extractor("agent_counting")
    assert extract('The letter "r" appears twice in the word "letter".') == "2"
    assert extract("There are six fruits.") == "6"
    assert extract("It appears 3 times.") == "3"


def test_a_family_extractor_resolves_without_importing_families_first() -> None:
    """The graph and the endpoint resolve ``task="agent_..."`` through answers alone."""
    import subprocess
    import sys

    from t2_agents import answers, families

    assert answers._FAMILY_PREFIX == families.FAMILY_PREFIX
    code = (
        "from t2_agents.answers import get_extractor\n"
        "print(get_extractor('agent_logic')('No, the alarm does not ring.'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "no", out.stderr
