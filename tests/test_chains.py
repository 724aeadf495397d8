"""t2_agents/agents/chains.py and t2_agents/families/_chains.py: multi-step runs (issue 21)."""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t2_agents.agents.chains import PlanStep, build_chain_graph, plan_of, run_chain
from t2_agents.backends.base import Completion, SamplingParams
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.errors import ConfigError, DataError
from t2_agents.families import (
    PREVIOUS,
    Chain,
    Instance,
    chain_kinds,
    generate_chains,
    phrase_instance,
)
from t2_agents.graph import (
    CostLedger,
    RunBudget,
    ThinkingContext,
    build_parallel_thinking_graph,
)
from t2_agents.tasks import DEFAULT_INSTRUCTION

_USER_RE = re.compile(r"<\|user\|>(.*)<\|assistant\|>", re.S)


class _Solver(FakeEngine):
    """Answers every step right, except prompts containing ``wrong``: those get ``wrong[...]``."""

    def __init__(self, answers: dict[str, str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.answers = answers

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        out = super().sample(prompts, n, params)
        fixed = []
        for prompt, paths in zip(prompts, out, strict=True):
            match = _USER_RE.search(str(prompt))
            question = match.group(1) if match else str(prompt)
            answer = self.answers.get(question, "0")
            fixed.append([dataclasses.replace(p, text=f"The answer is {answer}.") for p in paths])
        return fixed


def _solver(chain: Chain, *, wrong_step: int | None = None) -> _Solver:
    """A fake engine that answers the chain's gold-chained steps (one step wrong if asked)."""
    answers = {}
    previous = None
    for k in range(len(chain.steps)):
        question = chain.question(k, previous)
        assert question is not None
        answer = question.gold
        if k == wrong_step:
            answer = str(int(answer) + 1) if answer.isdigit() else "no"
        answers[question.prompt] = answer
        previous = answer
    return _Solver(answers)


# ---------------------------------------------------------------------------- the chains
def test_chains_are_deterministic_balanced_and_distinct() -> None:
    chains = generate_chains(size=40, seed=3)
    again = generate_chains(size=40, seed=3)
    assert [c.plan for c in chains] == [c.plan for c in again]
    assert [c.kind for c in chains[:4]] == list(chain_kinds())
    questions = [q for c in chains for q in c.gold_questions()]
    assert len({q.key for q in questions}) == len(questions)
    assert len({q.instance_key for q in questions}) == len(questions)
    for q in questions:
        assert q.is_correct(q.gold), q
    assert {len(c.steps) for c in chains} == {2, 3, 4}
    assert generate_chains(size=41, seed=3)[:40] == chains  # a larger size extends a smaller one


def test_chain_steps_feed_the_previous_gold() -> None:
    chain = generate_chains(size=1, seed=0, kinds=["add_compare_check"])[0]
    first, second, third = chain.gold_questions()
    assert str(first.gold) in second.text and str(second.gold) in third.text
    assert PREVIOUS not in chain.template(0)
    assert chain.template(1).replace(PREVIOUS, first.gold) == second.text
    assert chain.gold == third.gold in ("yes", "no")


@settings(max_examples=60, deadline=None)
@given(index=st.integers(0, 39), step=st.integers(1, 3), value=st.integers(0, 500))
def test_a_step_text_is_its_template_filled_whatever_the_previous_answer(
    index: int, step: int, value: int
) -> None:
    chain = generate_chains(size=40, seed=5)[index]
    if step >= len(chain.steps):
        return
    question = chain.question(step, str(value))
    assert question is not None
    assert question.text == chain.template(step).replace(PREVIOUS, str(value))
    # the instance is canonical: the same operands in either order are one instance
    entry = chain.steps[step]
    assert question.instance == entry.canonical(value).key


def test_a_step_after_a_non_number_cannot_be_asked() -> None:
    chain = generate_chains(size=1, seed=0)[0]
    assert chain.question(1, "banana") is None
    assert chain.question(0, "banana") is not None  # the first step takes no previous answer
    with pytest.raises(ConfigError, match="step=5"):
        chain.question(5)


def test_held_out_chains_avoid_excluded_instances_and_texts() -> None:
    chains = generate_chains(size=6, seed=1)
    first = chains[0].gold_questions()
    by_instance = generate_chains(size=6, seed=1, exclude_instances={first[1].instance_key})
    by_text = generate_chains(size=6, seed=1, exclude={first[0].key})
    assert by_instance[0] != chains[0] and by_text[0] != chains[0]
    steps = [q for c in by_instance for q in c.gold_questions()]
    assert first[1].instance_key not in {q.instance_key for q in steps}
    steps = [q for c in by_text for q in c.gold_questions()]
    assert first[0].key not in {q.key for q in steps}


def test_bad_chain_arguments_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="size=0"):
        generate_chains(size=0, seed=0)
    with pytest.raises(ConfigError, match="unknown chain kinds \\['nope'\\]"):
        generate_chains(size=1, seed=0, kinds=["nope"])
    with pytest.raises(ConfigError, match="no fresh chain"):
        generate_chains(size=1, seed=0, max_tries=0)


def test_phrase_instance_refuses_a_kind_the_family_does_not_ask() -> None:
    q = phrase_instance("agent_arithmetic", Instance("sum", (400, 500)), template=1, id="x",
                        rng=random.Random(0))  # fmt: skip
    assert q.gold == "900" and q.instance == "sum:400,500" and q.template == 1
    with pytest.raises(DataError, match="kind 'max'"):
        phrase_instance("agent_arithmetic", Instance("max", (1, 2)), template=0, id="x",
                        rng=random.Random(0))  # fmt: skip


# ---------------------------------------------------------------------------- the workflow
def _graph(engine: FakeEngine, n: int = 3) -> object:
    thinking = build_parallel_thinking_graph(engine=engine, policy=FixedPolicy(n), n_max=8)
    return build_chain_graph(thinking)


@pytest.mark.parametrize("kind", chain_kinds())
def test_a_right_run_succeeds_and_pays_every_step(kind: str) -> None:
    chain = generate_chains(size=1, seed=2, kinds=[kind])[0]
    ledger = CostLedger()
    run = run_chain(_graph(_solver(chain)), chain, ledger=ledger)  # type: ignore[arg-type]
    assert run.success and run.right_steps == len(chain.steps)
    assert list(run.questions) == [q.text for q in chain.gold_questions()]
    assert run.samples == 3 * len(chain.steps) == sum(s.samples for s in ledger.steps)
    assert run.rounds == len(chain.steps)


def test_a_wrong_step_feeds_its_answer_on_and_fails_the_run() -> None:
    chain = generate_chains(size=1, seed=2, kinds=["add_compare_check"])[0]
    engine = _solver(chain, wrong_step=0)
    run = run_chain(_graph(engine), chain, ledger=CostLedger())  # type: ignore[arg-type]
    gold = chain.gold_questions()
    wrong = str(int(gold[0].gold) + 1)
    assert run.answers[0] == wrong
    assert wrong in run.questions[1] and run.questions[1] != gold[1].text
    assert not run.success and run.right_steps == 0
    assert len(run.answers) == 3  # the run goes on with the wrong answer, as an agent would


def test_a_step_without_an_answer_stops_the_run() -> None:
    chain = generate_chains(size=1, seed=2, kinds=["max_add_compare_check"])[0]
    engine = FakeEngine(answers={None: 1.0})
    ledger = CostLedger()
    run = run_chain(_graph(engine, n=2), chain, ledger=ledger)  # type: ignore[arg-type]
    assert run.answers == (None,) and not run.success
    assert run.samples == 2 and len(ledger.steps) == 1  # no later step is paid for


def test_a_run_budget_is_shared_by_the_steps_of_a_run() -> None:
    chain = generate_chains(size=1, seed=2, kinds=["max_add_compare_check"])[0]
    ledger = CostLedger()
    budget = RunBudget(total_samples=10, steps=4)
    run = run_chain(_graph(_solver(chain), n=8), chain, ledger=ledger, run_budget=budget)
    assert run.samples <= 10 and len(ledger.steps) == 4
    assert all(s.samples >= 1 for s in ledger.steps)


def test_the_plan_of_a_chain_names_each_step_family() -> None:
    chain = generate_chains(size=1, seed=0, kinds=["add_then_check"])[0]
    plan = plan_of(chain)
    assert plan == [PlanStep(chain.template(0), "agent_arithmetic"),
                    PlanStep(chain.template(1), "agent_logic")]  # fmt: skip
    assert DEFAULT_INSTRUCTION not in plan[0].text


def test_a_chain_on_the_real_model_with_the_shipped_estimator(engine: object) -> None:
    """The default model thinks through a 2-step chain under T2 and the run budget."""
    from t2_agents.budget.shipped import load_t2_policy

    chain = generate_chains(size=1, seed=0, kinds=["add_then_check"])[0]
    context = ThinkingContext(n_max=4, max_tokens=16)
    thinking = build_parallel_thinking_graph(
        engine=engine,  # type: ignore[arg-type]
        policy=load_t2_policy(engine),  # type: ignore[arg-type]
        context=context,
    )
    ledger = CostLedger()
    run = run_chain(build_chain_graph(thinking), chain, ledger=ledger,
                    run_budget=RunBudget(total_samples=6, steps=2))  # fmt: skip
    assert 1 <= len(run.answers) <= 2 and run.samples <= 6
    assert run.questions[0] == chain.gold_questions()[0].text
    if run.answers[0] is not None and len(run.answers) == 2:
        assert run.questions[1] == chain.template(1).replace(PREVIOUS, run.answers[0])
    assert run.success == (run.right_steps == 2)
    assert ledger.steps[0].question.startswith(run.questions[0])


def test_a_step_with_many_waves_runs_within_the_graphs_own_limits() -> None:
    """Each step's thinking graph keeps LangGraph's recursion limit (a hybrid needs waves)."""
    from t2_agents.budget.stop_rules import StopRule

    chain = generate_chains(size=1, seed=2, kinds=["add_then_check"])[0]
    engine = FakeEngine(answers={str(k): 1.0 for k in range(12)})  # never decisive
    context = ThinkingContext(n_max=12, stop=StopRule(kind="hybrid", window=1, cap_tolerance=None))
    thinking = build_parallel_thinking_graph(engine=engine, policy=FixedPolicy(1), context=context)
    run = run_chain(build_chain_graph(thinking), chain, ledger=CostLedger())
    assert run.rounds > 8 and len(run.answers) == 2
