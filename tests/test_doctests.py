"""Every docstring example in the package runs (the examples are documentation; stale ones lie).

Runs :mod:`doctest` on each module of ``t2_agents`` the way ``pytest --doctest-modules`` would,
so ``python -m pytest -q`` (the README's test command) keeps them honest. Examples marked
``# doctest: +SKIP`` need a model, an engine or data and are left out.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import t2_agents

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(t2_agents.__path__, prefix="t2_agents.")
    # _vllm_*: imported by vLLM's workers only; __main__: runs the CLI when imported
    if not info.name.rsplit(".", 1)[-1].startswith(("_vllm", "__main__"))
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
