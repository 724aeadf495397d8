"""Multi-step chains: runs of 2-4 dependent questions, each step's text holding the previous answer.

A :class:`Chain` is a fixed plan of steps over the agent families (the default model cannot plan,
so the task fixes the plan): for example "compute a sum", then "is that sum greater than 37?".
Each :class:`ChainStep` holds its instance with the previous step's *gold* answer in the operand
position :attr:`ChainStep.slot`; :meth:`Chain.question` phrases a step with whatever answer the
previous step really gave, so a live agent asks what it would ask after a wrong answer too.

*Gold chaining*: a run succeeds only if every step is right, and a step after a right answer is
exactly its gold-chained question. So the run's success under a policy is the product of the
gold-chained steps' accuracies, and the benchmark can collect the gold-chained steps as ordinary
pools and replay them (``bench/multistep.py``).

Example:
    >>> chains = generate_chains(size=2, seed=0)
    >>> [c.kind for c in chains]
    ['add_then_check', 'max_then_add']
    >>> first = chains[0].question(0)
    >>> chains[0].question(1, first.gold).text == chains[0].gold_questions()[1].text
    True
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from t2_agents.errors import ConfigError, DataError
from t2_agents.families._core import Instance, Operand, phrase_instance
from t2_agents.question import Question

__all__ = ["PREVIOUS", "Chain", "ChainStep", "chain_kinds", "generate_chains"]

_SYMMETRIC = frozenset({"sum", "mul", "max", "min"})
"""Kinds whose canonical operands are sorted (the families' spaces hold them sorted)."""
_TEMPLATES = 5
"""Every family of a chain has 5 phrasing templates; steps draw among all of them."""
PREVIOUS = "{previous}"
"""Where a step's text holds the previous step's answer (:attr:`Chain.plan`)."""
_SENTINEL = 987654321
"""Rendered in the slot to find where the previous answer sits in a step's text."""


@dataclass(frozen=True)
class ChainStep:
    """One step of a chain: a family question, possibly fed by the previous step's answer."""

    family: str
    """The registered family that phrases and grades the step."""
    kind: str
    """Its instance kind (e.g. ``"sum"``, ``"threshold"``)."""
    operands: tuple[Operand, ...]
    """Operands in render order, with the previous step's gold answer at :attr:`slot`."""
    template: int
    """The family's phrasing template."""
    slot: int | None = None
    """Operand position that holds the previous step's answer (None: the first step)."""

    def shown(self, previous: int | None = None) -> Instance:
        """The instance in render order, with ``previous`` at :attr:`slot` (gold when None).

        The slot keeps its place whatever the value, so the step's text differs only in the
        number (the canonical, sorted key is :meth:`canonical`)."""
        ops = list(self.operands)
        if self.slot is not None and previous is not None:
            ops[self.slot] = previous
        return Instance(self.kind, tuple(ops))

    def canonical(self, previous: int | None = None) -> Instance:
        """The step's identity: :meth:`shown` with symmetric operands sorted."""
        shown = self.shown(previous)
        ops = list(shown.operands)
        if self.kind in _SYMMETRIC and all(isinstance(op, int) and op >= 0 for op in ops):
            ops = sorted(ops, key=int)
        return Instance(self.kind, tuple(ops))


@dataclass(frozen=True)
class Chain:
    """A run of dependent steps with a gold answer for every step and for the run."""

    id: str
    """Unique id, ``chain-<seed>-<i>``."""
    kind: str
    """The chain kind (:func:`chain_kinds`)."""
    steps: tuple[ChainStep, ...]
    """The steps in order; every step after the first has a :attr:`ChainStep.slot`."""

    def question(
        self, step: int, previous: str | None = None, *, instruction: str | None = None
    ) -> Question | None:
        """Step ``step``'s question after the previous step answered ``previous``.

        Args:
            step: 0-based step index.
            previous: The previous step's extracted answer (ignored for step 0; None for a later
                step means "gold-chained").
            instruction: Appended to the question (default: the families' instruction).

        Returns:
            The question (its text is :meth:`template` with ``previous`` filled in), or None
            when ``previous`` is not a whole number (the run has failed: the step has no gold).
        """
        entry = self._entry(step)
        value: int | None = None
        if step > 0 and previous is not None:
            try:
                value = int(previous.strip())
            except ValueError:
                return None
        question = self._phrase(step, value, instruction)
        return replace(question, instance=entry.canonical(value).key)

    def template(self, step: int) -> str:
        """Step ``step``'s text with :data:`PREVIOUS` where the previous answer goes.

        Raises:
            DataError: The step's family renders the slot's number more than once (the text
                could not be filled unambiguously).
        """
        entry = self._entry(step)
        if entry.slot is None:
            question = self.question(step)
            assert question is not None
            return question.text
        question = self._phrase(step, _SENTINEL, None)
        if question.text.count(str(_SENTINEL)) != 1:
            raise DataError(
                f"chain {self.id!r} step {step}: the previous answer shows "
                f"{question.text.count(str(_SENTINEL))} times in {question.text!r}, not once; "
                "fix the chain kind's step"
            )
        return question.text.replace(str(_SENTINEL), PREVIOUS)

    @property
    def plan(self) -> str:
        """The run as one user message: the step templates separated by ``---`` lines, each
        later step holding :data:`PREVIOUS` (what
        :class:`~t2_agents.agents.scripted_model.ScriptedToolCaller` executes in order)."""
        return "\n---\n".join(self.template(k) for k in range(len(self.steps)))

    def gold_questions(self, *, instruction: str | None = None) -> list[Question]:
        """Every step's gold-chained question (what a run that is right so far asks)."""
        out = []
        for k in range(len(self.steps)):
            question = self.question(k, None, instruction=instruction)
            assert question is not None  # gold-chained steps always phrase
            out.append(question)
        return out

    @property
    def gold(self) -> str:
        """The run's gold answer: the last step's."""
        return self.gold_questions()[-1].gold

    def _phrase(self, step: int, value: int | None, instruction: str | None) -> Question:
        """Step ``step`` phrased with ``value`` in its slot (names and order seeded per step)."""
        entry = self.steps[step]
        return phrase_instance(
            entry.family,
            entry.shown(value),
            template=entry.template,
            id=f"{self.id}-s{step}",
            rng=random.Random(f"{self.id}/{step}"),
            instruction=instruction,
        )

    def _entry(self, step: int) -> ChainStep:
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < len(self.steps):
            raise ConfigError(
                f"step={step!r} is outside chain {self.id!r}'s steps 0..{len(self.steps) - 1}"
            )
        return self.steps[step]


# ---------------------------------------------------------------------------- chain kinds
_Draw = Callable[[random.Random], list[ChainStep]]


def _t(rng: random.Random) -> int:
    return rng.randrange(_TEMPLATES)


def _near(rng: random.Random, value: int, spread: int, low: int) -> int:
    """A value within ``spread`` of ``value``, never equal to it, at least ``low``."""
    choices = [v for v in range(value - spread, value + spread + 1) if v != value and v >= low]
    return rng.choice(choices)


def _sum(rng: random.Random) -> tuple[ChainStep, int]:
    a, b = rng.randint(2, 50), rng.randint(2, 50)
    if rng.random() < 0.3 and a != b:
        big, small = max(a, b) + 10, min(a, b)
        return ChainStep("agent_arithmetic", "sum", (-small, big), _t(rng)), big - small
    return ChainStep("agent_arithmetic", "sum", (a, b), _t(rng)), a + b


def _max2(rng: random.Random) -> tuple[ChainStep, int]:
    a, b = rng.sample(range(10, 100), 2)
    kind = rng.choice(("max", "min"))
    gold = max(a, b) if kind == "max" else min(a, b)
    return ChainStep("agent_compare", kind, (a, b), _t(rng)), gold


def _max3(rng: random.Random) -> tuple[ChainStep, int]:
    values = rng.sample(range(1, 21), 3)
    kind = rng.choice(("max", "min"))
    gold = max(values) if kind == "max" else min(values)
    return ChainStep("agent_compare", kind, tuple(values), _t(rng)), gold


def _then_add(rng: random.Random, previous: int) -> tuple[ChainStep, int]:
    b = rng.randint(2, 50)
    return ChainStep("agent_arithmetic", "sum", (previous, b), _t(rng), slot=0), previous + b


def _then_compare(rng: random.Random, previous: int) -> tuple[ChainStep, int]:
    other = _near(rng, previous, 20, 1)
    kind = rng.choice(("max", "min"))
    gold = max(previous, other) if kind == "max" else min(previous, other)
    return ChainStep("agent_compare", kind, (previous, other), _t(rng), slot=0), gold


def _then_check(rng: random.Random, previous: int) -> ChainStep:
    rel = rng.choice(("gt", "lt"))
    return ChainStep(
        "agent_logic", "threshold", (rel, previous, _near(rng, previous, 15, 1)), _t(rng), slot=1
    )


def _add_then_check(rng: random.Random) -> list[ChainStep]:
    first, value = _sum(rng)
    return [first, _then_check(rng, value)]


def _max_then_add(rng: random.Random) -> list[ChainStep]:
    first, value = _max2(rng)
    second, _ = _then_add(rng, value)
    return [first, second]


def _add_compare_check(rng: random.Random) -> list[ChainStep]:
    first, value = _sum(rng)
    second, value = _then_compare(rng, value)
    return [first, second, _then_check(rng, value)]


def _max_add_compare_check(rng: random.Random) -> list[ChainStep]:
    first, value = _max3(rng)
    second, value = _then_add(rng, value)
    third, value = _then_compare(rng, value)
    return [first, second, third, _then_check(rng, value)]


_KINDS: dict[str, _Draw] = {
    "add_then_check": _add_then_check,
    "max_then_add": _max_then_add,
    "add_compare_check": _add_compare_check,
    "max_add_compare_check": _max_add_compare_check,
}


def chain_kinds() -> tuple[str, ...]:
    """The chain kinds, in the order :func:`generate_chains` takes them in turn.

    Example:
        >>> chain_kinds()[0]
        'add_then_check'
    """
    return tuple(_KINDS)


def generate_chains(
    *,
    size: int,
    seed: int,
    kinds: Sequence[str] | None = None,
    exclude: Collection[str] = (),
    exclude_instances: Collection[str] = (),
    max_tries: int = 100,
) -> list[Chain]:
    """Draw ``size`` chains whose gold-chained steps are all distinct and unseen, deterministically.

    Chain ``i`` is of kind ``kinds[i % len(kinds)]``. A drawn chain is redrawn when one of its
    gold-chained steps has a text key (:attr:`Question.key`) in ``exclude``, an instance key
    (:attr:`Question.instance_key`) in ``exclude_instances``, or the text or instance of a step
    of an earlier chain: every step question of the benchmark is a distinct question.

    Args:
        size: Number of chains (>= 1).
        seed: The same seed (and exclusions) gives the same chains.
        kinds: Chain kinds to cycle through (default: all of :func:`chain_kinds`).
        exclude: Question text keys never to use (e.g. ``estimator.training_keys``).
        exclude_instances: Instance keys never to use (``estimator.training_instance_keys``).
        max_tries: Redraws allowed per chain before giving up.

    Raises:
        ConfigError: A bad size, an unknown kind, or no fresh chain within ``max_tries``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size={size!r} must be an int >= 1; pass the number of chains")
    chosen = list(chain_kinds() if kinds is None else kinds)
    unknown = [k for k in chosen if k not in _KINDS]
    if not chosen or unknown:
        raise ConfigError(
            f"kinds={kinds!r}: unknown chain kinds {unknown}; pass some of {chain_kinds()}"
        )
    seen_text, seen_instance = set(exclude), set(exclude_instances)
    chains = []
    for i in range(size):
        kind = chosen[i % len(chosen)]
        rng = random.Random(f"chain/{seed}/{i}")
        for _ in range(max_tries):
            chain = Chain(f"chain-{seed}-{i}", kind, tuple(_KINDS[kind](rng)))
            questions = chain.gold_questions()
            texts = {q.key for q in questions}
            instances = {q.instance_key for q in questions}
            fresh = len(texts) == len(instances) == len(questions)
            if fresh and not (texts & seen_text or instances & seen_instance):
                break
        else:
            raise ConfigError(
                f"no fresh chain of kind {kind!r} in {max_tries} draws (chain {i}): its steps' "
                "instances are used up; ask for fewer chains or raise max_tries"
            )
        seen_text |= texts
        seen_instance |= instances
        chains.append(chain)
    return chains
