"""``t2 demo`` (T2 vs fixed N on questions the estimator never saw), ``t2 eval`` (every budget
policy replayed on collected pools, and with ``--live`` through the graph) and ``t2 compare``
(a user's agent run on the same tasks under several budget policies).

Example:
    $ t2 demo --engine vllm
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from t2_agents.budget import names as budget_names
from t2_agents.cli.common import (
    BaseUrlOpt,
    CacheOpt,
    EstimatorOpt,
    JsonOpt,
    MaxTokensOpt,
    ModelOpt,
    console,
    emit,
    err_console,
    handled,
    load_engine_for_cli,
    progress_bar,
)

if TYPE_CHECKING:
    from t2_agents.backends.base import Engine
    from t2_agents.budget.stop_rules import StopRules
    from t2_agents.evaluate.live import LiveResult

__all__ = ["compare", "demo", "eval_policies"]


def demo(
    questions: Annotated[
        int | None,
        typer.Option(help="Questions to answer (default: 12 on vLLM, 6 on transformers)."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(help="Questions in flight at once (default: all on vLLM, 1 otherwise)."),
    ] = None,
    n_max: Annotated[int, typer.Option(help="Fixed N of the baseline and T2's cap.")] = 16,
    estimator: EstimatorOpt = None,
    max_tokens: MaxTokensOpt = 48,
    seed: Annotated[int, typer.Option(help="Question seed (not a training seed).")] = 2026,
    model: ModelOpt = None,
    cache_dir: CacheOpt = None,
    engine_kind: Annotated[
        str,
        typer.Option(
            "--engine",
            help="auto (vllm when installed, else transformers), "
            "transformers, vllm or server (with --base-url).",
        ),
    ] = "auto",
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """T2 vs fixed N through the parallel-thinking graph on questions the estimator never saw.

    Prints both policies side by side (accuracy, samples, tokens, wall time) and the held-out
    evidence shipped with the estimator, with the command that reproduces it.
    """
    from t2_agents.backends.factory import preferred_local_kind
    from t2_agents.cli.demo import format_demo, run_demo

    started = time.perf_counter()
    kind = preferred_local_kind() if engine_kind == "auto" else engine_kind
    with handled(as_json):
        engine = load_engine_for_cli(model, cache_dir, kind, base_url)
        loaded = time.perf_counter()
        batching = kind in ("vllm", "server")  # engines that batch concurrent requests
        if questions is None:  # about two minutes on 2 CPU cores, model load included
            questions = 12 if batching else 6
        if concurrency is None:
            concurrency = questions if batching else 1
        progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=err_console,
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
                max_tokens=max_tokens, seed=seed, concurrency=concurrency, progress=on_event,
            )  # fmt: skip
    timing = {"engine": kind, "load_seconds": loaded - started,
              "total_seconds": time.perf_counter() - started}  # fmt: skip
    if as_json:
        emit(True, {**result, "timing": timing})
        return
    for table in format_demo(result):
        console().print(table)
    err_console.print(
        f"t2 demo: {questions} questions x 2 policies in {timing['total_seconds']:.0f} s on {kind} "
        f"(model load {timing['load_seconds']:.0f} s). Accuracy on a dozen questions is noise: "
        "the held-out table above is the evidence (README, 'The shipped estimator')."
    )


# The registry's names (registered stop rules included), for the help texts.
_EVAL_POLICIES = ", ".join(budget_names.replay_policies())
_LIVE_POLICIES = ", ".join(budget_names.live_policies())
_NEED_ESTIMATOR = ", ".join(
    n for n, p in budget_names.policy_names().items() if p.replay and p.needs_estimator
)


def eval_policies(
    data: Annotated[list[Path], typer.Option("--data", help="Held-out collection folder(s).")],
    estimator: Annotated[
        Path | None, typer.Option(help=f"T2 estimator folder (needed by {_NEED_ESTIMATOR}).")
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
    cap_tolerance: Annotated[
        float,
        typer.Option(
            "--cap-tolerance",
            help="The hybrid's cap: the smallest N within this accuracy of the curve head's "
            "predicted best (0: where the predicted curve peaks).",
        ),
    ] = 0.0,
    no_cap: Annotated[
        bool, typer.Option("--no-cap", help="Cap the hybrid at the pool size (n_max) instead.")
    ] = False,
    vote: Annotated[
        str,
        typer.Option(
            help="Vote rule of the fixed-N policies: majority (exact A(N)), weighted or "
            "filtered (path confidences; Monte-Carlo A(N), needs a collection with confidences, "
            "else falls back to majority).",
        ),
    ] = "majority",
    vote_eta: Annotated[
        float, typer.Option("--vote-eta", help="filtered: percentage of paths kept, (0, 100].")
    ] = 50.0,
    vote_statistic: Annotated[
        str,
        typer.Option("--vote-statistic", help="Confidence read: mean, lowest_group or tail."),
    ] = "lowest_group",
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help=f"Also run the live policies ({_LIVE_POLICIES}) through the graph.",
        ),
    ] = False,
    live_questions: Annotated[
        int, typer.Option("--live-questions", help="Questions of the live run (round-robin).")
    ] = 8,
    live_policies: Annotated[
        str | None,
        typer.Option(
            "--live-policies",
            help=f"The live policies to run, comma-separated, from {_LIVE_POLICIES} (default: "
            "all; budget spends what t2 spent, so it needs t2); implies --live.",
        ),
    ] = None,
    model: ModelOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare budget policies by replaying collected pools: accuracy, samples, tokens, rounds.

    With --live, the live policies (all, or those of --live-policies) also answer the first
    questions through the graph on the collections' model (default: the model the first folder
    was collected with), with the same stop-rule settings as the replay.
    """
    from t2_agents.errors import ConfigError
    from t2_agents.evaluate.folders import evaluate_folders
    from t2_agents.evaluate.offline import EvalConfig, parse_policies, plot_eval

    with handled(as_json):
        chosen = parse_policies(policies) if policies else _default_policies(estimator, train_data)
        live_keys = budget_names.live_policies()
        if live_policies is not None:  # checked before the replay runs and the engine loads
            from t2_agents.evaluate.live import parse_live_policies

            live_keys = parse_live_policies(live_policies, option="--live-policies")
            live = True
        config = EvalConfig(
            policies=chosen, replays=replays, seed=seed, threshold=threshold, window=window,
            cap_tolerance=None if no_cap else cap_tolerance, n_d=n_d, budget=budget,
            vote=vote, vote_eta=vote_eta, vote_statistic=vote_statistic,  # type: ignore[arg-type]
        )  # fmt: skip
        report = evaluate_folders(
            data, estimator=estimator, train_data=train_data or (), config=config
        )
        figure = None if plot is None else str(plot_eval(report, plot))
        live_result = None
        if live:
            if estimator is None:
                raise ConfigError("--live runs T2: pass --estimator PATH")
            live_result = _live(
                data, estimator, report.n_d, live_questions, model, cache_dir,
                policies=live_keys, stop=config.stop_rules,
            )  # fmt: skip
    payload = report.to_dict() | {"plot": figure}
    if live_result is not None:
        payload["live"] = live_result
    if as_json:
        emit(True, payload)
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
    console().print(table)
    if live_result is not None:
        from t2_agents.evaluate.live import live_table

        header, rows = live_table(live_result)
        live_view = Table(
            title=f"Live on {live_result['model']}: {live_result['questions']} questions"
        )
        for column in header:
            live_view.add_column(column, justify="left" if column == "policy" else "right")
        for cells in rows:
            live_view.add_row(*cells)
        console().print(live_view)
    vote_info = report.extra.get("vote") or {}
    if vote_info.get("method") == "monte-carlo":
        err_console.print(
            f"vote rule {vote_info['rule']}: Monte-Carlo A(N), {vote_info['draws']} draws per "
            f"question (largest standard error {vote_info['max_question_stderr']:.3f}); "
            f"{vote_info['fallback_questions']} questions without confidences used majority"
        )
    if report.budget is not None:
        err_console.print(f"alloc budget: {report.budget} samples ({report.budget_source})")
    if figure:
        err_console.print(f"figure written to {figure}")


def _default_policies(estimator: Path | None, train_data: list[Path] | None) -> tuple[str, ...]:
    names = budget_names.policy_names()

    def applies(name: str) -> bool:  # alloc also needs the training folders (its curve model)
        if not names[name].needs_estimator:
            return True
        return estimator is not None and (name != "alloc" or bool(train_data))

    return tuple(name for name in budget_names.replay_policies() if applies(name))


def _live(
    data: list[Path], estimator: Path, n_d: int, questions: int, model: str | None,
    cache_dir: str | None, *, policies: tuple[str, ...], stop: StopRules,
) -> LiveResult:  # fmt: skip
    from t2_agents.calibrate.collect import load_collection
    from t2_agents.evaluate.live import live_eval

    engine = load_engine_for_cli(model or load_collection(data[0]).config.model, cache_dir)
    with progress_bar("live") as (bar, tick):
        del bar
        return live_eval(
            engine, data, estimator, n_d=n_d, questions=questions, policies=policies, stop=stop,
            progress=lambda done, total: tick(done, total, done),
        )  # fmt: skip


def compare(
    tasks: Annotated[
        Path,
        typer.Option(
            "--tasks",
            help="JSONL of tasks, one agent run each: question (the user message), answer (the "
            "gold final answer), optional task (the extractor) and id.",
        ),
    ],
    agent: Annotated[
        str,
        typer.Option(
            help="Agent factory module:function, called as factory(thinking_graph, ledger=..., "
            "run_budget=...) and returning an agent invoked with {'messages': [...]}.",
        ),
    ] = "t2_agents.agents.harness:make_agent",
    policies: Annotated[
        str, typer.Option(help="Comma-separated: fixed, t2, budget, hybrid, one (first = base).")
    ] = "fixed,t2,budget,hybrid",
    grader: Annotated[
        str | None,
        typer.Option(
            help="module:function, grade(question, final_text) -> bool (default: the "
            "task's extractor against answer)."
        ),
    ] = None,
    estimator: EstimatorOpt = None,
    n_max: Annotated[int, typer.Option(help="Fixed N, and T2's largest N per step.")] = 8,
    max_tokens: MaxTokensOpt = 48,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    window: Annotated[int, typer.Option(help="The hybrid's follow-up wave size.")] = 4,
    run_budget: Annotated[
        int | None,
        typer.Option(help="budget: samples per run (default: what t2 spent per run)."),
    ] = None,
    steps: Annotated[int, typer.Option(help="budget: thinking steps expected per run.")] = 1,
    objective: Annotated[
        str, typer.Option(help="budget: sum (expected right steps) or success (all right).")
    ] = "sum",
    limit: Annotated[int | None, typer.Option(help="Run only the first K tasks.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a bar-chart PNG.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the whole result as JSON.")] = None,
    model: ModelOpt = None,
    cache_dir: CacheOpt = None,
    engine_kind: Annotated[
        str, typer.Option("--engine", help="transformers, vllm, server (with --base-url), auto.")
    ] = "transformers",
    base_url: BaseUrlOpt = None,
    replay: Annotated[
        list[Path] | None,
        typer.Option(
            help="Replay recorded pools instead of sampling (t2 collect / t2 serve --record "
            "folders holding every task's steps); no model is loaded. Repeatable."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run your agent on the same tasks under several budget policies and compare the costs.

    Each task is one agent run per policy (its own thread_id, so a run budget is per run),
    graded on the agent's final message. Prints accuracy, samples, completion tokens, engine
    calls, sequential rounds and wall time per run, with paired 95 % intervals against the first
    policy.
    """
    from t2_agents.budget.shipped import load_t2_policy
    from t2_agents.checks import check_int
    from t2_agents.evaluate.agent_compare import (
        CompareConfig,
        compare_agent,
        load_agent_factory,
        plot_comparison,
    )
    from t2_agents.tasks import load_jsonl

    with handled(as_json):
        config = CompareConfig(
            policies=tuple(p.strip() for p in policies.split(",") if p.strip()),
            n_max=n_max, max_tokens=max_tokens, seed=seed, window=window,
            run_budget=run_budget, steps=steps, objective=objective,  # type: ignore[arg-type]
        )  # fmt: skip
        factory = load_agent_factory(agent)
        grade = None
        if grader is not None:
            from t2_agents.calibrate.labels import load_grader

            grade = load_grader(grader)
        questions = load_jsonl(tasks)
        if limit is not None:
            questions = questions[: check_int("limit", limit, low=1)]
        if replay:
            from t2_agents.backends.pool import PoolEngine

            engine: Engine = PoolEngine(replay)
        else:
            engine = load_engine_for_cli(model, cache_dir, engine_kind, base_url)
        needs_t2 = any(p in ("t2", "budget", "hybrid") for p in config.policies)
        t2 = load_t2_policy(engine, estimator) if needs_t2 else None
        with progress_bar("agent runs") as (_, tick):
            total = len(questions) * len(config.policies)
            done: dict[str, int] = {}

            def on_run(policy: str, finished: int, _tasks: int) -> None:
                done[policy] = finished
                tick(sum(done.values()), total, 0)

            result = compare_agent(
                questions, engine=engine, t2_policy=t2, config=config, factory=factory,
                grader=grade, progress=on_run,
            )  # fmt: skip
        figure = None if plot is None else str(plot_comparison(result, plot))
    payload = result.to_dict() | {"plot": figure}
    if out is not None:
        import json

        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if as_json:
        emit(True, payload)
        return
    header, rows = result.table()
    table = Table(title=f"{agent} on {result.tasks} tasks, means per run")
    for column in header:
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in rows:
        table.add_row(*row)
    console().print(table)
    if figure:
        err_console.print(f"figure written to {figure}")
