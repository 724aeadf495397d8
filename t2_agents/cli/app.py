"""The ``t2`` command: ask, collect, curse, train, label, adapt, demo, eval, compare, serve.

Every command takes ``--json``: it then prints exactly one JSON object on stdout (progress and
logs go to stderr), and on failure ``{"error": {"type": ..., "message": ...}}`` with exit code 2.
The commands live in :mod:`~t2_agents.cli.answer_commands`,
:mod:`~t2_agents.cli.calibration_commands`, :mod:`~t2_agents.cli.adapt_commands` and
:mod:`~t2_agents.cli.evaluation_commands`; what
they share in :mod:`~t2_agents.cli.common`.

Example:
    $ t2 ask "What is 17 * 23?" --n 8 --json
"""

from __future__ import annotations

import sys

import typer

from t2_agents.cli import (
    adapt_commands,
    answer_commands,
    calibration_commands,
    common,
    evaluation_commands,
)

__all__ = ["app", "expand_multi_value", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Budget-aware parallel thinking (T2): pick N before decoding, sample N paths, vote.",
)
app.command()(answer_commands.ask)
app.command()(calibration_commands.collect)
app.command()(calibration_commands.curse)
app.command()(calibration_commands.train)
app.command()(adapt_commands.label)
app.command()(adapt_commands.adapt)
app.command()(evaluation_commands.demo)
app.command("eval")(evaluation_commands.eval_policies)
app.command()(evaluation_commands.compare)
app.command()(answer_commands.serve)

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
    common.exit_on_sigterm()
    app(args=expand_multi_value(sys.argv[1:]), prog_name="t2")
