"""Real ``SIGKILL``s: the graph resumed from a SQLite checkpoint, and ``t2 collect`` resumed.

Each test runs the work in a child Python process, kills it with ``SIGKILL`` (``proc.kill()``)
at a chosen moment, then resumes, and compares the result with an uninterrupted run. The child
logs what it did to a file (one ``os.write`` + ``fsync`` per line), which the parent polls with
timeouts rather than fixed sleeps.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from langgraph.checkpoint.sqlite import SqliteSaver

from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph
from t2_agents.graph.testing import FakeEngine

ROOT = Path(__file__).resolve().parents[1]
Q = "What is 6 * 7?"
DEADLINE = 60.0
"""Longest wait for any event of a child (a loaded machine is slow, a hung child is a bug)."""

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("SIGKILL semantics are POSIX", allow_module_level=True)


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(path: Path) -> list[str]:
    """The complete lines of a log (a line being written has no newline yet)."""
    if not path.exists():
        return []
    return path.read_text().split("\n")[:-1]


def _wait(proc: subprocess.Popen[str], what: str, ready: Callable[[], bool]) -> None:
    """Poll until ``ready()``; fail with the child's output if it exits or the deadline passes."""
    deadline = time.monotonic() + DEADLINE
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the child exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"timed out waiting for {what}:\n{out}\n{err}")
        time.sleep(0.005)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL: no cleanup, no atexit, no finally
    proc.communicate(timeout=DEADLINE)
    assert proc.returncode == -9


# -------------------------------------------------------------------- graph, mid fan-out
GRAPH_CHILD = r"""
import os, sqlite3, sys, time
from langgraph.checkpoint.sqlite import SqliteSaver
from t2_agents.graph import ThinkingContext, build_parallel_thinking_graph
from t2_agents.graph.testing import FakeEngine

db, log, n, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def write(line):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)

class LoggedEngine(FakeEngine):
    def sample(self, prompts, n, params):
        write(f"start {params.seed}")
        out = super().sample(prompts, n, params)
        write(f"done {params.seed}")
        return out

class LoggedSaver(SqliteSaver):
    # Logs "saved i" once branch i's writes are committed; holds back branch `hold`'s writes.
    def put_writes(self, config, writes, task_id, task_path=""):
        indices = [v[0]["index"] for c, v in writes if c == "branches" and v]
        if hold in indices:
            time.sleep(600)
        super().put_writes(config, writes, task_id, task_path)
        for index in indices:
            write(f"saved {index}")

# Branches 0, 1, 2 finish at once, 0.4 s and 0.8 s; the others sleep until they are killed.
engine = LoggedEngine(delay={s: 0.4 * s if s < 3 else 600.0 for s in range(n)})
saver = LoggedSaver(sqlite3.connect(db, check_same_thread=False))
graph = build_parallel_thinking_graph(
    engine=engine, fanout="send", n_max=n, checkpointer=saver, context=ThinkingContext(seed=0)
)
graph.invoke({"question": sys.argv[5]}, {"configurable": {"thread_id": "killed"}})
write("finished")
"""
N = 8
THREAD = {"configurable": {"thread_id": "killed"}}


def _committed(db: Path) -> set[int]:
    """Branches whose writes the checkpoint holds (pending writes of the fan-out superstep)."""
    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        found = SqliteSaver(conn).get_tuple(THREAD)  # type: ignore[arg-type]
    finally:
        conn.close()
    assert found is not None and found.pending_writes is not None
    return {
        value[0]["index"] for _, channel, value in found.pending_writes if channel == "branches"
    }


@pytest.mark.parametrize("hold", [None, 2], ids=["natural", "write-held-back"])
def test_kill_mid_fanout_resumes_only_uncommitted_branches(
    tmp_path: Path, hold: int | None
) -> None:
    """SIGKILL the graph while 5 of 8 Send branches still sleep; resume from the SQLite file.

    ``natural``: killed as soon as 3 branches logged ``done``, whatever is committed by then.
    ``write-held-back``: branch 2's writes are held back in ``put_writes``, so at the kill 3
    branches are done but only 0 and 1 are committed; branch 2 must run again.
    In both, exactly the branches without committed writes run again, and the result equals an
    uninterrupted run's.
    """
    db, log = tmp_path / "checkpoints.sqlite", tmp_path / "calls.log"
    proc = _spawn(GRAPH_CHILD, str(db), str(log), str(N), str(-1 if hold is None else hold), Q)

    def done() -> set[int]:
        return {int(line.split()[1]) for line in _lines(log) if line.startswith("done ")}

    def saved() -> set[int]:
        return {int(line.split()[1]) for line in _lines(log) if line.startswith("saved ")}

    if hold is None:
        _wait(proc, "3 finished branches", lambda: len(done()) >= 3)
    else:
        _wait(
            proc, "3 finished and 2 saved branches", lambda: len(done()) >= 3 and saved() == {0, 1}
        )
    _kill(proc)

    lines = _lines(log)
    assert "finished" not in lines
    started = {int(line.split()[1]) for line in lines if line.startswith("start ")}
    assert done() == {0, 1, 2} and started >= {0, 1, 2}  # 3..7 were asleep (or not started)
    committed = _committed(db)
    assert committed <= done()  # only finished branches have writes
    if hold is None:  # "saved" is logged just after the commit, so it may lag behind it
        assert saved() <= committed
        assert committed, "no finished branch's writes were committed before the kill"
    else:
        assert committed == saved() == {0, 1}  # done but not committed: branch 2

    # Resume the killed thread in this process, on the same SQLite file.
    engine = FakeEngine()
    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        graph = build_parallel_thinking_graph(
            engine=engine, fanout="send", n_max=N, checkpointer=SqliteSaver(conn),
            context=ThinkingContext(seed=0),
        )  # fmt: skip
        pending = graph.get_state(THREAD).next  # type: ignore[arg-type]
        assert pending == ("branch",) * (N - len(committed))  # the tasks without writes
        resumed = graph.invoke(None, THREAD)  # type: ignore[arg-type]
    finally:
        conn.close()

    rerun = Counter(call[2] for call in engine.sample_calls)
    assert rerun == dict.fromkeys(set(range(N)) - committed, 1)  # each uncommitted branch once
    assert len(engine.sample_calls) == N - len(committed)
    assert sorted(b["index"] for b in resumed["branches"]) == list(range(N))  # once each
    reference = build_parallel_thinking_graph(
        engine=FakeEngine(), fanout="send", n_max=N, context=ThinkingContext(seed=0)
    ).invoke({"question": Q})
    assert resumed["answers"] == reference["answers"]
    assert resumed["verdict"] == reference["verdict"] and resumed["error"] is None
    assert resumed["cost"]["samples"] == N and resumed["cost"]["failed"] == 0
