"""Write ``tests/data/rebuild/``: a tiny training set for the bit-for-bit rebuild test.

Three training folders of the calibration set (``calibration/smollm2-135m-instruct/train/``),
cut to their first 24 questions (three batches of 8), records unchanged. Their features are
not committed with the calibration set (and are 30 x 576 floats a question), so each question
gets small synthetic ones: 3 layers of width 16, standard normal noise seeded by the question
key and the layer, plus the question's accuracy on the first two coordinates (so the probes
have something to learn). ``tests/test_rebuild.py`` trains on them with ``t2 train`` and checks
the artifact's hashes.

Run from the repository root: ``python tests/data/make_rebuild_fixture.py`` (deterministic;
the output only changes if the calibration records do).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save

SOURCE = Path("calibration/smollm2-135m-instruct/train")
TARGET = Path("tests/data/rebuild/train")
TASKS = ("basic_arithmetic", "lcm", "syllogism")
BATCHES = 3
LAYERS = (0, 1, 2)
WIDTH = 16
MODEL = "synthetic-16"


def _features(record: dict[str, object]) -> np.ndarray:
    rows = []
    for layer in LAYERS:
        digest = hashlib.sha256(f"{record['key']}/{layer}".encode()).digest()
        row = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(WIDTH)
        row[:2] += 4.0 * float(record["accuracy"]) * (layer + 1)  # type: ignore[arg-type]
        rows.append(row)
    return np.asarray(rows, dtype=np.float32)  # [L, d]


def main() -> None:
    """(Re)write the fixture folders."""
    shutil.rmtree(TARGET, ignore_errors=True)
    for task in TASKS:
        config = json.loads((SOURCE / task / "config.json").read_text())
        config.update(questions=8 * BATCHES, layers=list(LAYERS), model=MODEL)
        folder = TARGET / task
        (folder / "batches").mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for index in range(BATCHES):
            name = f"{index:05d}"
            text = (SOURCE / task / "batches" / f"{name}.jsonl").read_text()
            (folder / "batches" / f"{name}.jsonl").write_text(text)
            records = [json.loads(line) for line in text.splitlines()]
            features = np.stack([_features(r) for r in records])  # [B, L, d]
            meta = {"ids": json.dumps([r["id"] for r in records]), "layers": json.dumps(LAYERS)}
            blob = save({"features": features}, metadata=meta)
            (folder / "batches" / f"{name}.safetensors").write_bytes(blob)


if __name__ == "__main__":
    main()
