"""Transformers engine speed: encode latency and sample throughput, float32 vs bfloat16.

Both dtypes are measured in the same run, interleaved, so the ratio is fair on a shared machine.

    python bench/engine_speed.py --repeats 2 --out bench/results/engine_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from t2_agents.backends.base import SamplingParams
from t2_agents.backends.transformers import TransformersEngine
from t2_agents.tasks import load_task

_TASK_CONFIG = {"max_digits": 1, "max_terms": 3, "allow_parentheses": False}


def _prompts(count: int) -> list[str]:
    questions = load_task("basic_arithmetic", size=count, seed=7, config=_TASK_CONFIG)
    return [q.prompt for q in questions]


def _encode_ms(engine: TransformersEngine, prompts: list[str], repeats: int) -> float:
    layers = list(range(engine.num_layers))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for prompt in prompts:
            engine.encode([prompt], layers)
        times.append((time.perf_counter() - started) / len(prompts) * 1000)
    return statistics.median(times)


def _sample(engine: TransformersEngine, prompt: str, n: int, max_tokens: int) -> dict[str, float]:
    params = SamplingParams(temperature=0.7, max_tokens=max_tokens, seed=0)
    started = time.perf_counter()
    paths = engine.sample([prompt], n, params)[0]
    seconds = time.perf_counter() - started
    tokens = sum(p.completion_tokens for p in paths)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--ns", default="1,8,32")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    ns = [int(x) for x in args.ns.split(",")]
    engines = {d: TransformersEngine(dtype=d) for d in ("float32", "bfloat16")}
    prompts = _prompts(8)
    rows: list[dict[str, object]] = []
    for dtype, engine in engines.items():
        engine.sample(prompts[:1], 2, SamplingParams(max_tokens=4, seed=0))  # warm-up
        rows.append({"dtype": dtype, "what": "encode ms/prompt (30 layers)",
                     "value": _encode_ms(engine, prompts, args.repeats)})  # fmt: skip
    for n in ns:
        for dtype, engine in engines.items():
            runs = [
                _sample(engine, prompts[r % 8], n, args.max_tokens) for r in range(args.repeats)
            ]
            rate = statistics.median(r["tokens_per_s"] for r in runs)
            secs = statistics.median(r["seconds"] for r in runs)
            rows.append({"dtype": dtype, "what": f"sample n={n} tokens/s", "value": rate,
                         "seconds": secs})  # fmt: skip
    print("| what | float32 | bfloat16 | bf16 / fp32 |\n|---|---|---|---|")
    for what in dict.fromkeys(str(r["what"]) for r in rows):
        values = {str(r["dtype"]): float(r["value"]) for r in rows if r["what"] == what}  # type: ignore[arg-type]
        ratio = values["bfloat16"] / values["float32"]
        print(f"| {what} | {values['float32']:.1f} | {values['bfloat16']:.1f} | {ratio:.2f} |")
    result: dict[str, object] = {"rows": rows, "max_tokens": args.max_tokens}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
