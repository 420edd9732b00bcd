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
from typing import Any, Optional

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
        raise ModelDirError(f"{path} is not a logllm-plugin model directory (missing {', '.join(missing)})"
                            + _pickle_note(path))
    return path


# Weight formats that torch/transformers/peft would load with pickle: never loaded here.
PICKLE_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _pickled_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_WEIGHT_SUFFIXES) if path.is_dir() else []


def _pickle_note(path: Path) -> str:
    found = _pickled_files(path)
    return (f" (found {', '.join(found)}: pickle-format weights are never loaded; convert them to safetensors)"
            if found else "")


def require_safetensors_weights(directory: str | Path, what: str, error: Optional[type[Exception]] = None) -> Path:
    """`directory` itself when it holds *.safetensors weights; else `error` (ModelDirError) saying so.

    transformers and peft fall back to pickle-based `.bin` files (torch.load) when no safetensors
    file is there, and go to the Hugging Face hub when neither is: this check, made before any
    `from_pretrained`, rules out both.
    """
    path = Path(directory)
    if path.is_dir() and any(path.glob("*.safetensors")):
        return path
    raise (error or ModelDirError)(f"{what} directory {path} has no .safetensors weights{_pickle_note(path)}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{path} is not valid JSON: {exc}") from None


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def weights_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
