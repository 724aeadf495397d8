"""``t2 label`` (grade recorded pools) and ``t2 adapt`` (fit T2 to your own traffic).

The path from "my agents are running" to "T2 fits my traffic":

1. ``t2 serve --record traffic/`` records full pools for a sampled share of requests;
2. ``t2 label traffic/ --out labelled/ --answers gold.jsonl`` (or ``--grader mod:fn``) marks
   each pool's right answers;
3. ``t2 adapt --data labelled/ --out my-estimator/`` continues training the shipped estimator
   on them (:func:`~t2_agents.estimator.adapt.adapt_estimator`);
4. ``t2 serve --estimator my-estimator/`` serves with it.

Example:
    $ t2 label traffic/ --out labelled/ --answers gold.jsonl
    $ t2 adapt --data labelled/ --out my-estimator/
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from t2_agents.cli import common

__all__ = ["adapt", "label"]


def label(
    folder: Annotated[Path, typer.Argument(help="A folder recorded by t2 serve --record.")],
    out: Annotated[Path, typer.Option(help="Where the labelled copy goes (a new folder).")],
    answers: Annotated[
        Path | None,
        typer.Option(help='JSONL of {"question": TEXT (or "key": KEY), "answer": GOLD} lines.'),
    ] = None,
    grader: Annotated[
        str | None,
        typer.Option(help="module:function called as function(question, answer) -> bool."),
    ] = None,
    plurality: Annotated[
        bool,
        typer.Option(help="Label-free: each pool's most common answer counts as right (weak)."),
    ] = False,
    as_json: common.JsonOpt = False,
) -> None:
    """Mark which answers of each recorded pool are right, so the pools can train T2."""
    from t2_agents.calibrate.labels import label_folder, load_answers, load_grader

    with common.handled(as_json):
        report = label_folder(
            folder,
            out,
            answers=load_answers(answers) if answers is not None else None,
            grader=load_grader(grader) if grader is not None else None,
            plurality=plurality,
        )
    payload = {"out": str(out), **report.to_dict()}
    if as_json:
        common.emit(True, payload)
        return
    common.console().print(
        f"{report.labelled} of {report.questions} questions labelled ({report.source}) into "
        f"{out}; {report.unlabelled} left out (no label)"
    )


def adapt(
    data: Annotated[list[Path], typer.Option("--data", help="Labelled collection folder(s).")],
    out: Annotated[Path, typer.Option(help="Estimator folder to write.")],
    estimator: Annotated[
        str | None,
        typer.Option(help="Estimator to start from (default: the one shipped for the model)."),
    ] = None,
    lr: Annotated[float, typer.Option(help="Learning rate of the continued training.")] = 3e-4,
    seed: Annotated[int, typer.Option(help="Split and batch-order seed.")] = 0,
    reweight: Annotated[bool, typer.Option(help="Re-weight the layers on the new data.")] = True,
    as_json: common.JsonOpt = False,
) -> None:
    """Adapt an estimator to new traffic from labelled pools (its own training data not needed)."""
    from t2_agents.budget.shipped import resolve_estimator
    from t2_agents.calibrate.training_set import load_training_set
    from t2_agents.estimator.adapt import AdaptConfig, adapt_estimator
    from t2_agents.estimator.estimator import T2Estimator

    with common.handled(as_json):
        started = time.perf_counter()
        source = str(resolve_estimator(estimator))
        base = T2Estimator.load(source)
        data_set = load_training_set(data)
        progress = Progress(
            TextColumn("adapting probes"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=common.err_console,
        )  # fmt: skip
        with progress:
            bar = progress.add_task("adapt", total=len(base.layers))
            adapted, report = adapt_estimator(
                base,
                data_set,
                config=AdaptConfig(lr=lr, seed=seed, reweight=reweight),
                progress=lambda _name, done, _total: progress.update(bar, completed=done),
            )
        path = adapted.save(out)
        seconds = time.perf_counter() - started
    payload = {"out": str(path), "from": source, "seconds": round(seconds, 1),
               "report": report.to_dict()}  # fmt: skip
    if as_json:
        common.emit(True, payload)
        return
    table = Table(title=f"Adapted on {report.questions} questions ({report.val} for validation)")
    for column in ("", "before", "after"):
        table.add_column(column, justify="right")
    table.add_row("validation MSE", f"{report.val_mse_before:.4f}", f"{report.val_mse_after:.4f}")
    table.add_row("flagged by the guard", f"{report.flagged_before:.0%}",
                  f"{report.flagged_after:.0%}")  # fmt: skip
    common.console().print(table)
    common.err_console.print(f"estimator written to {path} in {seconds:.0f} s")
