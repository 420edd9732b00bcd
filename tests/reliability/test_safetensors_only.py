"""Model loading uses local safetensors only: no pickle, no remote code, no model hub.

A scan of the library source (ast) enforces the rules, a self-test proves the scan catches what it
should, and directories holding only pickled weights (.bin) are refused with a clear error before
anything could unpickle them (each booby-trapped pickle would leave a marker file if loaded).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.reliability

SOURCE_DIRS = ("logllm_plugin", "collectors", "trainers")
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}
# Calls that refuse a directory without safetensors weights before anything loads (the second
# one, analyzers/qwen.py, calls the first after checking config.json and the chat template).
GUARDS = ("require_safetensors_weights", "check_chat_model_dir")
NON_WEIGHT_LOADERS = ("Tokenizer", "Config", "Processor", "FeatureExtractor", "GenerationConfig")


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loading(source: str, filename: str = "<source>") -> list[str]:
    """Every way `source` could load pickled or remote code; empty when it is safe by these rules:
    no pickle-family imports, no torch.load/torch.save/np.load(allow_pickle)/yaml.load, never
    trust_remote_code other than False, never safe_serialization=False, and every from_pretrained
    either local_files_only=True (+ use_safetensors=True for weights) or preceded in the same
    function by require_safetensors_weights or check_chat_model_dir (which rule out .bin files and the hub)."""
    tree = ast.parse(source, filename)
    problems = []
    guarded_functions = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(isinstance(n, ast.Call) and _dotted(n.func).endswith(GUARDS) for n in ast.walk(fn)):
                guarded_functions.update(id(n) for n in ast.walk(fn))
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            problems += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            problems.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name in ("load", "save") for a in node.names):
            problems.append(f"{where}: from torch import load/save")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in ("torch.load", "torch.save", "torch.jit.load", "yaml.load", "yaml.unsafe_load",
                    "pandas.read_pickle", "pd.read_pickle"):
            problems.append(f"{where}: {name}()")
        if name in ("np.load", "numpy.load") and _is_true(_keyword(node, "allow_pickle")):
            problems.append(f"{where}: {name}(allow_pickle=True)")
        remote = _keyword(node, "trust_remote_code")
        if remote is not None and not (isinstance(remote, ast.Constant) and remote.value is False):
            problems.append(f"{where}: trust_remote_code={ast.unparse(remote)}")
        serialization = _keyword(node, "safe_serialization")
        if serialization is not None and not _is_true(serialization):
            problems.append(f"{where}: safe_serialization={ast.unparse(serialization)}")
        if name.endswith(".from_pretrained") and id(node) not in guarded_functions:
            receiver = name.rsplit(".", 1)[0]
            if not _is_true(_keyword(node, "local_files_only")):
                problems.append(f"{where}: {name}() without local_files_only=True")
            if not any(k in receiver for k in NON_WEIGHT_LOADERS) and not _is_true(_keyword(node, "use_safetensors")):
                problems.append(f"{where}: {name}() without use_safetensors=True")
    return problems


def test_the_scanner_flags_every_unsafe_loading_pattern():
    """Promise (about the checker itself): each forbidden pattern is reported, the safe forms are not."""
    unsafe = {
        "import pickle": "import pickle",
        "from joblib import load": "from joblib",
        "import torch\ntorch.load('w.bin')": "torch.load()",
        "from torch import load": "from torch import load",
        "import yaml\nyaml.load(s)": "yaml.load()",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)": "allow_pickle=True",
        "AutoModel.from_pretrained(p, local_files_only=True, use_safetensors=True, trust_remote_code=True)":
            "trust_remote_code=True",
        "AutoModel.from_pretrained(p, use_safetensors=True)": "without local_files_only=True",
        "AutoModel.from_pretrained(p, local_files_only=True)": "without use_safetensors=True",
        "PeftModel.from_pretrained(m, p)": "without local_files_only=True",
        "m.save_pretrained(p, safe_serialization=False)": "safe_serialization=False",
    }
    for source, expected in unsafe.items():
        found = unsafe_loading(source)
        assert any(expected in p for p in found), (source, found)
    safe = ("AutoTokenizer.from_pretrained(p, local_files_only=True)\n"
            "AutoModel.from_pretrained(p, local_files_only=True, use_safetensors=True, trust_remote_code=False)\n"
            "import yaml\nyaml.safe_load(s)\n"
            "def f(p):\n    require_safetensors_weights(p, 'adapter')\n    return PeftModel.from_pretrained(m, p)\n")
    assert unsafe_loading(safe) == []


def test_library_source_loads_models_from_local_safetensors_only():
    """Promise: nothing in logllm_plugin/, collectors/ or trainers/ can load pickled weights or remote
    code, or reach a model hub (rules in `unsafe_loading`)."""
    files = [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 30  # the scan really ran over the tree
    problems = [p for f in files for p in unsafe_loading(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert problems == []


# A pickle that writes a marker file when unpickled (protocol 0, written by hand: no pickle import).
def _booby_trapped_pickle(marker: Path) -> bytes:
    code = f"open({str(marker)!r}, 'w').write('unpickled')"
    return b"cbuiltins\nexec\n(V" + code.encode() + b"\ntR."


def _only_pickled(directory: Path, weights: str, *configs: str) -> Path:
    directory.mkdir(parents=True)
    for name in configs:
        (directory / name).write_text("{}")
    (directory / weights).write_bytes(_booby_trapped_pickle(directory.parent / "UNPICKLED"))
    return directory


def test_a_detector_directory_with_only_pickled_weights_is_refused_clearly(tmp_path):
    """Promise: a model directory holding pytorch_model.bin instead of model.safetensors is refused
    with a message naming the file and why, and the pickle is never opened."""
    from logllm_plugin.artifacts import ModelDirError
    from logllm_plugin.detector import Detector

    model = _only_pickled(tmp_path / "model", "pytorch_model.bin", "config.json", "detector.json", "templates.json")
    with pytest.raises(ModelDirError, match=r"missing model.safetensors.*pytorch_model.bin: pickle-format weights"):
        Detector.load(model, device="cpu")
    assert not (tmp_path / "UNPICKLED").exists()


def test_an_encoder_directory_with_only_pickled_weights_is_refused_clearly(tmp_path):
    """Promise: an encoder directory with only a .bin is refused (EncoderUnavailable) before
    transformers could fall back to torch.load."""
    from logllm_plugin.config import EncoderConfig
    from logllm_plugin.encoder import EncoderUnavailable, LineEncoder

    encoder_dir = _only_pickled(tmp_path / "encoder", "pytorch_model.bin", "config.json")
    with pytest.raises(EncoderUnavailable, match=r"no \.safetensors weights.*pytorch_model.bin"):
        LineEncoder(EncoderConfig(model_path=str(encoder_dir), device="cpu")).encode(["a template"])
    assert not (tmp_path / "UNPICKLED").exists()


@pytest.mark.parametrize("which", ["model", "adapter"])
def test_an_llm_or_adapter_directory_with_only_pickled_weights_is_refused_clearly(tmp_path, which):
    """Promise: the Qwen analyzer refuses a base model or a LoRA adapter stored as pickled .bin
    (peft would torch.load adapter_model.bin), with a message naming the file, before loading."""
    from logllm_plugin.analyzers.qwen import QwenUnavailable, load_chat_model

    base = tmp_path / "base"
    if which == "model":
        _only_pickled(base, "pytorch_model.bin", "config.json")
        adapter = None
    else:
        base.mkdir()
        (base / "config.json").write_text("{}")
        (base / "model.safetensors").write_bytes(b"")  # never read: the adapter check comes first
        adapter = _only_pickled(tmp_path / "adapter", "adapter_model.bin", "adapter_config.json")
    with pytest.raises(QwenUnavailable, match=rf"{which} directory .* no \.safetensors weights.*\.bin: pickle"):
        load_chat_model(base, adapter_dir=adapter, device="cpu")
    assert not (tmp_path / "UNPICKLED").exists()
