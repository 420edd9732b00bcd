"""tiny-qwen, supervised pairs, LoRA training on CPU, adapter/merge round trip, method errors."""
from __future__ import annotations

import json

import pytest

from tests.conftest import DATA, require_module

torch = require_module("torch", "torch (a core dependency)")
require_module("peft", "peft for LoRA training (pip install -e '.[dev]' or '.[llm]')")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny_dir and one_thread: tests/unit/conftest.py


@pytest.fixture(scope="module")
def seed_sequences():
    from logllm_plugin.inputs import load_input

    sequences, _ = load_input(str(DATA / "seed_train.jsonl"))
    return sequences


def test_tiny_qwen_loads_renders_chat_and_is_seeded(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from logllm_plugin.dev_tools import write_tiny_qwen

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True, use_safetensors=True)
    assert model.config.model_type == "qwen2" and model.config.vocab_size == len(tokenizer)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "disk [ERROR] full"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\ndisk [ERROR] full<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3  # special tokens stay whole
    assert tokenizer.decode(ids) == text
    logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tokenizer))
    assert not list(tiny_dir.glob("*.bin")), "weights must be safetensors only"

    same = write_tiny_qwen(tmp_path / "same", seed=0)
    other = write_tiny_qwen(tmp_path / "other", seed=1)
    weights = (tiny_dir / "model.safetensors").read_bytes()
    assert (same / "model.safetensors").read_bytes() == weights
    assert (other / "model.safetensors").read_bytes() != weights


def test_pairs_come_from_anomalies_and_only_answer_tokens_carry_labels(tiny_dir, seed_sequences):
    from transformers import AutoTokenizer

    from logllm_plugin.analyzers.prompt import ANSWER_PREFIX, answer_json, parse_answer
    from trainers.llm_data import IGNORE_INDEX, build_pairs, tokenize_pair

    pairs = build_pairs(seed_sequences, max_lines=6)
    assert len(pairs) == sum(s.label == 1 for s in seed_sequences)
    pair = pairs[0]
    assert pair.answer["category"] == "anomaly"  # the seed data names no category
    parse_answer(answer_json(pair.answer), pair.n_lines)  # every target passes the analyzer's check
    assert pair.answer["evidence"], "error-level lines become evidence when there are no line labels"
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    tokenized = tokenize_pair(tokenizer, pair, max_length=4096)
    labeled = [t for t in tokenized.labels if t != IGNORE_INDEX]
    n_prompt = tokenized.labels.index(labeled[0])
    assert all(t == IGNORE_INDEX for t in tokenized.labels[:n_prompt])
    assert tokenized.labels[n_prompt:] == tokenized.input_ids[n_prompt:]
    # The answer's opening (ANSWER_PREFIX) is prompt, as at serving time: the loss is on the rest.
    assert ANSWER_PREFIX + tokenizer.decode(labeled) == answer_json(pair.answer) + "<|im_end|>"
    assert tokenizer.decode(tokenized.input_ids[:n_prompt]).endswith("<|im_start|>assistant\n" + ANSWER_PREFIX)
    assert tokenize_pair(tokenizer, pair, max_length=n_prompt) is None  # too long: skipped, not truncated


def test_line_labels_are_the_evidence_when_present():
    from logllm_plugin.records import LogSequence
    from trainers.llm_data import LLMTrainingError, build_pairs

    seq = LogSequence(id="s", lines=["a ok", "b ERROR", "c ok"], label=1, category="network",
                      line_labels=[0, 0, 1])
    (pair,) = build_pairs([seq, LogSequence(id="n", lines=["x"], label=0)])
    assert pair.answer["evidence"] == [2] and pair.answer["category"] == "network"
    with pytest.raises(LLMTrainingError, match="no labeled anomalous"):
        build_pairs([LogSequence(id="n", lines=["x"], label=0)])


def test_anomalies_train_inside_windows_of_normal_lines_with_the_evidence_moved_along():
    from logllm_plugin.records import LogSequence
    from trainers.llm_data import build_pairs

    incident = ["db pool exhausted", "request 17 FAILED: timeout"]
    anomalies = [LogSequence(id=f"a{k}", lines=list(incident), label=1, category="resource_exhaustion",
                             line_labels=[1, 1]) for k in range(20)]
    normal = [LogSequence(id=f"n{k}", lines=[f"GET /orders/{k} 200", f"user u{k} logged in"], label=0)
              for k in range(30)]
    pairs = build_pairs(anomalies + normal, context_lines=12, seed=3)
    assert all(2 <= p.n_lines <= 12 for p in pairs) and any(p.n_lines > 2 for p in pairs)
    placed = set()
    for p in pairs:
        shown = p.messages[-1]["content"]
        first, second = p.answer["evidence"]
        assert second == first + 1  # the incident's two lines stay together, and stay the evidence
        assert p.n_lines == 2 or ("db pool exhausted" in shown and "GET /orders" in shown)
        placed.add(first)
    assert len(placed) > 2  # sometimes normal lines come before it, sometimes after
    assert [p.n_lines for p in build_pairs(anomalies + normal, context_lines=12, seed=3)] == [p.n_lines for p in pairs]
    assert all(p.n_lines == 2 for p in build_pairs(anomalies + normal))  # off by default in the builder


def test_lora_training_lowers_loss_and_saved_adapter_changes_outputs(tiny_dir, seed_sequences, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainers.llm import LLMTrainConfig, train_llm

    out = tmp_path / "adapter"
    config = LLMTrainConfig(max_steps=12, batch_size=2, learning_rate=1e-2, lora_r=8, seed=3, max_lines=6,
                            valid_fraction=0.1, eval_max_items=2, eval_max_new_tokens=4, merge=True)
    outcome = train_llm(seed_sequences[:120], tiny_dir, out, config)

    losses = outcome.metrics["loss_history"]
    assert len(losses) == 12
    assert sum(losses[:3]) / 3 > sum(losses[-3:]) / 3 + 0.5, losses
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["loss_history"] == losses and metrics["valid"]["evaluated"] == 2
    # Four new tokens cannot hold the answer schema's JSON object: every held-out answer is invalid,
    # and an invalid answer names no category either (evaluate_answers' counting: the next test).
    assert (metrics["valid"]["json_valid_rate"], metrics["valid"]["category_accuracy"]) == (0.0, 0.0)
    assert metrics["valid"]["loss"] > 0
    assert json.loads((out / "adapter_config.json").read_text())["target_modules"]

    probe = torch.tensor([list(range(5, 40))])
    base = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True).eval()
    with torch.no_grad():
        base_logits = base(probe).logits
        tuned = PeftModel.from_pretrained(base, str(out)).eval()
        tuned_logits = tuned(probe).logits
        merged = AutoModelForCausalLM.from_pretrained(out / "merged", local_files_only=True).eval()
        merged_logits = merged(probe).logits
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-3)
    assert torch.allclose(merged_logits, tuned_logits, atol=1e-4)
    assert not list((out / "merged").glob("*.bin"))


def test_held_out_answers_count_as_valid_only_when_they_parse_and_as_correct_only_with_the_right_category(
        monkeypatch):
    """evaluate_answers on scripted generations (a fake beside the real run above): one valid answer
    with the right category, one valid with a wrong category, one not JSON, one missing fields."""
    from logllm_plugin.analyzers import qwen
    from logllm_plugin.analyzers.prompt import answer_json
    from logllm_plugin.records import LogSequence
    from trainers.llm import evaluate_answers
    from trainers.llm_data import build_pairs

    seqs = [LogSequence(id=str(i), lines=["a ok", "b ERROR disk full", "c ok"], label=1, category="storage")
            for i in range(4)]
    pairs = build_pairs(seqs)
    right = answer_json(pairs[0].answer)
    wrong = answer_json({**pairs[0].answer, "category": "network"})
    texts = iter([right, wrong, "the disk is full", '{"category": "storage"}'])
    monkeypatch.setattr(qwen, "generate_answers", lambda model, tokenizer, conversations, **kw: [
        qwen.Generated(text=next(texts), finished=True, timed_out=False) for _ in conversations])

    class Tokenizer:
        padding_side = "right"

    tokenizer = Tokenizer()
    result = evaluate_answers(object(), tokenizer, pairs, device="cpu", max_new_tokens=8, batch_size=3)
    seconds = result.pop("seconds")
    assert seconds >= 0.0
    # the two valid answers cite the pair's own evidence; the two invalid ones fall back
    assert result == {"evaluated": 4, "json_valid_rate": 0.5, "category_accuracy": 0.25,
                      "evidence_precision": 1.0, "fallback_rate": 0.5}
    assert tokenizer.padding_side == "right"  # restored after left-padded generation


def test_config_rejects_impossible_values():
    from trainers.llm import LLMTrainConfig
    from trainers.llm_data import LLMTrainingError

    for bad in ({"method": "full"}, {"max_steps": 0}, {"valid_fraction": 1.0}, {"learning_rate": 0.0},
                {"context_lines": -1}):
        with pytest.raises(LLMTrainingError):
            LLMTrainConfig(**bad)


@pytest.mark.parametrize("method", ["qlora", "unsloth"])
def test_gpu_methods_without_cuda_give_one_clear_line(tiny_dir, tmp_path, method, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the message of a machine without CUDA, here too

    from logllm_plugin.cli import main

    result = CliRunner().invoke(main, ["train", "llm", "--base", str(tiny_dir), "--train",
                                       str(DATA / "seed_train.jsonl"), "--out", str(tmp_path / "a"),
                                       "--method", method])
    assert result.exit_code == 1
    assert f"--method {method} needs a CUDA GPU" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "a").exists()


def test_dev_tiny_qwen_command_writes_a_model(tmp_path):
    from click.testing import CliRunner

    from logllm_plugin.cli import main

    result = CliRunner().invoke(main, ["dev", "tiny-qwen", "--out", str(tmp_path / "m"), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (tmp_path / "m").iterdir()}


def test_answer_loss_equals_the_full_logits_loss_and_lora_layers_limit_the_adapter(tiny_dir, seed_sequences):
    """The memory fix changes no number: the loss over answer positions alone is the model's own loss."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainers.llm import LLMTrainConfig, _lora_config, answer_loss
    from trainers.llm_data import build_pairs, collate, tokenize_pairs

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True, use_safetensors=True)
    model = get_peft_model(base, _lora_config(LLMTrainConfig(lora_layers=1), base.config.num_hidden_layers))
    lora_blocks = {n.split(".layers.")[1].split(".")[0] for n, _ in model.named_parameters() if "lora_" in n}
    assert lora_blocks == {str(base.config.num_hidden_layers - 1)}  # the top block only
    tokenized = tokenize_pairs(tokenizer, build_pairs(seed_sequences, max_lines=6)[:3], 4096)
    inputs = collate(tokenized, tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.allclose(answer_loss(model, inputs), model(**inputs).loss, atol=1e-5)


def test_checkpointed_lora_trains_the_top_blocks_without_autograd_through_the_frozen_ones(tiny_dir, seed_sequences):
    """transformers 5 and peft both hook grad onto the embeddings' output when checkpointing is on,
    which made every frozen block part of the backward pass (twice the step time): the trainer
    takes that off, and the adapter's gradients are still there."""
    import torch

    from trainers.llm import LLMTrainConfig, answer_loss, load_trainable
    from trainers.llm_data import build_pairs, collate, tokenize_pairs

    model, tokenizer, _ = load_trainable(tiny_dir, LLMTrainConfig(lora_layers=1))
    assert model.get_base_model().is_gradient_checkpointing
    embeddings = model.get_input_embeddings()
    assert not embeddings(torch.tensor([[1, 2, 3]])).requires_grad
    model.train()
    inputs = collate(tokenize_pairs(tokenizer, build_pairs(seed_sequences, max_lines=6)[:2], 4096),
                     tokenizer.pad_token_id)
    answer_loss(model, inputs).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g is not None for g in grads.values())
    assert any(float(g.abs().sum()) > 0 for n, g in grads.items() if "lora_B" in n)  # B starts at zero, A gets none yet
