"""The README's commands and code are the ones that work (and the ones CI runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_ci_installs_exactly_as_the_readme_says() -> None:
    setup = _blocks("bash")[0].splitlines()[0]
    ci = (ROOT / ".ci" / "run").read_text()
    for step in setup.split(" && "):
        assert step.strip() in ci, f"README step {step!r} is missing from .ci/run"


def test_ci_installs_vllm_exactly_as_the_readme_says() -> None:
    setup = next(b for b in _blocks("bash") if b.startswith("python3 -m venv .venv-vllm"))
    ci = (ROOT / ".ci" / "run").read_text()
    for line in setup.splitlines():
        for step in line.split(" && "):
            assert step.strip() in ci, f"README vLLM step {step!r} is missing from .ci/run"


def test_ci_runs_the_readme_test_command() -> None:
    command = "python -m pytest -q"
    assert command in README
    assert command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_readme_python_example_runs() -> None:
    code = _blocks("python")[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the README's own example code
    state = namespace["state"]
    assert isinstance(state, dict)
    assert 1 <= state["n"] <= 16
    assert state["verdict"] is not None


def test_readme_stop_rule_snippet_registers_a_working_rule() -> None:
    """The "Your own stop rule" snippet, run in a fresh interpreter (the registry is global)."""
    import subprocess
    import sys

    code = next(b for b in _blocks("python") if "register_stop_rule" in b)
    check = (
        "\nfrom t2_agents import StopRule\n"
        "d = StopRule(kind='agree-2').decide(['7', '7'], wave=['7'])\n"
        "print(d.stop, d.reason)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code + check], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "agree"]


def _tables() -> dict[str, str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "readme_tables", ROOT / "bench" / "readme_tables.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: render() for name, render in module.TABLES.items()}


def test_readme_tables_equal_the_committed_results() -> None:
    """Every calibration/evidence table in the README is rendered from docs/results/*.json."""
    for name, table in _tables().items():
        assert table in README, f"README's {name!r} table differs from docs/results: {table}"
