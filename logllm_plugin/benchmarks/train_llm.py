"""`logllm-plugin bench train-llm`: what one `train llm` step costs at the defaults — seconds, CPU, memory.

Runs the real trainer (trainers/llm.py, the command's defaults unless overridden) for a few steps
on the given labeled data, into a temporary directory, without the held-out answers (they are
generation, measured by `bench analyze`). The batches are the trainer's own seeded draw, so the
figures are those of the first `steps` steps of `train llm` with the same seed. Reported: wall and
CPU seconds per step, the idle-host estimate (CPU seconds spread over the threads torch used), the
longest batch in tokens, the training phase's peak RSS, the load average while it ran, and the
issue's goals (≤ 4 GB peak, ≤ 10 s per step) beside them.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Optional, Sequence

from logllm_plugin.records import LogSequence

PEAK_RSS_GOAL_MB = 4096.0
SECONDS_PER_STEP_GOAL = 10.0


def run_train_llm_bench(sequences: Sequence[LogSequence], *, base_dir: str, steps: int = 20,
                        threads: Optional[int] = None, overrides: Optional[dict[str, Any]] = None,
                        progress=None) -> dict[str, Any]:
    import torch

    from trainers.llm import LLMTrainConfig, train_llm

    if threads:
        torch.set_num_threads(threads)
    config = LLMTrainConfig(max_steps=steps, eval_max_items=0, eval_base=False, **(overrides or {}))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="logllm-bench-train-llm-") as out:
        outcome = train_llm(sequences, base_dir, out, config,
                            progress=(lambda step, total, loss: progress(f"step {step}/{total} loss {loss:.4f}"))
                            if progress else None)
    m = outcome.metrics
    used_threads = torch.get_num_threads()
    idle_estimate = m["cpu_seconds_per_step"] / used_threads
    return {
        "base_model": str(base_dir), "method": config.method, "device": m["device"], "steps": m["steps"],
        "batch_size": config.batch_size, "context_lines": config.context_lines, "lora_layers": config.lora_layers,
        "train_pairs": m["train_pairs"], "threads": used_threads,
        "longest_batch_tokens": m["longest_batch_tokens"],
        "loss_first": m["loss_history"][0], "loss_last": m["loss_history"][-1],
        "seconds_per_step": m["seconds_per_step"], "cpu_seconds_per_step": m["cpu_seconds_per_step"],
        # On a host busy with other jobs the wall figure is the host's, the CPU figure the step's.
        "idle_host_seconds_per_step_estimate": round(idle_estimate, 2),
        "training_peak_rss_mb": m["training_peak_rss_mb"],
        "goals": {"peak_rss_mb": PEAK_RSS_GOAL_MB, "seconds_per_step": SECONDS_PER_STEP_GOAL},
        "meets_peak_rss_goal": m["training_peak_rss_mb"] <= PEAK_RSS_GOAL_MB,
        "meets_seconds_per_step_goal": m["seconds_per_step"] <= SECONDS_PER_STEP_GOAL,
        "loadavg_before": load_before, "loadavg_after": list(os.getloadavg()), "cpu_count": os.cpu_count(),
    }
