"""Policy evaluation: budget policies side by side on the same questions, in replay mode.

Each question's collected pool of ``M`` completions stands in for the model. A policy that fixes
``N`` before sampling is scored exactly with ``A_x(N)``
(:func:`~t2_agents.curves.exact.accuracy_curve`:
draws without replacement, uniform tie rule). A sequential policy is replayed on ``R`` seeded
random orders of each pool (:mod:`t2_agents.evaluate.replay`, which defines the stopping rules).

Policies (names for ``--policies``); every one is capped at the question's pool size ``M``:

* ``fixed``: every ``N`` of the grid ``1, 2, 4, ..., M`` (exact).
* ``nd``: the dataset-optimal ``N_D``, by default the estimator's training ``N_D``; computed on
  the evaluated data it is optimistic and labelled so.
* ``t2``: the estimator's per-question ``N`` (exact).
* ``oracle``: each question's ``N*_x`` from its own pool (exact; an upper bound).
* ``adaptive``: Adaptive-Consistency (Aggarwal et al., 2023): one sample at a time, stop when the
  Beta probability that the leader beats the runner-up reaches ``threshold`` (0.95).
* ``esc``: Early-Stopping Self-Consistency (Li et al., 2024): windows of ``window`` (4) samples,
  stop after a unanimous window.
* ``hybrid`` (ours): T2's ``N`` as the first parallel wave, then waves of ``window`` samples until
  the vote is decisive (>= ``min_votes`` valid votes and a leader share >= ``decisive_share`` or
  the Beta probability >= ``threshold``) or the cap: the curve head's predicted saturation budget
  at ``cap_tolerance`` (the pool size for an estimator without a curve head, or ``None``).
* any stop rule registered since (:func:`~t2_agents.budget.stop_rules.register_stop_rule`),
  replayed by its own rule (its first wave is T2's N when it takes the policy's N).
* ``alloc`` (ours): a total budget spread over the batch by predicted marginal gain
  (:mod:`t2_agents.curves.allocate`), scored exactly; a row with fixed ``N`` interpolated at its
  mean
  ``N`` follows it. The budget defaults to T2's total, so it competes with T2 at equal cost.

Vote rule (``vote``, :mod:`t2_agents.vote_rules`): a confidence rule has no exact ``A_x(N)``,
so the fixed-N policies get the seeded Monte-Carlo one (``exact=False``; ``extra["vote"]``: the
largest standard error, the pools that fell back to majority). Sequential policies use majority.

Metrics per policy: accuracy (for replays the mean over replays of the dataset accuracy, with
its standard deviation over replays), mean samples per question, mean completion tokens per
question (the drawn samples' ``tokens``; ``N`` times the pool's mean for exact policies), rounds
(sequential waves, a latency proxy: 1 for one parallel wave; the mean per question, and the
slowest question's averaged over replays), the share of the oracle's saving captured,
``(cost(N_D) - cost) / (cost(N_D) - cost(oracle))`` with cost = mean samples, and the accuracy
minus that of fixed ``N`` interpolated at the same mean samples.

Example:
    >>> pools = [ReplayPool(("4", "4", "5", "4"), (3, 3, 3, 3), frozenset({"4"}))]
    >>> report = evaluate_pools(pools, config=EvalConfig(policies=("fixed", "esc"), replays=20))
    >>> [r.name for r in report.results]
    ['fixed N=1', 'fixed N=2', 'fixed N=4', 'esc']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from t2_agents.budget.names import POLICY_NAMES, REPLAY_POLICIES, replay_policies
from t2_agents.budget.stop_rules import stop_criterion, stop_rule_kinds
from t2_agents.checks import check_int
from t2_agents.confidence import ConfidenceStatistic
from t2_agents.curves.allocate import allocate_budget
from t2_agents.curves.exact import accuracy_curve, dataset_optimal_budget, optimal_budget
from t2_agents.errors import ConfigError, DataError
from t2_agents.evaluate.replay import ReplayPool, StopRules, random_orders, replay_many
from t2_agents.vote_rules import VoteSettings, mc_accuracy_curve

__all__ = [
    "NEED_ESTIMATOR",
    "POLICIES",
    "EvalConfig",
    "EvalReport",
    "PolicyResult",
    "QuestionValues",
    "evaluate_pools",
    "parse_policies",
    "plot_eval",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

POLICIES = REPLAY_POLICIES
"""Every policy name :class:`EvalConfig` and ``t2 eval --policies`` accepted at import
(:func:`~t2_agents.budget.names.replay_policies` also lists stop rules registered since)."""
NEED_ESTIMATOR = tuple(name for name in POLICIES if POLICY_NAMES[name].needs_estimator)
"""The policies that need an estimator (its budgets, caps or curves)."""


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """What to compare and how (see the module docs for the policy definitions).

    Example:
        >>> EvalConfig(policies=("t2", "esc"), window=2).window
        2
    """

    policies: tuple[str, ...] = ("fixed", "nd", "t2", "oracle", "adaptive", "esc", "hybrid")
    """Policy names from :func:`~t2_agents.budget.names.replay_policies` (the table orders its
    rows itself)."""
    replays: int = 200
    """Random orders of each pool replayed for the sequential policies."""
    seed: int = 0
    """Seed of the replay orders."""
    threshold: float = 0.95
    """Beta probability that the leader is the majority, to stop (adaptive, hybrid)."""
    window: int = 4
    """ESC window size and the hybrid's follow-up wave size."""
    decisive_share: float = 0.75
    """Leader share of the valid votes that makes the hybrid's vote decisive."""
    min_votes: int = 2
    """Valid votes the hybrid needs before a vote can be decisive."""
    cap_tolerance: float | None = 0.0
    """The hybrid's cap: the smallest N whose predicted accuracy is within this of the
    predicted best (curve head); None: the pool size."""
    n_d: int | None = None
    """Fixed N_D to report (None: computed on the evaluated data, labelled optimistic)."""
    budget: int | None = None
    """Total samples for ``alloc`` (None: the total T2 uses)."""
    bins: int = 5
    """Difficulty bins of the ``alloc`` curve model."""
    vote: str = "majority"
    """The vote rule of the policies that fix N (:mod:`t2_agents.vote_rules`)."""
    vote_eta: float = 50.0
    """``filtered``: the percentage of the paths with an answer kept; in (0, 100]."""
    vote_statistic: ConfidenceStatistic = "lowest_group"
    """The path confidence the confidence rules read."""
    vote_draws: int = 1000
    """Monte-Carlo permutations per pool under a confidence rule."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "policies", parse_policies(self.policies))
        for name, low in (("replays", 1), ("bins", 1), ("seed", 0)):
            check_int(name, getattr(self, name), low=low)
        for name in ("n_d", "budget"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=1)
        _ = self.stop_rules  # validates the rule settings
        _ = self.vote_settings
        check_int("vote_draws", self.vote_draws, low=2)

    @property
    def vote_settings(self) -> VoteSettings:
        """The vote rule and its parameters."""
        return VoteSettings(kind=self.vote, eta=self.vote_eta, statistic=self.vote_statistic)

    @property
    def stop_rules(self) -> StopRules:
        """The sequential rules' settings."""
        return StopRules(
            threshold=self.threshold,
            window=self.window,
            decisive_share=self.decisive_share,
            min_votes=self.min_votes,
            cap_tolerance=self.cap_tolerance,
        )


def parse_policies(
    policies: str | Sequence[str],
    *,
    allowed: Sequence[str] | None = None,
    option: str = "--policies",
) -> tuple[str, ...]:
    """Policy names from a comma-separated string or a sequence, checked against ``allowed``.

    Args:
        policies: ``"t2, esc"`` or ``["t2", "esc"]`` (case and spaces ignored, duplicates
            dropped).
        allowed: The names to accept; None: the replay's
            (:func:`~t2_agents.budget.names.replay_policies`; the live run passes
            :func:`~t2_agents.budget.names.live_policies`).
        option: The option the names came from, for the message.

    Raises:
        ConfigError: An unknown name, or none at all; the message names the value, the allowed
            names and the option to fix.

    Example:
        >>> parse_policies("t2, ESC")
        ('t2', 'esc')
        >>> parse_policies("t2,beta", allowed=("t2", "esc"), option="--live-policies")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        t2_agents.errors.ConfigError: --live-policies 't2,beta': unknown policies ['beta']; ...
    """
    allowed = replay_policies() if allowed is None else tuple(allowed)
    items = policies.split(",") if isinstance(policies, str) else list(policies)
    names = tuple(dict.fromkeys(str(p).strip().lower() for p in items if str(p).strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        value = policies if isinstance(policies, str) else ",".join(map(str, policies))
        raise ConfigError(
            f"{option} {value!r}: unknown policies {unknown or list(items)}; choose from "
            f"{', '.join(allowed)} (comma-separated, e.g. {option} {','.join(allowed[:2])})"
        )
    return names


@dataclass(frozen=True)
class QuestionValues:
    """A row's per-question values, in the pools' order (for paired comparisons; not in JSON).

    Example:
        >>> QuestionValues(credit=(1.0, 0.5), samples=(4.0, 2.0), tokens=(40.0, 9.0),
        ...                rounds=(1.0, 1.0)).credit
        (1.0, 0.5)
    """

    credit: tuple[float, ...]
    """Exact credit (sequential policies: the mean over replays)."""
    samples: tuple[float, ...]
    """Completions drawn (sequential policies: the mean over replays)."""
    tokens: tuple[float, ...]
    """Completion tokens."""
    rounds: tuple[float, ...]
    """Sequential rounds."""


def _values(credit: FloatArray, samples: FloatArray, tokens: FloatArray,
            rounds: FloatArray) -> QuestionValues:  # fmt: skip
    return QuestionValues(*(tuple(float(v) for v in a) for a in (credit, samples, tokens, rounds)))


@dataclass(frozen=True)
class PolicyResult:
    """One row of the comparison."""

    name: str
    """Display name, e.g. ``fixed N=4``, ``N_D=8 (training set)``, ``t2``."""
    policy: str
    """Policy family (a :data:`POLICIES` name, or ``fixed@alloc`` for the interpolated row)."""
    accuracy: float
    """Mean credit over questions (mean over replays for sequential policies)."""
    accuracy_std: float
    """Standard deviation over replays of the dataset accuracy (0 for exact policies)."""
    mean_samples: float
    """Completions per question."""
    mean_tokens: float
    """Completion tokens per question."""
    rounds: float
    """Sequential rounds per question (latency proxy)."""
    max_rounds: float
    """Rounds of the slowest question (mean over replays)."""
    exact: bool
    """True when computed exactly from A_x(N), False for replays."""
    saving_share: float | None = None
    """Share of the oracle's saving over N_D captured (None for fixed N or when undefined)."""
    delta_fixed: float | None = None
    """Accuracy minus fixed N interpolated at the same mean samples (None for fixed rows)."""
    values: QuestionValues | None = field(default=None, repr=False, compare=False)
    """Per-question values (None for the interpolated row); :meth:`EvalReport.to_dict` leaves
    them out."""


@dataclass(frozen=True)
class EvalReport:
    """The comparison table and what it was computed from.

    Example:
        >>> r = evaluate_pools([ReplayPool(("a", "b"), (1, 1), frozenset({"a"}))],
        ...                    config=EvalConfig(policies=("oracle",)))
        >>> r.result("oracle").accuracy
        0.5
    """

    header: ClassVar[tuple[str, ...]] = (
        "policy", "accuracy", "± std", "mean N", "mean tokens", "rounds", "oracle saving",
        "Δ vs fixed@same N",
    )  # fmt: skip

    questions: int
    """Questions evaluated."""
    pool_sizes: tuple[int, int]
    """Smallest and largest pool size M."""
    n_d: int
    """The N_D row's budget."""
    n_d_source: str
    """Where N_D came from (``training set``, ``given``, ``eval data (optimistic)``)."""
    budget: int | None
    """Total samples given to ``alloc`` (None without it)."""
    budget_source: str | None
    """Where the budget came from."""
    replays: int
    """Replay orders per pool."""
    seed: int
    """Seed of the orders."""
    fixed_curve: tuple[float, ...]
    """Mean exact A(N) for N = 1..min M."""
    results: tuple[PolicyResult, ...]
    """The rows, in table order."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping (e.g. the ``alloc`` curve model)."""

    def result(self, name: str) -> PolicyResult:
        """The row called ``name``.

        Raises:
            ConfigError: No such row.
        """
        for row in self.results:
            if row.name == name:
                return row
        raise ConfigError(f"no row {name!r}; rows: {[r.name for r in self.results]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        for row in out["results"]:
            del row["values"]
        out["pool_sizes"] = list(self.pool_sizes)
        out["fixed_curve"] = list(self.fixed_curve)
        return out

    def table(self) -> list[tuple[str, ...]]:
        """Rows of strings matching :attr:`header`."""

        return [
            (
                row.name,
                f"{row.accuracy:.3f}",
                "" if row.exact else f"{row.accuracy_std:.3f}",
                f"{row.mean_samples:.2f}",
                f"{row.mean_tokens:.1f}",
                f"{row.rounds:.2f}",
                "" if row.saving_share is None else f"{row.saving_share:.2f}",
                "" if row.delta_fixed is None else f"{100 * row.delta_fixed:+.1f} pt",
            )
            for row in self.results
        ]


def _grid(m: int) -> list[int]:
    return sorted({*(2**k for k in range(int(math.log2(m)) + 1)), m})


def _check_budgets(name: str, budgets: IntArray, sizes: IntArray) -> None:
    over = np.flatnonzero((budgets > sizes) | (budgets < 1))
    if len(over):
        q = int(over[0])
        raise ConfigError(
            f"{name} asks N={int(budgets[q])} for question {q} whose pool holds M={sizes[q]} "
            f"({len(over)} such questions); replay needs N <= M: collect larger pools or lower N"
        )


def _exact_row(name: str, policy: str, budgets: IntArray, curves: list[FloatArray],
               mean_tokens: FloatArray) -> PolicyResult:  # fmt: skip
    credit = np.array([c[n - 1] for c, n in zip(curves, budgets, strict=True)])
    tokens = budgets * mean_tokens
    return PolicyResult(
        name=name, policy=policy, accuracy=float(credit.mean()), accuracy_std=0.0,
        mean_samples=float(budgets.mean()), mean_tokens=float(tokens.mean()),
        rounds=1.0, max_rounds=1.0, exact=True,
        values=_values(credit, budgets.astype(np.float64), tokens, np.ones(len(budgets))),
    )  # fmt: skip


def _sequential_rows(
    pools: Sequence[ReplayPool],
    config: EvalConfig,
    first_waves: IntArray | None,
    caps: IntArray | None,
) -> list[PolicyResult]:
    rules = [kind for kind in stop_rule_kinds() if kind in config.policies]
    if not rules:
        return []
    rng, stop = np.random.default_rng(config.seed), config.stop_rules
    shape = (len(rules), len(pools), config.replays)
    credit, samples = np.zeros(shape), np.zeros(shape)
    tokens, rounds = np.zeros(shape), np.zeros(shape)
    for q, pool in enumerate(pools):
        orders = random_orders(pool.size, config.replays, rng)
        first = None if first_waves is None else int(first_waves[q])
        cap = None if caps is None or first is None else max(first, int(caps[q]))
        out = replay_many(pool, rules, orders=orders, stop=stop, n=first, cap=cap)
        for i, rule in enumerate(rules):
            credit[i, q], samples[i, q] = out[rule].credit, out[rule].samples
            tokens[i, q], rounds[i, q] = out[rule].tokens, out[rule].rounds
    rows = []
    for i, rule in enumerate(rules):
        per_replay = credit[i].mean(axis=0)  # [R]
        rows.append(PolicyResult(
            name=rule, policy=rule, accuracy=float(per_replay.mean()),
            accuracy_std=float(per_replay.std()), mean_samples=float(samples[i].mean()),
            mean_tokens=float(tokens[i].mean()), rounds=float(rounds[i].mean()),
            max_rounds=float(rounds[i].max(axis=0).mean()), exact=False,
            values=_values(*(a[i].mean(axis=1) for a in (credit, samples, tokens, rounds))),
        ))  # fmt: skip
    return rows


def evaluate_pools(
    pools: Sequence[ReplayPool],
    *,
    config: EvalConfig | None = None,
    t2: Sequence[int] | IntArray | None = None,
    t2_cap: Sequence[int] | IntArray | None = None,
    predicted_curves: npt.ArrayLike | None = None,
    n_d_source: str = "given",
    budget_source: str | None = None,
) -> EvalReport:
    """Compare the configured policies on ``pools`` (see the module docs).

    Args:
        pools: One :class:`ReplayPool` per question.
        config: Policies and their settings.
        t2: T2's budget per question (needed by ``t2``, ``hybrid`` and ``alloc``'s default
            budget).
        t2_cap: The hybrid's cap per question (its predicted saturation budget; raised to
            ``t2`` where below); None: the pool size.
        predicted_curves: ``alloc``'s predicted ``A_hat_x(N)``, ``[Q, n]``, from features only.
        n_d_source: Label of ``config.n_d`` when it is set.
        budget_source: Label of ``config.budget`` when it is set.

    Raises:
        DataError: No pools.
        ConfigError: A policy lacks its input, or asks for more samples than a pool holds.
    """
    cfg = config or EvalConfig()
    if not pools:
        raise DataError("the dataset is empty; pass at least one question's pool")
    sizes = np.array([p.size for p in pools], dtype=np.int64)
    m_min = int(sizes.min())
    t2_n = None if t2 is None else np.asarray(t2, dtype=np.int64)
    if t2_n is not None and t2_n.shape != (len(pools),):
        raise ConfigError(f"t2 has shape {t2_n.shape}; pass one budget per pool ({len(pools)})")
    missing = [p for p in cfg.policies if t2_n is None and _takes_t2(p)]
    if missing:
        raise ConfigError(f"policies {missing} need T2's budgets; pass an estimator")
    if t2_n is not None:
        _check_budgets("T2", t2_n, sizes)
    caps = None if t2_cap is None else np.asarray(t2_cap, dtype=np.int64)
    if caps is not None and caps.shape != (len(pools),):
        raise ConfigError(f"t2_cap has shape {caps.shape}; pass one cap per pool ({len(pools)})")
    curves, vote_info = _vote_curves(pools, cfg)
    mean_curve = np.mean([c[:m_min] for c in curves], axis=0)
    mean_tokens = np.array([np.mean(p.tokens) for p in pools])
    n_d, source = cfg.n_d, n_d_source
    if n_d is None:
        n_d, source = dataset_optimal_budget([c[:m_min] for c in curves]), "eval data, optimistic"
    if n_d > m_min:
        raise ConfigError(
            f"N_D={n_d} ({source}) exceeds the smallest pool M={m_min}; pass --n-d <= {m_min} "
            "or collect larger pools"
        )
    rows: list[PolicyResult] = []
    extra: dict[str, Any] = {"vote": vote_info}

    def full(n: int) -> IntArray:
        return np.full(len(pools), n, dtype=np.int64)

    if "fixed" in cfg.policies:
        rows += [_exact_row(f"fixed N={n}", "fixed", full(n), curves, mean_tokens)
                 for n in _grid(m_min)]  # fmt: skip
    if "nd" in cfg.policies:
        rows.append(_exact_row(f"N_D={n_d} ({source})", "nd", full(n_d), curves, mean_tokens))
    if "t2" in cfg.policies and t2_n is not None:
        rows.append(_exact_row("t2", "t2", t2_n, curves, mean_tokens))
    oracle = np.array([optimal_budget(c) for c in curves], dtype=np.int64)
    if "oracle" in cfg.policies:
        rows.append(_exact_row("oracle", "oracle", oracle, curves, mean_tokens))
    rows += _sequential_rows(pools, cfg, t2_n, caps)
    budget = None
    if "alloc" in cfg.policies:
        budget, budget_source, alloc_rows = _alloc_rows(
            cfg, predicted_curves, t2_n, budget_source, sizes, curves, mean_tokens, mean_curve
        )
        rows += alloc_rows
    cost_nd, cost_oracle = float(n_d), float(oracle.mean())
    final = []
    for row in rows:
        if vote_info["method"] == "monte-carlo" and row.exact:
            row = replace(row, exact=False)
        if row.policy not in ("fixed", "nd", "fixed@alloc"):
            saving = None
            if cost_nd - cost_oracle > 1e-12:
                saving = (cost_nd - row.mean_samples) / (cost_nd - cost_oracle)
            delta = None
            if row.mean_samples <= m_min:
                delta = row.accuracy - _interp(mean_curve, row.mean_samples)
            row = replace(row, saving_share=saving, delta_fixed=delta)
        final.append(row)
    return EvalReport(
        questions=len(pools), pool_sizes=(m_min, int(sizes.max())), n_d=int(n_d),
        n_d_source=source, budget=budget, budget_source=budget_source if budget else None,
        replays=cfg.replays, seed=cfg.seed,
        fixed_curve=tuple(float(v) for v in mean_curve), results=tuple(final), extra=extra,
    )  # fmt: skip


def _vote_curves(
    pools: Sequence[ReplayPool], cfg: EvalConfig
) -> tuple[list[FloatArray], dict[str, Any]]:
    """Each pool's ``A_x(N)`` under the vote rule: exact for majority, else Monte Carlo."""
    settings = cfg.vote_settings
    info = {"rule": settings.kind, "eta": settings.eta, "statistic": settings.statistic}
    if settings.kind == "majority":
        return [accuracy_curve(p.pool, p.size) for p in pools], {**info, "method": "exact"}
    curves, worst, fallbacks = [], 0.0, 0
    for q, pool in enumerate(pools):
        mc = mc_accuracy_curve(
            pool.answers, pool.confidences, pool.correct, settings, pool.size,
            draws=cfg.vote_draws, seed=cfg.seed * 1_000_003 + q,
        )  # fmt: skip
        curves.append(mc.mean)
        worst = max(worst, float(mc.stderr.max()))
        fallbacks += mc.fallback
    info |= {"method": "monte-carlo", "draws": cfg.vote_draws}
    return curves, info | {"max_question_stderr": worst, "fallback_questions": fallbacks}


def _takes_t2(policy: str) -> bool:
    """Whether ``policy`` needs T2's budgets: ``t2``, and a stop rule whose first wave is N."""
    kinds = stop_rule_kinds()
    return policy == "t2" or (policy in kinds and stop_criterion(policy).takes_first_wave)


def _interp(mean_curve: FloatArray, n: float) -> float:
    grid = np.arange(1, len(mean_curve) + 1, dtype=np.float64)
    return float(np.interp(n, grid, mean_curve))


def _alloc_rows(
    cfg: EvalConfig,
    predicted: npt.ArrayLike | None,
    t2_n: IntArray | None,
    budget_source: str | None,
    sizes: IntArray,
    curves: list[FloatArray],
    mean_tokens: FloatArray,
    mean_curve: FloatArray,
) -> tuple[int, str, list[PolicyResult]]:
    if predicted is None:
        raise ConfigError(
            "policy 'alloc' needs predicted curves from training data; pass --train-data DIR"
        )
    pred = np.asarray(predicted, dtype=np.float64)
    if pred.ndim != 2 or pred.shape[0] != len(sizes):
        raise DataError(f"predicted curves have shape {pred.shape}; pass [{len(sizes)}, n]")
    budget = cfg.budget
    if budget is None:
        if t2_n is None:
            raise ConfigError("policy 'alloc' needs a budget: pass --budget or an estimator")
        budget, budget_source = int(t2_n.sum()), "T2's total"
    budgets = allocate_budget(pred, budget, caps=np.minimum(sizes, pred.shape[1]))
    row = _exact_row(f"alloc (B={budget})", "alloc", budgets, curves, mean_tokens)
    mean_n = row.mean_samples
    same = PolicyResult(
        name=f"fixed N={mean_n:.2f} (interp., alloc's cost)", policy="fixed@alloc",
        accuracy=_interp(mean_curve, mean_n), accuracy_std=0.0, mean_samples=mean_n,
        mean_tokens=float(mean_n * mean_tokens.mean()), rounds=1.0, max_rounds=1.0, exact=True,
    )  # fmt: skip
    return budget, budget_source or "given", [row, same]


def plot_eval(report: EvalReport, path: str | Path) -> Path:
    """Accuracy vs mean samples PNG: fixed N as a curve, every other policy a labelled point.

    Example:
        >>> r = evaluate_pools([ReplayPool(("a", "b", "a"), (1, 1, 1), frozenset({"a"}))],
        ...                    config=EvalConfig(policies=("fixed", "oracle", "esc"), replays=5))
        >>> plot_eval(r, "/tmp/eval.png").name
        'eval.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 5.2))
    n = np.arange(1, len(report.fixed_curve) + 1)
    ax.plot(n, report.fixed_curve, color="0.45", lw=1.5, label="fixed N (exact A(N))")
    fixed = [r for r in report.results if r.policy == "fixed"]
    ax.plot([r.mean_samples for r in fixed], [r.accuracy for r in fixed], "o", color="0.45")
    others = [r for r in report.results if r.policy not in ("fixed", "fixed@alloc")]
    for k, row in enumerate(others):
        err = None if row.exact else row.accuracy_std
        point = (row.mean_samples, row.accuracy)
        ax.errorbar(*point, yerr=err, fmt="o", color=f"C{k}", ms=7, capsize=3, label=row.name)
        offset = (6, 4 if k % 2 else -11)
        ax.annotate(row.name.split(" (")[0], point, textcoords="offset points", xytext=offset)
    for row in (r for r in report.results if r.policy == "fixed@alloc"):
        ax.plot(row.mean_samples, row.accuracy, "D", mfc="none", color="0.3", label=row.name)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="mean samples per question (log2)", ylabel="accuracy")
    ax.set_title(f"Budget policies on {report.questions} questions (replay of the pools)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
