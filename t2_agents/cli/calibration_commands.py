"""``t2 collect`` (sample and store pools), ``t2 curse`` (the overscaling curse per task) and
``t2 train`` (fit the T2 estimator).

Example:
    $ t2 collect --task lcm --questions 40 --samples 32 --out runs/lcm
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from t2_agents.cli import common
from t2_agents.estimator.heads import HEADS

if TYPE_CHECKING:
    from t2_agents.calibrate.training_set import TrainingSet

__all__ = ["collect", "curse", "train"]

_HEAD_HELP = " or ".join(f"'{name}' (predicts {head.summary})" for name, head in HEADS.items())
"""``--head`` help: every registered head (no torch import: the heads load it lazily)."""


def collect(
    out: Annotated[Path | None, typer.Option(help="Output folder (resumable).")] = None,
    questions: Annotated[int | None, typer.Option(help="Number of questions.")] = None,
    samples: Annotated[
        int | None, typer.Option(help="Completions per question (pool size M).")
    ] = None,
    task: Annotated[str | None, typer.Option(help="reasoning-gym task name.")] = None,
    task_config: Annotated[str | None, typer.Option(help="Task options as JSON.")] = None,
    data: Annotated[Path | None, typer.Option(help="JSONL file with question/answer.")] = None,
    seed: Annotated[int, typer.Option(help="Dataset and sampling seed.")] = 0,
    temperature: common.TemperatureOpt = 0.7,
    max_tokens: common.MaxTokensOpt = 48,
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated layers (default all).")
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(help="A JSON plan of many collections, run in order on one engine."),
    ] = None,
    model: common.ModelOpt = None,
    cache_dir: common.CacheOpt = None,
    engine_kind: common.EngineOpt = "transformers",
    base_url: common.BaseUrlOpt = None,
    confidence_top_k: Annotated[
        int | None,
        typer.Option(
            help="Record each path's confidence from the top-k token log-probabilities "
            "(e.g. 20; vLLM is off by default, transformers records k=20)."
        ),
    ] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Sample a pool of completions per question, grade them and store prompt features."""
    from t2_agents.calibrate.collect import CollectConfig, load_plan
    from t2_agents.calibrate.collect import collect as run_collect
    from t2_agents.errors import ConfigError

    with common.handled(as_json):
        single = (out, questions, samples)
        if plan is not None and any(v is not None for v in (*single, task, data)):
            raise ConfigError(
                "--plan runs the collections its file lists; drop --out/--questions/--samples/"
                "--task/--data (or drop --plan)"
            )
        if plan is None and any(v is None for v in single):
            raise ConfigError("pass --out, --questions and --samples (or --plan FILE)")
        try:
            options = json.loads(task_config) if task_config else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--task-config {task_config!r} is not JSON: {exc.msg}") from exc
        if plan is not None:
            load_plan(plan, model="?")  # a bad plan fails before the (slow) model load
        overrides = {} if confidence_top_k is None else {"confidence_top_k": confidence_top_k}
        engine = common.load_engine_for_cli(model, cache_dir, engine_kind, base_url, **overrides)
        if plan is not None:
            jobs = load_plan(plan, model=engine.identity)
        else:
            assert out is not None and questions is not None and samples is not None
            config = CollectConfig(
                task=task,
                task_config=options,
                data=None if data is None else str(data.resolve()),
                questions=questions,
                samples=samples,
                seed=seed,
                temperature=temperature,
                max_tokens=max_tokens,
                layers=_parse_layers(layers),
                model=engine.identity,
            )
            jobs = [(config, out)]
        summaries = []
        for number, (config, folder) in enumerate(jobs, start=1):
            started = time.perf_counter()
            label = f"[{number}/{len(jobs)}] {folder.name}" if len(jobs) > 1 else "collecting"
            with common.progress_bar(label) as (bar, tick):
                done = run_collect(engine, config, folder, progress=tick)
            del bar
            summaries.append(_collection_summary(done, time.perf_counter() - started))
    common.emit(as_json, summaries[0] if plan is None else {"collections": summaries})
    if not as_json:
        for summary in summaries:
            common.err_console.print(
                f"collected {summary['questions']} questions into {summary['out']}"
            )


def _parse_layers(text: str | None) -> tuple[int, ...] | None:
    from t2_agents.errors import ConfigError

    if not text:
        return None
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--layers {text!r} must be comma-separated integers like 4,15") from exc


def _collection_summary(folder: Path, seconds: float) -> dict[str, Any]:
    from t2_agents.calibrate.collect import load_collection

    loaded = load_collection(folder)
    accuracy = [float(r["accuracy"]) for r in loaded.records]
    return {
        "out": str(folder),
        "questions": len(loaded.records),
        "samples": loaded.config.samples,
        "layers": list(loaded.layers),
        "mean_accuracy": sum(accuracy) / len(accuracy),
        "seconds": round(seconds, 1),
    }


def curse(
    data: Annotated[list[Path], typer.Option("--data", help="Collection folder(s).")],
    plot: Annotated[Path | None, typer.Option(help="Write a PNG figure here.")] = None,
    n_max: Annotated[int | None, typer.Option(help="Largest N (default: the pool size M).")] = None,
    draw: Annotated[str, typer.Option(help="'pool' (without replacement) or 'iid'.")] = "pool",
    eps: Annotated[float, typer.Option(help="Tolerance for N*_x.")] = 0.0,
    as_json: common.JsonOpt = False,
) -> None:
    """Measure the overscaling curse per task: N_D, mean N*_x, overscaling index, utilisation."""
    from t2_agents.calibrate.training_set import curse_by_task

    with common.handled(as_json):
        reports = curse_by_task(data, n_max=n_max, draw=draw, eps=eps)
        figure = None
        if plot is not None:
            from t2_agents.curves.exact import plot_curse

            figure = str(plot_curse(reports, plot))
    payload = {"tasks": {k: _curse_row(v) for k, v in reports.items()}, "plot": figure}
    if as_json:
        common.emit(True, payload)
        return
    table = Table(title="The overscaling curse (exact A(N) from the collected pools)")
    for column in (
        "task",
        "questions",
        "acc@1",
        "N_D",
        "acc@N_D",
        "mean N*",
        "M_D",
        "util.",
        "oracle acc",
    ):
        table.add_column(column, justify="right")
    for task, report in reports.items():
        table.add_row(task, *_curse_cells(report))
    common.console().print(table)
    if figure:
        common.err_console.print(f"figure written to {figure}")


def _curse_cells(report: Any) -> list[str]:
    return [
        str(report.n_questions),
        f"{report.mean_single_accuracy:.3f}",
        str(report.n_d),
        f"{report.accuracy_at_n_d:.3f}",
        f"{report.mean_optimal:.2f}",
        f"{report.overscaling_index:.2f}",
        f"{report.utilisation:.2f}",
        f"{report.oracle_accuracy:.3f}",
    ]


def _curse_row(report: Any) -> dict[str, Any]:
    row = report.to_dict()
    row.pop("optimal", None)
    return dict(row)


# -- train -------------------------------------------------------------------------------------
def train(
    data: Annotated[list[Path], typer.Option("--data", help="Collection folder(s).")],
    out: Annotated[Path, typer.Option(help="Estimator folder to write.")],
    layers: Annotated[str | None, typer.Option(help="Layers, e.g. 4,15 (default all).")] = None,
    n_max: Annotated[int | None, typer.Option(help="Largest N (default: pool size M).")] = None,
    n_min: Annotated[int, typer.Option(help="Smallest N the estimator may return.")] = 1,
    draw: Annotated[str, typer.Option(help="'pool' or 'iid' label model.")] = "pool",
    eps: Annotated[float, typer.Option(help="Tolerance for N*_x labels.")] = 0.0,
    hidden: Annotated[int | None, typer.Option(help="Probe width (default d/8).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Keep only the k best layers.")] = None,
    seed: Annotated[int, typer.Option(help="Split and initialisation seed.")] = 0,
    head: Annotated[str, typer.Option(help=f"{_HEAD_HELP}.")] = "nstar",
    probe: Annotated[str, typer.Option(help="'mlp' or 'ridge' (the linear baseline).")] = "mlp",
    tolerance_target: Annotated[
        float,
        typer.Option(help="Curve head: default tolerance keeps validation within this of N_D."),
    ] = 0.01,
    heldout: Annotated[
        list[Path] | None, typer.Option(help="Held-out collection folder(s) to report on.")
    ] = None,
    drop_overlap: Annotated[
        bool,
        typer.Option(help="Drop (and count) held-out questions that are in the training data."),
    ] = False,
    guard: Annotated[
        bool,
        typer.Option(help="Fit the out-of-distribution guard (far questions get a safe N)."),
    ] = True,
    as_json: common.JsonOpt = False,
) -> None:
    """Train the T2 estimator (one probe per layer) on collected features and N*_x labels."""
    from t2_agents.calibrate.training_set import load_training_set
    from t2_agents.estimator.estimator import FitReport, T2Estimator
    from t2_agents.estimator.guard import GuardConfig
    from t2_agents.estimator.probes import ProbeConfig

    with common.handled(as_json):
        started = time.perf_counter()
        config = ProbeConfig(hidden=hidden, top_k=top_k, seed=seed, head=head,
                             kind=probe)  # type: ignore[arg-type]  # fmt: skip
        data_set = load_training_set(
            data, layers=_parse_layers(layers), n_max=n_max, draw=draw, eps=eps
        )
        if heldout:
            _check_heldout(heldout, data_set, drop_overlap)
        grid = list(range(1, data_set.n_max + 1))
        progress = Progress(
            TextColumn("training probes"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=common.err_console,
        )  # fmt: skip
        with progress:
            bar = progress.add_task("train", total=len(data_set.layers))
            estimator, report = T2Estimator.fit(
                data_set.features, data_set.labels, layers=data_set.layers, grid=grid,
                n_min=n_min, n_max=data_set.n_max, model_identity=data_set.model,
                hidden_size=int(data_set.features.shape[2]), config=config, n_d=data_set.n_d,
                curves=data_set.curves, groups=data_set.keys,  # one row per instance
                tasks=data_set.tasks, phrasings=data_set.phrasings,
                tolerance_target=tolerance_target,
                guard=GuardConfig() if guard else None, data_summary=data_set.summary,
                progress=lambda _name, done, _total: progress.update(bar, completed=done),
            )  # fmt: skip
        path = estimator.save(out)
        seconds = time.perf_counter() - started
        held = None
        if heldout:
            from t2_agents.calibrate.training_set import heldout_report

            held = heldout_report(
                estimator.predict, heldout, layers=estimator.layers, n_d=data_set.n_d,
                draw=draw, eps=eps, exclude=frozenset(data_set.keys),
                exclude_instances=frozenset(data_set.instance_keys),
            )  # fmt: skip
    payload = {"out": str(path), "seconds": round(seconds, 1), "validation": report.to_dict(),
               "training_data": data_set.summary.to_dict(), "heldout": held}  # fmt: skip
    if as_json:
        common.emit(True, payload)
        return
    table = Table(title=f"T2 estimator: validation on {report.n_val} held-back questions")
    for column in FitReport.header:
        table.add_column(column, justify="right")
    for row in report.table():
        table.add_row(*row)
    common.console().print(table)
    if held is not None:
        common.console().print(_heldout_table(held))
    common.err_console.print(_dropped_line(data_set.dropped))
    common.err_console.print(f"estimator written to {path} in {seconds:.0f} s")


def _dropped_line(dropped: dict[str, int]) -> str:
    """What the training set left out, in words (the JSON has it under training_data)."""
    words = {"duplicates": "repeated texts", "same_instance": "other phrasings or operand "
             "orders of a kept question", "same_instance_other_task": "instances already kept "
             "under another task (counted once)"}  # fmt: skip
    parts = [f"{dropped.get(k, 0)} {text}" for k, text in words.items()]
    return "training questions left out: " + ", ".join(parts)


def _check_heldout(folders: list[Path], data_set: TrainingSet, drop: bool) -> None:
    """Refuse held-out folders sampled otherwise than the training set, or sharing questions
    with it (by text or by instance) unless ``drop`` is set. Runs before anything is written."""
    from t2_agents.calibrate.collect import load_collection
    from t2_agents.calibrate.training_set import SAMPLING_FIELDS, check_settings
    from t2_agents.calibrate.training_set import collection_identities as identities
    from t2_agents.errors import DataError

    collections = [load_collection(folder) for folder in folders]
    fields = [f for f in SAMPLING_FIELDS if f != "samples"]  # a held-out pool may differ in size
    check_settings(data_set.settings, collections, [str(f) for f in folders],
                   reference="the training set", fields=fields)  # fmt: skip
    texts, instances = frozenset(data_set.keys), frozenset(data_set.instance_keys)
    seen: dict[str, tuple[int, int]] = {}
    for folder, collection in zip(folders, collections, strict=True):
        keys, kinds = identities(collection)
        pairs = list(zip(keys, kinds, strict=True))
        by_text = sum(k in texts for k, _ in pairs)
        seen[str(folder)] = (by_text, sum(k not in texts and i in instances for k, i in pairs))
    if any(sum(n) for n in seen.values()) and not drop:
        detail = ", ".join(f"{name}: {a + b} ({a} by text, {b} by instance)"
                           for name, (a, b) in seen.items() if a + b)  # fmt: skip
        raise DataError(
            f"held-out questions also in the training data ({detail}); a held-out score on "
            "them would be inflated: collect other questions, or pass --drop-overlap to drop "
            "and count them"
        )


def _heldout_table(held: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title="Held-out: accuracy (exact, from the pools) and mean N per policy")
    for column in ("task", "policy", "accuracy", "mean N", "utilisation"):
        table.add_column(column, justify="right")
    for task, rows in held.items():
        for name, row in rows.items():
            if name == "questions":
                continue
            used = f"{row['utilisation']:.2f}" if "utilisation" in row else ""
            table.add_row(task, name, f"{row['accuracy']:.3f}", f"{row['mean_n']:.2f}", used)
    return table
