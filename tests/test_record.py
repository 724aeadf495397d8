"""Recording pools from live requests, labelling them and adapting an estimator (issue 20).

The pipeline runs end to end on the fake engine (collection, fit, serve, record, label, adapt,
save and load); ``tests/test_serve_real.py`` records one request on the real default model, and
``bench/adapt_curve.py`` measures adaptation on real traffic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import T2Policy
from t2_agents.calibrate.collect import CollectConfig, collect, load_collection
from t2_agents.calibrate.labels import label_folder, load_answers, load_grader
from t2_agents.calibrate.record import RecordConfig, RecordedPath, Recorder
from t2_agents.calibrate.training_set import load_training_set
from t2_agents.errors import ConfigError, DataError
from t2_agents.estimator.adapt import AdaptConfig, adapt_estimator
from t2_agents.estimator.estimator import T2Estimator
from t2_agents.estimator.guard import GuardConfig
from t2_agents.estimator.probes import ProbeConfig
from t2_agents.families import generate_family
from t2_agents.serve import ServeConfig, ThinkingService, create_app
from t2_agents.tasks import DEFAULT_INSTRUCTION, question_key

SAMPLES = 8


def _engine() -> FakeEngine:
    return FakeEngine(answers={"yes": 0.5, "no": 0.4, None: 0.1})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[T2Estimator, Path]:
    """A small curve-head estimator fitted on a real collection of the fake engine."""
    root = tmp_path_factory.mktemp("calibration")
    config = CollectConfig(task="agent_primes", questions=48, samples=SAMPLES, max_tokens=48,
                           model="fake-engine", keep_texts=False)  # fmt: skip
    collect(_engine(), config, root / "primes")
    data = load_training_set([root / "primes"])
    est, _ = T2Estimator.fit(
        data.features, data.labels, layers=data.layers, grid=list(range(1, SAMPLES + 1)),
        n_min=1, n_max=SAMPLES, model_identity=data.model, hidden_size=8,
        config=ProbeConfig(head="curve", epochs=20, patience=5), n_d=data.n_d,
        curves=data.curves, groups=data.keys, tasks=data.tasks, phrasings=data.phrasings,
        guard=GuardConfig(neighbours=5), data_summary=data.summary,
    )  # fmt: skip
    return est, root


def _recorder(tmp_path: Path, **config: Any) -> Recorder:
    collect_config = CollectConfig(recorded=True, questions=100, samples=4, model="m",
                                   layers=(0, 1), max_tokens=48)  # fmt: skip
    return Recorder(RecordConfig(directory=str(tmp_path / "rec"), **config), collect=collect_config)


def _pool(*answers: str | None) -> list[RecordedPath]:
    return [RecordedPath(a, 5, "stop") for a in answers]


def test_recorder_writes_whole_batches_and_a_restart_continues(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, fraction=1.0, batch_questions=2, keep_texts=True)
    features = np.ones((2, 3), dtype=np.float32)
    for i in range(3):
        assert rec.wants()
        rec.add(question=f"Is {i} even?", task="t", features=features,
                paths=_pool("yes", "no", "yes", None), served_n=2, prompt_tokens=7)  # fmt: skip
    assert rec.stored == 2  # the third waits in the buffer
    rec.flush()
    again = _recorder(tmp_path, fraction=1.0, batch_questions=2)
    assert again.stored == 3
    folder = load_collection(tmp_path / "rec")
    assert folder.features.shape == (3, 2, 3) and folder.config.recorded
    first = folder.records[0]
    assert first["counts"] == {"yes": 2, "no": 1} and first["invalid"] == 1
    assert first["label"] is None and first["question"] == "Is 0 even?"
    assert first["key"] == question_key("Is 0 even?")


def test_recorder_bounds_and_bad_input(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, fraction=1.0, max_questions=1)
    assert rec.wants() and not rec.wants()  # one place, reserved
    rec.release()
    assert rec.wants()
    with pytest.raises(ConfigError, match="has 2 paths but this folder holds pools of 4"):
        rec.add(question="q", task="t", features=np.ones((2, 3), np.float32),
                paths=_pool("a", "b"), served_n=1, prompt_tokens=1)  # fmt: skip
    with pytest.raises(ConfigError, match=r"features of shape \[3, 3\]"):
        rec.add(question="q", task="t", features=np.ones((3, 3), np.float32),
                paths=_pool("a", "b", "c", "d"), served_n=1, prompt_tokens=1)  # fmt: skip
    with pytest.raises(ConfigError, match=r"fraction=0 must be in \(0, 1\]"):
        RecordConfig(directory="x", fraction=0)
    with pytest.raises(ConfigError, match="recorded folder has no task"):
        CollectConfig(recorded=True, task="lcm", questions=1, samples=1, model="m")


def test_unlabelled_pools_are_refused_and_labels_make_them_trainable(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, fraction=1.0, batch_questions=1)
    for i, pool in enumerate([("4", "4", "5", "4"), ("9", "8", "8", None), ("1", "2", "3", "3")]):
        rec.wants()
        rec.add(question=f"question {i}", task="agent_arithmetic",
                features=np.full((2, 3), i, np.float32), paths=_pool(*pool), served_n=2,
                prompt_tokens=3)  # fmt: skip
    with pytest.raises(DataError, match="3 recorded questions without labels; label them"):
        load_training_set([tmp_path / "rec"])
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"question": "question 0", "answer": "4"}\n'
                    f'{{"key": "{question_key("question 1")}", "answer": "9"}}\n')  # fmt: skip
    report = label_folder(tmp_path / "rec", tmp_path / "gold", answers=load_answers(gold))
    assert (report.labelled, report.unlabelled) == (2, 1)
    data = load_training_set([tmp_path / "gold"])
    assert len(data.labels) == 2
    assert data.curves[0, 0] == pytest.approx(0.75) and data.curves[1, 0] == pytest.approx(0.25)
    plural = label_folder(tmp_path / "rec", tmp_path / "plural", plurality=True)
    assert plural.labelled == 3
    records = load_collection(tmp_path / "plural").records
    assert [r["correct"] for r in records] == [["4"], ["8"], ["3"]]


def test_label_errors_name_the_fix(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, fraction=1.0, batch_questions=1)
    rec.wants()
    rec.add(question="q", task="t", features=np.ones((2, 3), np.float32),
            paths=_pool("a", "a", "b", "b"), served_n=1, prompt_tokens=1)  # fmt: skip
    with pytest.raises(ConfigError, match="exactly one label source"):
        label_folder(tmp_path / "rec", tmp_path / "x")
    with pytest.raises(ConfigError, match="recorded without texts; record with --record-texts"):
        label_folder(tmp_path / "rec", tmp_path / "x", grader=lambda q, a: True)
    texts = _recorder(tmp_path / "texts", fraction=1.0, batch_questions=1, keep_texts=True)
    texts.wants()
    texts.add(question="q", task="t", features=np.ones((2, 3), np.float32),
              paths=_pool("a", "a", "b", "b"), served_n=1, prompt_tokens=1)  # fmt: skip
    with pytest.raises(DataError, match=r"grader returned 1 \(int\) for answer"):
        label_folder(tmp_path / "texts" / "rec", tmp_path / "y", grader=lambda q, a: 1)
    with pytest.raises(DataError, match="grader raised ZeroDivisionError"):
        label_folder(tmp_path / "texts" / "rec", tmp_path / "y", grader=lambda q, a: 1 / 0)
    other = CollectConfig(recorded=True, questions=100, samples=8, model="m", layers=(0, 1),
                          max_tokens=48)  # fmt: skip
    with pytest.raises(DataError, match=r"samples: 4 -> 8"):
        Recorder(RecordConfig(directory=str(tmp_path / "rec")), collect=other)
    with pytest.raises(ConfigError, match="is the recorded folder"):
        label_folder(tmp_path / "rec", tmp_path / "rec", plurality=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "1"}\n{"question": "q", "answer": "2"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2 gives '2' for a question"):
        load_answers(bad)
    with pytest.raises(ConfigError, match="must be module:function"):
        load_grader("no_colon")
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_grader("no_such_module_xyz:grade")


def test_a_grader_from_the_current_directory_labels_recorded_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_grader_t2test.py").write_text(
        "def grade(question, answer):\n    return answer == str(len(question))\n"
    )
    monkeypatch.chdir(tmp_path)
    rec = _recorder(tmp_path, fraction=1.0, batch_questions=1, keep_texts=True)
    rec.wants()
    rec.add(question="abcd", task="t", features=np.ones((2, 3), np.float32),
            paths=_pool("4", "4", "5", None), served_n=1, prompt_tokens=1)  # fmt: skip
    report = label_folder(
        tmp_path / "rec", tmp_path / "g", grader=load_grader("my_grader_t2test:grade")
    )
    assert report.labelled == 1
    (record,) = load_collection(tmp_path / "g").records
    assert (record["correct"], record["accuracy"], record["label"]) == (["4"], 0.5, "grader")


def test_serve_records_pools_label_and_adapt_end_to_end(
    trained: tuple[T2Estimator, Path], tmp_path: Path
) -> None:
    est, _ = trained
    folder = tmp_path / "traffic"
    record = RecordConfig(directory=str(folder), fraction=1.0, keep_texts=True, batch_questions=4)
    service = ThinkingService(_engine(), config=ServeConfig(record=record), policy=T2Policy(est))
    questions = generate_family("agent_has_letter", size=14, seed=3)
    served = {}
    with TestClient(create_app(service)) as client:
        for q in questions:
            body = {"model": "fake-engine", "t2": {"task": "agent_has_letter", "paths": True},
                    "messages": [{"role": "user", "content": q.prompt}]}  # fmt: skip
            t2 = client.post("/v1/chat/completions", json=body).json()["t2"]
            assert t2["calibrated"] is True
            served[question_key(q.text)] = [p["answer"] for p in t2["paths"]]
        # one request outside the calibration is answered but never recorded
        hot = {**body, "temperature": 1.3}
        assert client.post("/v1/chat/completions", json=hot).json()["t2"]["calibrated"] is False
    records = load_collection(folder).records  # the shutdown flushed the last batch
    assert len(records) == len(questions)
    for record in records:
        answers = [s["answer"] for s in record["samples"]]
        assert len(answers) == SAMPLES
        assert answers[: record["served_n"]] == served[record["key"]]
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"question": q.text, "answer": q.gold}) + "\n"
                            for q in questions))  # fmt: skip
    label_folder(folder, tmp_path / "labelled", answers=load_answers(gold))
    data = load_training_set([tmp_path / "labelled"])
    adapted, report = adapt_estimator(est, data, config=AdaptConfig(epochs=5, patience=2))
    assert report.questions == len(questions) and report.val_mse_after <= report.val_mse_before
    assert report.flagged_after <= report.flagged_before
    assert data.keys[0] in adapted.training_keys and est.training_keys <= adapted.training_keys
    again = T2Estimator.load(adapted.save(tmp_path / "adapted"))
    np.testing.assert_array_equal(again.predict(data.features), adapted.predict(data.features))
    assert again.training.other["adapted"][0]["questions"] == len(questions)


def test_record_needs_a_calibrated_t2_estimator(tmp_path: Path) -> None:
    record = RecordConfig(directory=str(tmp_path / "t"))
    with pytest.raises(ConfigError, match="--record needs the T2 policy"):
        ThinkingService(_engine(), config=ServeConfig(record=record), policy=None)


def test_adapt_refuses_data_it_cannot_use(trained: tuple[T2Estimator, Path]) -> None:
    est, root = trained
    data = load_training_set([root / "primes"])
    from dataclasses import replace

    with pytest.raises(DataError, match="collected with 'other'"):
        adapt_estimator(est, replace(data, model="other"))
    with pytest.raises(DataError, match="lack features of layers"):
        adapt_estimator(est, replace(data, layers=(9, 8, 7, 6)))
    with pytest.raises(DataError, match="label more questions"):
        adapt_estimator(est, data.subset(range(4)))
    with pytest.raises(ConfigError, match="distinct indices"):
        data.subset([0, 0])
    with pytest.raises(ConfigError, match=r"AdaptConfig.lr=0 must be > 0"):
        AdaptConfig(lr=0)
    assert DEFAULT_INSTRUCTION  # the fake collection used the default instruction


def test_label_and_adapt_commands(trained: tuple[T2Estimator, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from t2_agents.cli.app import app

    est, root = trained
    runner = CliRunner()
    labelled = tmp_path / "labelled"
    result = runner.invoke(app, ["label", str(root / "primes"), "--out", str(labelled),
                                 "--plurality", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labelled"] == 48
    saved = est.save(tmp_path / "base")
    result = runner.invoke(app, ["adapt", "--data", str(labelled), "--estimator", str(saved),
                                 "--out", str(tmp_path / "adapted"), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["report"]["questions"] == 48 and payload["from"] == str(saved)
    assert T2Estimator.load(tmp_path / "adapted").training.other["adapted"]
    result = runner.invoke(app, ["label", str(root / "primes"), "--out", str(labelled), "--json"])
    assert result.exit_code == 2 and "exactly one label source" in result.stdout


def test_pool_recording_after_a_graph_run(
    trained: tuple[T2Estimator, Path], tmp_path: Path
) -> None:
    from t2_agents.answers import get_extractor
    from t2_agents.graph import build_parallel_thinking_graph
    from t2_agents.graph.recording import PoolRecording
    from t2_agents.graph.result import ThinkingResult

    est, _ = trained
    engine, policy = _engine(), T2Policy(est)
    recording = PoolRecording.for_policy(
        engine, policy, RecordConfig(directory=str(tmp_path / "t"), fraction=1.0)
    )
    graph = build_parallel_thinking_graph(engine=engine, policy=policy, n_max=SAMPLES)
    question = generate_family("agent_primes", size=1, seed=9)[0]
    result = ThinkingResult.from_state(graph.invoke({"question": question.prompt}))
    assert recording.recorder.wants()
    recording.record(prompt=question.prompt, result=result, task="agent_primes",
                     extractor=get_extractor("agent_primes"))  # fmt: skip
    recording.recorder.flush()
    (record,) = load_collection(tmp_path / "t").records
    assert record["key"] == question.key  # the calibration instruction is left out of the key
    assert [s["answer"] for s in record["samples"][: result.n]] == [p.answer for p in result.paths]
    assert len(record["samples"]) == SAMPLES and record["served_n"] == result.n
