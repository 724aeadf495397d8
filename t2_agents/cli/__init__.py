"""The ``t2`` command line: the Typer app, its commands, and the demo.

Example:
    >>> from t2_agents.cli import expand_multi_value
    >>> expand_multi_value(["eval", "--data", "a", "b"])
    ['eval', '--data', 'a', '--data', 'b']
"""

from __future__ import annotations

from t2_agents.cli.app import app, expand_multi_value, main

__all__ = ["app", "expand_multi_value", "main"]
