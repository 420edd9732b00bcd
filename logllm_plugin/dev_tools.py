"""Developer helpers: a tiny random Qwen2 chat model that works fully offline.

`write_tiny_qwen` gives tests and local experiments a model directory with the same shape as a
real Qwen2/Qwen2.5 instruct checkout (config, safetensors weights, tokenizer with the Qwen chat
template), small enough to train and generate with on a laptop CPU in seconds. Its weights are
random, so it answers with garbage; what it exercises is the plumbing, not the quality.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Union

logger = logging.getLogger(__name__)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

# Qwen2.5's chat template without the tool-calling branches: a default system turn when the
# caller gives none, each turn framed by <|im_start|>role\n ... <|im_end|>\n.
QWEN_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

# Qwen2's split: digits one by one, letters in runs, punctuation runs with their newlines.
QWEN_PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
                          r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

_SERVICES = ("api_user", "api_order", "api_search", "api_file", "dfs.DataNode", "kernel", "sshd", "nginx")
_LEVELS = ("INFO", "WARN", "ERROR", "FATAL", "DEBUG")
_MESSAGES = (
    "Request <*> completed successfully", "connection refused: database server is down",
    "Received block blk_<*> of size <*> from /<*>", "PacketResponder <*> for block blk_<*> terminating",
    "OutOfMemoryError: Java heap space", "Timeout while waiting for upstream service",
    "No space left on device", "Failed password for invalid user <*> from <*> port <*>",
    "Cache updated successfully", "Invalid data format: expected JSON", "Resource exhausted: too many connections",
    "NullPointerException at com.example.Service.handle", "instruction cache parity error corrected",
    "Authentication failure for user <*>", "disk I/O error on device sda", "Configuration error: missing parameter",
)
_PROSE = (
    "You explain anomalous log sequences to an on-call engineer.",
    "Answer with one JSON object and nothing else.",
    "The detector flagged this sequence as anomalous with score 0.97.",
    "The service ran out of memory and restarted; check the heap size and recent deployments.",
    "Connections to the database were refused; check that the database is up and reachable.",
    "Lines 3 and 7 show the failure. Investigate the upstream dependency.",
)


def _corpus(rng: random.Random, n_lines: int = 400) -> list[str]:
    """Log-like lines, JSON answers and prompt prose: what the tokenizer will mostly see."""
    lines = list(_PROSE)
    for i in range(n_lines):
        msg = rng.choice(_MESSAGES).replace("<*>", str(rng.randint(0, 99999)))
        lines.append(f"[2025-07-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                     f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}] [{rng.choice(_SERVICES)}] "
                     f"[{rng.choice(_LEVELS)}] {msg}")
        if i % 8 == 0:
            lines.append('{"category": "%s", "summary": "%s", "suggestion": "%s", "evidence": [%d, %d]}'
                         % (rng.choice(("resource_exhaustion", "network", "anomaly", "auth")), rng.choice(_PROSE),
                            rng.choice(_PROSE), rng.randint(0, 20), rng.randint(0, 20)))
            lines.append(f"{rng.randint(0, 40)}: " + msg)
    return lines


def build_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer (any text encodes, nothing is unknown) with Qwen's special tokens.

    Trained on a fixed built-in corpus, so the same vocab_size always gives the same tokenizer.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(f"vocab_size must be at least 300 (256 bytes + special tokens + merges), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    # The same normalizer and pre-tokenizer as transformers' Qwen2Tokenizer (which AutoTokenizer
    # picks for a qwen2 config and which rebuilds them): training and loading then agree.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # The corpus seed is fixed (not the model seed): the tokenizer is part of the model "family".
    tok.train_from_iterator(_corpus(random.Random(0)), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, unk_token=None, bos_token=None,
        additional_special_tokens=[IM_START, IM_END], chat_template=QWEN_CHAT_TEMPLATE,
        padding_side="left", model_max_length=4096, clean_up_tokenization_spaces=False)


def write_tiny_qwen(out_dir: Union[str, Path], *, seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                    num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int = 128,
                    vocab_size: int = 1024, max_positions: int = 4096) -> Path:
    """Write a random Qwen2ForCausalLM + tokenizer to out_dir; the same seed gives the same weights."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must divide by num_heads ({num_heads}) and "
                         f"num_heads by num_kv_heads ({num_kv_heads})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_kv_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_positions, tie_word_embeddings=True,
        # Wider than Qwen's 0.02: with the tied embedding that small, a 64-wide model's logits stay
        # near uniform whatever the layers do, and a LoRA adapter (which cannot touch the embedding)
        # could not visibly lower the loss in a few test steps.
        initializer_range=0.2, bos_token_id=ids[ENDOFTEXT],
        eos_token_id=ids[IM_END], pad_token_id=ids[ENDOFTEXT])
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[ENDOFTEXT], eos_token_id=[ids[IM_END], ids[ENDOFTEXT]], pad_token_id=ids[ENDOFTEXT],
        do_sample=False)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("tiny Qwen2 (%d parameters, vocab %d) written to %s", n_params, len(tokenizer), out)
    return out
