"""Shared fixtures: tiny configs on CPU, a model trained once per session on bundled data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.progress import pytest_collection_modifyitems, pytest_configure, pytest_runtest_logstart  # noqa: F401

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
