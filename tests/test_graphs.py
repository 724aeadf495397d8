"""The served graphs (graphs/): import cheaply, run on the real model, and serve with langgraph dev.

``langgraph dev`` needs ``pip install "langgraph-cli[inmem]"``; without it that test is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from test_demo import fit_fixture_estimator

from t2_agents.demo import build_default_graph, make_agent, shared_default_engine

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"
QUESTION = "What is 7 * 6? Give only the final answer."
LANGGRAPH = shutil.which("langgraph")
HAS_API = importlib.util.find_spec("langgraph_api") is not None


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"graphs_{name}", GRAPHS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fixture_estimator(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real estimator for the default model (see ``test_demo.fit_fixture_estimator``)."""
    return fit_fixture_estimator(engine, tmp_path_factory.mktemp("estimator") / "t2")


def test_langgraph_json_points_at_the_graphs() -> None:
    config = json.loads((GRAPHS / "langgraph.json").read_text())
    assert config["dependencies"] == [".."]
    assert set(config["graphs"]) == {"parallel_thinking", "agent"}
    for spec in config["graphs"].values():
        path, variable = spec["path"].split(":")
        assert (GRAPHS / path).is_file()
        assert hasattr(_load(Path(path).stem), variable)


def test_graph_modules_import_without_loading_the_model() -> None:
    thinking, agent = _load("parallel_thinking"), _load("agent")
    assert sorted(thinking.graph.get_graph().nodes) == [
        "__end__",
        "__start__",
        "aggregate",
        "branch",
        "budget",
        "sample",
    ]
    assert thinking.served.name == "parallel_thinking"
    assert list(thinking.served.get_input_jsonschema()["properties"]) == ["question"]
    assert "answer" in thinking.served.get_output_jsonschema()["properties"]
    assert {"model", "tools"} <= set(agent.graph.get_graph().nodes)
    assert not shared_default_engine().loaded


@pytest.mark.skipif(LANGGRAPH is None, reason="langgraph-cli is not installed")
def test_langgraph_validate_accepts_the_config() -> None:
    assert LANGGRAPH is not None
    done = subprocess.run(
        [LANGGRAPH, "validate", "--config", str(GRAPHS / "langgraph.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 graphs found" in done.stdout


@pytest.mark.slow
def test_served_graph_on_the_real_model(engine: Any, fixture_estimator: Path) -> None:
    thinking = build_default_graph(engine, estimator=fixture_estimator, n_max=4, max_tokens=8)
    served = _load("parallel_thinking").make_served(thinking)
    config = {"configurable": {"t2": {"n_max": 2, "task": "products"}}}
    events = list(served.stream({"question": QUESTION}, config, stream_mode=["custom", "values"]))
    custom = [data["event"] for mode, data in events if mode == "custom"]
    state = [data for mode, data in events if mode == "values"][-1]
    assert state["policy"] == "t2" and 1 <= state["n"] <= 2 and state["n_max"] == 2
    assert custom == ["budget"] + ["branch"] * state["n"] + ["verdict"]
    assert len(state["branches"]) == state["n"] and state["cost"]["samples"] == state["n"]
    assert 0 < state["cost"]["completion_tokens"] <= 8 * state["n"]


@pytest.mark.slow
def test_agent_graph_on_the_real_model(engine: Any, fixture_estimator: Path) -> None:
    thinking = build_default_graph(engine, estimator=fixture_estimator, n_max=2, max_tokens=8)
    agent = make_agent(thinking, tool_name="solve")
    message = "What is 7 * 6?\n---\nWhat is 3 + 4?"
    out = agent.invoke({"messages": [{"role": "user", "content": message}]})
    results = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(results) == 2
    for result in results:
        assert result.name == "solve" and result.artifact["policy"] == "t2"
        assert 1 <= result.artifact["n"] <= 2
        assert result.artifact["question"].endswith("Give only the final answer.")
    assert out["messages"][-1].content.startswith("1. ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.skipif(LANGGRAPH is None or not HAS_API, reason='needs "langgraph-cli[inmem]"')
def test_langgraph_dev_serves_the_graphs(tmp_path: Path) -> None:
    """Start ``langgraph dev`` on a free local port, query it, run one tiny step, shut it down."""
    assert LANGGRAPH is not None
    # serve a copy: langgraph dev resolves graph paths against its working directory and writes
    # its in-memory persistence (.langgraph_api/) there
    served = tmp_path / "graphs"
    served.mkdir()
    for name in ("langgraph.json", "parallel_thinking.py", "agent.py"):
        shutil.copy(GRAPHS / name, served / name)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1"}
    log = (tmp_path / "langgraph-dev.log").open("w")
    command = [LANGGRAPH, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--config", "langgraph.json"],
        cwd=served,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "langgraph-dev.log").read_text()[-3000:]
            try:
                if _request(f"{base}/ok", timeout=2).get("ok"):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "langgraph dev did not answer /ok within 90 s"
            time.sleep(0.5)
        assistants = _request(f"{base}/assistants/search", {})
        ids = {a["graph_id"]: a["assistant_id"] for a in assistants}
        assert set(ids) == {"parallel_thinking", "agent"}
        for assistant_id in ids.values():
            schemas = _request(f"{base}/assistants/{assistant_id}/schemas")
            assert schemas["input_schema"] is not None
        # one real step in the server process (it loads the model: ~15 s), at tiny settings
        run = {
            "assistant_id": "parallel_thinking",
            "input": {"question": QUESTION},
            "config": {"configurable": {"t2": {"n_max": 1, "max_tokens": 4}}},
        }
        state = _request(f"{base}/runs/wait", run, timeout=180)
        assert "__error__" not in state, state
        assert state["n"] == 1 and state["cost"]["samples"] == 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
