"""Fixtures shared by the LLM-path unit tests (tiny random Qwen2, one torch thread)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Two busy cores: torch's intra-op threads fighting other processes make tiny models 10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from logllm_plugin.dev_tools import write_tiny_qwen

    return write_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"), seed=0)
