"""Copy collection folders without completion texts or features (a calibration set for git).

A collection of thousands of questions x 32 samples is mostly completion text (not used by the
curves, the labels or the replay) and features (``[Q, 30, 576]`` float32, re-encodable from the
prompts in minutes). This copies each finished batch's records with the texts dropped and
``keep_texts`` false in ``config.json``; ``t2 collect`` with the same plan (``keep_texts``
false) then resumes the copy: it encodes the missing features without sampling again, and
samples only the batches still missing.

    python bench/compact_collections.py runs/cal calibration/smollm2-135m-instruct
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def compact(source: Path, target: Path) -> int:
    """Copy one collection folder; returns the number of questions copied."""
    config = json.loads((source / "config.json").read_text())
    config["keep_texts"] = False
    (target / "batches").mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    copied = 0
    for path in sorted((source / "batches").glob("*.jsonl")):
        if not path.stem.isdigit():
            continue
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            record["samples"] = [
                {k: v for k, v in s.items() if k != "text"} for s in record["samples"]
            ]
            lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        out = target / "batches" / path.name
        out.write_text("".join(lines), encoding="utf-8")
        stat = path.stat()
        os.utime(out, (stat.st_atime, stat.st_mtime))  # keeps the collection's timeline
        copied += len(lines)
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="Root holding SPLIT/TASK collection folders.")
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    for folder in sorted(p.parent for p in args.source.glob("*/*/config.json")):
        rel = folder.relative_to(args.source)
        print(f"{rel}: {compact(folder, args.target / rel)} questions")


if __name__ == "__main__":
    main()
