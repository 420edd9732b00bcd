"""Benchmarks behind `logllm-plugin bench`: JSON results, baselines measured in the same run."""
