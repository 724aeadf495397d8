"""The front door (t2_agents/__init__.py): one import, light to import, the README happy path."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import t2_agents
from t2_agents.backends.fake import FakeEngine

ROOT = Path(__file__).resolve().parents[1]


def test_import_t2_agents_loads_no_engine_library() -> None:
    code = (
        "import sys, t2_agents\n"
        "heavy = [m for m in ('torch', 'vllm', 'transformers', 'langgraph') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


def test_every_front_door_name_resolves_to_its_module() -> None:
    for name in t2_agents.__all__:
        if name in ("VLLMEngine", "__version__"):
            continue  # vLLM is optional (tests/test_vllm_engine.py); the version is a string
        value = getattr(t2_agents, name)
        assert getattr(value, "__name__", name) == name
    assert t2_agents.vote(["4", "4", "5"]).answer == "4"
    assert set(dir(t2_agents)) >= set(t2_agents.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = t2_agents.nothing  # type: ignore[attr-defined]


def test_the_product_comes_from_one_import() -> None:
    from t2_agents import (
        ServerEngine,
        T2Policy,
        TransformersEngine,
        as_tool,
        build_parallel_thinking_graph,
        load_t2_policy,
    )

    assert (
        TransformersEngine
        is importlib.import_module("t2_agents.backends.transformers").__dict__["TransformersEngine"]
    )
    assert ServerEngine.__module__ == "t2_agents.backends.server"
    assert T2Policy.__module__ == "t2_agents.budget.policies"
    assert load_t2_policy.__module__ == "t2_agents.budget.shipped"
    assert as_tool(build_parallel_thinking_graph(n_max=2)).name == "parallel_thinking"


def _happy_path() -> str:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("### Add it to an existing LangGraph agent", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_happy_path_is_short_with_one_import_line() -> None:
    code = _happy_path()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 10
    assert [line for line in lines if re.match(r"\s*(from|import)\s", line)] == [
        "from t2_agents import TransformersEngine, as_tool, build_parallel_thinking_graph, "
        "load_t2_policy"
    ]


def test_the_readme_happy_path_runs_in_an_existing_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README snippet, verbatim, on a fake engine with the default model's shape.

    The shipped estimator loads for it (same identity, layers and width), so the snippet runs
    the real T2 policy; the fake engine samples scripted answers instead of decoding.
    """
    from langchain.agents import create_agent
    from langchain_core.messages import ToolMessage

    from t2_agents.agents import ScriptedToolCaller
    from t2_agents.budget.shipped import default_estimator_path

    if default_estimator_path() is None:
        pytest.skip("no estimator is shipped")

    def default_shaped_engine() -> FakeEngine:
        return FakeEngine(identity="SmolLM2-135M-Instruct", num_layers=30, hidden_size=576)

    monkeypatch.setattr(t2_agents, "TransformersEngine", default_shaped_engine)
    namespace: dict[str, Any] = {
        "create_agent": create_agent,
        "model": ScriptedToolCaller(tool_name="parallel_thinking"),  # the agent's own model
        "tools": [],  # the agent's own tools
    }
    exec(compile(_happy_path(), "README.md", "exec"), namespace)
    messages = namespace["out"]["messages"]
    (result,) = [m for m in messages if isinstance(m, ToolMessage)]
    assert result.artifact["policy"] == "t2" and 1 <= result.artifact["n"] <= 16
    assert messages[-1].content == f"1. {result.artifact['answer']}"


@pytest.mark.parametrize("module_name", ["t2_agents", "t2_agents.estimator"])
def test_lazy_exports_and_their_type_checking_imports_agree(module_name: str) -> None:
    """A lazy front door lists each name once (``_EXPORTS``); its TYPE_CHECKING mirror agrees."""
    import ast

    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__ or "").read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                typed.update({alias.name: stmt.module or "" for alias in stmt.names})
    assert typed == module._EXPORTS
    assert set(module.__all__) - {"__version__"} == set(module._EXPORTS)
