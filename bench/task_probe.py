"""Which reasoning-gym task settings suit the default model: question space and accuracy.

For each candidate setting: how many distinct questions (by normalised text) 2,000 items hold,
and the default model's per-sample accuracy on a few questions (vLLM engine, temperature 0.7,
``max_tokens`` 48, "Give only the final answer."), with how many questions are *mixed* (right
sometimes, not always) — the questions whose budget T2 has to choose.

    python bench/task_probe.py --questions 12 --samples 8 --out bench/results/task_probe.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from t2_agents.backends.base import SamplingParams
from t2_agents.tasks import load_task, question_key

# As measured (bench/results/task_probe.json). basic_arithmetic with "/" turned out to have wrong
# gold answers at these settings ("Calculate 4 / 1." -> "2"), so the calibration plan drops "/".
CANDIDATES: list[tuple[str, dict[str, object]]] = [
    ("basic_arithmetic", {"max_digits": 1, "max_terms": 3, "allow_parentheses": False}),
    ("products", {"max_digits": 2}),
    ("lcm", {"max_value": 30}),
    ("gcd", {"max_value": 60}),
    ("chain_sum", {"max_digits": 2, "max_terms": 3}),
    ("syllogism", {}),
    ("aiw", {}),
    ("leg_counting", {"min_animals": 1, "max_animals": 2}),
    ("letter_counting", {}),
    ("number_format", {}),
    ("gsm_symbolic", {}),
    ("ransom_note", {}),
    ("isomorphic_strings", {}),
    ("simple_geometry", {}),
    ("word_sequence_reversal", {}),
    ("decimal_chain_sum", {"max_decimal_places": 1, "max_terms": 3, "max_digits": 2}),
    ("number_sequence", {}),
]


def _space(name: str, config: dict[str, object]) -> int:
    import reasoning_gym

    data = reasoning_gym.create_dataset(name, size=2000, seed=1, **config)
    return len({question_key(str(data[i]["question"])) for i in range(2000)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench/results/task_probe.json"))
    args = parser.parse_args()
    from t2_agents.backends.vllm import VLLMEngine

    rows = []
    with VLLMEngine(kv_cache_gib=4.0) as engine:
        for name, config in CANDIDATES:
            started = time.perf_counter()
            qs = load_task(name, size=args.questions, seed=424242, config=config)
            params = SamplingParams(temperature=0.7, max_tokens=48, seed=7)
            paths = engine.sample([q.prompt for q in qs], args.samples, params)
            acc = [
                sum(q.is_correct(q.extract(c.text)) for c in ps) / len(ps)
                for q, ps in zip(qs, paths, strict=True)
            ]
            row = {
                "task": name,
                "config": config,
                "distinct_in_2000": _space(name, config),
                "accuracy": sum(acc) / len(acc),
                "mixed": sum(0 < a < 1 for a in acc),
                "questions": len(acc),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    args.out.write_text(json.dumps({"samples": args.samples, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
