"""A model directory: everything a detector needs, in formats that load without pickle.

    config.json            head config (format + version checked at load)
    model.safetensors      head weights
    detector.json          threshold, model version, plugin settings used in training
    templates.json         Drain clusters (plain JSON)
    embeddings.safetensors + embedding_texts.json   encoder cache by template text
    metrics.json           validation figures of the training run
    baseline.json          the in-run baseline (logistic regression on template counts)
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

DETECTOR_FILE = "detector.json"
REQUIRED_FILES = ("config.json", "model.safetensors", DETECTOR_FILE, "templates.json")


class ModelDirError(RuntimeError):
    """A model directory that is missing, incomplete or from an incompatible version."""


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"model directory {path} does not exist")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelDirError(f"{path} is not a logllm-plugin model directory (missing {', '.join(missing)})")
    return path


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{path} is not valid JSON: {exc}") from None


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def weights_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
