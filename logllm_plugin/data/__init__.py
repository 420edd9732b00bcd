"""Data tooling behind `logllm-plugin data ...`: generate, convert, split, check, llm-pairs.

Every command reads through `logllm_plugin.readers` and writes our sequence JSONL (`io.py`), so a
file any of them writes is a file `train small`, `eval` and `detect` read.
"""
