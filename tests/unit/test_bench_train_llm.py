"""`bench train-llm`: the trainer's own first steps, measured; the longest batch is the one it drew."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny_dir and one_thread: tests/unit/conftest.py


def test_bench_train_llm_measures_the_trainers_first_steps_and_their_longest_batch(tiny_dir, tmp_path):
    import torch
    from click.testing import CliRunner
    from transformers import AutoTokenizer

    from logllm_plugin.cli import main
    from logllm_plugin.data.generate import GenerateOptions, generate
    from logllm_plugin.readers import read_sequence_file
    from trainers.llm import LLMTrainConfig, _batches, split_pairs
    from trainers.llm_data import build_pairs, tokenize_pairs
    from trainers.llm_pairs import knowledge_base_suggestions

    path = tmp_path / "gen.jsonl"
    rows = generate(GenerateOptions(n=60, anomaly_rate=0.5, silent_rate=0.0, seed=2))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(main, ["bench", "train-llm", "--base", str(tiny_dir), "--train", str(path),
                                       "--steps", "3", "--context-lines", "8", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["steps"] == 3 and report["context_lines"] == 8 and report["threads"] == 1
    assert report["seconds_per_step"] > 0 and report["cpu_seconds_per_step"] > 0
    assert report["meets_peak_rss_goal"] == (report["training_peak_rss_mb"] <= report["goals"]["peak_rss_mb"])

    # The same pairs, split and seeded draw as the trainer: the longest of its 3 batches, in tokens.
    config = LLMTrainConfig(max_steps=3, context_lines=8)
    pairs = build_pairs(list(read_sequence_file(path)), max_lines=config.max_lines,
                        max_line_chars=config.max_line_chars, suggestions=knowledge_base_suggestions(),
                        context_lines=8, seed=config.seed)
    train_pairs, _ = split_pairs(pairs, config.valid_fraction, config.seed)
    tokenized = tokenize_pairs(AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True), train_pairs, config.max_length)
    batches = _batches(len(tokenized), config.batch_size, 3, torch.Generator().manual_seed(config.seed))
    assert report["train_pairs"] == len(tokenized)
    assert report["longest_batch_tokens"] == max(len(tokenized[i].input_ids) for b in batches for i in b)
