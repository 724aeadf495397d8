"""Question families shaped like agent traffic, with gold answers computed in code.

A :class:`Family` enumerates its *instances* (an operation and its canonical operands, e.g.
``lcm:18,22``) and phrases each one through one of several templates: short questions,
"Compute ...", "What's ...", "Find ...", word problems with names and units. The instance is
the question's identity: the same operands in any order (for a symmetric operation) and any
phrasing give the same :attr:`Instance.key`. Operation names are shared with the reasoning-gym
tasks where they ask the same thing (``lcm``, ``gcd``, ``mul``, ``sum``), so
:attr:`t2_agents.tasks.Question.instance_key` matches across the two sources.

Example:
    >>> qs = generate_family("agent_gcd_lcm", size=2, seed=0)
    >>> qs[0].id, qs[0].task, qs[0].template
    ('agent_gcd_lcm-0-0', 'agent_gcd_lcm', 0)
    >>> qs[0].instance.split(":")[0] in ("gcd", "lcm"), qs[0].is_correct(qs[0].gold)
    (True, True)
"""

from t2_agents.families import _catalog, _traffic
from t2_agents.families._chains import PREVIOUS, Chain, ChainStep, chain_kinds, generate_chains
from t2_agents.families._core import (
    FAMILY_PREFIX,
    Family,
    Instance,
    family_names,
    generate_family,
    get_family,
    phrase_instance,
    register_family,
)

__all__ = [
    "FAMILY_PREFIX",
    "PREVIOUS",
    "Chain",
    "ChainStep",
    "Family",
    "Instance",
    "chain_kinds",
    "family_names",
    "generate_chains",
    "generate_family",
    "get_family",
    "phrase_instance",
    "register_family",
]

del _catalog, _traffic  # imported for their registrations
