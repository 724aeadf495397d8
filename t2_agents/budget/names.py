"""The one registry of budget-policy names: what each means and where it runs.

A policy name is a strategy for choosing how many paths to sample. Some run only in replay
(``t2 eval``, on collected pools), some also live through the graph (``t2 eval --live``), some
through the endpoint (``t2 serve``'s ``t2.policy``). Every list of names in the library and in
the command-line help is read from :func:`policy_names`, which takes the sequential policies
from the stop-rule registry (:mod:`t2_agents.budget.stop_rules`: a registered rule is a policy
name at once); the runtime classes that implement them are in
:mod:`t2_agents.budget.policies` and :mod:`t2_agents.budget.stop_rules`.

Example:
    >>> REPLAY_POLICIES[:3]
    ('fixed', 'nd', 't2')
    >>> POLICY_NAMES["hybrid"].live
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from t2_agents.budget.stop_rules import stop_criterion, stop_rule_kinds

__all__ = [
    "LIVE_POLICIES",
    "POLICY_NAMES",
    "REPLAY_POLICIES",
    "SERVE_POLICIES",
    "PolicyName",
    "describe_policies",
    "live_policies",
    "policy_names",
    "replay_policies",
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


_BEFORE_RULES = (
    PolicyName(name="fixed", summary="the same N for every question (replay: every N of the "
               "grid; live: N_D; serve: n or n_max)", replay=True, live=True, serve=True),
    PolicyName(name="nd", summary="the dataset-optimal N_D of the training set", replay=True),
    PolicyName(name="t2", summary="T2: the estimator's N per question, before decoding",
               replay=True, live=True, serve=True, needs_estimator=True),
    PolicyName(name="oracle", summary="each question's own N*_x (an upper bound)", replay=True),
)  # fmt: skip
_AFTER_RULES = (
    PolicyName(name="alloc", summary="a total budget spread over the questions by predicted "
               "marginal gain", replay=True, needs_estimator=True),
    PolicyName(name="budget", summary="T2 under one run budget for all the questions",
               live=True, needs_estimator=True),
)  # fmt: skip


def policy_names() -> Mapping[str, PolicyName]:
    """Every policy name now, in the order tables list them: the stop rules registered in
    :mod:`t2_agents.budget.stop_rules` after ``oracle`` (each replayed and run live; one that
    takes the policy's N needs the estimator).

    Example:
        >>> list(policy_names())[3:7]
        ['oracle', 'adaptive', 'esc', 'hybrid']
    """
    rules = tuple(
        PolicyName(name=kind, summary=rule.summary, replay=True, live=True,
                   needs_estimator=rule.takes_first_wave)
        for kind, rule in ((k, stop_criterion(k)) for k in stop_rule_kinds())
    )  # fmt: skip
    return MappingProxyType({p.name: p for p in (*_BEFORE_RULES, *rules, *_AFTER_RULES)})


def replay_policies() -> tuple[str, ...]:
    """Names ``t2 eval --policies`` accepts now (registered stop rules included).

    Example:
        >>> replay_policies()[-2:]
        ('hybrid', 'alloc')
    """
    return tuple(p.name for p in policy_names().values() if p.replay)


def live_policies() -> tuple[str, ...]:
    """Names of the live runs of ``t2 eval --live`` now, in the order they run.

    Example:
        >>> live_policies()
        ('fixed', 't2', 'adaptive', 'esc', 'hybrid', 'budget')
    """
    return tuple(p.name for p in policy_names().values() if p.live)


POLICY_NAMES = policy_names()
"""Every policy name at import, in the order tables list them (:func:`policy_names` also
lists stop rules registered since)."""

REPLAY_POLICIES: tuple[str, ...] = replay_policies()
"""Names ``t2 eval --policies`` accepted at import (:func:`replay_policies`: now)."""

LIVE_POLICIES: tuple[str, ...] = live_policies()
"""Names of the live runs of ``t2 eval --live`` at import (:func:`live_policies`: now)."""

SERVE_POLICIES: tuple[str, ...] = tuple(p.name for p in POLICY_NAMES.values() if p.serve)
"""Names ``t2 serve`` accepts as ``t2.policy`` (plus ``fixed-<n>``)."""


def describe_policies(names: tuple[str, ...]) -> str:
    """``"a, b or c"`` for messages and help texts.

    Example:
        >>> describe_policies(SERVE_POLICIES)
        'fixed or t2'
    """
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
