"""Tests of t2_agents.graph.ledger: step records, roll-ups and comparisons."""

from __future__ import annotations

import json
import threading

import pytest

from t2_agents.errors import ConfigError
from t2_agents.graph.ledger import CostLedger, StepRecord, compare_ledgers, format_comparison


def _step(
    question: str, n: int, *, n_max: int = 8, answer: str | None = "4", **extra: object
) -> StepRecord:
    return StepRecord(
        question=question,
        policy=str(extra.pop("policy", "t2")),
        n_chosen=n,
        n_max=n_max,
        samples=n,
        prompt_tokens=10 * n,
        completion_tokens=5 * n,
        node_seconds={"budget": 0.1, "fanout": 0.5, "aggregate": 0.01},
        engine_seconds=0.4 * n,
        wall_seconds=1.0,
        answer=answer,
        **extra,  # type: ignore[arg-type]
    )


def test_record_round_trip() -> None:
    record = _step("q", 3, failed=1, warning="clamped")
    data = record.to_dict()
    json.dumps(data)
    assert StepRecord.from_dict({**data, "extra": 1}) == record
    assert record.total_tokens == 45
    with pytest.raises(ConfigError, match="n_chosen"):
        StepRecord.from_dict({"question": "q", "policy": "p", "n_max": 1, "samples": 1})


def test_summary_rolls_up() -> None:
    ledger = CostLedger()
    ledger.add(_step("a", 2))
    ledger.add(_step("b", 4).to_dict())
    ledger.extend([_step("c", 6, answer=None, error="all 6 branches failed", failed=6)])
    summary = ledger.summary()
    assert summary["steps"] == 3
    assert summary["samples"] == 12
    assert summary["n_max_total"] == 24
    assert summary["utilisation"] == pytest.approx(0.5)
    assert summary["saved"] == pytest.approx(0.5)
    assert summary["mean_n"] == pytest.approx(4.0)
    assert summary["prompt_tokens"] == 120 and summary["completion_tokens"] == 60
    assert summary["total_tokens"] == 180
    assert summary["failed_branches"] == 6
    assert (summary["errors"], summary["answered"]) == (1, 2)
    assert summary["engine_seconds"] == pytest.approx(4.8)
    assert summary["node_seconds"] == pytest.approx(
        {"budget": 0.3, "fanout": 1.5, "aggregate": 0.03}
    )
    assert summary["policies"] == {"t2": 3}
    json.dumps(ledger.to_dict())
    ledger.clear()
    assert len(ledger) == 0 and ledger.summary()["utilisation"] is None


def test_add_state() -> None:
    ledger = CostLedger()
    ledger.add_state({"cost": _step("q", 2).to_dict()})
    assert len(ledger) == 1
    with pytest.raises(ConfigError, match="cost"):
        ledger.add_state({"question": "q"})


def test_concurrent_adds() -> None:
    ledger = CostLedger()

    def work() -> None:
        for _ in range(200):
            ledger.add(_step("q", 1))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ledger) == 800


def test_compare_ledgers() -> None:
    fixed = CostLedger([_step(q, 8, policy="fixed-8") for q in ("a", "b", "c")])
    t2 = CostLedger([_step("a", 2), _step("b", 4, answer="5"), _step("c", 2), _step("d", 1)])
    cmp = compare_ledgers(fixed, t2, labels=("fixed", "t2"))
    assert cmp["labels"] == ["fixed", "t2"]
    samples = cmp["metrics"]["samples"]
    assert (samples["fixed"], samples["t2"]) == (24, 9)
    assert samples["ratio"] == pytest.approx(9 / 24)
    assert samples["delta"] == -15
    assert cmp["metrics"]["errors"]["ratio"] is None  # 0 errors in the reference
    assert cmp["common_questions"] == 3
    assert cmp["agreement"] == pytest.approx(2 / 3)
    table = format_comparison(cmp)
    assert table.splitlines()[0] == "| metric | fixed | t2 | ratio | delta |"
    assert "| samples | 24 | 9 | 0.375 | -15 |" in table
    assert "answer agreement (3 questions)" in table


def test_compare_empty_and_bad_labels() -> None:
    cmp = compare_ledgers(CostLedger(), CostLedger())
    assert cmp["agreement"] is None
    assert cmp["metrics"]["utilisation"] == {"a": None, "b": None, "ratio": None, "delta": None}
    assert "-" in format_comparison(cmp)
    with pytest.raises(ConfigError):
        compare_ledgers(CostLedger(), CostLedger(), labels=("x", "x"))
