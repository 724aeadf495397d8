"""Budget policies: how many reasoning paths one agent step samples.

A policy maps a question (and, when it needs them, the prompt's latent features) to a number of
paths ``N``. The graph's budget node asks the policy, then passes the raw value through
:func:`clamp_budget`.

**Out-of-range or non-integer output is clamped, not refused.** A policy is advice from a model
(an estimator, a heuristic, a lookup table); refusing it would turn a slightly-off prediction
into a failed agent step. So :func:`clamp_budget` rounds a non-integer to the nearest integer
(halves go up), clamps it into ``[n_min, n_max]``, maps ``+inf`` to ``n_max`` and ``-inf`` to
``n_min``, and maps a value that is not a number at all (None, NaN, a string) to ``n_max``, the
conservative choice. Every such correction returns a warning string that the budget node records
in the graph state (``budget_warning``) and streams, so nothing is silently changed. Bad
*configuration* (``n_min > n_max``, ``FixedPolicy(0)``, an estimator made for another model) still
raises.

What a policy implements is declared in :mod:`t2_agents.budget.protocols`
(:class:`BudgetPolicy`: ``choose``, and optional capabilities with defaults; re-exported here).

Policies:

- :class:`FixedPolicy` — always ``n`` (plain self-consistency).
- :class:`CallablePolicy` — any function of the question (and features).
- :class:`OraclePolicy` — a lookup ``question -> N*`` (e.g. the labels computed by
  :mod:`t2_agents.curves.exact`), for upper-bound comparisons.
- :class:`T2Policy` — the layer-wise probe estimator on the prompt's hidden states.

Example:
    >>> FixedPolicy(4).choose(features=None, question="2+2?", n_min=1, n_max=8)
    4
    >>> clamp_budget(11.6, n_min=1, n_max=8)
    (8, 'policy returned 11.6, rounded to 12 and clamped to [1, 8] -> 8')
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import Encoder
from t2_agents.budget.protocols import (
    BasicEstimator,
    BasicPolicy,
    BudgetEstimator,
    BudgetPolicy,
    Features,
    as_budget_estimator,
)
from t2_agents.budget.stop_rules import CAP_FIX
from t2_agents.checks import check_accuracy, check_budget_range, check_tolerance
from t2_agents.errors import ArtifactError, ConfigError

__all__ = [
    "BasicEstimator",
    "BasicPolicy",
    "BudgetEstimator",
    "BudgetPolicy",
    "CallablePolicy",
    "FixedPolicy",
    "OraclePolicy",
    "T2Policy",
    "clamp_budget",
]


def clamp_budget(value: object, *, n_min: int, n_max: int) -> tuple[int, str | None]:
    """Turn a policy's raw output into a valid budget, with a warning when it was corrected.

    Args:
        value: What the policy returned.
        n_min: Smallest allowed budget.
        n_max: Largest allowed budget.

    Returns:
        ``(n, warning)``: the budget in ``[n_min, n_max]`` and None, or the corrected budget and
        a sentence saying what was corrected (see the module docs for the rules).

    Raises:
        ConfigError: The range itself is invalid.

    Example:
        >>> clamp_budget(3, n_min=1, n_max=8)
        (3, None)
        >>> clamp_budget(0, n_min=2, n_max=8)[0]
        2
    """
    n_min, n_max = check_budget_range(n_min, n_max)
    number = _as_number(value)
    if number is None or math.isnan(number):
        return n_max, f"policy returned {value!r}, not a number; used n_max={n_max}"
    if math.isinf(number):
        n = n_max if number > 0 else n_min
        return n, f"policy returned {value!r}; clamped to [{n_min}, {n_max}] -> {n}"
    rounded = math.floor(number + 0.5)
    n = min(max(rounded, n_min), n_max)
    if rounded != number and n != rounded:
        return n, (
            f"policy returned {value!r}, rounded to {rounded} and clamped to "
            f"[{n_min}, {n_max}] -> {n}"
        )
    if rounded != number:
        return n, f"policy returned {value!r}, not an integer; rounded to {n}"
    if n != rounded:
        return n, f"policy returned {rounded}, outside [{n_min}, {n_max}]; clamped to {n}"
    return n, None


def _as_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class FixedPolicy(BudgetPolicy):
    """Always the same budget: plain self-consistency with ``n`` paths.

    Example:
        >>> FixedPolicy(8).name
        'fixed-8'
    """

    n: int
    """The number of paths for every question (>= 1)."""

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, numbers.Integral) or self.n < 1:
            raise ConfigError(f"FixedPolicy(n={self.n!r}): n must be an integer >= 1")

    @property
    def name(self) -> str:
        """``fixed-<n>``."""
        return f"fixed-{self.n}"

    @property
    def needs_features(self) -> bool:
        """Always False."""
        return False

    @property
    def layers(self) -> Sequence[int]:
        """Always empty."""
        return ()

    def choose(self, *, features: Features | None, question: str, n_min: int, n_max: int) -> int:
        """Return ``n`` (the graph clamps it into ``[n_min, n_max]``)."""
        return int(self.n)


@dataclass(frozen=True, slots=True)
class CallablePolicy(BudgetPolicy):
    """A policy from any function of the question (and optionally the features).

    The function is called with keyword arguments ``question``, ``features``, ``n_min`` and
    ``n_max`` and returns the budget; the graph rounds and clamps it (:func:`clamp_budget`).

    Example:
        >>> by_length = CallablePolicy(lambda *, question, **_: 2 + len(question) // 20)
        >>> by_length.choose(features=None, question="x" * 45, n_min=1, n_max=8)
        4
    """

    fn: Callable[..., object]
    """The budget function."""
    _: KW_ONLY
    name: str = "callable"
    """Name recorded in the state and the ledger."""
    needs_features: bool = False
    """Whether ``fn`` reads ``features`` (the graph then encodes ``layers``)."""
    layers: Sequence[int] = ()
    """Decoder layers to encode when ``needs_features`` is True."""

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigError(f"CallablePolicy needs a callable, got {type(self.fn).__name__}")
        if self.needs_features and not self.layers:
            raise ConfigError("CallablePolicy(needs_features=True) needs layers=[...] to encode")
        object.__setattr__(self, "layers", tuple(int(layer) for layer in self.layers))

    def choose(self, *, features: Features | None, question: str, n_min: int, n_max: int) -> int:
        """Call the function; its raw result is returned for the graph to clamp."""
        result = self.fn(question=question, features=features, n_min=n_min, n_max=n_max)
        return result  # type: ignore[return-value]  # clamp_budget validates any object


@dataclass(frozen=True, slots=True)
class OraclePolicy(BudgetPolicy):
    """Look up each question's optimal budget ``N*`` (an upper bound for comparisons).

    Questions are matched exactly first, then with surrounding whitespace stripped.

    Example:
        >>> OraclePolicy({"2+2?": 1}).choose(features=None, question="2+2? ", n_min=1, n_max=8)
        1
    """

    mapping: Mapping[str, int]
    """Question -> its sample-optimal budget N*."""
    default: int | None = None
    """Budget for a question not in ``mapping``; None raises ConfigError instead."""
    name: str = "oracle"
    """Name recorded in the state and the ledger."""
    _stripped: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "_stripped", {key.strip(): value for key, value in self.mapping.items()}
        )

    @property
    def needs_features(self) -> bool:
        """Always False."""
        return False

    @property
    def layers(self) -> Sequence[int]:
        """Always empty."""
        return ()

    def choose(self, *, features: Features | None, question: str, n_min: int, n_max: int) -> int:
        """Return the stored ``N*`` of ``question``.

        Raises:
            ConfigError: The question is unknown and no ``default`` was given.
        """
        if question in self.mapping:
            return self.mapping[question]
        if question.strip() in self._stripped:
            return self._stripped[question.strip()]
        if self.default is not None:
            return self.default
        raise ConfigError(
            f"OraclePolicy has no budget for question {question[:60]!r} "
            f"({len(self.mapping)} known); add it to the mapping or pass default=N"
        )


class T2Policy(BudgetPolicy):
    """The T2 budget: a layer-wise probe estimator reading the prompt's hidden states.

    Args:
        estimator: A fitted estimator (:class:`BudgetEstimator`, e.g. a loaded
            :class:`~t2_agents.estimator.estimator.T2Estimator`); a smaller duck-typed one
            (:class:`~t2_agents.budget.protocols.BasicEstimator`) is completed with the
            defaults (no knob, no curve, no guard).
        engine: When given, checked at once with :meth:`check_engine`.
        tolerance: The cost knob of a curve-head estimator: the accuracy (0..1) you accept to
            lose against the best budget it predicts; larger spends fewer paths. None (and no
            ``price``) uses the estimator's default rule and value (calibrated on validation).
        price: The other knob of a curve-head estimator: the accuracy (0..1) one more path
            must buy; the budget maximises predicted accuracy minus ``price`` per path.
        guard: Apply the estimator's distribution guard (questions unlike the training ones get
            its safe budget). False when your questions are like the training questions but
            phrased differently; better, calibrate on your own questions.

    Raises:
        ArtifactError: ``engine`` is not the model the estimator was fitted on.
        ConfigError: Not an estimator, a knob outside ``[0, 1]``, both knobs, or a knob for an
            estimator without a curve head.

    Example:
        >>> class Const:
        ...     layers, model_identity, hidden_size = [3], "toy", 4
        ...     def predict_one(self, features): return 5
        >>> T2Policy(Const()).name
        't2'
    """

    __slots__ = ("_checked", "_model", "estimator", "guard", "price", "tolerance")

    def __init__(
        self,
        estimator: BasicEstimator,
        *,
        engine: Encoder | None = None,
        tolerance: float | None = None,
        price: float | None = None,
        guard: bool = True,
    ) -> None:
        model = as_budget_estimator(estimator)
        if tolerance is not None and price is not None:
            raise ConfigError(
                f"tolerance={tolerance!r} and price={price!r} are two rules; give one of them"
            )
        for name, value in (("tolerance", tolerance), ("price", price)):
            if value is None:
                continue
            check_tolerance(value, name=name)
            if not model.has_knob:
                raise ConfigError(
                    f"{name}={value!r} needs an estimator with a curve head; this one "
                    f"({type(estimator).__name__}) predicts N* directly: drop {name} or load "
                    "a curve-head estimator (t2 train --head curve)"
                )
        self.estimator = estimator  # as given; self._model is its completed view
        self._model: BudgetEstimator = model
        self.tolerance = tolerance
        self.price = price
        self.guard = bool(guard)
        self._checked: set[tuple[str, int]] = set()
        if engine is not None:
            self.check_engine(engine)

    @property
    def name(self) -> str:
        """``t2``."""
        return "t2"

    @property
    def needs_features(self) -> bool:
        """Always True."""
        return True

    @property
    def layers(self) -> Sequence[int]:
        """The estimator's layers."""
        return tuple(int(layer) for layer in self._model.layers)

    def check_engine(self, engine: Encoder) -> None:
        """Check that ``engine`` runs the model the estimator was fitted on.

        Raises:
            ArtifactError: The engine's identity or hidden size differs from the estimator's,
                or the engine lacks one of the estimator's layers.
        """
        identity, hidden = str(engine.identity), int(engine.hidden_size)
        if (identity, hidden) in self._checked:
            return
        want_identity = str(self._model.model_identity)
        want_hidden = int(self._model.hidden_size)
        if identity != want_identity:
            raise ArtifactError(
                f"the estimator was fitted on model {want_identity!r} but the engine runs "
                f"{identity!r}; load the engine for {want_identity!r} or refit the estimator"
            )
        if hidden != want_hidden:
            raise ArtifactError(
                f"the estimator expects hidden size {want_hidden} but the engine's is {hidden}; "
                "use the matching model or refit the estimator"
            )
        layers = int(engine.num_layers)
        missing = [layer for layer in self.layers if not 0 <= layer < layers]
        if missing:
            raise ArtifactError(
                f"the estimator reads layers {list(self.layers)} but the engine has {layers} "
                f"layers (no {missing}); load the model the estimator was fitted on or refit it"
            )
        self._checked.add((identity, hidden))

    def choose(self, *, features: Features | None, question: str, n_min: int, n_max: int) -> int:
        """Predict the budget from ``features`` (``[L, d]`` or ``[1, L, d]``).

        Raises:
            ConfigError: ``features`` is None or its shape does not match the estimator.
        """
        array = self._features(features)
        return int(
            self._model.predict_one(
                array, tolerance=self.tolerance, price=self._price(), guard=self._guarded()
            )
        )

    def choose_cap(
        self, *, features: Features | None, tolerance: float, n_min: int, n_max: int
    ) -> int:
        """The budget where the predicted accuracy curve saturates: the hybrid's cap.

        The smallest ``N`` whose predicted accuracy is within ``tolerance`` of the predicted
        best (guarded like :meth:`choose`), clamped to ``n_min..n_max``; ``n_max`` for an
        estimator without a curve head (nothing predicts where it saturates).

        Raises:
            ConfigError: ``features`` is None or its shape does not match the estimator, or
                ``tolerance`` is outside ``[0, 1]``.

        Example:
            >>> class Const:
            ...     layers, model_identity, hidden_size = [3], "toy", 4
            ...     def predict_one(self, features): return 5
            >>> T2Policy(Const()).choose_cap(features=np.zeros((1, 4)), tolerance=0.0,
            ...                              n_min=1, n_max=16)
            16
        """
        check_accuracy("cap_tolerance", tolerance, fix=CAP_FIX)
        array = self._features(features)
        if not self._model.has_knob:
            return n_max
        cap = int(self._model.predict_one(array, tolerance=tolerance, guard=self._guarded()))
        return max(n_min, min(n_max, cap))

    def _price(self) -> float | None:
        """The price knob, when it is the rule (a tolerance wins)."""
        return self.price if self.tolerance is None else None

    def _guarded(self) -> bool:
        """Whether to apply the estimator's guard: off only when the user turned off a guard
        the estimator has (so an estimator without one is never asked about it)."""
        return self.guard or self._model.guard is None

    def out_of_distribution(self, features: Features | None) -> bool:
        """True when the estimator's distribution guard flags ``features`` (``[L, d]``).

        A flagged question lies farther from the training questions than 99 % of them, and
        :meth:`choose` gives it at least the guard's safe budget. False for an estimator
        without a guard, or with ``guard=False``.

        Raises:
            ConfigError: ``features`` is None or its shape does not match the estimator.
        """
        array = self._features(features)
        return self.guard and bool(self._model.out_of_distribution(array[None])[0])

    def predict_curve(self, features: Features | None) -> npt.NDArray[np.float64] | None:
        """Predicted accuracy ``A(N)`` for ``N = 1..max(grid)`` (curve head), else None.

        Between grid points the curve holds the value of the largest grid budget ``<= N``.
        A run budget (:mod:`t2_agents.graph.budgets`) spends by this curve's marginal gains.

        Raises:
            ConfigError: ``features`` is None or its shape does not match the estimator.
        """
        if not self._model.has_knob:
            return None
        array = self._features(features)
        predicted = self._model.predict_curve(array[None], guard=self._guarded())
        values = np.asarray(predicted, dtype=np.float64)[0]
        grid = [int(g) for g in self._model.grid] or list(range(1, len(values) + 1))
        index = np.searchsorted(np.asarray(grid), np.arange(1, max(grid) + 1), side="right")
        return np.asarray(values[np.maximum(index - 1, 0)], dtype=np.float64)

    def _features(self, features: Features | None) -> Features:
        if features is None:
            raise ConfigError("T2Policy needs features; the budget node encodes them for it")
        array = np.asarray(features)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        expected = (len(self.layers), int(self._model.hidden_size))
        if array.shape != expected:
            raise ConfigError(
                f"T2Policy got features of shape {array.shape}, expected {expected} "
                "(one row per estimator layer); encode with the estimator's layers"
            )
        return array

    def __repr__(self) -> str:
        knob = "" if self.tolerance is None else f", tolerance={self.tolerance}"
        knob += "" if self.price is None else f", price={self.price}"
        knob += "" if self.guard else ", guard=False"
        return f"T2Policy(model={self._model.model_identity!r}, layers={list(self.layers)}{knob})"
