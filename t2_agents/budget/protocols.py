"""What the graph uses from a budget policy, and what :class:`~t2_agents.budget.policies.T2Policy`
uses from an estimator: protocols whose optional capabilities have default implementations.

A policy must choose (:class:`BasicPolicy`: ``name``, ``needs_features``, ``layers``,
``choose``). The graph also asks it four optional things, declared on :class:`BudgetPolicy`
with defaults: ``check_engine`` (accept any engine), ``choose_cap`` (the hybrid stop rule's cap:
``n_max``), ``predict_curve`` (no curve: a run budget spends by its own rule) and
``out_of_distribution`` (never flagged). The library's policies subclass :class:`BudgetPolicy`
and inherit the defaults; so may yours. An object that only implements :class:`BasicPolicy`
(and perhaps some of the four) works too: :func:`as_budget_policy` completes it once, at the
graph's door, and the graph calls the methods without probing.

Likewise an estimator must predict (:class:`BasicEstimator`); :class:`BudgetEstimator` is the
whole surface T2 and its evaluations use (:class:`~t2_agents.estimator.estimator.T2Estimator`
implements all of it: the curve head's knob, grid and curves, the distribution guard, the
training questions' text and instance keys), and :func:`as_budget_estimator` completes a smaller
duck-typed one with the defaults.

Example:
    >>> class Halves:
    ...     name, needs_features, layers = "halves", False, ()
    ...     def choose(self, *, features, question, n_min, n_max): return n_max // 2
    >>> policy = as_budget_policy(Halves())
    >>> policy.choose_cap(features=None, tolerance=0.0, n_min=1, n_max=8)
    8
    >>> policy.predict_curve(None), policy.out_of_distribution(None)
    (None, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from t2_agents.backends.base import Encoder
from t2_agents.errors import ConfigError

__all__ = [
    "BasicEstimator",
    "BasicPolicy",
    "BudgetEstimator",
    "BudgetPolicy",
    "Features",
    "as_budget_estimator",
    "as_budget_policy",
]

Features = npt.NDArray[np.floating[Any]]
"""One question's features ``[L, d]`` (or a batch ``[Q, L, d]`` for an estimator)."""
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@runtime_checkable
class BasicPolicy(Protocol):
    """The least a policy implements: choose a number of paths for one question.

    Example:
        >>> from t2_agents.budget.policies import FixedPolicy
        >>> isinstance(FixedPolicy(2), BasicPolicy)
        True
    """

    @property
    def name(self) -> str:
        """A short name recorded in the graph state and the cost ledger."""
        ...

    @property
    def needs_features(self) -> bool:
        """True when :meth:`choose` needs the prompt's features (the graph then encodes)."""
        ...

    @property
    def layers(self) -> Sequence[int]:
        """Decoder layers whose features :meth:`choose` reads; empty when it needs none."""
        ...

    def choose(self, *, features: Features | None, question: str, n_min: int, n_max: int) -> int:
        """Return the number of paths; the graph clamps it with ``clamp_budget``."""
        ...


@runtime_checkable
class BudgetPolicy(BasicPolicy, Protocol):
    """Everything the graph asks a policy; the optional capabilities have defaults.

    Subclass it to inherit the defaults (the library's policies do).

    Example:
        >>> from t2_agents.budget.policies import FixedPolicy
        >>> FixedPolicy(2).choose_cap(features=None, tolerance=0.0, n_min=1, n_max=8)
        8
    """

    __slots__ = ()

    def check_engine(self, engine: Encoder) -> None:
        """Refuse an engine the policy cannot run with (default: accept any).

        Raises:
            ArtifactError: The engine is not the model the policy was made for.
        """
        del engine

    def choose_cap(
        self, *, features: Features | None, tolerance: float, n_min: int, n_max: int
    ) -> int:
        """The hybrid stop rule's cap: where more paths stop paying (default: ``n_max``)."""
        del features, tolerance, n_min
        return n_max

    def predict_curve(self, features: Features | None) -> FloatArray | None:
        """Predicted accuracy ``A(N)`` for ``N = 1, 2, ...`` (default: None, no curve)."""
        del features
        return None

    def out_of_distribution(self, features: Features | None) -> bool:
        """Whether the question is unlike the policy's training questions (default: False)."""
        del features
        return False


@runtime_checkable
class _ChecksEngine(Protocol):
    def check_engine(self, engine: Encoder) -> None: ...


@runtime_checkable
class _ChoosesCap(Protocol):
    def choose_cap(
        self, *, features: Features | None, tolerance: float, n_min: int, n_max: int
    ) -> int: ...


@runtime_checkable
class _PredictsCurve(Protocol):
    def predict_curve(self, features: Features | None) -> FloatArray | None: ...


@runtime_checkable
class _FlagsDistribution(Protocol):
    def out_of_distribution(self, features: Features | None) -> bool: ...


class _CompletedPolicy(BudgetPolicy):
    """A :class:`BasicPolicy` with the capabilities it lacks filled in by the defaults."""

    __slots__ = ("_caps", "_checks", "_curves", "_flags", "policy")

    def __init__(self, policy: BasicPolicy) -> None:
        self.policy = policy
        self._checks = policy if isinstance(policy, _ChecksEngine) else None
        self._caps = policy if isinstance(policy, _ChoosesCap) else None
        self._curves = policy if isinstance(policy, _PredictsCurve) else None
        self._flags = policy if isinstance(policy, _FlagsDistribution) else None

    @property
    def name(self) -> str:
        """The policy's name."""
        return self.policy.name

    @property
    def needs_features(self) -> bool:
        """Whether the policy reads features."""
        return self.policy.needs_features

    @property
    def layers(self) -> Sequence[int]:
        """The policy's layers."""
        return self.policy.layers

    def choose(self, *, features: Features | None, question: str, n_min: int, n_max: int) -> int:
        """The policy's choice."""
        return self.policy.choose(features=features, question=question, n_min=n_min, n_max=n_max)

    def check_engine(self, engine: Encoder) -> None:
        """The policy's check, if it has one."""
        if self._checks is not None:
            self._checks.check_engine(engine)

    def choose_cap(
        self, *, features: Features | None, tolerance: float, n_min: int, n_max: int
    ) -> int:
        """The policy's cap, if it has one, else ``n_max``."""
        if self._caps is None:
            return n_max
        return self._caps.choose_cap(
            features=features, tolerance=tolerance, n_min=n_min, n_max=n_max
        )

    def predict_curve(self, features: Features | None) -> FloatArray | None:
        """The policy's curve, if it has one."""
        return None if self._curves is None else self._curves.predict_curve(features)

    def out_of_distribution(self, features: Features | None) -> bool:
        """The policy's flag, if it has one."""
        return self._flags is not None and bool(self._flags.out_of_distribution(features))

    def __repr__(self) -> str:
        return repr(self.policy)


def as_budget_policy(policy: BasicPolicy) -> BudgetPolicy:
    """``policy`` itself when it implements :class:`BudgetPolicy`, else completed by defaults.

    Capabilities the object implements are kept; the others get :class:`BudgetPolicy`'s
    defaults. The graph calls this once per step, then calls the methods directly.

    Raises:
        ConfigError: ``policy`` does not even choose (no :class:`BasicPolicy`).

    Example:
        >>> from t2_agents.budget.policies import FixedPolicy
        >>> as_budget_policy(FixedPolicy(3)) == FixedPolicy(3)
        True
    """
    if isinstance(policy, BudgetPolicy):
        return policy
    if not isinstance(policy, BasicPolicy):
        raise ConfigError(
            f"policy={policy!r} is not a budget policy: it needs .name, .needs_features, "
            ".layers and .choose(*, features, question, n_min, n_max); wrap a function in "
            "CallablePolicy or subclass t2_agents.budget.protocols.BudgetPolicy"
        )
    return _CompletedPolicy(policy)


@runtime_checkable
class BasicEstimator(Protocol):
    """The least an estimator implements for :class:`~t2_agents.budget.policies.T2Policy`."""

    @property
    def layers(self) -> Sequence[int]:
        """The layers the probes read, in the order of the feature rows."""
        ...

    @property
    def model_identity(self) -> str:
        """The engine identity the estimator was fitted on."""
        ...

    @property
    def hidden_size(self) -> int:
        """The feature width the estimator was fitted on."""
        ...

    def predict_one(self, features: Features) -> int:
        """Predict the budget of one question from its ``[n_layers, hidden_size]`` features."""
        ...


@runtime_checkable
class BudgetEstimator(BasicEstimator, Protocol):
    """Everything :class:`~t2_agents.budget.policies.T2Policy` uses from an estimator.

    :class:`~t2_agents.estimator.estimator.T2Estimator` implements it all; the optional parts
    (a curve head's knob, grid and curves; a distribution guard) have defaults for estimators
    that subclass this protocol (or are completed by :func:`as_budget_estimator`).

    Example:
        >>> class Const(BudgetEstimator):
        ...     layers, model_identity, hidden_size = (3,), "toy", 4
        ...     def predict_one(self, features, **options): return 5
        >>> Const().has_knob, Const().out_of_distribution(np.zeros((2, 1, 4))).tolist()
        (False, [False, False])
        >>> Const().training_keys, Const().training_instance_keys
        (frozenset(), frozenset())
    """

    __slots__ = ()

    @property
    def has_knob(self) -> bool:
        """True when ``predict_one`` takes ``tolerance`` or ``price`` and there are curves
        (the curve head); default False."""
        return False

    @property
    def grid(self) -> Sequence[int]:
        """The budget grid of the predicted curves (default: empty, i.e. ``1..len(curve)``)."""
        return ()

    @property
    def guard(self) -> object | None:
        """The distribution guard (default: None, no guard)."""
        return None

    @property
    def training_keys(self) -> frozenset[str]:
        """Text keys of the questions the estimator was trained on (default: none known).

        Held-out draws and evaluations leave a question out when its text key is here or its
        instance key is in :attr:`training_instance_keys`.
        """
        return frozenset()

    @property
    def training_instance_keys(self) -> frozenset[str]:
        """Instance keys of the training questions (default: none known, e.g. an artifact
        trained before instances were recorded)."""
        return frozenset()

    def predict_one(
        self,
        features: Features,
        *,
        tolerance: float | None = None,
        price: float | None = None,
        guard: bool = True,
    ) -> int:
        """The budget of one question's features ``[L, d]``: by the curve head's knob
        (``tolerance`` or ``price``) when given, the guard applied unless ``guard=False``."""
        ...

    def predict_curve(self, features: Features, *, guard: bool = True) -> FloatArray:
        """Predicted accuracy on the grid, ``[Q, len(grid)]`` (curve head only).

        Raises:
            ConfigError: No curve head (the default).
        """
        del features, guard
        raise ConfigError(
            "this estimator has no curve head (has_knob is False): it predicts budgets, not "
            "accuracy curves; use a curve-head estimator (t2 train --head curve)"
        )

    def out_of_distribution(self, features: Features) -> BoolArray:
        """Which questions of ``features`` ``[Q, L, d]`` the guard flags (default: none)."""
        return np.zeros(len(features), dtype=np.bool_)


@runtime_checkable
class _HasKnob(Protocol):
    @property
    def has_knob(self) -> bool: ...


@runtime_checkable
class _HasGrid(Protocol):
    @property
    def grid(self) -> Sequence[int]: ...


@runtime_checkable
class _HasGuard(Protocol):
    @property
    def guard(self) -> object | None: ...


@runtime_checkable
class _HasTrainingKeys(Protocol):
    @property
    def training_keys(self) -> frozenset[str]: ...


@runtime_checkable
class _HasInstanceKeys(Protocol):
    @property
    def training_instance_keys(self) -> frozenset[str]: ...


@runtime_checkable
class _Curves(Protocol):
    def predict_curve(self, features: Features, **options: bool) -> FloatArray: ...


@runtime_checkable
class _Flags(Protocol):
    def out_of_distribution(self, features: Features) -> BoolArray: ...


class _CompletedEstimator(BudgetEstimator):
    """A :class:`BasicEstimator` with the members it lacks filled in by the defaults."""

    __slots__ = ("_curves", "_flags", "_grid", "_guard", "_instances", "_keys", "_knob",
                 "estimator")  # fmt: skip

    def __init__(self, estimator: BasicEstimator) -> None:
        self.estimator = estimator
        self._knob = isinstance(estimator, _HasKnob) and bool(estimator.has_knob)
        self._grid = tuple(estimator.grid) if isinstance(estimator, _HasGrid) else ()
        self._guard = estimator.guard if isinstance(estimator, _HasGuard) else None
        self._keys: frozenset[str] = frozenset()
        self._instances: frozenset[str] = frozenset()
        if isinstance(estimator, _HasTrainingKeys):
            self._keys = frozenset(estimator.training_keys)
        if isinstance(estimator, _HasInstanceKeys):
            self._instances = frozenset(estimator.training_instance_keys)
        self._curves = estimator if isinstance(estimator, _Curves) else None
        self._flags = estimator if isinstance(estimator, _Flags) else None

    @property
    def layers(self) -> Sequence[int]:
        """The estimator's layers."""
        return self.estimator.layers

    @property
    def model_identity(self) -> str:
        """The estimator's model identity."""
        return self.estimator.model_identity

    @property
    def hidden_size(self) -> int:
        """The estimator's feature width."""
        return self.estimator.hidden_size

    @property
    def has_knob(self) -> bool:
        """The estimator's ``has_knob`` (False without one)."""
        return self._knob

    @property
    def grid(self) -> Sequence[int]:
        """The estimator's grid (empty without one)."""
        return self._grid

    @property
    def guard(self) -> object | None:
        """The estimator's guard (None without one)."""
        return self._guard

    @property
    def training_keys(self) -> frozenset[str]:
        """The estimator's training text keys (none without them)."""
        return self._keys

    @property
    def training_instance_keys(self) -> frozenset[str]:
        """The estimator's training instance keys (none without them)."""
        return self._instances

    def predict_one(
        self,
        features: Features,
        *,
        tolerance: float | None = None,
        price: float | None = None,
        guard: bool = True,
    ) -> int:
        """The estimator's budget; only the options that are set are passed on."""
        options: dict[str, Any] = {"tolerance": tolerance, "price": price}
        options = {k: v for k, v in options.items() if v is not None}
        if not guard:
            options["guard"] = False
        predict: Any = self.estimator.predict_one  # a basic estimator may take no options
        return int(predict(features, **options))

    def predict_curve(self, features: Features, *, guard: bool = True) -> FloatArray:
        """The estimator's curves (``guard`` passed on only when False).

        Raises:
            ConfigError: The estimator has no ``predict_curve``.
        """
        if self._curves is None:
            return super().predict_curve(features, guard=guard)
        return self._curves.predict_curve(features, **({} if guard else {"guard": False}))

    def out_of_distribution(self, features: Features) -> BoolArray:
        """The estimator's flags (none flagged without them)."""
        if self._flags is None:
            return super().out_of_distribution(features)
        return self._flags.out_of_distribution(features)


def as_budget_estimator(estimator: BasicEstimator) -> BudgetEstimator:
    """``estimator`` itself when it implements :class:`BudgetEstimator`, else completed.

    Raises:
        ConfigError: ``estimator`` lacks a member of :class:`BasicEstimator`.

    Example:
        >>> class Const:
        ...     layers, model_identity, hidden_size = (3,), "toy", 4
        ...     def predict_one(self, features): return 5
        >>> completed = as_budget_estimator(Const())
        >>> completed.has_knob, completed.predict_one(np.zeros((1, 4)))
        (False, 5)
        >>> completed.training_keys  # none known: nothing can be left out as seen
        frozenset()
    """
    if isinstance(estimator, BudgetEstimator):
        return estimator
    if not isinstance(estimator, BasicEstimator):
        raise ConfigError(
            f"T2Policy needs an estimator with .layers, .model_identity, .hidden_size and "
            f".predict_one(features); got {type(estimator).__name__} (load one with "
            "t2_agents.estimator.estimator.T2Estimator.load)"
        )
    return _CompletedEstimator(estimator)
