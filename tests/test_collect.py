"""Tests of t2_agents.calibrate.collect: folder layout, loading, resuming and refusing mismatched
reruns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from t2_agents.calibrate.collect import CollectConfig, collect, load_collection, load_plan
from t2_agents.errors import ConfigError, DataError, EngineError
from t2_agents.evaluate.replay import ReplayPool
from t2_agents.tasks import question_key

LAYERS = (0, 3)


def _config(**overrides: Any) -> CollectConfig:
    base: dict[str, Any] = {
        "task": "lcm",
        "questions": 10,
        "samples": 4,
        "seed": 3,
        "max_tokens": 16,
        "layers": LAYERS,
        "model": "fake",
        "batch_questions": 2,
    }
    return CollectConfig(**{**base, **overrides})


def _features(folder: Path) -> np.ndarray:
    return load_collection(folder).features


# ---------------------------------------------------------------------------- layout/load
def test_collection_layout(fake_engine: Any, tmp_path: Path) -> None:
    out = collect(fake_engine, _config(batch_questions=4), tmp_path / "c")
    assert out == tmp_path / "c"
    stored = json.loads((out / "config.json").read_text())
    assert stored["format"] == "t2-collection"
    assert stored["questions"] == 10
    assert stored["layers"] == list(LAYERS)
    names = sorted(p.name for p in (out / "batches").iterdir())
    assert names == [f"{i:05d}.{ext}" for i in range(3) for ext in ("jsonl", "safetensors")]
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 10
    for line in lines:
        record = json.loads(line)
        assert len(record["samples"]) == 4
        assert sum(record["counts"].values()) + record["invalid"] == 4
        assert 0.0 <= record["accuracy"] <= 1.0
        assert set(record["correct"]) <= set(record["counts"])
        assert record["prompt_tokens"] > 0
        for sample in record["samples"]:
            assert sample["text"].startswith("Answer: ")
            assert sample["answer"] == sample["text"].removeprefix("Answer: ")
    assert fake_engine.sample_calls == 3
    assert not list(out.rglob("*.tmp"))


def test_load_collection_aligns_features_and_records(fake_engine: Any, tmp_path: Path) -> None:
    collect(fake_engine, _config(batch_questions=4), tmp_path)
    loaded = load_collection(tmp_path)
    assert loaded.config == _config(batch_questions=4)
    assert loaded.layers == LAYERS
    assert loaded.features.shape == (10, len(LAYERS), fake_engine.hidden_size)
    assert loaded.features.dtype == np.float32
    assert [r["id"] for r in loaded.records] == [f"lcm-3-{i}" for i in range(10)]
    prompts = [r["prompt"] for r in loaded.records]
    np.testing.assert_array_equal(loaded.features, fake_engine.encode(prompts, LAYERS))
    assert loaded.tasks == ["lcm"] * 10
    pools = loaded.pools()
    assert len(pools) == 10
    assert all(sum(p.counts.values()) + p.invalid == 4 for p in pools)


def test_all_layers_by_default(fake_engine: Any, tmp_path: Path) -> None:
    collect(fake_engine, _config(questions=2, layers=None), tmp_path)
    loaded = load_collection(tmp_path)
    assert loaded.layers == (0, 1, 2, 3)
    assert loaded.features.shape == (2, 4, 8)


def test_jsonl_source(fake_engine: Any, tmp_path: Path) -> None:
    data = tmp_path / "qs.jsonl"
    rows = [
        {"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(3)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    collect(fake_engine, _config(task=None, data=str(data), questions=3), tmp_path / "c")
    loaded = load_collection(tmp_path / "c")
    assert [r["id"] for r in loaded.records] == ["q0", "q1", "q2"]
    with pytest.raises(ConfigError, match="holds 3"):
        collect(fake_engine, _config(task=None, data=str(data), questions=4), tmp_path / "d")


def test_progress_reports_batches(fake_engine: Any, tmp_path: Path) -> None:
    calls: list[tuple[int, int, int]] = []
    collect(fake_engine, _config(), tmp_path, progress=lambda *a: calls.append(a))
    assert calls == [(2 * i, 10, 8 * i) for i in range(1, 6)]


def test_engine_of_another_model_is_refused(fake_engine: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="serves 'fake'"):
        collect(fake_engine, _config(model="other"), tmp_path)


# ---------------------------------------------------------------------------------- resume
def test_resume_after_interruption_equals_uninterrupted_run(
    fake_engine_cls: Any, tmp_path: Path
) -> None:
    config = _config()
    whole = collect(fake_engine_cls(), config, tmp_path / "whole")

    broken = fake_engine_cls(fail_on_sample_call=3)
    with pytest.raises(EngineError, match="sample call 3"):
        collect(broken, config, tmp_path / "resumed")
    batches = tmp_path / "resumed" / "batches"
    assert sorted(p.name for p in batches.glob("*.jsonl")) == ["00000.jsonl", "00001.jsonl"]
    assert not (tmp_path / "resumed" / "records.jsonl").exists()
    assert load_collection(tmp_path / "resumed").features.shape[0] == 4  # finished part loads

    calls: list[tuple[int, int, int]] = []
    engine = fake_engine_cls()
    resumed = collect(engine, config, tmp_path / "resumed", progress=lambda *a: calls.append(a))
    assert engine.sample_calls == 3  # only batches 2, 3, 4 ran
    assert calls[0] == (6, 10, 8)
    assert (resumed / "records.jsonl").read_bytes() == (whole / "records.jsonl").read_bytes()
    np.testing.assert_array_equal(_features(resumed), _features(whole))
    assert not list(resumed.rglob("*.tmp"))

    # A rerun of a finished folder does nothing and leaves it as it was.
    again = fake_engine_cls()
    collect(again, config, resumed)
    assert again.sample_calls == 0
    assert (resumed / "records.jsonl").read_bytes() == (whole / "records.jsonl").read_bytes()


def test_batch_without_records_is_redone(fake_engine_cls: Any, tmp_path: Path) -> None:
    whole = collect(fake_engine_cls(), _config(), tmp_path / "whole")
    part = collect(fake_engine_cls(), _config(), tmp_path / "part")
    (part / "batches" / "00003.jsonl").unlink()  # killed between features and records
    engine = fake_engine_cls()
    collect(engine, _config(), part)
    assert engine.sample_calls == 1
    assert (part / "records.jsonl").read_bytes() == (whole / "records.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"samples": 5}, "samples"),
        ({"temperature": 0.9}, "temperature"),
        ({"seed": 4}, "seed"),
        ({"layers": (0, 2)}, "layers"),
        ({"task": "gcd"}, "task"),
        ({"batch_questions": 4}, "batch_questions"),
    ],
)
def test_changed_config_is_refused(
    fake_engine: Any, tmp_path: Path, change: dict[str, Any], key: str
) -> None:
    collect(fake_engine, _config(questions=4), tmp_path)
    before = (tmp_path / "config.json").read_bytes()
    with pytest.raises(DataError, match=f"another configuration.*{key}"):
        collect(fake_engine, _config(questions=4, **change), tmp_path)
    assert (tmp_path / "config.json").read_bytes() == before


def test_questions_cannot_shrink(fake_engine: Any, tmp_path: Path) -> None:
    collect(fake_engine, _config(questions=6), tmp_path)
    with pytest.raises(DataError, match="only grow"):
        collect(fake_engine, _config(questions=4), tmp_path)


@pytest.mark.parametrize("grown", [12, 13])
def test_growing_questions_extends(fake_engine_cls: Any, tmp_path: Path, grown: int) -> None:
    # 10 questions in batches of 4 end with a partial batch (questions 8, 9).
    small = _config(questions=10, batch_questions=4)
    large = _config(questions=grown, batch_questions=4)
    collect(fake_engine_cls(), small, tmp_path / "grown")
    collect(fake_engine_cls(), large, tmp_path / "grown")
    collect(fake_engine_cls(), large, tmp_path / "whole")
    grown_records = load_collection(tmp_path / "grown").records
    assert [r["id"] for r in grown_records] == [f"lcm-3-{i}" for i in range(grown)]
    assert json.loads((tmp_path / "grown" / "config.json").read_text())["questions"] == grown
    whole = tmp_path / "whole" / "records.jsonl"
    assert (tmp_path / "grown" / "records.jsonl").read_bytes() == whole.read_bytes()
    np.testing.assert_array_equal(_features(tmp_path / "grown"), _features(tmp_path / "whole"))


# ------------------------------------------------------------------------ corrupt folders
def test_corrupt_features_file(fake_engine: Any, tmp_path: Path) -> None:
    collect(fake_engine, _config(), tmp_path)
    (tmp_path / "batches" / "00001.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match=r"00001.*corrupt"):
        load_collection(tmp_path)


def test_corrupt_records_file(fake_engine: Any, tmp_path: Path) -> None:
    collect(fake_engine, _config(), tmp_path)
    (tmp_path / "batches" / "00002.jsonl").write_text('{"id": "lcm-3-4"\n')
    with pytest.raises(DataError, match=r"00002.*corrupt"):
        load_collection(tmp_path)


def test_records_that_do_not_match_features(fake_engine: Any, tmp_path: Path) -> None:
    collect(fake_engine, _config(), tmp_path)
    first = (tmp_path / "batches" / "00000.jsonl").read_text().splitlines()
    (tmp_path / "batches" / "00000.jsonl").write_text(first[0] + "\n")
    with pytest.raises(DataError, match="do not match"):
        load_collection(tmp_path)


def test_corrupt_config(fake_engine: Any, tmp_path: Path) -> None:
    collect(fake_engine, _config(questions=2), tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DataError, match=r"config\.json"):
        load_collection(tmp_path)
    with pytest.raises(DataError, match="not valid JSON"):
        collect(fake_engine, _config(questions=2), tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no config\.json"):
        load_collection(tmp_path)
    with pytest.raises(DataError, match=r"no config\.json"):
        load_collection(tmp_path / "missing")


def test_folder_without_finished_batches(fake_engine_cls: Any, tmp_path: Path) -> None:
    with pytest.raises(EngineError):
        collect(fake_engine_cls(fail_on_sample_call=1), _config(), tmp_path)
    with pytest.raises(DataError, match="no finished batches"):
        load_collection(tmp_path)


def test_bad_config_values() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        CollectConfig(task=None, questions=1, samples=1, model="fake")
    with pytest.raises(ConfigError, match="samples=0"):
        _config(samples=0)
    with pytest.raises(ConfigError, match="max_tokens"):
        _config(max_tokens=0)
    assert _config(samples=16, batch_questions=0).batch_questions == 16


# ------------------------------------------------------------------ keys and lean records
def test_records_carry_the_question_key(fake_engine: Any, tmp_path: Path) -> None:
    collect(fake_engine, _config(questions=4), tmp_path)
    records = load_collection(tmp_path).records
    for record in records:
        text = record["prompt"].removesuffix(" Give only the final answer.")
        assert record["key"] == question_key(text)
    assert len({r["key"] for r in records}) == 4


def test_keep_texts_false_drops_only_the_texts(fake_engine_cls: Any, tmp_path: Path) -> None:
    collect(fake_engine_cls(), _config(questions=4), tmp_path / "full")
    collect(fake_engine_cls(), _config(questions=4, keep_texts=False), tmp_path / "lean")
    full, lean = load_collection(tmp_path / "full"), load_collection(tmp_path / "lean")
    assert lean.config.keep_texts is False
    assert json.loads((tmp_path / "lean" / "config.json").read_text())["keep_texts"] is False
    np.testing.assert_array_equal(lean.features, full.features)
    for a, b in zip(full.records, lean.records, strict=True):
        assert set(b["samples"][0]) == {"answer", "tokens", "finish"}
        assert [{k: v for k, v in s.items() if k != "text"} for s in a["samples"]] == b["samples"]
        assert {k: v for k, v in a.items() if k != "samples"} == {
            k: v for k, v in b.items() if k != "samples"
        }
        pool, lean_pool = ReplayPool.from_record(a), ReplayPool.from_record(b)
        assert (lean_pool.answers, lean_pool.correct) == (pool.answers, pool.correct)
        assert lean_pool.tokens == pool.tokens == (3, 3, 3, 3)
        assert lean_pool.pool.counts == pool.pool.counts


# -------------------------------------------------------------- records without features
def test_missing_features_are_encoded_again_without_sampling(
    fake_engine_cls: Any, tmp_path: Path
) -> None:
    config = _config(keep_texts=False)
    folder = collect(fake_engine_cls(), config, tmp_path / "c")
    records_before = (folder / "records.jsonl").read_bytes()
    features_before = _features(folder)
    for index in (1, 3):
        (folder / "batches" / f"{index:05d}.safetensors").unlink()

    with pytest.raises(DataError, match="rerun") as info:
        load_collection(folder)
    assert "2 batches" in str(info.value) and "batch 1" in str(info.value)

    engine = fake_engine_cls()
    collect(engine, config, folder)
    assert engine.sample_calls == 0
    assert engine.encode_calls == 2
    assert (folder / "records.jsonl").read_bytes() == records_before
    np.testing.assert_array_equal(_features(folder), features_before)


def test_records_of_other_questions_are_refused(fake_engine: Any, tmp_path: Path) -> None:
    # e.g. a folder collected before load_task skipped repeated questions
    collect(fake_engine, _config(questions=4), tmp_path)
    path = tmp_path / "batches" / "00001.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["id"] = "lcm-3-99"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "batches" / "00001.safetensors").unlink()
    with pytest.raises(DataError, match=r"batch 1 .*new --out folder"):
        collect(fake_engine, _config(questions=4), tmp_path)


def test_config_written_before_keep_texts_resumes(fake_engine_cls: Any, tmp_path: Path) -> None:
    config = _config()
    whole = collect(fake_engine_cls(), config, tmp_path / "whole")
    with pytest.raises(EngineError):
        collect(fake_engine_cls(fail_on_sample_call=3), config, tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    stored = json.loads(path.read_text())
    del stored["keep_texts"]  # as written before the field existed
    path.write_text(json.dumps(stored))
    assert load_collection(tmp_path / "old").config.keep_texts is True

    engine = fake_engine_cls()
    collect(engine, config, tmp_path / "old")
    assert engine.sample_calls == 3
    old = tmp_path / "old" / "records.jsonl"
    assert old.read_bytes() == (whole / "records.jsonl").read_bytes()
    # an old folder keeps texts: resuming it without them is another configuration
    with pytest.raises(DataError, match="keep_texts"):
        collect(fake_engine_cls(), _config(keep_texts=False), tmp_path / "old")


# ------------------------------------------------------------------------------- plans
def _plan(path: Path, plan: object) -> Path:
    path.write_text(json.dumps(plan))
    return path


def test_plan_merges_defaults_and_resolves_relative_folders(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    absolute = tmp_path / "abs"
    plan = _plan(
        plans / "plan.json",
        {
            "defaults": {"samples": 8, "max_tokens": 24, "task_config": {"max_value": 30}},
            "collections": [
                {"out": "../runs/lcm", "task": "lcm", "questions": 5, "seed": 11},
                {"out": str(absolute), "task": "gcd", "questions": 3, "samples": 4,
                 "task_config": {}, "keep_texts": False, "layers": [0, 2]},
                {"out": "../runs/lcm", "task": "lcm", "questions": 9, "seed": 11},
            ],
        },
    )  # fmt: skip
    jobs = load_plan(plan, model="fake")
    assert [folder for _, folder in jobs] == [
        plans / "../runs/lcm",
        absolute,
        plans / "../runs/lcm",
    ]
    first, second, third = (config for config, _ in jobs)
    assert first == CollectConfig(
        task="lcm", task_config={"max_value": 30}, questions=5, samples=8, seed=11,
        max_tokens=24, model="fake",
    )  # fmt: skip
    assert (second.samples, second.task_config, second.keep_texts) == (4, {}, False)
    assert (second.max_tokens, second.layers, second.model) == (24, (0, 2), "fake")
    assert third.questions == 9 and third.task_config == {"max_value": 30}


def test_plan_runs_and_grows_the_same_folder(fake_engine_cls: Any, tmp_path: Path) -> None:
    plan = _plan(
        tmp_path / "plan.json",
        {
            "defaults": {"task": "lcm", "samples": 4, "seed": 3, "max_tokens": 16,
                         "layers": [0, 3], "batch_questions": 2},
            "collections": [{"out": "c", "questions": 4}, {"out": "c", "questions": 10}],
        },
    )  # fmt: skip
    engine = fake_engine_cls()
    for config, folder in load_plan(plan, model="fake"):
        collect(engine, config, folder)
    assert engine.sample_calls == 5
    whole = collect(fake_engine_cls(), _config(), tmp_path / "whole")
    records = (tmp_path / "c" / "records.jsonl").read_bytes()
    assert records == (whole / "records.jsonl").read_bytes()
    # A rerun after the last stage began leaves the earlier, smaller stage out (no shrink error).
    assert [c.questions for c, _ in load_plan(plan, model="fake")] == [10]


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"task": "lcm", "questions": 2}, r"entry 2 has no 'out'"),
        ({"out": "x", "task": "lcm", "questions": 2, "colour": "red"}, r"entry 2: .*colour"),
        ({"out": "x", "task": "lcm", "questions": 0}, r"entry 2: questions=0"),
        ({"out": "x", "task": "lcm", "questions": "5"}, r"entry 2: questions='5'"),
        ({"out": "x", "questions": 2}, r"entry 2: give exactly one"),
        ({"out": "x", "task": "lcm", "questions": 2, "model": "m"}, r"entry 2 sets 'model'"),
        ("lcm", r"entry 2 is not an object"),
    ],
)
def test_bad_plan_entries_name_the_entry(tmp_path: Path, entry: object, words: str) -> None:
    good = {"out": "ok", "task": "lcm", "questions": 2}
    plan = _plan(tmp_path / "p.json", {"defaults": {"samples": 2}, "collections": [good, entry]})
    with pytest.raises(ConfigError, match=words):
        load_plan(plan, model="fake")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ("[]", "must be an object"),
        ('{"collections": []}', "must be an object"),
        ('{"collections": [{"out": "x"}], "extra": 1}', "must be an object"),
        ('{"defaults": [1], "collections": [{"out": "x"}]}', "'defaults' must be an object"),
        ('{"collections": {"out": "x"}}', "a list of objects"),
    ],
)
def test_malformed_plan_is_a_data_error(tmp_path: Path, content: str | bytes, words: str) -> None:
    path = tmp_path / "p.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(DataError, match=words):
        load_plan(path, model="fake")
    with pytest.raises(DataError, match="does not exist"):
        load_plan(tmp_path / "missing.json", model="fake")


# ------------------------------------------------------------------------------ real model
@pytest.mark.slow
def test_real_engine_collection(engine: Any, tmp_path: Path) -> None:
    config = CollectConfig(
        task="lcm", questions=2, samples=2, max_tokens=8, layers=(0, 29), model=engine.identity
    )
    collect(engine, config, tmp_path)
    loaded = load_collection(tmp_path)
    assert loaded.layers == (0, 29)
    assert loaded.features.shape == (2, 2, 576)
    assert np.isfinite(loaded.features).all()
    prompts = [r["prompt"] for r in loaded.records]
    np.testing.assert_array_equal(loaded.features, engine.encode(prompts, [0, 29]))
    for record in loaded.records:
        assert len(record["samples"]) == 2
        for sample in record["samples"]:
            assert 1 <= sample["tokens"] <= 8
            assert sample["finish"] in ("stop", "length")
