"""Shared argument checks: one wording for every integer and range argument of the library.

Every check raises :class:`~t2_agents.errors.ConfigError` naming the argument, the value, the
limit and the fix, and returns the value in its plain Python type (a numpy integer becomes an
``int``), so callers can store what the check returns.

Example:
    >>> check_int("window", 4, low=1)
    4
    >>> check_int("questions", 0, low=1)
    Traceback (most recent call last):
    ...
    t2_agents.errors.ConfigError: questions=0 is not an int >= 1; pass questions >= 1
"""

from __future__ import annotations

import importlib
import numbers
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

from t2_agents.errors import ConfigError

__all__ = [
    "check_accuracy",
    "check_budget_range",
    "check_int",
    "check_optional_int",
    "check_tolerance",
    "import_callable",
]


def check_int(name: str, value: object, *, low: int) -> int:
    """Return ``value`` as an int if it is an integer ``>= low`` (booleans are refused).

    Args:
        name: The argument's name, for the message.
        value: The value to check.
        low: The smallest allowed value.

    Returns:
        ``int(value)``.

    Raises:
        ConfigError: Not an integer, a boolean, or below ``low``.

    Example:
        >>> check_int("replays", 200, low=1)
        200
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name}={value!r} is not an int >= {low}; pass {name} >= {low}")
    return int(value)


@overload
def check_optional_int(name: str, value: None, *, low: int) -> None: ...
@overload
def check_optional_int(name: str, value: object, *, low: int) -> int | None: ...
def check_optional_int(name: str, value: object, *, low: int) -> int | None:
    """:func:`check_int`, letting None through (an argument whose None means "the default").

    Example:
        >>> check_optional_int("budget", None, low=1) is None
        True
    """
    return None if value is None else check_int(name, value, low=low)


def check_accuracy(name: str, value: object, *, fix: str) -> float:
    """Return ``value`` as a float if it is a number in ``[0, 1]`` (an accuracy; no booleans).

    Args:
        name: The argument's name, for the message.
        value: The value to check.
        fix: What to pass instead (the message's end).

    Raises:
        ConfigError: Not a number, a boolean, or outside ``[0, 1]``.

    Example:
        >>> check_accuracy("tolerance", 0.02, fix="pass e.g. 0.01")
        0.02
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        number = None
    else:
        number = float(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ConfigError(f"{name}={value!r} is not an accuracy in [0, 1]; {fix}")
    return number


def check_budget_range(n_min: int, n_max: int) -> tuple[int, int]:
    """Validate a budget range: integers with ``1 <= n_min <= n_max``.

    Raises:
        ConfigError: Either bound is not an integer, ``n_min < 1`` or ``n_min > n_max``.

    Example:
        >>> check_budget_range(1, 16)
        (1, 16)
    """
    for label, value in (("n_min", n_min), ("n_max", n_max)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{label}={value!r} must be an integer >= 1")
    if n_min < 1:
        raise ConfigError(f"n_min={n_min} is below 1; every step samples at least one path")
    if n_min > n_max:
        raise ConfigError(f"n_min={n_min} is above n_max={n_max}; pass n_min <= n_max")
    return int(n_min), int(n_max)


def check_tolerance(value: object, *, name: str = "tolerance") -> float:
    """Return a cost knob ``value`` as a float if it is a finite number in ``[0, 1]``.

    Example:
        >>> check_tolerance(0.02)
        0.02

    Raises:
        ConfigError: Not a number, or outside ``[0, 1]``.
    """
    fix = (
        "pass e.g. 0.01 (for tolerance: lose at most 1 point against the best predicted budget) "
        "or omit it for the calibrated default"
    )
    return check_accuracy(name, value, fix=fix)


def import_callable(spec: str, *, role: str) -> Callable[..., Any]:
    """Import a ``module:function`` the user named (a grader, an agent factory), from the
    current directory or ``PYTHONPATH`` (as uvicorn finds an app).

    Raises:
        ConfigError: Not of the form ``module:function``, the module cannot be imported, or it
            has no such callable (the message names the spec and the fix).

    Example:
        >>> import_callable("math:sqrt", role="grader")(9.0)
        3.0
    """
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ConfigError(f"{role}={spec!r} must be module:function, e.g. my_{role}:build")
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{role} module {module_name!r} cannot be imported ({exc}); put it on PYTHONPATH"
        ) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"{role} {spec!r}: {module_name} has no callable {name!r}")
    return function  # type: ignore[no-any-return]
