"""t2_agents/backends/pool.py: graphs and agents replayed on recorded pools, no model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from t2_agents.backends.base import SamplingParams
from t2_agents.backends.fake import FakeEngine
from t2_agents.backends.pool import PoolEngine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.budget.stop_rules import StopRule
from t2_agents.calibrate.collect import CollectConfig, collect, load_collection
from t2_agents.cli import app
from t2_agents.errors import ConfigError, DataError
from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph

LAYERS = (0, 3)


def _folder(tmp_path: Path, *, keep_texts: bool = False, name: str = "c") -> Path:
    engine = FakeEngine(answers={"6": 0.5, "7": 0.3, None: 0.2})
    config = CollectConfig(task="lcm", questions=6, samples=8, seed=3, max_tokens=16,
                           layers=LAYERS, model=engine.identity, keep_texts=keep_texts)  # fmt: skip
    return collect(engine, config, tmp_path / name)


def test_a_call_returns_paths_of_the_pool_and_waves_never_repeat_one(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    engine = PoolEngine([folder])
    record = load_collection(folder).records[0]
    prompt = engine.render(record["prompt"])
    first = engine.sample([prompt], 3, SamplingParams(seed=0))[0]
    rest = engine.sample([prompt], 5, SamplingParams(seed=3))[0]
    answers = [p.text for p in first + rest]
    stored = [s["answer"] for s in record["samples"]]
    assert Counter(a.removeprefix("The answer is ").rstrip(".") if a.startswith("The") else None
                   for a in answers) == Counter(stored)  # fmt: skip
    assert engine.sample([prompt], 3, SamplingParams(seed=0))[0] == first  # reproducible
    assert sum(p.completion_tokens for p in first + rest) == sum(
        s["tokens"] for s in record["samples"]
    )
    others = [PoolEngine([folder], order_seed=k).sample([prompt], 8, SamplingParams(seed=0))[0]
              for k in range(1, 6)]  # fmt: skip
    assert any(o != first + rest for o in others)  # another order seed, another order


def test_stored_texts_are_served_when_the_pool_kept_them(tmp_path: Path) -> None:
    folder = _folder(tmp_path, keep_texts=True)
    engine = PoolEngine([folder])
    record = load_collection(folder).records[1]
    paths = engine.sample([record["prompt"]], 8, SamplingParams(seed=0))[0]
    assert sorted(p.text for p in paths) == sorted(s["text"] for s in record["samples"])


def test_features_are_the_stored_ones(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    engine = PoolEngine([folder])
    collection = load_collection(folder)
    prompts = [r["prompt"] for r in collection.records[:2]]
    got = engine.encode(prompts, [3])
    assert np.array_equal(got, collection.features[:2, 1:2, :])
    assert engine.identity == collection.config.model and engine.num_layers == 4
    with pytest.raises(DataError, match="layers \\[1\\] were not stored"):
        engine.encode(prompts, [1])


def test_bad_replays_name_the_fix(tmp_path: Path) -> None:
    engine = PoolEngine([_folder(tmp_path)])
    prompt = engine.prompts[0]
    with pytest.raises(ConfigError, match="n=9 paths asked of a recorded pool of 8"):
        engine.sample([prompt], 9, SamplingParams(seed=0))
    with pytest.raises(DataError, match="no recorded pool for the prompt 'What is 2 \\+ 2"):
        engine.sample(["What is 2 + 2?"], 1, SamplingParams(seed=0))
    with pytest.raises(DataError, match="at least one collection folder"):
        PoolEngine([])


def test_the_graph_replays_a_stop_rule_without_drawing_a_path_twice(tmp_path: Path) -> None:
    engine = PoolEngine([_folder(tmp_path)])
    graph = build_parallel_thinking_graph(
        engine=engine, policy=FixedPolicy(2), n_max=8,
        context=ThinkingContext(n_max=8, stop=StopRule(kind="hybrid", window=2)),
    )  # fmt: skip
    state = graph.invoke({"question": engine.prompts[0]})
    assert state["answer"] is not None
    seeds = [seed for _, _, seed in engine.sample_calls]
    sizes = [n for _, n, _ in engine.sample_calls]
    starts = np.cumsum([0, *sizes[:-1]])
    assert [s - seeds[0] for s in seeds] == starts.tolist()  # waves continue the seeds


def test_t2_compare_replays_recorded_pools_without_a_model(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    records = load_collection(folder).records
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(
        json.dumps({"question": r["prompt"], "answer": r["gold"], "task": "lcm"}) + "\n"
        for r in records
    ))  # fmt: skip
    result = CliRunner().invoke(app, [
        "compare", "--tasks", str(tasks), "--replay", str(folder), "--policies", "fixed,one",
        "--n-max", "8", "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.stdout
    payload: dict[str, Any] = json.loads(result.stdout)
    fixed, one = payload["policies"]["fixed"], payload["policies"]["one"]
    assert fixed["samples"] == [8] * len(records) and one["samples"] == [1] * len(records)
    for record, right in zip(records, fixed["correct"], strict=True):
        top = Counter(record["counts"]).most_common()
        if len(top) == 1 or (len(top) > 1 and top[0][1] > top[1][1]):  # no tie: the pool's vote
            assert right == (top[0][0] in record["correct"])
