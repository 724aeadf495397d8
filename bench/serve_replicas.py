"""Two real ``vllm serve`` replicas behind ``t2 serve --engine server``, on loopback.

    python bench/serve_replicas.py --vllm-python .venv-vllm/bin/python \
        --out bench/results/serve_replicas.json

Starts two vLLM OpenAI servers (``serve_command``, ports 8001 and 8002, the vLLM venv's
interpreter), waits for their ``/health``, then serves the endpoint in this process with a local
transformers feature engine and ``ServerEngine`` over both replicas, sends ``--questions``
distinct questions (``--concurrency`` at a time, T2 policy), and reads each replica's
``vllm:request_success_total`` from ``/metrics`` to show that both decoded. The replicas are
stopped at the end (their process groups only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from t2_agents.backends.server import ServerEngine
from t2_agents.backends.transformers import TransformersEngine
from t2_agents.backends.vllm import VLLMConfig, serve_command
from t2_agents.serve import ServeConfig, load_service, serve_in_thread

_SUCCESS = re.compile(r"^vllm:request_success_total\{[^}]*\}\s+([0-9.e+]+)", re.MULTILINE)


def _served(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(value) for value in _SUCCESS.findall(text))


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its own process group: stopped with killpg below
    )


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the replica at {url} exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the replica at {url} did not start within {timeout} s")


async def _ask(base_url: str, model: str, questions: list[str], concurrency: int) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:

        async def one(question: str) -> Any:
            async with gate:
                clock = time.perf_counter()
                reply = await client.post(
                    "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": question}],
                          "max_tokens": 32, "seed": 0},
                )  # fmt: skip
                reply.raise_for_status()
                return reply.json(), time.perf_counter() - clock

        return await asyncio.gather(*(one(q) for q in questions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vllm-python", default=".venv-vllm/bin/python")
    parser.add_argument("--ports", default="8001,8002")
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",")]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    python = str(Path(args.vllm_python).absolute())
    replicas = [_start(serve_command(VLLMConfig(), port=port, python=python)) for port in ports]
    result: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "replicas": urls}
    try:
        result["startup_s"] = [
            _wait(url, process, 600) for url, process in zip(urls, replicas, strict=True)
        ]
        before = [_served(url) for url in urls]
        engine = ServerEngine(TransformersEngine(), base_urls=tuple(urls))
        service = load_service(engine, config=ServeConfig(port=0))
        questions = [f"What is {7 + i} * {3 + i}? Give only the final answer." for i in range(
            args.questions)]  # fmt: skip
        with serve_in_thread(service) as base_url:
            clock = time.perf_counter()
            replies = asyncio.run(_ask(base_url, service.model_name, questions, args.concurrency))
            wall = time.perf_counter() - clock
        result["per_replica_requests"] = [
            _served(url) - start for url, start in zip(urls, before, strict=True)
        ]
        result["wall_s"] = wall
        result["requests"] = [
            {"question": q, "n": body["t2"]["n"], "answer": body["t2"]["answer"],
             "share": body["t2"]["share"], "completion_tokens": body["usage"]["completion_tokens"],
             "seconds": seconds}
            for q, (body, seconds) in zip(questions, replies, strict=True)
        ]  # fmt: skip
    finally:
        for process in replicas:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in replicas:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
