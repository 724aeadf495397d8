"""Tests of t2_agents.calibrate.training_set and ``t2 train``: question identity across folders,
held-out
overlap, mixed collections, the curve head from the command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeEngine
from typer.testing import CliRunner

from t2_agents.calibrate.collect import CollectConfig, collect
from t2_agents.calibrate.training_set import heldout_report, load_training_set, record_key
from t2_agents.cli import app, expand_multi_value
from t2_agents.errors import DataError
from t2_agents.tasks import question_key

runner = CliRunner()


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
    assert data.dropped == {"duplicates": 4, "excluded": 0}
    assert data.curves.shape == (36, 8) and data.summary.dropped == data.dropped
    assert data.summary.keys == frozenset(data.keys) and data.summary.n_d == data.n_d
    assert [c.folder for c in data.summary.collections or ()] == list(data.summary.folders or ())


def test_excluded_questions_are_dropped_and_a_fully_seen_folder_refused(
    folders: dict[str, Path],
) -> None:
    train = frozenset(load_training_set([folders["train"]]).keys)
    held = load_training_set([folders["mixed"]], exclude=train)
    assert held.dropped == {"duplicates": 0, "excluded": 4} and len(held.keys) == 12
    with pytest.raises(DataError, match=r"nothing left .* 24 questions are in the excluded"):
        load_training_set([folders["train"]], exclude=train)
    report = heldout_report(lambda x: x[:, 0, 0].astype(int) * 0 + 2, [folders["mixed"]],
                            layers=(0, 3), n_d=4, exclude=train)  # fmt: skip
    assert report[next(iter(report))]["questions"]["dropped_excluded"] == 4


def test_collections_with_other_sampling_settings_are_refused(folders: dict[str, Path]) -> None:
    with pytest.raises(DataError, match=r"hot was collected with temperature=1.0 but .*=0.7"):
        load_training_set([folders["train"], folders["hot"]])


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
