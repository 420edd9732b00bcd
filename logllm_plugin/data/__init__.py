"""Data tooling behind `logllm-plugin data ...`: generate, convert, split, check (llm-pairs builds on
the LLM trainer's pair builder and lives in trainers/llm_pairs.py).

Every command reads through `logllm_plugin.readers` and writes our sequence JSONL (`io.py`), so a
file any of them writes is a file `train small`, `eval` and `detect` read.
"""
