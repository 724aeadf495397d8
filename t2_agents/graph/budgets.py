"""A budget for a whole agent run, shared by every parallel-thinking step of the run.

:class:`RunBudget` is the frozen configuration ("this agent run may sample at most 64 paths,
spread over about 8 steps"); :class:`RunAccount` is the thread-safe account of one run (one
LangGraph thread). Give either to the graph through its context
(``ThinkingContext(run_budget=...)``, ``configurable["t2"]["run_budget"]``, or
``as_tool(..., run_budget=...)`` / ``make_agent(..., run_budget=...)``): a :class:`RunBudget`
opens one account per ``thread_id`` of the run's config; a :class:`RunAccount` is one run's.

**The rule each step follows** (:meth:`RunAccount.request`), under the account's lock:

1. ``S`` = expected remaining steps, this one included: ``max(1, steps - steps started)``.
2. Reserve ``n_min`` paths for each of the ``S - 1`` later steps; what the step may take is
   ``ceiling = min(n_max, remaining - n_min * (S - 1))`` (with ``total_tokens``: also at most
   ``remaining tokens // max_tokens - n_min * (S - 1)``, as every path may use ``max_tokens``).
3. The step's N:

   - with a predicted accuracy curve ``A(N)`` (a curve-head estimator): the step's share of a
     marginal-gain allocation (:func:`~t2_agents.curves.allocate.allocate_budget`) of the remaining
     budget over this step and ``S - 1`` later steps assumed to look like the steps of this run
     so far (their mean predicted curve); samples go where the predicted gain per sample is
     largest, and budget that buys no predicted gain stays unspent. The gain is in predicted
     accuracy (``objective="sum"``, the expected number of right steps) or in its log
     (``objective="success"``: a run succeeds only if every step does, so its log-success is the
     sum of the steps' ``log A(N)``, and a weak step gains more from a path than a strong one);
   - without a curve (an N*-head estimator, any other policy): the policy's N (T2's predicted
     ``2^log2 N*``), scaled down in proportion when this N plus ``S - 1`` typical Ns of the run
     would not fit into the remaining budget.

   clamped to ``[n_min, ceiling]``.
4. Exhausted (``ceiling < n_min``): ``on_exhausted="n_min"`` samples ``n_min`` paths anyway and
   records the overspend (``over_budget`` in the ledger, a warning in the state and the
   ``budget`` event); ``"error"`` samples nothing and the step ends with an ``error`` state
   (``answer`` None). Never a silent overspend.

A follow-up wave of a stop rule asks :meth:`RunAccount.extend` for more paths under the same
reserve; when nothing is left the rule stops with reason ``"run budget"``. When a step ends,
:meth:`RunAccount.settle` books what it really used (fewer paths than reserved are given back)
and the ledger shows budget, spent and remaining per step.

Example:
    >>> account = RunBudget(total_samples=12, steps=3).open()
    >>> grant = account.request(wanted=8, n_min=1, n_max=8)
    >>> grant.n, account.snapshot()["remaining_samples"]
    (4, 8)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from t2_agents.curves.allocate import allocate_budget
from t2_agents.errors import ConfigError

__all__ = [
    "SUCCESS_FLOOR",
    "ExhaustedAction",
    "Grant",
    "RunAccount",
    "RunBudget",
    "RunObjective",
    "extend_step",
    "grant_step",
    "resolve_account",
    "run_account",
    "settle_step",
]

ExhaustedAction = Literal["n_min", "error"]
"""What a step does when the run budget cannot pay ``n_min`` paths (see the module docs)."""

RunObjective = Literal["sum", "success"]
"""What a run budget's allocation maximises: the sum of the steps' predicted accuracies, or the
predicted probability that every step is right (their product)."""

SUCCESS_FLOOR = 0.01
"""Predicted accuracies are floored here before their log is taken (``objective="success"``):
a step predicted hopeless would otherwise pull every sample towards it."""


def _check_count(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        unit = "tokens" if "token" in name else "samples"
        raise ConfigError(
            f"{name}={value!r} must be a whole number of {unit} >= {low}; pass an int, e.g. "
            f"{name}=64"
        )
    if value < low:
        raise ConfigError(f"{name}={value!r} is below {low}; pass {name} >= {low}")
    return int(value)


@dataclass(frozen=True, kw_only=True)
class RunBudget:
    """The budget of one agent run (frozen configuration; accounts come from :meth:`open`).

    Raises:
        ConfigError: A negative or non-integer budget, ``total_samples < n_min * steps`` (some
            step could not get its ``n_min``), or an unknown ``on_exhausted``.

    Example:
        >>> RunBudget(total_samples=64, steps=8).open().snapshot()["remaining_samples"]
        64
    """

    total_samples: int
    """Paths the whole run may sample (every step, every wave, failed paths included)."""
    steps: int = 1
    """Parallel-thinking steps the run is expected to make: ``n_min`` paths are reserved for
    each step not started yet. Steps beyond it share what is left."""
    total_tokens: int | None = None
    """Completion tokens the run may generate; each path is budgeted at ``max_tokens`` (its
    upper bound) until it has run, so the limit is never exceeded. None: no token limit."""
    n_min: int = 1
    """Paths reserved for (and at least given to) every step."""
    on_exhausted: ExhaustedAction = "n_min"
    """``n_min``: an exhausted step still samples ``n_min`` paths, recorded as an overspend;
    ``error``: it samples nothing and ends with an error state."""
    objective: RunObjective = "sum"
    """What the allocation over the run's steps maximises (with predicted curves): ``sum``, the
    sum of the steps' predicted accuracies; ``success``, the predicted probability that every
    step is right (the product: samples go where they raise ``log A(N)`` most, so a weak step
    gets more than a strong one)."""
    _accounts: dict[str, RunAccount] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check_count("total_samples", self.total_samples, 1)
        _check_count("steps", self.steps, 1)
        _check_count("n_min", self.n_min, 1)
        if self.total_tokens is not None:
            _check_count("total_tokens", self.total_tokens, 1)
        if self.objective not in get_args(RunObjective):
            raise ConfigError(
                f"objective={self.objective!r} is not one of {get_args(RunObjective)}; pass "
                "'sum' (expected correct steps) or 'success' (every step right)"
            )
        if self.on_exhausted not in get_args(ExhaustedAction):
            raise ConfigError(
                f"on_exhausted={self.on_exhausted!r} is not one of {get_args(ExhaustedAction)}"
            )
        if self.total_samples < self.n_min * self.steps:
            raise ConfigError(
                f"total_samples={self.total_samples} is below n_min x steps = {self.n_min} x "
                f"{self.steps} = {self.n_min * self.steps}: some step could not sample; pass "
                f"total_samples >= {self.n_min * self.steps} or fewer steps"
            )

    def open(self, *, thread_id: str | None = None) -> RunAccount:
        """A fresh account for one run (bound to ``thread_id``, or to the first one using it)."""
        return RunAccount(self, thread_id=thread_id)

    def account_for(self, thread_id: str | None) -> RunAccount:
        """The account of the run with this ``thread_id`` (opened on first use).

        Raises:
            ConfigError: ``thread_id`` is None (a run budget needs to know which run it is).
        """
        if thread_id is None:
            raise ConfigError(
                "a RunBudget needs the run's thread_id to keep one account per agent run: "
                "invoke with config={'configurable': {'thread_id': '...'}}, or pass "
                "run_budget=budget.open() for a single run"
            )
        with self._lock:
            if thread_id not in self._accounts:
                self._accounts[thread_id] = self.open(thread_id=thread_id)
            return self._accounts[thread_id]


@dataclass(frozen=True)
class Grant:
    """What :meth:`RunAccount.request` gave one step."""

    step: int
    """The step's number in the run (0-based)."""
    n: int
    """Paths granted (0: exhausted with ``on_exhausted="error"``)."""
    ceiling: int
    """The most the step could have taken without starving later steps."""
    warning: str | None
    """Set when the step was exhausted (overspend or error)."""
    over_budget: int
    """Paths granted beyond the budget (``on_exhausted="n_min"``)."""


@dataclass
class _Step:
    reserved: int
    tokens_reserved: int
    max_tokens: int
    used: int = 0
    tokens_used: int = 0
    settled: bool = False


class RunAccount:
    """The thread-safe account of one agent run (see the module docs for the rule).

    Args:
        budget: The run's configuration.
        thread_id: The LangGraph thread of the run; None binds it to the first thread using it.

    Example:
        >>> account = RunBudget(total_samples=4, steps=2).open(thread_id="run-1")
        >>> account.request(wanted=3, n_min=1, n_max=8).n  # 3 + a typical 3 > 4: scaled
        2
        >>> account.request(wanted=3, n_min=1, n_max=8).n
        2
    """

    def __init__(self, budget: RunBudget, *, thread_id: str | None = None) -> None:
        self.budget = budget
        self.thread_id = thread_id
        self._lock = threading.Lock()
        self._steps: list[_Step] = []
        self._curves: list[npt.NDArray[np.float64]] = []
        self._wants: list[int] = []

    def bind(self, thread_id: str | None) -> None:
        """Check (or set) the run this account belongs to.

        Raises:
            ConfigError: The account is already bound to another thread.
        """
        if thread_id is None:
            return
        with self._lock:
            if self.thread_id is None:
                self.thread_id = thread_id
            elif self.thread_id != thread_id:
                raise ConfigError(
                    f"this RunAccount belongs to thread {self.thread_id!r} but thread "
                    f"{thread_id!r} used it: one account per agent run; pass the RunBudget "
                    "itself (one account per thread_id) or open() a new account per run"
                )

    def _committed(self) -> tuple[int, int]:
        samples = sum(s.used if s.settled else max(s.used, s.reserved) for s in self._steps)
        tokens = sum(
            s.tokens_used if s.settled else max(s.tokens_used, s.tokens_reserved)
            for s in self._steps
        )
        return samples, tokens

    def _room(self, later: int, max_tokens: int) -> int:
        samples, tokens = self._committed()
        room = self.budget.total_samples - samples - self.budget.n_min * later
        if self.budget.total_tokens is not None:
            paths = (self.budget.total_tokens - tokens) // max(1, max_tokens)
            room = min(room, paths - self.budget.n_min * later)
        return room

    def request(
        self,
        *,
        wanted: int,
        n_min: int,
        n_max: int,
        curve: Sequence[float] | npt.NDArray[np.floating[Any]] | None = None,
        max_tokens: int = 1,
    ) -> Grant:
        """Grant one step its paths (see the module docs).

        Args:
            wanted: The policy's N for the step.
            n_min: The step's smallest N.
            n_max: The step's largest N.
            curve: Predicted ``A(N)`` for ``N = 1..len(curve)`` (curve-head estimators).
            max_tokens: The step's largest completion per path (the token reservation).
        """
        with self._lock:
            later = max(1, self.budget.steps - len(self._steps)) - 1
            ceiling = min(n_max, self._room(later, max_tokens))
            floor = max(n_min, self.budget.n_min)
            if curve is not None:
                self._curves.append(np.asarray(curve, dtype=np.float64))
            self._wants.append(int(wanted))
            if ceiling < floor:
                return self._exhausted(floor, ceiling, max_tokens)
            n = self._desired(wanted, curve, later, ceiling, n_max)
            n = min(max(n, floor), ceiling)
            self._steps.append(_Step(n, n * max_tokens, max_tokens))
            return Grant(len(self._steps) - 1, n, ceiling, None, 0)

    def _desired(
        self,
        wanted: int,
        curve: Sequence[float] | npt.NDArray[np.floating[Any]] | None,
        later: int,
        ceiling: int,
        n_max: int,
    ) -> int:
        samples, _ = self._committed()
        remaining = self.budget.total_samples - samples
        if curve is not None:
            own = np.asarray(curve, dtype=np.float64)
            same = [c for c in self._curves if c.shape == own.shape]
            typical = np.mean(same, axis=0)
            curves = np.vstack([own[None, :], np.repeat(typical[None, :], later, axis=0)])
            length = own.shape[0]
            caps = [max(1, min(ceiling, length))] + [max(1, min(n_max, length))] * later
            budget = max(remaining, later + 1)
            if self.budget.objective == "success":
                curves = np.log(np.clip(curves, SUCCESS_FLOOR, 1.0))
            return int(allocate_budget(curves, budget, caps=caps)[0])
        typical_n = float(np.mean(self._wants))
        demand = wanted + later * typical_n
        if demand <= remaining:
            return wanted
        return math.floor(remaining * wanted / demand)

    def _exhausted(self, floor: int, ceiling: int, max_tokens: int) -> Grant:
        samples, _ = self._committed()
        left = self.budget.total_samples - samples
        if self.budget.on_exhausted == "error":
            self._steps.append(_Step(0, 0, max_tokens, settled=True))
            return Grant(
                len(self._steps) - 1,
                0,
                ceiling,
                f"run budget exhausted: {left} of {self.budget.total_samples} samples left, "
                f"this step needs {floor} (on_exhausted='error': nothing sampled); raise "
                "total_samples or steps' n_min",
                0,
            )
        over = max(0, floor - left)
        self._steps.append(_Step(floor, floor * max_tokens, max_tokens))
        return Grant(
            len(self._steps) - 1,
            floor,
            ceiling,
            f"run budget exhausted: {left} of {self.budget.total_samples} samples left; sampled "
            f"n_min={floor} anyway (on_exhausted='n_min'), {over} over budget",
            over,
        )

    def extend(self, step: int, wanted: int) -> int:
        """Grant up to ``wanted`` more paths to a running step (a stop rule's next wave).

        Returns:
            The paths granted (0 when the budget cannot pay them without starving later steps).
        """
        with self._lock:
            if not 0 <= step < len(self._steps):
                return 0
            record = self._steps[step]
            later = max(1, self.budget.steps - len(self._steps) + 1) - 1
            more = max(0, min(wanted, self._room(later, record.max_tokens)))
            record.reserved += more
            record.tokens_reserved += more * record.max_tokens
            return more

    def settle(self, step: int, *, samples: int, completion_tokens: int) -> dict[str, Any]:
        """Book what a step really used (frees unused reservation); return a snapshot."""
        with self._lock:
            if 0 <= step < len(self._steps):
                record = self._steps[step]
                record.used, record.tokens_used, record.settled = samples, completion_tokens, True
            else:  # a step resumed after a restart: its reservation is gone, book the use
                self._steps.append(
                    _Step(samples, completion_tokens, 1, samples, completion_tokens, True)
                )
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """``total_samples``, ``spent_samples`` (used + reserved by running steps),
        ``remaining_samples``, the token counterparts (None without a token limit), ``steps``.

        Example:
            >>> RunBudget(total_samples=8).open().snapshot()["spent_samples"]
            0
        """
        with self._lock:
            samples, tokens = self._committed()
            steps = len(self._steps)
        total_tokens = self.budget.total_tokens
        return {
            "total_samples": self.budget.total_samples,
            "spent_samples": samples,
            "remaining_samples": self.budget.total_samples - samples,
            "total_tokens": total_tokens,
            "spent_tokens": tokens if total_tokens is not None else None,
            "remaining_tokens": None if total_tokens is None else total_tokens - tokens,
            "steps": steps,
            "expected_steps": self.budget.steps,
        }

    def __repr__(self) -> str:
        snap = self.snapshot()
        return (
            f"RunAccount(thread_id={self.thread_id!r}, spent={snap['spent_samples']}/"
            f"{snap['total_samples']})"
        )


def resolve_account(run_budget: RunBudget | RunAccount, thread_id: str | None) -> RunAccount:
    """The account a step charges: the budget's account for ``thread_id``, or the account.

    Raises:
        ConfigError: A :class:`RunBudget` without a ``thread_id``, an account used by a second
            thread, or something else than a budget or an account.

    Example:
        >>> budget = RunBudget(total_samples=8)
        >>> resolve_account(budget, "t1") is resolve_account(budget, "t1")
        True
    """
    if isinstance(run_budget, RunBudget):
        return run_budget.account_for(thread_id)
    if isinstance(run_budget, RunAccount):
        run_budget.bind(thread_id)
        return run_budget
    raise ConfigError(
        f"run_budget={run_budget!r} must be a RunBudget or a RunAccount (RunBudget(...).open())"
    )


def run_account(
    run_budget: RunBudget | RunAccount | None, config: Mapping[str, Any] | None
) -> RunAccount | None:
    """The account a graph step charges, from the run's config (its ``thread_id``), or None.

    Example:
        >>> budget = RunBudget(total_samples=8)
        >>> run_account(budget, {"configurable": {"thread_id": "t"}}) is budget.account_for("t")
        True
    """
    if run_budget is None:
        return None
    thread = ((config or {}).get("configurable") or {}).get("thread_id")
    return resolve_account(run_budget, None if thread is None else str(thread))


def grant_step(
    run_budget: RunBudget | RunAccount,
    config: Mapping[str, Any] | None,
    *,
    wanted: int,
    n_min: int,
    n_max: int,
    max_tokens: int,
    curve: npt.NDArray[np.float64] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Ask the run's account for a step's paths: ``(n, record for the state and the ledger)``.

    Example:
        >>> n, record = grant_step(RunBudget(total_samples=8).open(), None, wanted=3, n_min=1,
        ...                        n_max=8, max_tokens=16)
        >>> n, record["remaining_samples"]
        (3, 5)
    """
    account = run_account(run_budget, config)
    assert account is not None
    grant = account.request(
        wanted=wanted, n_min=n_min, n_max=n_max, curve=curve, max_tokens=max_tokens
    )
    record = {
        "step": grant.step,
        "wanted": wanted,
        "granted": grant.n,
        "ceiling": grant.ceiling,
        "curve": curve is not None,
        "over_budget": grant.over_budget,
        "warning": grant.warning,
        **account.snapshot(),
    }
    return grant.n, record


def settle_step(
    run_budget: RunBudget | RunAccount | None,
    config: Mapping[str, Any] | None,
    granted: Mapping[str, Any] | None,
    samples: int,
    completion_tokens: int,
) -> dict[str, Any] | None:
    """Book what a finished step used; the ledger's ``budget`` record (None without a budget).

    ``granted`` is the step's record from :func:`grant_step` (in the state as ``run_budget``).
    """
    account = run_account(run_budget, config)
    if account is None or granted is None:
        return None
    step = int(granted.get("step", -1))
    snapshot = account.settle(step, samples=samples, completion_tokens=completion_tokens)
    keep = ("step", "wanted", "granted", "ceiling", "curve", "over_budget", "warning")
    return {**{key: granted.get(key) for key in keep}, "used": samples, **snapshot}


def extend_step(
    run_budget: RunBudget | RunAccount | None,
    config: Mapping[str, Any] | None,
    granted: Mapping[str, Any] | None,
    wanted: int,
) -> int:
    """Paths granted to a running step's next wave (``wanted`` without a run budget)."""
    account = run_account(run_budget, config)
    if account is None:
        return wanted
    return account.extend(int((granted or {}).get("step", -1)), wanted)
