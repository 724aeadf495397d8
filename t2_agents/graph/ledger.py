"""The cost ledger: what each parallel-thinking step spent, rolled up over an agent run.

Every step of the graph ends with a :class:`StepRecord` (in the state as ``cost``): the budget
chosen and the maximum it could have used, samples drawn, prompt and completion tokens, wall
time per node, failures and the answer. A :class:`CostLedger` collects the records of a whole
agent run (give it to the graph through ``ThinkingContext(ledger=...)`` or add states by hand)
and sums them; :func:`compare_ledgers` puts two runs side by side, e.g. T2 against a fixed
budget on the same questions.

Counting rules. ``samples`` counts every branch attempted, failed ones included (they cost
time, and a provider may bill them). Tokens are summed over the completions returned, so a
batched call of ``n`` paths counts its prompt ``n`` times, as a send-mode run does (the
engines expand the prompt per path). ``node_seconds`` holds the budget node's time, the fan-out
span (first branch start to last branch end; branches of send mode overlap) and the aggregate
node's time; ``engine_seconds`` sums the branches' own sampling times. ``wall_seconds`` runs from
the budget node's start to the aggregate node's end, so a run resumed from a checkpoint counts
the pause.

Example:
    >>> ledger = CostLedger()
    >>> ledger.add(StepRecord(question="2+2?", policy="fixed-4", n_chosen=4, n_max=8, samples=4))
    >>> ledger.summary()["utilisation"]
    0.5
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from t2_agents.errors import ConfigError

__all__ = ["CostLedger", "StepRecord", "compare_ledgers", "format_comparison"]

_COMPARED = (
    "steps",
    "samples",
    "mean_n",
    "utilisation",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "failed_branches",
    "errors",
    "engine_calls",
    "engine_seconds",
    "wall_seconds",
)


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    """The cost of one parallel-thinking step.

    Example:
        >>> StepRecord(question="q", policy="t2", n_chosen=3, n_max=16, samples=3).total_tokens
        0
    """

    question: str
    """The question of the step."""
    policy: str
    """Name of the budget policy."""
    n_chosen: int
    """The budget the step used (after clamping)."""
    n_max: int
    """The largest budget the step could have used."""
    samples: int
    """Branches attempted, failed ones included."""
    n_min: int = 1
    """The smallest budget allowed."""
    failed: int = 0
    """Branches that ended with an error (cancelled ones not included)."""
    cancelled: int = 0
    """Branches cancelled in flight because the stop rule had fired (send fan-out)."""
    prompt_tokens: int = 0
    """Prompt tokens summed over the returned completions (cancelled ones included)."""
    completion_tokens: int = 0
    """Generated tokens summed over the returned completions (what cancelled ones generated
    included)."""
    node_seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per node: ``budget``, ``fanout`` (span of the branches), ``aggregate``."""
    engine_seconds: float = 0.0
    """Sum of the branches' own sampling times."""
    wall_seconds: float = 0.0
    """From the budget node's start to the aggregate node's end."""
    fanout: str = "batched"
    """The fan-out mode of the step."""
    answer: str | None = None
    """The voted answer; None when nothing voted or the step failed."""
    share: float = 0.0
    """The winner's share of the valid votes."""
    error: str | None = None
    """Why the step has no answer (all branches failed), else None."""
    warning: str | None = None
    """The budget node's clamping warning (or the run budget's exhaustion warning), if any."""
    engine_calls: int = 0
    """Engine ``sample`` calls: one per wave in batched mode, one per branch in send mode."""
    waves: list[dict[str, Any]] = field(default_factory=list)
    """Per wave of a stop rule: size, samples so far, tokens, seconds, running vote, decision."""
    stopped: str | None = None
    """Why a stop rule stopped (``adaptive``, ``esc``, ``decisive``, ``n_max``, ``run budget``,
    or ``cap``: the hybrid reached its predicted saturation budget below ``n_max``)."""
    weak_stopped: int = 0
    """Paths stopped while decoded for low confidence (:mod:`t2_agents.early_stop`): their
    tokens are counted, they do not vote (unless every path was stopped)."""
    weak_floor: float | None = None
    """The confidence floor those paths were held to (fixed, or set by the warm-up paths);
    None without early stop."""
    budget: dict[str, Any] | None = None
    """With a run budget: the step's grant (``wanted``, ``granted``, ``used``, ``over_budget``)
    and the run's ``total_samples``, ``spent_samples`` and ``remaining_samples`` after it."""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        """Rebuild a record from :meth:`to_dict` output (unknown keys are ignored).

        Raises:
            ConfigError: A required key is missing.
        """
        known = {name for name in cls.__dataclass_fields__}
        missing = {"question", "policy", "n_chosen", "n_max", "samples"} - set(data)
        if missing:
            raise ConfigError(f"a step record needs {sorted(missing)}; got keys {sorted(data)}")
        return cls(**{key: value for key, value in data.items() if key in known})


class CostLedger:
    """Thread-safe collection of step records with roll-ups.

    Args:
        steps: Records to start with.

    Example:
        >>> a = CostLedger([StepRecord(question="q", policy="p", n_chosen=2, n_max=4, samples=2)])
        >>> len(a), a.summary()["samples"]
        (1, 2)
    """

    def __init__(self, steps: Iterable[StepRecord] = ()) -> None:
        self._lock = threading.Lock()
        self._steps: list[StepRecord] = list(steps)

    def add(self, step: StepRecord | Mapping[str, Any]) -> None:
        """Append one step (a record or its dict)."""
        record = step if isinstance(step, StepRecord) else StepRecord.from_dict(step)
        with self._lock:
            self._steps.append(record)

    def add_state(self, state: Mapping[str, Any]) -> None:
        """Append the ``cost`` of a finished graph state.

        Raises:
            ConfigError: The state has no cost record (the step did not finish).
        """
        cost = state.get("cost")
        if not isinstance(cost, Mapping):
            raise ConfigError("the state has no 'cost' record; pass the output of a finished run")
        self.add(cost)

    def extend(self, steps: Iterable[StepRecord | Mapping[str, Any]]) -> None:
        """Append several steps."""
        for step in steps:
            self.add(step)

    @property
    def steps(self) -> tuple[StepRecord, ...]:
        """The records, in the order they were added."""
        with self._lock:
            return tuple(self._steps)

    def __len__(self) -> int:
        with self._lock:
            return len(self._steps)

    def clear(self) -> None:
        """Drop every record."""
        with self._lock:
            self._steps.clear()

    def summary(self) -> dict[str, Any]:
        """Roll the records up into totals and means.

        Returns:
            ``steps``, ``samples``, ``n_max_total``, ``mean_n``, ``utilisation`` (samples over
            the sum of ``n_max``; None without steps), ``saved`` (1 - utilisation),
            ``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``failed_branches``,
            ``cancelled_branches``, ``errors`` (steps without an answer), ``engine_calls``,
            ``waves`` (of stop rules),
            ``over_budget`` (paths sampled beyond a run budget), ``answered``,
            ``engine_seconds``, ``wall_seconds``, ``node_seconds`` (summed per node) and
            ``policies`` (steps per policy name).
        """
        steps = self.steps
        samples = sum(s.samples for s in steps)
        n_max_total = sum(s.n_max for s in steps)
        utilisation = samples / n_max_total if n_max_total else None
        nodes: dict[str, float] = {}
        policies: dict[str, int] = {}
        for step in steps:
            for node, seconds in step.node_seconds.items():
                nodes[node] = nodes.get(node, 0.0) + seconds
            policies[step.policy] = policies.get(step.policy, 0) + 1
        prompt = sum(s.prompt_tokens for s in steps)
        completion = sum(s.completion_tokens for s in steps)
        return {
            "steps": len(steps),
            "samples": samples,
            "n_max_total": n_max_total,
            "mean_n": samples / len(steps) if steps else None,
            "utilisation": utilisation,
            "saved": None if utilisation is None else 1.0 - utilisation,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "failed_branches": sum(s.failed for s in steps),
            "cancelled_branches": sum(s.cancelled for s in steps),
            "errors": sum(1 for s in steps if s.error is not None),
            "engine_calls": sum(s.engine_calls for s in steps),
            "waves": sum(len(s.waves) for s in steps),
            "over_budget": sum(int((s.budget or {}).get("over_budget") or 0) for s in steps),
            "answered": sum(1 for s in steps if s.answer is not None),
            "engine_seconds": math.fsum(s.engine_seconds for s in steps),
            "wall_seconds": math.fsum(s.wall_seconds for s in steps),
            "node_seconds": nodes,
            "policies": policies,
        }

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"summary": ..., "steps": [...]}``, JSON-ready."""
        return {"summary": self.summary(), "steps": [s.to_dict() for s in self.steps]}

    def __repr__(self) -> str:
        return f"CostLedger(steps={len(self)})"


def compare_ledgers(
    a: CostLedger, b: CostLedger, *, labels: Sequence[str] = ("a", "b")
) -> dict[str, Any]:
    """Compare two ledgers metric by metric (e.g. T2 against a fixed budget).

    Args:
        a: The reference run.
        b: The run compared with it.
        labels: Names of the two runs in the result.

    Returns:
        ``{"labels": [la, lb], "metrics": {name: {la: x, lb: y, "ratio": y / x or None,
        "delta": y - x or None}}, "common_questions": k, "agreement": share or None}``.
        ``agreement`` is the share of the questions answered in both runs (first step per
        question) on which the two answers are equal.

    Raises:
        ConfigError: ``labels`` is not two distinct names.

    Example:
        >>> one = CostLedger([StepRecord(question="q", policy="fixed-8", n_chosen=8, n_max=8,
        ...                              samples=8, answer="4")])
        >>> two = CostLedger([StepRecord(question="q", policy="t2", n_chosen=2, n_max=8,
        ...                              samples=2, answer="4")])
        >>> cmp = compare_ledgers(one, two, labels=("fixed", "t2"))
        >>> cmp["metrics"]["samples"]["ratio"], cmp["agreement"]
        (0.25, 1.0)
    """
    if len(labels) != 2 or labels[0] == labels[1] or "ratio" in labels or "delta" in labels:
        raise ConfigError(f"labels={list(labels)} must be two distinct names (not ratio/delta)")
    la, lb = labels
    sa, sb = a.summary(), b.summary()
    metrics: dict[str, dict[str, Any]] = {}
    for name in _COMPARED:
        x, y = sa[name], sb[name]
        ratio = y / x if x not in (None, 0) and y is not None else None
        delta = y - x if x is not None and y is not None else None
        metrics[name] = {la: x, lb: y, "ratio": ratio, "delta": delta}
    answers_a = _first_answers(a)
    answers_b = _first_answers(b)
    common = sorted(set(answers_a) & set(answers_b))
    agreement = sum(answers_a[q] == answers_b[q] for q in common) / len(common) if common else None
    return {
        "labels": [la, lb],
        "metrics": metrics,
        "common_questions": len(common),
        "agreement": agreement,
    }


def _first_answers(ledger: CostLedger) -> dict[str, str | None]:
    answers: dict[str, str | None] = {}
    for step in ledger.steps:
        answers.setdefault(step.question, step.answer)
    return answers


def format_comparison(comparison: Mapping[str, Any]) -> str:
    """Render :func:`compare_ledgers` output as a Markdown table.

    Example:
        >>> empty = compare_ledgers(CostLedger(), CostLedger())
        >>> format_comparison(empty).splitlines()[0]
        '| metric | a | b | ratio | delta |'
    """
    la, lb = comparison["labels"]
    lines = [f"| metric | {la} | {lb} | ratio | delta |", "|---|---:|---:|---:|---:|"]
    for name, row in comparison["metrics"].items():
        cells = [_cell(row[la]), _cell(row[lb]), _cell(row["ratio"]), _cell(row["delta"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    agreement = comparison.get("agreement")
    if agreement is not None:
        lines.append(
            f"| answer agreement ({comparison['common_questions']} questions) "
            f"| {agreement:.3f} | | | |"
        )
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
