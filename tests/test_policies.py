"""Tests of t2_agents.budget.policies: the protocol, clamping, and the four policies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import (
    BudgetEstimator,
    BudgetPolicy,
    CallablePolicy,
    FixedPolicy,
    OraclePolicy,
    T2Policy,
    clamp_budget,
)
from t2_agents.budget.protocols import as_budget_estimator, as_budget_policy
from t2_agents.checks import check_budget_range
from t2_agents.errors import ArtifactError, ConfigError


class StubEstimator:
    """Duck-typed estimator: predicts the first feature of the first layer, rounded."""

    def __init__(self, *, identity: str = "fake-engine", hidden: int = 8, value: int = 5) -> None:
        self.layers: list[int] = [1, 3]
        self.n_min = 1
        self.n_max = 16
        self.model_identity = identity
        self.hidden_size = hidden
        self.value = value
        self.seen: list[tuple[int, ...]] = []

    def predict_one(self, features: np.ndarray) -> int:
        self.seen.append(tuple(features.shape))
        return self.value


@pytest.mark.parametrize(
    ("value", "expected", "warns"),
    [
        (3, 3, False),
        (np.int64(4), 4, False),
        (8, 8, False),
        (1, 1, False),
        (0, 1, True),
        (-5, 1, True),
        (9, 8, True),
        (2.4, 2, True),
        (2.5, 3, True),
        (3.0, 3, False),
        (np.float32(7.6), 8, True),
        (11.6, 8, True),
        (math.inf, 8, True),
        (-math.inf, 1, True),
        (math.nan, 8, True),
        (None, 8, True),
        ("4", 8, True),
        (True, 8, True),
    ],
)
def test_clamp_budget(value: object, expected: int, warns: bool) -> None:
    n, warning = clamp_budget(value, n_min=1, n_max=8)
    assert n == expected
    assert isinstance(n, int)
    assert (warning is not None) == warns
    if warning is not None:
        assert repr(value) in warning or str(value) in warning


def test_clamp_respects_n_min() -> None:
    assert clamp_budget(1, n_min=3, n_max=8) == (
        3,
        "policy returned 1, outside [3, 8]; clamped to 3",
    )


@pytest.mark.parametrize(("n_min", "n_max"), [(0, 4), (5, 4), (1.5, 4), (1, "8"), (True, 4)])
def test_bad_range(n_min: object, n_max: object) -> None:
    with pytest.raises(ConfigError):
        check_budget_range(n_min, n_max)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        clamp_budget(3, n_min=n_min, n_max=n_max)  # type: ignore[arg-type]


def test_fixed_policy() -> None:
    policy = FixedPolicy(4)
    assert isinstance(policy, BudgetPolicy)
    assert (policy.name, policy.needs_features, tuple(policy.layers)) == ("fixed-4", False, ())
    assert policy.choose(features=None, question="q", n_min=1, n_max=2) == 4  # graph clamps
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ConfigError):
            FixedPolicy(bad)  # type: ignore[arg-type]


def test_callable_policy() -> None:
    seen: list[dict[str, object]] = []

    def fn(**kwargs: object) -> float:
        seen.append(kwargs)
        return 2.7

    policy = CallablePolicy(fn, name="heuristic")
    assert isinstance(policy, BudgetPolicy)
    assert policy.name == "heuristic"
    assert policy.choose(features=None, question="q", n_min=1, n_max=8) == 2.7
    assert seen == [{"question": "q", "features": None, "n_min": 1, "n_max": 8}]
    with pytest.raises(ConfigError, match="callable"):
        CallablePolicy(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="layers"):
        CallablePolicy(fn, needs_features=True)
    featured = CallablePolicy(fn, needs_features=True, layers=[0, np.int64(2)])
    assert featured.layers == (0, 2)


def test_oracle_policy() -> None:
    policy = OraclePolicy({"What is 2+2?": 1, "  hard one ": 16})
    assert isinstance(policy, BudgetPolicy)
    assert policy.choose(features=None, question="What is 2+2?", n_min=1, n_max=8) == 1
    assert policy.choose(features=None, question="hard one", n_min=1, n_max=8) == 16
    with pytest.raises(ConfigError, match="no budget"):
        policy.choose(features=None, question="unknown", n_min=1, n_max=8)
    fallback = OraclePolicy({}, default=5)
    assert fallback.choose(features=None, question="unknown", n_min=1, n_max=8) == 5


def test_t2_policy_checks_engine() -> None:
    engine = FakeEngine(hidden_size=8)
    policy = T2Policy(StubEstimator(), engine=engine)
    assert isinstance(policy, BudgetPolicy)
    assert policy.needs_features and tuple(policy.layers) == (1, 3)
    with pytest.raises(ArtifactError, match="other-model"):
        T2Policy(StubEstimator(identity="other-model"), engine=engine)
    with pytest.raises(ArtifactError, match="hidden size 16"):
        T2Policy(StubEstimator(hidden=16), engine=engine)
    lazy = T2Policy(StubEstimator(identity="x"))  # no engine: checked later by the graph
    with pytest.raises(ArtifactError):
        lazy.check_engine(engine)


def test_t2_policy_needs_an_estimator() -> None:
    with pytest.raises(ConfigError, match=r"estimator with \.layers, \.model_identity"):
        T2Policy(object())  # type: ignore[arg-type]


def test_t2_policy_features() -> None:
    estimator = StubEstimator(value=6)
    policy = T2Policy(estimator)
    features = FakeEngine().encode(["q"], list(policy.layers))
    assert policy.choose(features=features, question="q", n_min=1, n_max=8) == 6
    assert policy.choose(features=features[0], question="q", n_min=1, n_max=8) == 6
    assert estimator.seen == [(2, 8), (2, 8)]
    with pytest.raises(ConfigError, match="needs features"):
        policy.choose(features=None, question="q", n_min=1, n_max=8)
    with pytest.raises(ConfigError, match="shape"):
        policy.choose(features=np.zeros((3, 8)), question="q", n_min=1, n_max=8)


def test_protocol_rejects_incomplete_objects() -> None:
    class NoChoose:
        name = "x"
        needs_features = False
        layers: Sequence[int] = ()

    assert not isinstance(NoChoose(), BudgetPolicy)


class _KnobEstimator:
    layers, n_min, n_max = [3], 1, 8
    model_identity, hidden_size, has_knob = "toy", 4, True

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    def predict_one(
        self, features: Any, tolerance: float | None = None, price: float | None = None
    ) -> int:
        self.seen.append(tolerance if price is None else -price)
        return 2 if tolerance else 3 if price else 8


def test_t2_policy_passes_the_tolerance_knob() -> None:
    est = _KnobEstimator()
    features = np.zeros((1, 4), np.float32)
    assert T2Policy(est).choose(features=features, question="q", n_min=1, n_max=8) == 8
    knob = T2Policy(est, tolerance=0.05)
    assert knob.choose(features=features, question="q", n_min=1, n_max=8) == 2
    priced = T2Policy(est, price=0.01)
    assert priced.choose(features=features, question="q", n_min=1, n_max=8) == 3
    assert est.seen == [None, 0.05, -0.01] and "tolerance=0.05" in repr(knob)
    assert "price=0.01" in repr(priced)


def test_t2_policy_tolerance_errors() -> None:
    with pytest.raises(ConfigError, match=r"tolerance=1.5 is not an accuracy in \[0, 1\]"):
        T2Policy(_KnobEstimator(), tolerance=1.5)
    est = _KnobEstimator()
    est.has_knob = False
    with pytest.raises(ConfigError, match="needs an estimator with a curve head"):
        T2Policy(est, tolerance=0.01)
    with pytest.raises(ConfigError, match=r"price=-1 is not an accuracy in \[0, 1\]"):
        T2Policy(_KnobEstimator(), price=-1)
    with pytest.raises(ConfigError, match="are two rules; give one of them"):
        T2Policy(_KnobEstimator(), tolerance=0.01, price=0.01)


def test_t2_policy_cap_is_the_curve_head_s_budget_at_the_cap_tolerance() -> None:
    est = _KnobEstimator()
    features = np.zeros((1, 4), np.float32)
    policy = T2Policy(est)
    assert policy.choose_cap(features=features, tolerance=0.0, n_min=1, n_max=16) == 8
    assert policy.choose_cap(features=features, tolerance=0.05, n_min=3, n_max=16) == 3
    assert policy.choose_cap(features=features, tolerance=0.0, n_min=1, n_max=6) == 6
    assert est.seen == [0.0, 0.05, 0.0]
    with pytest.raises(ConfigError, match=r"cap_tolerance=2 is not an accuracy in \[0, 1\]"):
        policy.choose_cap(features=features, tolerance=2, n_min=1, n_max=8)
    with pytest.raises(ConfigError, match="needs features"):
        policy.choose_cap(features=None, tolerance=0.0, n_min=1, n_max=8)
    nstar = _KnobEstimator()
    nstar.has_knob = False
    assert T2Policy(nstar).choose_cap(features=features, tolerance=0.0, n_min=1, n_max=16) == 16


# -- protocols: optional capabilities with defaults, completed once at the graph's door -------
class _ChooseOnly:
    """A user policy that only chooses (no capability of BudgetPolicy)."""

    name, needs_features, layers = "three", False, ()

    def choose(self, *, features: Any, question: str, n_min: int, n_max: int) -> int:
        return 3


class _Flagging(_ChooseOnly):
    """A user policy that also flags every question as unfamiliar (and has a cap)."""

    def out_of_distribution(self, features: Any) -> bool:
        return True

    def choose_cap(self, *, features: Any, tolerance: float, n_min: int, n_max: int) -> int:
        return 5


def test_library_policies_are_budget_policies_with_the_defaults() -> None:
    for policy in (FixedPolicy(2), CallablePolicy(lambda **_: 2), OraclePolicy({}, default=2)):
        assert isinstance(policy, BudgetPolicy) and as_budget_policy(policy) is policy
        assert policy.choose_cap(features=None, tolerance=0.0, n_min=1, n_max=8) == 8
        assert policy.predict_curve(None) is None and policy.out_of_distribution(None) is False
        policy.check_engine(FakeEngine())  # accepts any engine


def test_a_choose_only_policy_is_completed_and_keeps_what_it_has() -> None:
    plain = as_budget_policy(_ChooseOnly())
    assert not isinstance(_ChooseOnly(), BudgetPolicy) and isinstance(plain, BudgetPolicy)
    assert (plain.name, plain.choose(features=None, question="q", n_min=1, n_max=8)) == ("three", 3)
    assert plain.choose_cap(features=None, tolerance=0.0, n_min=1, n_max=8) == 8
    assert plain.out_of_distribution(None) is False and plain.predict_curve(None) is None
    assert as_budget_policy(plain) is plain
    partial = as_budget_policy(_Flagging())
    assert partial.out_of_distribution(None) is True
    assert partial.choose_cap(features=None, tolerance=0.0, n_min=1, n_max=8) == 5
    with pytest.raises(ConfigError, match="not a budget policy"):
        as_budget_policy(object())  # type: ignore[arg-type]


def test_the_graph_records_the_policy_s_distribution_flag() -> None:
    from t2_agents.graph import build_parallel_thinking_graph

    engine = FakeEngine(answers={"7": 1.0})
    for policy, flagged in ((_ChooseOnly(), False), (_Flagging(), True)):
        graph = build_parallel_thinking_graph(engine=engine, policy=policy, n_max=4)
        state = graph.invoke({"question": "3 + 4?"})
        assert state["n"] == 3 and state["out_of_distribution"] is flagged


def test_a_subclass_of_budget_estimator_inherits_the_defaults() -> None:
    class Const(BudgetEstimator):
        layers, model_identity, hidden_size = (1, 3), "fake-engine", 8

        def predict_one(self, features: Any, **options: Any) -> int:
            return 4

    policy = T2Policy(Const(), engine=FakeEngine())
    features = np.zeros((2, 8), np.float32)
    assert policy.choose(features=features, question="q", n_min=1, n_max=8) == 4
    assert policy.out_of_distribution(features) is False and policy.predict_curve(features) is None
    with pytest.raises(ConfigError, match="no curve head"):
        Const().predict_curve(features[None])


def test_a_fitted_t2_estimator_implements_the_whole_budget_estimator() -> None:
    from t2_agents.estimator.estimator import T2Estimator
    from t2_agents.estimator.probes import ProbeConfig

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2, 8)).astype(np.float32)
    est, _ = T2Estimator.fit(
        x, np.where(x[:, 0, 0] > 0, 8, 2), layers=[1, 3], grid=[1, 2, 4, 8], n_min=1, n_max=8,
        model_identity="fake-engine", hidden_size=8, config=ProbeConfig(epochs=2),
    )  # fmt: skip
    assert isinstance(est, BudgetEstimator) and as_budget_estimator(est) is est
    policy = T2Policy(est, engine=FakeEngine())
    assert policy.choose(features=x[0], question="q", n_min=1, n_max=8) == est.predict_one(x[0])
    assert policy.out_of_distribution(x[0]) is bool(est.out_of_distribution(x[:1])[0])


def test_per_path_seeds_is_read_from_the_sampler_s_declaration() -> None:
    from t2_agents.backends.base import per_path_seeds
    from t2_agents.backends.fake import FaultyEngine

    assert per_path_seeds(FakeEngine()) and not per_path_seeds(FakeEngine(per_path_seeds=False))
    assert not per_path_seeds(None) and per_path_seeds(FaultyEngine(FakeEngine(), rate=0.0))
