"""The served graphs (graphs/): import cheaply, run on the real model, and serve with langgraph dev.

``langgraph dev`` needs ``pip install "langgraph-cli[inmem]"`` (in the ``test`` extra); without it
that test is skipped.
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

from t2_agents.agents import build_default_graph, make_agent
from t2_agents.backends.lazy import shared_default_engine
from t2_agents.budget.shipped import FALLBACK_N, default_estimator_path

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"
QUESTION = "What is 7 * 6? Give only the final answer."
LANGGRAPH = shutil.which("langgraph")
HAS_API = importlib.util.find_spec("langgraph_api") is not None
SETTINGS = {
    "n_min", "n_max", "temperature", "top_p", "max_tokens", "seed", "fanout", "task",
    "exact_seeds", "branch_errors", "stop", "vote", "vote_eta", "vote_statistic",
    "early_stop_floor", "early_stop_warmup", "early_stop_keep",
}  # fmt: skip
"""The fields of the thinking graph's JSON context schema (ThinkingSettings)."""


def _default_n_max() -> int:
    """``n_max`` of ``graphs/parallel_thinking.py``'s graph (T2: 16; fixed fallback: 8)."""
    return 16 if default_estimator_path() is not None else FALLBACK_N


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"graphs_{name}", GRAPHS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_langgraph_json_points_at_the_graphs() -> None:
    config = json.loads((GRAPHS / "langgraph.json").read_text())
    assert config["dependencies"] == [".."]
    assert set(config["graphs"]) == {"parallel_thinking", "agent"}
    assert config["graphs"]["parallel_thinking"]["path"] == "./parallel_thinking.py:graph"
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
        "wave",
    ]
    # every schema the server serves (/assistants/{id}/schemas) is plain JSON
    assert thinking.graph.name == "parallel_thinking"
    assert list(thinking.graph.get_input_jsonschema()["properties"]) == ["question"]
    assert {"answer", "n", "cost"} <= set(thinking.graph.get_output_jsonschema()["properties"])
    assert set(thinking.graph.get_context_jsonschema()["properties"]) == SETTINGS
    assert {"model", "tools"} <= set(agent.graph.get_graph().nodes)
    for graph in (thinking.graph, agent.graph):
        json.dumps([graph.get_input_jsonschema(), graph.get_output_jsonschema()])
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
def test_thinking_graph_on_the_real_model(engine: Any, fixture_estimator: Path) -> None:
    thinking = build_default_graph(engine, estimator=fixture_estimator, n_max=4, max_tokens=8)
    config = {"configurable": {"t2": {"n_max": 2, "task": "products"}}}
    events = list(thinking.stream({"question": QUESTION}, config, stream_mode=["custom", "values"]))
    custom = [data["event"] for mode, data in events if mode == "custom"]
    state = [data for mode, data in events if mode == "values"][-1]
    assert state["policy"] == "t2" and 1 <= state["n"] <= 2 and state["n_max"] == 2
    assert custom == ["budget"] + ["branch"] * state["n"] + ["verdict"]
    assert len(state["branches"]) == state["n"] and state["cost"]["samples"] == state["n"]
    assert 0 < state["cost"]["completion_tokens"] <= 8 * state["n"]
    # a context (what the server builds from a run's "context") overrides only what it sets
    state = thinking.invoke({"question": QUESTION}, context={"n_max": 1, "task": "products"})
    assert (state["n"], state["n_max"], state["params"]["max_tokens"]) == (1, 1, 8)


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
    """POST ``body`` (GET without one); the JSON answer, or a test failure unless status 200."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            assert response.status == 200, (url, response.status)
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        pytest.fail(f"{url} answered {exc.code}: {exc.read()[:2000]!r}")


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
            schemas = _request(f"{base}/assistants/{assistant_id}/schemas")  # 200, not 500
            assert schemas["input_schema"] is not None and schemas["output_schema"] is not None
        schemas = _request(f"{base}/assistants/{ids['parallel_thinking']}/schemas")
        assert set(schemas["context_schema"]["properties"]) == SETTINGS
        assert "question" in schemas["input_schema"]["properties"]
        # real steps in the server process (the first loads the model: ~15 s), at tiny settings:
        # configurable["t2"] overrides (as in Python), then a run context; the settings a run
        # leaves out keep the graph's build-time defaults (n_max, max_tokens 48, policy)
        question = {"assistant_id": "parallel_thinking", "input": {"question": QUESTION}}
        run = {**question, "config": {"configurable": {"t2": {"n_max": 2, "max_tokens": 4}}}}
        state = _request(f"{base}/runs/wait", run, timeout=300)
        assert "__error__" not in state, state
        # the served policy is T2 when the estimator is shipped (it may pick 1), else fixed
        assert 1 <= state["n"] <= 2 and (state["n_max"], state["params"]["max_tokens"]) == (2, 4)
        assert state["cost"]["samples"] == state["n"] == len(state["branches"])
        state = _request(f"{base}/runs/wait", {**question, "context": {"n_max": 1}}, timeout=300)
        assert "__error__" not in state, state
        assert (state["n"], state["n_max"], state["params"]["max_tokens"]) == (1, 1, 48)
        run = {**question, "context": {"max_tokens": 2, "task": "products"}}
        state = _request(f"{base}/runs/wait", run, timeout=300)
        assert "__error__" not in state, state
        assert state["n_max"] == _default_n_max() and state["params"]["max_tokens"] == 2
        assert state["cost"]["samples"] == state["n"] >= 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
