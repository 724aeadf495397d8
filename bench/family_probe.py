"""Which agent question families suit the default model: per-family accuracy on a few questions.

For every family of :mod:`t2_agents.families`: ``--questions`` questions (templates in turn)
x ``--samples`` samples with the transformers engine (temperature 0.7, ``max_tokens`` 48, the
default instruction), graded the way collection grades them. Per family: mean per-sample
accuracy, the share of *mixed* questions (right sometimes, not always: the ones whose budget
T2 has to choose), majority@samples accuracy (ties give fractional credit, as in DESIGN.md
section 1) and the accuracy per template. One thread, so it can share the machine.

The completions go to ``--completions`` (not committed); ``--regrade`` recomputes the table
from them with the current extractors, without sampling again; a family dropped since sampling
keeps its measured row, marked ``"dropped": true``.

    python bench/family_probe.py --questions 16 --samples 8 --out bench/results/family_probe.json
    python bench/family_probe.py --regrade --out bench/results/family_probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from t2_agents.families import family_names, generate_family
from t2_agents.tasks import DEFAULT_INSTRUCTION, Question

SEED = 424242
SAMPLING = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 48, "seed": 7}


def _majority_credit(question: Question, answers: list[str | None]) -> float:
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return 0.0
    top = max(counts.values())
    tied = [a for a, c in counts.items() if c == top]
    return sum(question.is_correct(a) for a in tied) / len(tied)


def _row(name: str, qs: list[Question], texts: list[list[str]], seconds: float) -> dict[str, Any]:
    acc, majority, missing = [], [], 0
    per_template: dict[str, list[float]] = {}
    for q, paths in zip(qs, texts, strict=True):
        answers = [q.extract(text) for text in paths]
        missing += sum(a is None for a in answers)
        acc.append(sum(q.is_correct(a) for a in answers) / len(answers))
        majority.append(_majority_credit(q, answers))
        per_template.setdefault(str(q.template), []).append(acc[-1])
    return {
        "family": name,
        "questions": len(qs),
        "accuracy": round(sum(acc) / len(acc), 4),
        "mixed_share": round(sum(0 < a < 1 for a in acc) / len(acc), 4),
        "majority_accuracy": round(sum(majority) / len(majority), 4),
        "accuracy_by_template": {k: round(sum(v) / len(v), 4) for k, v in per_template.items()},
        "no_answer_share": round(missing / sum(len(p) for p in texts), 4),
        "example": {"prompt": qs[0].prompt, "gold": qs[0].gold, "completion": texts[0][0]},
        "seconds": seconds,
    }


def _sample(names: list[str], questions: int, samples: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from t2_agents.backends.base import SamplingParams
    from t2_agents.backends.transformers import TransformersEngine

    engine = TransformersEngine()
    params = SamplingParams(**SAMPLING)  # type: ignore[arg-type]
    out: dict[str, Any] = {"model": engine.identity, "families": {}}
    for name in names:
        started = time.perf_counter()
        qs = generate_family(name, size=questions, seed=SEED)
        paths = engine.sample([q.prompt for q in qs], samples, params)
        texts = [[c.text for c in ps] for ps in paths]
        seconds = round(time.perf_counter() - started, 1)
        out["families"][name] = {"prompts": [q.prompt for q in qs], "texts": texts}
        out["families"][name]["seconds"] = seconds
        print(json.dumps(_row(name, qs, texts, seconds))[:300], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--families", nargs="*", default=None, help="default: all")
    parser.add_argument("--out", type=Path, default=Path("bench/results/family_probe.json"))
    parser.add_argument("--completions", type=Path, default=Path("/tmp/family_probe_texts.json"))
    parser.add_argument("--regrade", action="store_true", help="grade saved completions")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.regrade:
        saved = json.loads(args.completions.read_text())
    else:
        saved = _sample(args.families or family_names(), args.questions, args.samples)
        saved |= {"command": "python " + " ".join(sys.argv), "questions": args.questions}
        saved |= {"samples": args.samples, "seconds": round(time.perf_counter() - started, 1)}
        args.completions.write_text(json.dumps(saved) + "\n")
    before = json.loads(args.out.read_text()) if args.regrade and args.out.exists() else {}
    old_rows = {row["family"]: row for row in before.get("rows", [])}
    rows = []
    for name, got in saved["families"].items():
        if name not in family_names():  # dropped since sampling: keep its measured row
            rows.append({**old_rows[name], "dropped": True})
            continue
        qs = generate_family(name, size=saved["questions"], seed=SEED)
        if [q.prompt for q in qs] != got["prompts"]:
            raise SystemExit(f"{name}: the family's questions changed since sampling; resample")
        rows.append(_row(name, qs, got["texts"], got["seconds"]))
    result = {
        "command": saved["command"],
        "graded_by": "python " + " ".join(sys.argv),
        "model": saved["model"],
        "engine": "transformers, torch.set_num_threads(1)",
        "seed": SEED,
        "questions": saved["questions"],
        "samples": saved["samples"],
        "sampling": SAMPLING,
        "instruction": DEFAULT_INSTRUCTION,
        "seconds": saved["seconds"],
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
