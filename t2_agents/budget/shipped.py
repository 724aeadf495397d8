"""The T2 estimator shipped for the default model, and loading T2 policies from estimator folders.

Runtime logic every entry point shares (the ``t2`` commands, the endpoint, the served graphs,
the examples): where the shipped estimator lives, which folder to use
(:func:`resolve_estimator`), the T2 policy checked against an engine (:func:`load_t2_policy`),
and the same with a fixed-budget fall-back when no estimator exists (:func:`choose_policy`).

Example:
    >>> from t2_agents import TransformersEngine, load_t2_policy  # doctest: +SKIP
    >>> engine = TransformersEngine()  # doctest: +SKIP
    >>> load_t2_policy(engine).name  # doctest: +SKIP
    't2'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from t2_agents.backends.base import Engine
from t2_agents.budget.policies import BudgetPolicy, FixedPolicy, T2Policy
from t2_agents.errors import ArtifactError

__all__ = [
    "DEFAULT_ESTIMATOR",
    "FALLBACK_N",
    "choose_policy",
    "default_estimator_path",
    "load_t2_policy",
    "resolve_estimator",
]

DEFAULT_ESTIMATOR = Path(__file__).parent.parent / "artifacts" / "smollm2-135m-instruct"
"""The T2 estimator shipped for the default model."""

FALLBACK_N = 8
"""The fixed budget :func:`choose_policy` (so :func:`~t2_agents.agents.build_default_graph`)
falls back to when there is no T2 estimator."""

_NO_ESTIMATOR_FIX = "train one with `t2 train` or pass --estimator PATH"


def default_estimator_path() -> Path | None:
    """The shipped estimator folder, or None when the package holds none.

    Example:
        >>> default_estimator_path() in (DEFAULT_ESTIMATOR, None)
        True
    """
    return DEFAULT_ESTIMATOR if (DEFAULT_ESTIMATOR / "metadata.json").is_file() else None


def resolve_estimator(estimator: str | Path | None = None) -> Path:
    """The estimator folder to use: ``estimator`` if given, else the shipped one.

    Args:
        estimator: An estimator folder (``metadata.json`` + ``probes.safetensors``) or None.

    Returns:
        The folder.

    Raises:
        ArtifactError: ``estimator`` holds no ``metadata.json``, or it is None and no estimator
            is shipped; the message says how to get one.

    Example:
        >>> resolve_estimator("/no/such/folder")
        Traceback (most recent call last):
        ...
        t2_agents.errors.ArtifactError: no T2 estimator at /no/such/folder (no metadata.json); \
train one with `t2 train` or pass --estimator PATH
    """
    if estimator is not None:
        path = Path(estimator)
        if not (path / "metadata.json").is_file():
            raise ArtifactError(
                f"no T2 estimator at {path} (no metadata.json); {_NO_ESTIMATOR_FIX}"
            )
        return path
    shipped = default_estimator_path()
    if shipped is None:
        raise ArtifactError(
            f"no T2 estimator is shipped for the default model yet (looked in "
            f"{DEFAULT_ESTIMATOR}); {_NO_ESTIMATOR_FIX}"
        )
    return shipped


def load_t2_policy(
    engine: Engine,
    estimator: str | Path | None = None,
    *,
    tolerance: float | None = None,
    price: float | None = None,
) -> T2Policy:
    """Load the T2 policy for ``engine`` from ``estimator`` (or the shipped estimator).

    Args:
        engine: The engine whose hidden states the estimator reads (checked against it).
        estimator: Estimator folder; None uses the one shipped for the default model.
        tolerance: The cost knob of a curve-head estimator (see
            :class:`~t2_agents.budget.policies.T2Policy`); None uses the calibrated default.
        price: The other cost knob (price per path); give at most one of the two.

    Returns:
        A :class:`~t2_agents.budget.policies.T2Policy` checked against ``engine``.

    Raises:
        ArtifactError: No estimator (see :func:`resolve_estimator`), or it was fitted on another
            model.

    Example:
        >>> policy = load_t2_policy(engine, "artifacts/my-estimator")  # doctest: +SKIP
        >>> policy.name  # doctest: +SKIP
        't2'
    """
    from t2_agents.estimator.estimator import T2Estimator

    path = resolve_estimator(estimator)
    model = T2Estimator.load(
        path, expect_identity=engine.identity, expect_hidden_size=engine.hidden_size
    )
    return T2Policy(model, engine=engine, tolerance=tolerance, price=price)


def choose_policy(
    engine: Engine,
    estimator: str | Path | None = None,
    *,
    fallback_n: int = FALLBACK_N,
    on_fallback: Callable[[str], None] | None = None,
    tolerance: float | None = None,
    price: float | None = None,
) -> BudgetPolicy:
    """T2 from ``estimator`` or the shipped estimator; without either, a fixed budget.

    Args:
        engine: The engine the estimator must fit.
        estimator: Estimator folder; None looks for the shipped one.
        fallback_n: The fixed budget used when there is no estimator at all.
        on_fallback: Called with the reason when falling back (e.g. to print a note).
        tolerance: The T2 cost knob (curve-head estimators); None uses the default.
        price: The other T2 cost knob (price per path); give at most one of the two.

    Returns:
        A :class:`~t2_agents.budget.policies.T2Policy` or ``FixedPolicy(fallback_n)``.

    Raises:
        ArtifactError: ``estimator`` was given but is missing or fits another model (an explicit
            choice never falls back silently).

    Example:
        >>> choose_policy(engine, "artifacts/my-estimator").name  # doctest: +SKIP
        't2'
    """
    if estimator is None and default_estimator_path() is None:
        if on_fallback is not None:
            on_fallback(
                f"no T2 estimator is shipped for the default model yet; using a fixed budget "
                f"of {fallback_n} paths ({_NO_ESTIMATOR_FIX} for T2)"
            )
        return FixedPolicy(fallback_n)
    return load_t2_policy(engine, estimator, tolerance=tolerance, price=price)
