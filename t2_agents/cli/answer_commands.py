"""``t2 ask`` (one question, N paths, one vote) and ``t2 serve`` (the OpenAI-compatible endpoint).

Example:
    $ t2 ask "What is 17 * 23?" --n 8 --json
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from t2_agents.ask import AskResult
from t2_agents.cli import common

__all__ = ["ask", "serve"]


def ask(
    question: Annotated[str, typer.Argument(help="The question to think about.")],
    n: Annotated[
        int | None, typer.Option("--n", help="Paths to sample (default: T2 picks).")
    ] = None,
    model: common.ModelOpt = None,
    cache_dir: common.CacheOpt = None,
    engine_kind: common.EngineOpt = "transformers",
    temperature: common.TemperatureOpt = 0.7,
    max_tokens: common.MaxTokensOpt = 48,
    seed: Annotated[int, typer.Option(help="Sampling and tie-break seed.")] = 0,
    task: Annotated[
        str | None, typer.Option(help="Answer extractor (e.g. lcm, syllogism).")
    ] = None,
    estimator: common.EstimatorOpt = None,
    tolerance: Annotated[
        float | None,
        typer.Option(help="T2 cost knob: accuracy to give up vs the best predicted N (0..1)."),
    ] = None,
    price: Annotated[
        float | None,
        typer.Option(help="T2 cost knob: accuracy one more path must buy (0..1)."),
    ] = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Sample N reasoning paths for QUESTION, vote, and show the answer and every path."""
    from t2_agents.ask import ask_question
    from t2_agents.checks import check_tolerance

    with common.handled(as_json):
        for name, value in (("tolerance", tolerance), ("price", price)):
            if value is not None:
                check_tolerance(value, name=name)  # before the slow model load
        engine = common.load_engine_for_cli(model, cache_dir, engine_kind)
        progress = common.spinner("thinking")
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
        common.emit(True, result)
        return
    _show_ask(result)


def _show_ask(result: AskResult) -> None:
    guard = (
        ", unlike the training questions: the safe budget" if result["out_of_distribution"] else ""
    )
    table = Table(title=f"{result['n']} paths ({result['policy']}{guard})")
    table.add_column("#", justify="right")
    table.add_column("answer")
    table.add_column("tokens", justify="right")
    table.add_column("completion", overflow="fold")
    for i, path in enumerate(result["paths"]):
        text = path["text"].replace("\n", " ")
        table.add_row(str(i), str(path["answer"]), str(path["tokens"]), text[:120])
    out = common.console()
    out.print(table)
    verdict = result["verdict"]
    out.print(
        f"[bold]answer:[/] {verdict['answer']}  share {verdict['share']:.2f}  "
        f"({verdict['valid']} valid, {verdict['invalid']} without an answer)"
    )


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
    estimator: common.EstimatorOpt = None,
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
    header_timeout: Annotated[
        float, typer.Option(help="Seconds to send a request's headers before 408.")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds to send a request's body before 408.")
    ] = 30.0,
    max_json_depth: Annotated[
        int, typer.Option(help="Deepest JSON nesting of a request body (deeper: 400).")
    ] = 32,
    max_messages: Annotated[int, typer.Option(help="Most messages per request (more: 400).")] = (
        512
    ),
    max_tools: Annotated[int, typer.Option(help="Most tools per request (more: 400).")] = 128,
    on_estimator_error: Annotated[
        str,
        typer.Option(
            help="When T2 cannot choose N (estimator error, bad features): safe (serve --safe-n "
            "paths, said in t2.fallback) or error (500)."
        ),
    ] = "safe",
    safe_n: Annotated[
        int | None,
        typer.Option(help="Paths when T2 cannot choose (default: the request's n_max)."),
    ] = None,
    ignore_argument: Annotated[
        list[str] | None,
        typer.Option("--ignore-argument", help="Tool argument left out of the vote (repeat)."),
    ] = None,
    log_prompts: Annotated[bool, typer.Option(help="Log prompt texts (off by default).")] = False,
    record: Annotated[
        str | None,
        typer.Option(help="Record full answer pools of a share of requests in this folder."),
    ] = None,
    record_fraction: Annotated[
        float, typer.Option(help="Share of eligible requests recorded (each costs a full pool).")
    ] = 0.1,
    record_texts: Annotated[
        bool, typer.Option(help="Store question texts with the pools (needed for --grader).")
    ] = False,
    record_max: Annotated[
        int, typer.Option(help="Stop recording at this many questions (bounds disk use).")
    ] = 5000,
    model: common.ModelOpt = None,
    cache_dir: common.CacheOpt = None,
    as_json: common.JsonOpt = False,
) -> None:
    """Serve T2 behind an OpenAI-compatible endpoint (/v1/chat/completions, /v1/completions)."""
    import logging

    from t2_agents.calibrate.record import RecordConfig
    from t2_agents.serve import ServeConfig, load_service
    from t2_agents.serve import serve as run

    with common.handled(as_json):
        recording = None
        if record is not None:
            recording = RecordConfig(
                directory=record,
                fraction=record_fraction,
                keep_texts=record_texts,
                max_questions=record_max,
            )
        config = ServeConfig(
            host=host, port=port, api_key=api_key, model_name=model_name, max_n=max_n,
            n_max=n_max, max_tokens_cap=max_tokens_cap, max_concurrency=max_concurrency,
            request_timeout=request_timeout, ignore_arguments=tuple(ignore_argument or ()),
            log_prompts=log_prompts, header_timeout=header_timeout, body_timeout=body_timeout,
            max_json_depth=max_json_depth, max_messages=max_messages, max_tools=max_tools,
            on_estimator_error=on_estimator_error,  # type: ignore[arg-type]  # checked there
            safe_n=safe_n, record=recording,
        )  # fmt: skip
        engine = common.load_engine_for_cli(model, cache_dir, engine_kind, base_url)
        service = load_service(engine, config=config, estimator=estimator)
        policy = "fixed" if service.policy is None else service.policy.name
        common.emit(as_json, {"url": f"http://{host}:{port}/v1", "model": service.model_name,
                        "policy": policy, "engine": engine_kind})  # fmt: skip
        common.err_console.print(
            f"serving {service.model_name} (policy {policy}) on http://{host}:{port}/v1"
            + ("" if api_key else " without an API key")
        )
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        run(service)
