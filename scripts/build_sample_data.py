#!/usr/bin/env python3
"""Copy the small data samples the repository ships from ../shared/datasets (run once, by hand).

Writes data/default/train.jsonl (training data of the embedded default model), examples/ (the
demo input) and tests/data/ (samples the test suite reads on a clone without ../shared). Every
sample keeps its source and licence notice; no GPL-3.0 data (AIT-derived folders) is copied.
Deterministic: the same ../shared gives byte-identical files.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


def jsonl(path: Path):
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def seed_json(path: Path, source: str):
    return [{"id": r["sequence_id"], "lines": r["log_entries"], "label": r["label"], "source": source}
            for r in json.loads(path.read_text(encoding="utf-8"))]


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({len(rows)} rows)")


def main() -> int:
    if not SHARED.is_dir():
        print(f"{SHARED} not found: this script copies samples from the shared datasets", file=sys.stderr)
        return 1
    rng = random.Random(20261129)
    seed_valid = seed_json(SHARED / "seed_synthetic/validation_data.json", "LBJ-mlo/LogLLM validation_data (MIT)")
    seed_test = seed_json(SHARED / "seed_synthetic/test_data.json", "LBJ-mlo/LogLLM test_data (MIT)")
    hdfs = [r for r in jsonl(SHARED / "hdfs_100k_blocks/sequences.jsonl") if r.get("split") == "train"]
    bgl2k = jsonl(SHARED / "bgl_2k/sequences_win20.jsonl")

    keep = ("id", "lines", "label", "source")
    hdfs_normal = [r for r in hdfs if r["label"] == 0]
    hdfs_anom = [r for r in hdfs if r["label"] == 1]
    default = (seed_valid[:800] + rng.sample(hdfs_normal, 700) + hdfs_anom[:120] + bgl2k)
    default = [{k: r[k] for k in keep} for r in default]
    rng.shuffle(default)  # the trainer validates on the last part: mix sources through the file
    write_jsonl(ROOT / "data/default/train.jsonl", default)

    write_jsonl(ROOT / "examples/requests.jsonl", [{k: r[k] for k in keep} for r in seed_test[:40]])
    write_jsonl(ROOT / "tests/data/seed_train.jsonl", [{k: r[k] for k in keep} for r in seed_valid[800:1100]])
    write_jsonl(ROOT / "tests/data/seed_test.jsonl", [{k: r[k] for k in keep} for r in seed_test[40:240]])
    raw = (SHARED / "hdfs_2k_raw/raw/HDFS__HDFS_2k.log").read_bytes().splitlines()[:400]
    (ROOT / "tests/data/hdfs_400.log").write_bytes(b"\n".join(raw) + b"\n")
    print("wrote tests/data/hdfs_400.log (400 lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
