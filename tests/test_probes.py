"""Tests of t2_agents.estimator.probes: the per-layer probe and its settings."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from t2_agents.errors import ConfigError
from t2_agents.estimator.probes import LayerProbe, ProbeConfig


def test_layer_probe_standardisation() -> None:
    torch.manual_seed(0)
    probe = LayerProbe(4, 3)
    x = torch.randn(50, 4) * 10 + 3
    x[:, 0] = 1.0  # constant column: std is floored, not zero
    probe.set_standardisation(x)
    assert probe.std[0].item() == pytest.approx(1e-6)
    assert torch.allclose(probe.mean[1:], x[:, 1:].mean(0))
    assert probe(x).shape == (50,)


@pytest.mark.parametrize(
    "bad",
    [{"lr": 0.0}, {"dropout": 1.0}, {"epochs": 0}, {"val_fraction": 1.5}, {"hidden": True},
     {"loss": "l1"}, {"target": "linear"}, {"top_k": 0}],
)  # fmt: skip
def test_probe_config_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ProbeConfig(**bad)
