"""Tests of t2_agents.calibrate.training_set and ``t2 train``: question identity (by text and by
instance) across folders, held-out overlap, mixed collections, the curve head from the command
line."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEngine
from typer.testing import CliRunner

from t2_agents.calibrate.collect import CollectConfig, collect, load_collection
from t2_agents.calibrate.training_set import (
    DROPPED,
    collection_identities,
    heldout_report,
    load_training_set,
    record_instance_key,
    record_key,
)
from t2_agents.cli import app, expand_multi_value
from t2_agents.errors import DataError
from t2_agents.tasks import question_key

runner = CliRunner()


def _dropped(**counts: int) -> dict[str, int]:
    """A training set's ``dropped``: every reason, 0 unless given."""
    return dict.fromkeys(DROPPED, 0) | counts


def _folder(root: Path, name: str, texts: list[str], **over: Any) -> Path:
    source = root / f"{name}.jsonl"
    rows = [json.dumps({"question": t, "answer": str(i % 3)}) for i, t in enumerate(texts)]
    source.write_text("\n".join(rows) + "\n")
    config = CollectConfig(data=str(source), questions=len(texts), samples=8, layers=(0, 3),
                           model="fake", max_tokens=8, batch_questions=8)  # fmt: skip
    return collect(FakeEngine(), replace(config, **over), root / name)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cal")
    train = [f"Pick digit {i}." for i in range(24)]
    return {
        "train": _folder(root, "train", train),
        # 4 questions of the training set, written with other case and spacing
        "mixed": _folder(
            root,
            "mixed",
            [t.upper().replace(" ", "  ") for t in train[:4]]
            + [f"Pick number {i}." for i in range(12)],
        ),
        "fresh": _folder(root, "fresh", [f"Choose digit {i}." for i in range(12)]),
        "hot": _folder(root, "hot", [f"Say digit {i}." for i in range(12)], temperature=1.0),
    }


def test_records_are_identified_by_their_normalised_text(folders: dict[str, Path]) -> None:
    data = load_training_set([folders["train"]])
    assert data.keys[0] == question_key("pick   DIGIT 0.")
    legacy = {"prompt": "Pick digit 0. Give only the final answer."}  # a record without "key"
    assert record_key(legacy) == data.keys[0]


def test_duplicates_across_folders_are_kept_once_and_counted(folders: dict[str, Path]) -> None:
    data = load_training_set([folders["train"], folders["mixed"]])
    assert len(data.keys) == len(set(data.keys)) == 24 + 12
    assert data.dropped == _dropped(duplicates=4)
    assert data.curves.shape == (36, 8) and data.summary.dropped == data.dropped
    assert data.summary.keys == frozenset(data.keys) and data.summary.n_d == data.n_d
    assert [c.folder for c in data.summary.collections or ()] == list(data.summary.folders or ())


def test_excluded_questions_are_dropped_and_a_fully_seen_folder_refused(
    folders: dict[str, Path],
) -> None:
    train = frozenset(load_training_set([folders["train"]]).keys)
    held = load_training_set([folders["mixed"]], exclude=train)
    assert held.dropped == _dropped(excluded=4) and len(held.keys) == 12
    with pytest.raises(DataError, match=r"nothing left .* 24 questions are in the excluded"):
        load_training_set([folders["train"]], exclude=train)
    report = heldout_report(lambda x: x[:, 0, 0].astype(int) * 0 + 2, [folders["mixed"]],
                            layers=(0, 3), n_d=4, exclude=train)  # fmt: skip
    assert report[next(iter(report))]["questions"]["dropped_excluded"] == 4


def test_collections_with_other_sampling_settings_are_refused(folders: dict[str, Path]) -> None:
    with pytest.raises(DataError, match=r"hot was collected with temperature=1.0 but .*=0.7"):
        load_training_set([folders["train"], folders["hot"]])


@pytest.mark.parametrize(
    ("field", "value"),
    [("model", "other"), ("samples", 16), ("temperature", 1.0), ("top_p", 0.9),
     ("max_tokens", 16), ("instruction", "Answer briefly.")],
)  # fmt: skip
def test_every_sampling_setting_must_agree_and_the_message_names_it(
    folders: dict[str, Path], tmp_path: Path, field: str, value: object
) -> None:
    other = tmp_path / "other"
    shutil.copytree(folders["fresh"], other)
    config = json.loads((other / "config.json").read_text())
    mine = config[field]
    (other / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(DataError) as caught:
        load_training_set([folders["train"], other])
    message = str(caught.value)
    assert f"{other} was collected with {field}={value!r} but " in message
    assert f"with {field}={mine!r}" in message
    assert f"collect it again with {field}={mine!r}" in message


def test_collections_of_other_layers_are_refused_naming_both(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    other = _folder(tmp_path, "layers", ["Pick a letter."], layers=(0, 2))
    with pytest.raises(DataError, match=r"layers \[0, 2\] of width 8 but .* layers \[0, 3\]"):
        load_training_set([folders["train"], other])


# ------------------------------------------------------------------------- identity by instance
def _task(root: Path, name: str, task: str, seed: int, **options: Any) -> Path:
    config = CollectConfig(task=task, task_config=options, questions=8, seed=seed, samples=8,
                           layers=(0, 3), model="fake", max_tokens=8,
                           batch_questions=8)  # fmt: skip
    return collect(FakeEngine(), config, root / name)


@pytest.fixture(scope="module")
def lcm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """reasoning-gym lcm (max_value 12) and the agent family that asks for LCMs too."""
    root = tmp_path_factory.mktemp("lcm")
    return {
        "train": _task(root, "train", "lcm", 1, max_value=12),  # asks "6, 10" and "10, 6"
        "held": _task(root, "held", "lcm", 30, max_value=12),  # asks "12, 4": train's "4, 12"
        "agent": _task(root, "agent", "agent_gcd_lcm", 2),  # asks "10 and 2": train's "2, 10"
    }


def _prompts(folder: Path) -> list[str]:
    return [str(r["prompt"]) for r in load_collection(folder).records]


def test_a_swapped_operand_copy_is_one_question(lcm: dict[str, Path]) -> None:
    prompts = _prompts(lcm["train"])
    assert any("6, 10" in p for p in prompts) and any("10, 6" in p for p in prompts)
    data = load_training_set([lcm["train"]])
    assert data.dropped == _dropped(same_instance=1)
    assert len(data.keys) == len(set(data.instance_keys)) == 7  # one row per instance: the
    assert data.summary.instances == frozenset(data.instance_keys)  # split cannot straddle one
    assert data.summary.keys == frozenset(data.keys)


def test_an_old_record_gets_its_instance_recomputed(lcm: dict[str, Path], tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(lcm["train"], old)
    for path in old.glob("**/*.jsonl"):  # records collected before instances were stored
        records = [json.loads(line) for line in path.read_text().splitlines()]
        for r in records:
            for name in ("instance", "instance_key", "template"):
                del r[name]
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    new_keys, new_instances = collection_identities(load_collection(lcm["train"]))
    keys, instances = collection_identities(load_collection(old))
    assert (keys, instances) == (new_keys, new_instances) and instances != keys
    record = load_collection(old).records[0]
    assert record_instance_key(record) == record_key(record)  # nothing to recompute it from
    assert load_training_set([old]).instance_keys == load_training_set([lcm["train"]]).instance_keys


def test_questions_without_an_instance_are_identified_by_text(folders: dict[str, Path]) -> None:
    keys, instances = collection_identities(load_collection(folders["train"]))  # a JSONL file
    assert instances == keys


def test_the_same_instance_under_another_task_is_kept_once_and_counted(
    lcm: dict[str, Path],
) -> None:
    data = load_training_set([lcm["train"], lcm["agent"]])
    assert data.dropped == _dropped(same_instance=1, same_instance_other_task=1)
    assert data.summary.tasks == {"agent_gcd_lcm": 7, "lcm": 7}
    assert len(set(data.instance_keys)) == len(data.instance_keys) == 14


def test_heldout_questions_are_dropped_by_text_or_instance(lcm: dict[str, Path]) -> None:
    train = load_training_set([lcm["train"]])
    seen = {"exclude": frozenset(train.keys), "exclude_instances": frozenset(train.instance_keys)}
    held = load_training_set([lcm["held"]], **seen)
    assert held.dropped == _dropped(excluded_by_instance=1) and len(held.keys) == 7
    assert any("12, 4" in p for p in _prompts(lcm["held"]))  # the swapped copy of
    assert any("4, 12" in p for p in _prompts(lcm["train"]))  # a training question
    report = heldout_report(lambda x: x[:, 0, 0].astype(int) * 0 + 2, [lcm["held"]],
                            layers=(0, 3), n_d=4, **seen)  # fmt: skip
    counts = report["lcm"]["questions"]
    assert counts["dropped_excluded"] == 0 and counts["dropped_excluded_by_instance"] == 1
    assert counts["count"] == 7


def _train(args: list[str]) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, expand_multi_value([*args, "--json"]))
    return result.exit_code, json.loads(result.stdout.splitlines()[-1])


def test_cli_train_refuses_heldout_questions_seen_in_training(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    base = ["train", "--data", str(folders["train"]), str(folders["fresh"]),
            "--out", str(tmp_path / "est"), "--heldout", str(folders["mixed"])]  # fmt: skip
    code, payload = _train(base)
    assert code == 2 and payload["error"]["type"] == "DataError"
    assert (
        "mixed: 4" in payload["error"]["message"]
        and "--drop-overlap" in payload["error"]["message"]
    )
    assert not (tmp_path / "est").exists()  # nothing written half way
    code, payload = _train([*base, "--drop-overlap", "--head", "curve", "--probe", "ridge"])
    assert code == 0, payload
    (task,) = payload["heldout"]  # one task (jsonl): no "all" row
    assert payload["heldout"][task]["questions"]["dropped_excluded"] == 4
    assert payload["validation"]["head"] == "curve" and payload["validation"]["knob"]
    meta = json.loads((tmp_path / "est" / "metadata.json").read_text())
    assert meta["probe_config"]["head"] == "curve" and meta["probe_config"]["kind"] == "ridge"
    assert len(meta["training_data"]["question_keys"]) == 36
    table = [*base[:-4], "--out", str(tmp_path / "est2"), "--head", "curve", "--probe", "ridge"]
    shown = runner.invoke(app, expand_multi_value(table))  # the table view, not --json
    assert shown.exit_code == 0, shown.stdout + shown.stderr
    assert "combined" in shown.stdout and "baseline: train mean" in shown.stdout


def test_cli_train_bad_head_is_a_config_error(folders: dict[str, Path], tmp_path: Path) -> None:
    code, payload = _train(["train", "--data", str(folders["train"]), "--out",
                            str(tmp_path / "x"), "--head", "budget"])  # fmt: skip
    assert code == 2 and payload["error"]["type"] == "ConfigError"
    assert "head='budget' is not one of ('nstar', 'curve')" in payload["error"]["message"]


def test_cli_train_drops_heldout_questions_seen_by_instance(
    lcm: dict[str, Path], tmp_path: Path
) -> None:
    base = ["train", "--data", str(lcm["train"]), str(lcm["agent"]), "--probe", "ridge",
            "--out", str(tmp_path / "est"), "--heldout", str(lcm["held"])]  # fmt: skip
    code, payload = _train([*base, "--drop-overlap"])  # 14 questions: too few for the guard
    assert code == 2 and "Q > neighbours + 1 = 21" in payload["error"]["message"]
    assert "--no-guard" in payload["error"]["message"]
    base.append("--no-guard")
    code, payload = _train(base)
    assert code == 2 and payload["error"]["type"] == "DataError"
    assert f"{lcm['held']}: 1 (0 by text, 1 by instance)" in payload["error"]["message"]
    assert not (tmp_path / "est").exists()
    code, payload = _train([*base, "--drop-overlap"])
    assert code == 0, payload
    assert payload["heldout"]["lcm"]["questions"]["dropped_excluded_by_instance"] == 1
    assert payload["training_data"]["dropped"]["same_instance_other_task"] == 1
    meta = json.loads((tmp_path / "est" / "metadata.json").read_text())
    assert len(meta["training_data"]["instance_keys"]) == 14
    table = ["train", "--data", str(lcm["train"]), str(lcm["agent"]), "--probe", "ridge",
             "--out", str(tmp_path / "est2"), "--no-guard"]  # fmt: skip
    shown = runner.invoke(app, expand_multi_value(table))  # the table view reports the drops
    assert shown.exit_code == 0, shown.stdout + shown.stderr
    said = " ".join(shown.stderr.split())
    assert "1 other phrasings or operand orders of a kept question, 1 instances" in said
    assert "already kept under another task (counted once)" in said


def test_cli_train_refuses_heldout_sampled_otherwise(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    code, payload = _train(["train", "--data", str(folders["train"]), "--out",
                            str(tmp_path / "est"), "--heldout", str(folders["hot"])])  # fmt: skip
    assert code == 2 and payload["error"]["type"] == "DataError"
    message = payload["error"]["message"]
    assert "hot was collected with temperature=1.0 but the training set with" in message
    assert "temperature=0.7; an estimator's labels" in message
    assert not (tmp_path / "est").exists()
