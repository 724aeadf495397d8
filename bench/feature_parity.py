"""Feature parity: vLLM's last-prompt-token features vs the transformers engine's, per layer.

Encodes the same prompts (reasoning-gym questions of several tasks, different lengths) with the
vLLM engine (bf16 on CPU) and the transformers engine in float32 and bfloat16, all 30 layers,
and reports the cosine similarity and the norm ratio per layer (min and mean over prompts).

    python bench/feature_parity.py --prompts 16 --out bench/results/feature_parity.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from t2_agents.backends.transformers import TransformersEngine
from t2_agents.backends.vllm import VLLMEngine
from t2_agents.tasks import load_task

_TASKS = {
    "basic_arithmetic": {"max_digits": 1, "max_terms": 3, "allow_parentheses": False},
    "products": {},
    "lcm": {},
    "syllogism": {},
}


def _prompts(count: int) -> list[str]:
    per_task = max(1, count // len(_TASKS))
    out: list[str] = []
    for task, config in _TASKS.items():
        out += [q.prompt for q in load_task(task, size=per_task, seed=5, config=config)]
    return out[:count]


def _compare(ours: np.ndarray, theirs: np.ndarray) -> dict[str, list[float]]:
    cosine = (
        (ours * theirs).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    )
    ratio = np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)  # [P, L]
    return {
        "cosine_min": cosine.min(axis=0).round(6).tolist(),
        "cosine_mean": cosine.mean(axis=0).round(6).tolist(),
        "norm_ratio_min": ratio.min(axis=0).round(4).tolist(),
        "norm_ratio_max": ratio.max(axis=0).round(4).tolist(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    prompts = _prompts(args.prompts)
    layers = list(range(30))
    with VLLMEngine(max_model_len=2048) as engine:
        ours = engine.encode(prompts, layers)
        batch_vs_single = np.concatenate([engine.encode([p], layers) for p in prompts])
    result: dict[str, Any] = {
        "prompts": len(prompts),
        "prompt_chars": [len(p) for p in prompts],
        "vllm_batch_vs_one_by_one": _compare(ours, batch_vs_single),
    }
    for dtype in ("float32", "bfloat16"):
        theirs = TransformersEngine(dtype=dtype).encode(prompts, layers)
        result[f"vllm_bf16_vs_transformers_{dtype}"] = _compare(ours, theirs)
    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}: cosine min over layers/prompts {min(value['cosine_min']):.5f}")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
