"""When to trust T2's budget: the estimator's calibration settings, and a safe N when it fails.

:class:`Calibration` holds the sampling settings the T2 estimator was calibrated with (read from
its training summary: ``max_tokens``, ``temperature``, the instruction appended to every
question). The endpoint takes its defaults from them, and a request sampled outside them is still
served, with ``t2.calibrated: false`` and the reason (:meth:`Calibration.differences`).

:class:`FallbackPolicy` wraps one request's T2 policy: when the estimator raises (or does not
fit the engine) or the prompt's features fail a check (non-finite values), the request gets a
safe N (``ServeConfig.safe_n``, clamped to its range) and ``t2.fallback`` says why; with
``on_estimator_error="error"`` it raises :class:`EstimatorFailure` instead (a 500).

Example:
    >>> calibration = Calibration(max_tokens=48, temperature=0.7)
    >>> calibration.differences(temperature=1.0, max_tokens=48, prompt="What is 2+2?")
    ['temperature=1 (calibrated at 0.7)']
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from t2_agents.backends.base import Encoder
from t2_agents.budget.policies import T2Policy
from t2_agents.budget.protocols import BudgetPolicy, Features, FloatArray
from t2_agents.errors import T2Error
from t2_agents.estimator.summary import TrainingSummary
from t2_agents.serve.config import EstimatorErrorMode

__all__ = ["Calibration", "EstimatorFailure", "FallbackPolicy"]


@runtime_checkable
class _Trained(Protocol):
    """An estimator that records its training summary (``T2Estimator`` does)."""

    @property
    def training(self) -> TrainingSummary: ...


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """The sampling settings a T2 estimator was calibrated with (None: not recorded).

    Example:
        >>> Calibration().known
        False
    """

    max_tokens: int | None = None
    """Completion-token cap of the calibration pools."""
    temperature: float | None = None
    """Sampling temperature of the calibration pools."""
    instruction: str | None = None
    """Instruction appended to every calibration question."""

    @property
    def known(self) -> bool:
        """Whether any setting is recorded."""
        return any(v is not None for v in (self.max_tokens, self.temperature, self.instruction))

    @classmethod
    def of(cls, policy: BudgetPolicy | None) -> Calibration:
        """The settings of ``policy``'s estimator (empty for another policy, or an estimator
        without a training summary)."""
        if not isinstance(policy, T2Policy) or not isinstance(policy.estimator, _Trained):
            return cls()
        summary = policy.estimator.training
        return cls(
            max_tokens=summary.max_tokens,
            temperature=summary.temperature,
            instruction=summary.instruction or None,
        )

    def differences(self, *, temperature: float, max_tokens: int, prompt: str) -> list[str]:
        """Each recorded setting this request's sampling differs from, with both values.

        Example:
            >>> Calibration(max_tokens=48).differences(temperature=0.7, max_tokens=64, prompt="")
            ['max_tokens=64 (calibrated at 48)']
        """
        out: list[str] = []
        if self.temperature is not None and not math.isclose(temperature, self.temperature):
            out.append(f"temperature={temperature:g} (calibrated at {self.temperature:g})")
        if self.max_tokens is not None and max_tokens != self.max_tokens:
            out.append(f"max_tokens={max_tokens} (calibrated at {self.max_tokens})")
        if self.instruction is not None and self.instruction not in prompt:
            out.append(f"the prompt lacks the calibration instruction {self.instruction!r}")
        return out


class EstimatorFailure(T2Error):
    """T2 could not choose N and the server answers an error (``on_estimator_error="error"``)."""


class FallbackPolicy(BudgetPolicy):
    """One request's T2 policy, with a safe N when the estimator cannot choose.

    Args:
        inner: The request's T2 policy.
        safe_n: Paths when T2 cannot choose (clamped to the request's range); None: ``n_max``.
        mode: ``safe`` (sample the safe N, :attr:`reason` says why) or ``error`` (raise
            :class:`EstimatorFailure`).

    Example:
        >>> class Broken:
        ...     layers, model_identity, hidden_size = [0], "toy", 2
        ...     def predict_one(self, features): raise RuntimeError("no probes")
        >>> policy = FallbackPolicy(T2Policy(Broken()), safe_n=4, mode="safe")
        >>> policy.choose(features=np.zeros((1, 2)), question="q", n_min=1, n_max=8)
        4
        >>> policy.name, policy.reason
        ('safe-4', 'the estimator raised RuntimeError: no probes')
    """

    def __init__(self, inner: T2Policy, *, safe_n: int | None, mode: EstimatorErrorMode) -> None:
        self.inner = inner
        self.safe_n = safe_n
        self.mode = mode
        self.reason: str | None = None
        """Why T2 could not choose (None: it chose)."""
        self._n: int | None = None

    @property
    def name(self) -> str:
        """The inner policy's name, or ``safe-<n>`` once it fell back."""
        return self.inner.name if self._n is None else f"safe-{self._n}"

    @property
    def needs_features(self) -> bool:
        """The inner policy's answer, False once it failed (no encoding for a fixed N)."""
        return self.reason is None and self.inner.needs_features

    @property
    def layers(self) -> Sequence[int]:
        """The inner policy's layers."""
        return self.inner.layers

    def check_engine(self, engine: Encoder) -> None:
        """The inner check; a refusal is a failure to choose, not an error of the request."""
        try:
            self.inner.check_engine(engine)
        except Exception as exc:  # an estimator that does not fit: T2 cannot choose
            self._fail(f"the estimator does not fit the engine: {exc}")

    def choose(self, *, features: Features | None, question: str, n_min: int, n_max: int) -> int:
        """T2's N, or the safe N when the estimator raises or the features fail a check."""
        if self.reason is None:
            problem = _feature_problem(features)
            if problem is not None:
                self._fail(problem)
        if self.reason is None:
            try:
                n = self.inner.choose(
                    features=features, question=question, n_min=n_min, n_max=n_max
                )
            except Exception as exc:
                self._fail(f"the estimator raised {type(exc).__name__}: {exc}")
            else:
                if isinstance(n, numbers.Integral) and not isinstance(n, bool):
                    return int(n)
                self._fail(f"the estimator returned {n!r}, not an integer")
        self._n = max(n_min, min(n_max, self.safe_n if self.safe_n is not None else n_max))
        return self._n

    def choose_cap(
        self, *, features: Features | None, tolerance: float, n_min: int, n_max: int
    ) -> int:
        """The inner cap; ``n_max`` once T2 failed or when the cap fails (N itself was chosen,
        so that is not a fallback)."""
        if self.reason is not None:
            return n_max
        try:
            return self.inner.choose_cap(
                features=features, tolerance=tolerance, n_min=n_min, n_max=n_max
            )
        except Exception as exc:  # N is chosen; the widest cap is the safe one
            self._soft(f"the estimator's cap raised {type(exc).__name__}: {exc}")
            return n_max

    def predict_curve(self, features: Features | None) -> FloatArray | None:
        """The inner curve; None once T2 failed (or when the curve fails)."""
        if self.reason is not None:
            return None
        try:
            return self.inner.predict_curve(features)
        except Exception:  # only run budgets read the curve; without it they grant N
            return None

    def out_of_distribution(self, features: Features | None) -> bool:
        """The inner guard's flag; False once T2 failed or when the guard fails (N itself was
        chosen, so that is not a fallback)."""
        if self.reason is not None:
            return False
        try:
            return self.inner.out_of_distribution(features)
        except Exception as exc:  # N is chosen (the guard only reports here)
            self._soft(f"the estimator's guard raised {type(exc).__name__}: {exc}")
            return False

    def _fail(self, reason: str) -> None:
        self._soft(reason)
        self.reason = reason

    def _soft(self, reason: str) -> None:
        if self.mode == "error":
            raise EstimatorFailure(
                f"T2 could not choose N: {reason}; start the server with "
                "--on-estimator-error safe to serve such requests with a safe N"
            )


def _feature_problem(features: Features | None) -> str | None:
    """Why ``features`` cannot be trusted (None when they can)."""
    if features is None:
        return "the prompt's features were not computed"
    array = np.asarray(features)
    if array.size == 0:
        return "the prompt's features are empty"
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        return "the prompt's features hold NaN or infinite values"
    return None
