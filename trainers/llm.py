"""Fine-tune a Qwen chat model (LoRA / QLoRA / Unsloth) to explain anomalous log sequences.

A plain torch loop (AdamW, one seed for everything) over the pairs of trainers/llm_data.py.
Writes the adapter (adapter_config.json + adapter_model.safetensors), the tokenizer and
metrics.json (loss history; on the held-out pairs: teacher-forced loss, JSON-validity rate and
category accuracy of greedy answers); with `merge`, full merged weights in out/merged.
"""
from __future__ import annotations

import json
import logging
import math
import random
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from logllm_plugin.analyzers.qwen import BASE_FINGERPRINT_FILE, base_fingerprint, check_chat_model_dir
from logllm_plugin.analyzers.prompt import (DEFAULT_MAX_LINE_CHARS, DEFAULT_MAX_LINES, DEFAULT_MAX_NEW_TOKENS, InvalidAnswer,
                                            parse_answer)
from logllm_plugin.artifacts import require_safetensors_weights
from logllm_plugin.records import LogSequence
from trainers.llm_data import IGNORE_INDEX, LLMTrainingError, SupervisedPair, build_pairs, collate, tokenize_pairs

logger = logging.getLogger(__name__)

METHODS = ("lora", "qlora", "unsloth")
# Every linear projection of a Qwen2 block: attention and MLP (the QLoRA paper's "all linear").
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LLMTrainConfig:
    method: str = "lora"
    epochs: int = 1
    max_steps: Optional[int] = None  # when set, overrides epochs (cycling through the data)
    learning_rate: float = 2e-4
    batch_size: int = 2  # with gradient checkpointing: ~3 GB peak on SmolLM2 (4: ~3.7 GB, twice the step time)
    seed: int = 0
    valid_fraction: float = 0.1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # LoRA on the top N transformer blocks only (None: all). The blocks below then run without
    # autograd: no stored activations, no backward through them. For SmolLM2 (30 blocks) the top
    # 10 keep the answer quality on the held-out pairs at ~55% of the step time of all 30.
    lora_layers: Optional[int] = 10
    max_length: int = 1024  # tokens of prompt + answer; longer pairs are skipped
    max_lines: int = DEFAULT_MAX_LINES
    max_line_chars: int = DEFAULT_MAX_LINE_CHARS
    # Each anomaly among normal lines of the data, up to this many lines in all (0: alone): the
    # service explains a detector's window (20 lines in `bench analyze`), not a bare incident.
    context_lines: int = 20
    eval_max_items: int = 32  # held-out pairs whose greedy answers are checked
    eval_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    eval_base: bool = True  # also answer the held-out prompts with the base model (adapter off)
    # Recompute each block's activations in the backward pass instead of keeping them: memory of
    # one block instead of all 30 (SmolLM2), for about a third more compute.
    gradient_checkpointing: bool = True
    # CPU: matmuls in bfloat16 (autocast) where the CPU has bf16 instructions; weights stay float32.
    cpu_bf16: bool = True
    merge: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise LLMTrainingError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise LLMTrainingError("epochs and max_steps must be at least 1")
        if not self.learning_rate > 0 or self.batch_size < 1 or self.lora_r < 1 or self.lora_alpha < 1:
            raise LLMTrainingError("learning_rate, batch_size, lora_r and lora_alpha must be positive")
        if not 0.0 <= self.valid_fraction < 1.0:
            raise LLMTrainingError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.lora_layers is not None and self.lora_layers < 1:
            raise LLMTrainingError("lora_layers must be at least 1 (or None for every block)")
        if self.context_lines < 0:
            raise LLMTrainingError(f"context_lines must be 0 (off) or more, got {self.context_lines}")
        if not 0.0 <= self.lora_dropout < 1.0 or self.max_length < 16 or self.eval_max_items < 0:
            raise LLMTrainingError("lora_dropout must be in [0, 1), max_length >= 16, eval_max_items >= 0")
        if self.eval_max_new_tokens < 1:
            raise LLMTrainingError("eval_max_new_tokens must be at least 1")


@dataclass
class LLMTrainOutcome:
    out_dir: Path
    metrics: dict[str, Any]


def check_method_support(method: str) -> None:
    """Raise LLMTrainingError naming what is missing for `method` on this machine."""
    import importlib
    import importlib.util

    import torch

    if method == "lora":
        return
    if not torch.cuda.is_available():
        raise LLMTrainingError(f"--method {method} needs a CUDA GPU and none is available here; "
                               "use --method lora (runs on CPU)")
    if method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise LLMTrainingError("--method qlora needs the bitsandbytes package: pip install 'logllm-plugin[gpu]'")
    if method == "unsloth":
        try:
            importlib.import_module("unsloth")
        except Exception as exc:  # unsloth raises more than ImportError when its GPU stack is off
            raise LLMTrainingError(f"--method unsloth needs the unsloth package ({exc}); "
                                   "pip install 'logllm-plugin[gpu]' or use --method qlora") from None


def split_pairs(pairs: list[SupervisedPair], valid_fraction: float, seed: int):
    """(train, valid): a seeded shuffle, at least one pair each side when there are two or more."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_valid = 0 if valid_fraction == 0 or len(pairs) < 2 else max(1, round(len(pairs) * valid_fraction))
    n_valid = min(n_valid, len(pairs) - 1)
    return [pairs[i] for i in order[n_valid:]], [pairs[i] for i in order[:n_valid]]


def _lora_config(config: LLMTrainConfig, num_layers: Optional[int] = None):
    from peft import LoraConfig

    layers = None
    if config.lora_layers is not None and num_layers and config.lora_layers < num_layers:
        layers = list(range(num_layers - config.lora_layers, num_layers))
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(LORA_TARGETS), bias="none", task_type="CAUSAL_LM",
                      layers_to_transform=layers)


def load_trainable(base_dir: Path, config: LLMTrainConfig):
    """(peft model, tokenizer, device) ready to train with `config.method`."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # config.json, safetensors weights (no pickled .bin, no hub), a tokenizer with a chat template
    check_chat_model_dir(base_dir, "base model", LLMTrainingError)
    check_method_support(config.method)
    if config.method == "unsloth":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=str(base_dir), max_seq_length=config.max_length, load_in_4bit=True, local_files_only=True)
        model = FastLanguageModel.get_peft_model(
            model, r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, bias="none",
            target_modules=list(LORA_TARGETS), use_gradient_checkpointing="unsloth", random_state=config.seed)
        return model, tokenizer, "cuda"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    kwargs: dict[str, Any] = {"local_files_only": True, "use_safetensors": True}
    if device == "cuda":
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        kwargs["dtype"] = torch.float32
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"])
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    else:
        model = model.to(device)
        if config.gradient_checkpointing:  # activations, not weights, dominate memory for long prompts
            # Non-reentrant checkpointing needs no grad on the embeddings (enable_input_require_grads),
            # which would pull the autograd graph through the frozen blocks below the adapter.
            # transformers >= 5.24 names it activation checkpointing (the old name warns); older lack it.
            enable = getattr(model, "activation_checkpointing_enable", None)
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.disable_input_require_grads()  # see below: peft turns it on again, keeping no handle to this one
    model = get_peft_model(model, _lora_config(config, getattr(model.config, "num_hidden_layers", None)))
    if config.method == "lora" and config.gradient_checkpointing:
        # transformers 5 (checkpointing on) and peft (wrapping a checkpointed model) both turn on
        # grad for the embeddings' output: the autograd graph then ran through all 30 blocks and a
        # step took twice as long (13 against 6.5 s on 2 cores). Non-reentrant checkpointing does
        # not need it, and the blocks below the adapter then run without autograd.
        model.get_base_model().disable_input_require_grads()
    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "chat_template", None) is None:
        raise LLMTrainingError(f"the tokenizer in {base_dir} has no chat template (use an instruct/chat model)")
    return model, tokenizer, device


def answer_loss(model, inputs: dict[str, Any]):
    """Mean cross-entropy over the answer tokens, with vocabulary logits for those positions only.

    `model(**inputs).loss` projects every position (prompt and padding too) onto the whole
    vocabulary (49k for SmolLM2): batch x length x vocab floats plus their gradient, most of the
    training memory for a 135M model, all of it for positions whose loss is masked anyway. Here
    the decoder gives hidden states, and only the positions that predict an answer token go
    through the output layer.
    """
    import torch

    labels = inputs["labels"]
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = causal.get_decoder(), causal.get_output_embeddings()
    hidden = decoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logits = head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def _batches(n: int, batch_size: int, steps: int, generator) -> list[list[int]]:
    import torch

    order: list[int] = []
    while len(order) < steps * batch_size:
        order += torch.randperm(n, generator=generator).tolist()
    return [order[s * batch_size:(s + 1) * batch_size] for s in range(steps)]


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = info.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _autocast(device: str, config: LLMTrainConfig):
    """bfloat16 matmuls on a CPU with bf16 instructions (about twice the float32 rate); else nothing."""
    import contextlib

    import torch

    if device == "cpu" and config.cpu_bf16 and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _mean_loss(model, tokenized, pad_id: int, batch_size: int, device: str) -> Optional[float]:
    import torch

    if not tokenized:
        return None
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(tokenized), batch_size):
            batch = tokenized[start:start + batch_size]
            inputs = {k: v.to(device) for k, v in collate(batch, pad_id).items()}
            total += float(answer_loss(model, inputs)) * len(batch)
            count += len(batch)
    return total / count


def evaluate_answers(model, tokenizer, pairs: Sequence[SupervisedPair], *, device: str, max_new_tokens: int,
                     batch_size: int, timeout_s: float = 900.0) -> dict[str, Any]:
    """Greedy answers to held-out prompts, scored against the pairs' targets.

    json_valid_rate: answers the analyzer accepts (the rest would fall back: fallback_rate).
    category_accuracy: valid answers naming the labeled category, over all pairs.
    evidence_precision: of the line indexes valid answers cite, the share the data labels as
    incident lines (the target's evidence); None when no valid answer cites a line.
    """
    from logllm_plugin.analyzers.qwen import generate_answers

    if not pairs:
        return {"evaluated": 0, "json_valid_rate": None, "category_accuracy": None, "evidence_precision": None,
                "fallback_rate": None}
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    deadline = time.monotonic() + timeout_s
    valid = correct = cited = cited_right = 0
    started = time.monotonic()
    try:
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start:start + batch_size]
            for pair, answer in zip(batch, generate_answers(model, tokenizer, [p.messages for p in batch],
                                                            max_new_tokens=max_new_tokens, deadline=deadline,
                                                            device=device)):
                try:
                    parsed = parse_answer(answer.text, pair.n_lines)
                except InvalidAnswer:
                    continue
                valid += 1
                correct += parsed["category"] == pair.answer["category"]
                cited += len(parsed["evidence"])
                cited_right += len(set(parsed["evidence"]) & set(pair.answer["evidence"]))
    finally:
        tokenizer.padding_side = side
    return {"evaluated": len(pairs), "json_valid_rate": round(valid / len(pairs), 4),
            "category_accuracy": round(correct / len(pairs), 4),
            "evidence_precision": round(cited_right / cited, 4) if cited else None,
            "fallback_rate": round(1 - valid / len(pairs), 4),
            "seconds": round(time.monotonic() - started, 1)}


def merge_adapter(base_dir: Path, adapter_dir: Path, merged_dir: Path) -> Path:
    """Base + adapter folded into full weights (safetensors), loaded unquantized on CPU so any method merges."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    require_safetensors_weights(adapter_dir, "adapter", LLMTrainingError)  # peft would torch.load a .bin
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, use_safetensors=True, dtype="auto")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(merged_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter_dir, local_files_only=True).save_pretrained(merged_dir)
    return merged_dir


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def train_llm(sequences: Sequence[LogSequence], base_dir: Union[str, Path], out_dir: Union[str, Path],
              config: LLMTrainConfig, progress: Optional[Callable[[int, int, float], None]] = None) -> LLMTrainOutcome:
    """Fine-tune an adapter on the anomalous sequences; `progress(step, total, loss)` after each step."""
    import torch

    base, out = Path(base_dir), Path(out_dir)
    from trainers.llm_pairs import knowledge_base_suggestions

    # The knowledge base's advice (its first sentence) as the target suggestion: the tuned model
    # and the knowledge base then recommend the same first step for the same class.
    pairs = build_pairs(sequences, max_lines=config.max_lines, max_line_chars=config.max_line_chars,
                        suggestions=knowledge_base_suggestions(), context_lines=config.context_lines,
                        seed=config.seed)
    train_pairs, valid_pairs = split_pairs(pairs, config.valid_fraction, config.seed)
    torch.manual_seed(config.seed)  # LoRA init and dropout draw from it
    random.seed(config.seed)
    model, tokenizer, device = load_trainable(base, config)
    train_tok = tokenize_pairs(tokenizer, train_pairs, config.max_length)
    if not train_tok:
        raise LLMTrainingError(f"every training pair is longer than --max-length {config.max_length} tokens")
    steps = config.max_steps or config.epochs * math.ceil(len(train_tok) / config.batch_size)
    generator = torch.Generator().manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    logger.info("training %s adapter: %d train / %d valid pairs, %d steps on %s", config.method, len(train_tok),
                len(valid_pairs), steps, device)
    losses: list[float] = []
    longest_batch = 0  # padded tokens per row of the longest batch: what the step's memory follows
    model.train()
    started, cpu_started = time.monotonic(), time.process_time()
    for step, rows in enumerate(_batches(len(train_tok), config.batch_size, steps, generator), start=1):
        inputs = {k: v.to(device) for k, v in collate([train_tok[i] for i in rows], tokenizer.pad_token_id).items()}
        longest_batch = max(longest_batch, int(inputs["input_ids"].shape[1]))
        with _autocast(device, config):
            loss = model(**inputs).loss if config.method == "unsloth" else answer_loss(model, inputs)
        if not torch.isfinite(loss):
            raise LLMTrainingError(f"the loss became {float(loss)} at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        logger.info("step %d/%d loss %.4f", step, steps, losses[-1])
        if progress:
            progress(step, steps, losses[-1])
    train_seconds = time.monotonic() - started
    cpu_seconds = time.process_time() - cpu_started  # all threads: the step cost on an idle host
    training_peak_rss_mb = _peak_rss_mb()  # before the held-out answers: which phase holds the peak
    model.eval()
    if config.method == "unsloth":
        from unsloth import FastLanguageModel

        FastLanguageModel.for_inference(model)
    valid_tok = tokenize_pairs(tokenizer, valid_pairs, config.max_length)
    valid_loss = _mean_loss(model, valid_tok, tokenizer.pad_token_id, config.batch_size, device)
    held_out = valid_pairs[:config.eval_max_items]
    eval_batch = max(config.batch_size, 4)  # generation memory is small; batching is throughput
    answers = evaluate_answers(model, tokenizer, held_out, device=device,
                               max_new_tokens=config.eval_max_new_tokens, batch_size=eval_batch)
    base_answers = None
    if config.eval_base and held_out and hasattr(model, "disable_adapter"):
        with model.disable_adapter():  # the same weights without the adapter: the base model
            base_answers = evaluate_answers(model, tokenizer, held_out, device=device,
                                            max_new_tokens=config.eval_max_new_tokens, batch_size=eval_batch)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    # What the adapter needs of its base: loading it onto another architecture fails with this named.
    (out / BASE_FINGERPRINT_FILE).write_text(json.dumps(base_fingerprint(model.get_base_model().config), indent=2) + "\n")
    metrics = {
        "base_model": str(base), "method": config.method, "device": device, "config": asdict(config),
        "train_pairs": len(train_tok), "valid_pairs": len(valid_pairs), "steps": steps,
        "train_seconds": round(train_seconds, 2), "loss_history": [round(x, 6) for x in losses],
        "train_cpu_seconds": round(cpu_seconds, 1), "longest_batch_tokens": longest_batch,
        "seconds_per_step": round(train_seconds / steps, 2), "cpu_seconds_per_step": round(cpu_seconds / steps, 2),
        "valid": {"loss": valid_loss, **answers},
        # The held-out pairs answered by the base model (adapter disabled): what the adapter adds.
        "base": base_answers,
        "peak_rss_mb": _peak_rss_mb(), "training_peak_rss_mb": training_peak_rss_mb,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if config.merge:
        del model
        merged = merge_adapter(base, out, out / "merged")
        logger.info("merged weights written to %s", merged)
    return LLMTrainOutcome(out_dir=out, metrics=metrics)
