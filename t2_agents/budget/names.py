"""The one registry of budget-policy names: what each means and where it runs.

A policy name is a strategy for choosing how many paths to sample. Some run only in replay
(``t2 eval``, on collected pools), some also live through the graph (``t2 eval --live``), some
through the endpoint (``t2 serve``'s ``t2.policy``). Every list of names in the library and in
the command-line help is read from :data:`POLICY_NAMES`; the runtime classes that implement
them are in :mod:`t2_agents.budget.policies` and :mod:`t2_agents.budget.stop_rules`.

Example:
    >>> REPLAY_POLICIES[:3]
    ('fixed', 'nd', 't2')
    >>> POLICY_NAMES["hybrid"].live
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "LIVE_POLICIES",
    "POLICY_NAMES",
    "REPLAY_POLICIES",
    "SERVE_POLICIES",
    "PolicyName",
    "describe_policies",
]


@dataclass(frozen=True, kw_only=True)
class PolicyName:
    """One policy name.

    Example:
        >>> PolicyName(name="t2", summary="T2", replay=True).live
        False
    """

    name: str
    """The name, as ``--policies``, ``t2.policy`` and result keys spell it."""
    summary: str
    """One line: what the policy does."""
    replay: bool = False
    """Replayed on collected pools by ``t2 eval``."""
    live: bool = False
    """Run through the graph by ``t2 eval --live``."""
    serve: bool = False
    """Accepted as ``t2.policy`` by ``t2 serve``."""
    needs_estimator: bool = False
    """Needs a T2 estimator."""


_ALL = (
    PolicyName(name="fixed", summary="the same N for every question (replay: every N of the "
               "grid; live: N_D; serve: n or n_max)", replay=True, live=True, serve=True),
    PolicyName(name="nd", summary="the dataset-optimal N_D of the training set", replay=True),
    PolicyName(name="t2", summary="T2: the estimator's N per question, before decoding",
               replay=True, live=True, serve=True, needs_estimator=True),
    PolicyName(name="oracle", summary="each question's own N*_x (an upper bound)", replay=True),
    PolicyName(name="adaptive", summary="Adaptive-Consistency: one path at a time, stop on the "
               "Beta test", replay=True, live=True),
    PolicyName(name="esc", summary="Early-Stopping Self-Consistency: windows of paths, stop on "
               "a unanimous window", replay=True, live=True),
    PolicyName(name="hybrid", summary="T2's N first, then windows until the vote is decisive",
               replay=True, live=True, needs_estimator=True),
    PolicyName(name="alloc", summary="a total budget spread over the questions by predicted "
               "marginal gain", replay=True, needs_estimator=True),
    PolicyName(name="budget", summary="T2 under one run budget for all the questions",
               live=True, needs_estimator=True),
)  # fmt: skip

POLICY_NAMES = MappingProxyType({policy.name: policy for policy in _ALL})
"""Every policy name, in the order tables list them."""

REPLAY_POLICIES: tuple[str, ...] = tuple(p.name for p in _ALL if p.replay)
"""Names ``t2 eval --policies`` accepts."""

LIVE_POLICIES: tuple[str, ...] = tuple(p.name for p in _ALL if p.live)
"""Names of the live runs of ``t2 eval --live``, in the order they run."""

SERVE_POLICIES: tuple[str, ...] = tuple(p.name for p in _ALL if p.serve)
"""Names ``t2 serve`` accepts as ``t2.policy`` (plus ``fixed-<n>``)."""


def describe_policies(names: tuple[str, ...]) -> str:
    """``"a, b or c"`` for messages and help texts.

    Example:
        >>> describe_policies(SERVE_POLICIES)
        'fixed or t2'
    """
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
