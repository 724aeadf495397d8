"""Summarise a collection plan's folders: size, accuracy, tokens, content hash and overlaps.

For every folder the plan names (its final size): distinct questions (by key), mean per-sample
accuracy, mean completion tokens, the share of completions cut at ``max_tokens``, the SHA-256 of
its batch records in order (``batches/*.jsonl``; features are re-encodable from the prompts),
and how many of its questions also appear in the
training folders (what `t2 train --drop-overlap` and `t2 eval` drop and count). Collection
times come from `t2 collect --json` (each collection's ``seconds``), not from file times: a git
checkout gives every batch file the same time.

    python bench/calibration_summary.py bench/calibration_plan.json bench/agent_plan.json \\
        --out docs/results/calibration_data.json

Folders under ``train/`` and ``agent_train/`` are training folders.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from t2_agents.calibrate.collect import load_collection, load_plan
from t2_agents.calibrate.training_set import collection_identities, record_key


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def summarise(folder: Path) -> dict[str, Any]:
    batches = sorted((folder / "batches").glob("*.jsonl"))
    records = [
        json.loads(line)
        for path in batches
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    samples = [s for r in records for s in r["samples"]]
    return {
        "questions": len(records),
        "distinct": len({record_key(r) for r in records}),
        "accuracy": sum(r["accuracy"] for r in records) / max(1, len(records)),
        "mean_tokens": sum(s["tokens"] for s in samples) / max(1, len(samples)),
        "cut_at_max_tokens": sum(s["finish"] == "length" for s in samples) / max(1, len(samples)),
        "records_sha256": _sha256(batches),
        "keys": sorted({record_key(r) for r in records}),
        "instances": sorted(set(collection_identities(load_collection(folder))[1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plans", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path("docs/results/calibration_data.json"))
    args = parser.parse_args()
    final: dict[Path, Any] = {}
    for plan in args.plans:
        for config, folder in load_plan(plan, model="?"):
            final[folder.resolve()] = config  # later entries grow a folder: keep the last
    rows: dict[str, dict[str, Any]] = {}
    for folder, config in final.items():
        split = folder.parent.name
        row = summarise(folder)
        row.update(task=config.task, task_config=config.task_config, seed=config.seed,
                   samples=config.samples, planned=config.questions)  # fmt: skip
        rows[f"{split}/{folder.name}"] = row
    training = ("train/", "agent_train/")
    train_keys = {k for name, r in rows.items() if name.startswith(training) for k in r["keys"]}
    train_instances = {
        k for name, r in rows.items() if name.startswith(training) for k in r["instances"]
    }
    for name, row in rows.items():
        keys, instances = row.pop("keys"), row.pop("instances")
        if not name.startswith(training):
            row["seen_in_training"] = sum(k in train_keys for k in keys)
            row["instances_in_training"] = sum(k in train_instances for k in instances)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"plans": [str(p) for p in args.plans], "folders": rows}
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    for name, row in rows.items():
        seen = row.get("seen_in_training", "-")
        inst = row.get("instances_in_training", "-")
        print(f"{name:32s} {row['questions']:4d} q  acc {row['accuracy']:.3f}  seen {seen}/{inst}")


if __name__ == "__main__":
    main()
