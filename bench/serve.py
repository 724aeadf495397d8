"""The OpenAI-compatible endpoint: overhead vs the in-process graph, and 50 concurrent clients.

    python bench/serve.py --repeats 3 --clients 50 --out bench/results/serve.json

1. **Overhead** (side by side in one run, interleaved, medians of ``--repeats``): the same
   question, N (fixed 1 and 8), seed and ``max_tokens`` through ``graph.invoke`` in process and
   through ``POST /v1/chat/completions`` (httpx, keep-alive) on an endpoint serving the same
   engine. With a seed the transformers engine decodes the same tokens both ways (checked).
   Reported: seconds, endpoint / graph ratio, and the difference in milliseconds. The same on
   the fake engine (no model, 100 requests) isolates the HTTP + JSON + validation cost.
2. **Load**: ``--clients`` concurrent clients (``asyncio.gather`` of httpx requests), each
   asking its own "What is a + b?" (3-5 digit operands no other question uses) with the T2
   policy (``t2.n_max`` 8), temperature 0.7, a fixed seed, for two rounds, then every question
   alone as the reference. Per round: wall time, requests/s, completion tokens/s, p50/p95
   latency, the process's peak RSS (sampled every 0.2 s; the server runs in this process, in a
   thread) and the RSS after the round. Cross-talk check per request: the answer text equals
   the reference's (the transformers engine serialises calls, so a seeded request decodes the
   same tokens under load), ``usage.prompt_tokens`` equals the reference's, and no other
   question's operands or sum appear in it unless they appear in its own reference.
3. **Held-out** (``--heldout K``, optional): K held-out reasoning-gym questions (the demo's
   tasks, the estimator's training questions excluded), each through the endpoint with the T2
   policy and with a fixed N = n_max, ``max_tokens`` 48, the task's extractor and grader:
   accuracy, samples, completion tokens and seconds side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from t2_agents.backends.base import Engine
from t2_agents.backends.fake import FakeEngine
from t2_agents.budget.policies import FixedPolicy
from t2_agents.graph import build_parallel_thinking_graph
from t2_agents.serve import ServeConfig, ThinkingService, load_service, serve_in_thread

QUESTION = "What is 17 * 23? Give only the final answer."


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / (1 << 20)


@contextmanager
def _peak_rss() -> Iterator[dict[str, float]]:
    out = {"peak_mb": _rss_mb()}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.2):
            out["peak_mb"] = max(out["peak_mb"], _rss_mb())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["peak_mb"] = max(out["peak_mb"], _rss_mb())


# ---------------------------------------------------------------------------- overhead
def overhead(
    engine: Engine, *, ns: list[int], repeats: int, max_tokens: int, model: str
) -> list[dict[str, Any]]:
    """Graph in process vs the endpoint, same engine, interleaved; one row per N."""
    service = ThinkingService(engine, config=ServeConfig(port=0, max_n=max(ns), n_max=max(ns)))
    graph = build_parallel_thinking_graph(engine=engine, n_max=max(ns))
    rows: dict[int, dict[str, list[float]]] = {n: {"graph": [], "endpoint": []} for n in ns}
    same = {n: True for n in ns}
    with serve_in_thread(service) as base_url, httpx.Client(base_url=base_url, timeout=600) as web:
        for repeat in range(repeats + 1):  # repeat 0 warms up both paths
            for n in ns:
                seed = 1000 + repeat
                overrides = {"policy": FixedPolicy(n), "n_min": n, "n_max": n, "seed": seed,
                             "max_tokens": max_tokens, "temperature": 0.7}  # fmt: skip
                clock = time.perf_counter()
                state = graph.invoke({"question": QUESTION}, {"configurable": {"t2": overrides}})
                graph_seconds = time.perf_counter() - clock
                clock = time.perf_counter()
                reply = web.post(
                    "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": QUESTION}],
                          "max_tokens": max_tokens, "seed": seed, "temperature": 0.7,
                          "t2": {"n": n, "paths": True}},
                )  # fmt: skip
                endpoint_seconds = time.perf_counter() - clock
                reply.raise_for_status()
                texts = [p["text"] for p in reply.json()["t2"]["paths"]]
                same[n] &= texts == [b["text"] for b in state["branches"]]
                if repeat:
                    rows[n]["graph"].append(graph_seconds)
                    rows[n]["endpoint"].append(endpoint_seconds)
    out = []
    for n in ns:
        g, e = _median(rows[n]["graph"]), _median(rows[n]["endpoint"])
        out.append(
            {"n": n, "graph_s": g, "endpoint_s": e, "ratio": e / g, "extra_ms": (e - g) * 1000,
             "graph_runs_s": rows[n]["graph"], "endpoint_runs_s": rows[n]["endpoint"],
             "same_paths": same[n]}
        )  # fmt: skip
    return out


# ------------------------------------------------------------------------------- load
def _questions(count: int, seed: int) -> list[tuple[str, set[str]]]:
    rng = random.Random(seed)
    used: set[int] = set()
    out = []
    while len(out) < count:
        a, b = rng.randint(100, 9999), rng.randint(100, 9999)
        if {a, b, a + b} & used or len({a, b, a + b}) < 3:
            continue
        used |= {a, b, a + b}
        out.append(
            (f"What is {a} + {b}? Give only the final answer.", {str(a), str(b), str(a + b)})
        )
    return out


async def _ask(
    client: httpx.AsyncClient, model: str, question: str, max_tokens: int
) -> tuple[dict[str, Any], float]:
    clock = time.perf_counter()
    reply = await client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": question}],
              "max_tokens": max_tokens, "seed": 7, "temperature": 0.7, "t2": {"n_max": 8}},
    )  # fmt: skip
    seconds = time.perf_counter() - clock
    reply.raise_for_status()
    return reply.json(), seconds


async def _round(base_url: str, model: str, questions: list[str], max_tokens: int) -> Any:
    limits = httpx.Limits(max_connections=len(questions) + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=3600, limits=limits) as client:
        return await asyncio.gather(*(_ask(client, model, q, max_tokens) for q in questions))


def load(service: ThinkingService, *, clients: int, rounds: int, max_tokens: int) -> dict[str, Any]:
    """``clients`` concurrent requests per round, then each alone; cross-talk and memory."""
    asked = _questions(clients, seed=11)
    questions = [q for q, _ in asked]
    model = service.model_name
    results: list[dict[str, Any]] = []
    with serve_in_thread(service) as base_url:
        answers: list[list[dict[str, Any]]] = []
        for _ in range(rounds):
            with _peak_rss() as memory:
                clock = time.perf_counter()
                replies = asyncio.run(_round(base_url, model, questions, max_tokens))
                wall = time.perf_counter() - clock
            latencies = [seconds for _, seconds in replies]
            tokens = sum(body["usage"]["completion_tokens"] for body, _ in replies)
            answers.append([body for body, _ in replies])
            results.append(
                {"wall_s": wall, "requests_per_s": clients / wall, "completion_tokens": tokens,
                 "completion_tokens_per_s": tokens / wall,
                 "samples": sum(body["t2"]["n"] for body, _ in replies),
                 "latency_p50_s": _percentile(latencies, 0.5),
                 "latency_p95_s": _percentile(latencies, 0.95),
                 "peak_rss_mb": memory["peak_mb"], "rss_after_mb": _rss_mb()}
            )  # fmt: skip
        clock = time.perf_counter()
        reference = [asyncio.run(_round(base_url, model, [q], max_tokens))[0][0] for q in questions]
        alone = time.perf_counter() - clock
    checks = []
    for round_answers in answers:
        same_text = same_prompt = foreign = 0
        for i, body in enumerate(round_answers):
            text = body["choices"][0]["message"]["content"] or ""
            ref = reference[i]["choices"][0]["message"]["content"] or ""
            same_text += text == ref
            same_prompt += body["usage"]["prompt_tokens"] == reference[i]["usage"]["prompt_tokens"]
            others = set().union(*(numbers for j, (_, numbers) in enumerate(asked) if j != i))
            foreign += any(x in text and x not in ref for x in others)
        checks.append({"answers_equal_reference": same_text, "prompt_tokens_equal": same_prompt,
                       "answers_with_foreign_numbers": foreign, "requests": clients})  # fmt: skip
    return {"rounds": results, "checks": checks, "alone_total_s": alone,
            "policy_n": sorted({body["t2"]["n"] for body in answers[0]})}  # fmt: skip


# ---------------------------------------------------------------------------- held-out
def heldout(service: ThinkingService, *, questions: int, max_tokens: int) -> dict[str, Any]:
    """T2 vs a fixed N = n_max on held-out questions, one request at a time, interleaved."""
    from t2_agents.evaluate.questions import heldout_questions

    metadata = getattr(getattr(service.policy, "estimator", None), "metadata", None) or {}
    keys = (metadata.get("training_data") or {}).get("question_keys") or []
    asked = heldout_questions(questions, exclude=frozenset(str(k) for k in keys))
    n_max = service.config.n_max
    rows: dict[str, list[dict[str, Any]]] = {"t2": [], f"fixed-{n_max}": []}
    with serve_in_thread(service) as base_url, httpx.Client(base_url=base_url, timeout=600) as web:
        for question in asked:
            for name, options in (("t2", {}), (f"fixed-{n_max}", {"n": n_max})):
                clock = time.perf_counter()
                reply = web.post(
                    "/v1/chat/completions",
                    json={"model": service.model_name, "max_tokens": max_tokens, "seed": 0,
                          "messages": [{"role": "user", "content": question.prompt}],
                          "t2": {"task": question.task, **options}},
                )  # fmt: skip
                reply.raise_for_status()
                body = reply.json()
                rows[name].append(
                    {"id": question.id, "n": body["t2"]["n"], "answer": body["t2"]["answer"],
                     "correct": question.is_correct(body["t2"]["answer"]),
                     "completion_tokens": body["usage"]["completion_tokens"],
                     "seconds": time.perf_counter() - clock}
                )  # fmt: skip
    summary = {
        name: {"accuracy": sum(r["correct"] for r in runs) / len(runs),
               "samples": sum(r["n"] for r in runs),
               "completion_tokens": sum(r["completion_tokens"] for r in runs),
               "seconds": sum(r["seconds"] for r in runs)}
        for name, runs in rows.items()
    }  # fmt: skip
    return {"questions": len(asked), "excluded_training_keys": len(keys), "summary": summary,
            "rows": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ns", default="1,8")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--heldout", type=int, default=0, help="held-out questions (0: skip)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    ns = [int(x) for x in args.ns.split(",")]
    from t2_agents.backends.transformers import TransformersEngine

    started = time.time()
    result: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()[0],
                    "other_jobs": _other_jobs()},
        "settings": {"repeats": args.repeats, "ns": ns, "max_tokens": args.max_tokens,
                     "clients": args.clients, "rounds": args.rounds, "temperature": 0.7},
    }  # fmt: skip
    fake = FakeEngine(answers={"42": 1.0})
    result["overhead_fake_engine"] = overhead(
        fake, ns=ns, repeats=100, max_tokens=args.max_tokens, model=fake.identity
    )
    print(json.dumps(result["overhead_fake_engine"], indent=1), file=sys.stderr)
    engine = TransformersEngine()
    result["overhead_transformers"] = overhead(
        engine, ns=ns, repeats=args.repeats, max_tokens=args.max_tokens, model=engine.identity
    )
    print(json.dumps(result["overhead_transformers"], indent=1), file=sys.stderr)
    if not args.skip_load:
        service = load_service(engine, config=ServeConfig(port=0))
        result["load_transformers"] = load(
            service, clients=args.clients, rounds=args.rounds, max_tokens=args.max_tokens
        )
        print(json.dumps(result["load_transformers"], indent=1), file=sys.stderr)
    if args.heldout:
        service = load_service(engine, config=ServeConfig(port=0))
        result["heldout_transformers"] = heldout(service, questions=args.heldout, max_tokens=48)
        print(json.dumps(result["heldout_transformers"]["summary"], indent=1), file=sys.stderr)
    result["machine"]["load_average_end"] = os.getloadavg()[0]
    result["seconds"] = time.time() - started
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


def _other_jobs() -> list[str]:
    try:
        found = subprocess.run(["pgrep", "-af", "t2 collect"], capture_output=True, text=True)
    except OSError:
        return []
    return [line.split(" ", 1)[1][:80] for line in found.stdout.splitlines() if "pgrep" not in line]


if __name__ == "__main__":
    main()
