"""`logllm-plugin bench pipeline`: lines/s from a log file to verdicts on this machine's CPU.

One pass = read the file → sequences (readers + sequencer for raw logs) → mask + template →
embed (cached per masked line) → score, in chunks of `batch` sequences as the server and the
bridge score them. Measured in the same process, on the same lines:

* baseline: Drain3's TemplateMiner (its default config) parsing every line: the cost of the
  template step alone, which every log-template tool pays;
* cold: a loaded model (encoder included: a server loads it during warm-up) with every cache
  emptied (masked tokens, template matches, line embeddings), so each distinct masked line the
  model has no embedding for goes through MiniLM once;
* warm: `repeat` further passes with the token, template and embedding caches filled (the steady
  state of a long-running server), reported as the median pass; the verdict cache is emptied
  before every pass, so only sequences repeated within the data are judged once;
* p50/p99 latency of scoring one sequence alone (what a caller with one sequence waits), warm,
  and again with that sequence's lines removed from the embedding cache (`novel_*`: the first
  time a sequence of new lines arrives);
* where the time goes (featurize with the encoder inside it, head, evidence, novelty), cold and
  warm, and the distinct / novel masked lines (per 10k lines too);
* `storm`: the threshold set to 0 so every sequence is anomalous and explained (an incident);
* peak RSS of the process (ru_maxrss).
"""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable, Optional

import numpy as np

TARGETS = {"lines_per_s": 20_000, "ratio_to_baseline": 0.3, "peak_rss_mb": 1_500}


def _drain3_pass(lines: list[str]) -> float:
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    miner = TemplateMiner(config=config)
    start = time.perf_counter()
    for line in lines:
        miner.add_log_message(line)
    return time.perf_counter() - start


def _pipeline_pass(detector, data_path: str, batch: int, read_kwargs: dict) -> tuple[float, int, int]:
    from logllm_plugin.inputs import load_input

    # Each pass judges the data afresh: repeats *within* it are served from the verdict cache
    # (as in a long-running stream), a previous pass's verdicts are not.
    detector.verdict_cache.clear()
    start = time.perf_counter()
    sequences, _ = load_input(data_path, **read_kwargs)
    anomalous = 0
    for i in range(0, len(sequences), batch):
        anomalous += sum(v.label == "anomalous" for v in detector.detect(sequences[i : i + batch]))
    return time.perf_counter() - start, len(sequences), anomalous


def run_pipeline_bench(*, model_dir: Optional[str], data_path: str, repeat: int = 3, batch: int = 512,
                       latency_samples: int = 300, read_kwargs: Optional[dict] = None, storm: bool = False,
                       head_dtype: str = "auto", progress: Callable[[str], None] = lambda _: None) -> dict:
    from logllm_plugin.detector import load_detector
    from logllm_plugin.inputs import load_input

    read_kwargs = read_kwargs or {}
    sequences, report = load_input(data_path, **read_kwargs)
    lines = [line for s in sequences for line in s.lines]
    if not lines:
        raise ValueError(f"{data_path}: no log lines to measure")

    progress(f"baseline: Drain3 on {len(lines):,} lines")
    baseline_s = _drain3_pass(lines)

    detector = load_detector(model_dir, device="cpu")
    detector.set_dtype(head_dtype)
    if storm:
        detector.settings.threshold = 0.0  # every sequence anomalous: each one gets evidence
    masked = {detector.store.mask(line) for line in lines}
    novel = [text for text in masked if text not in detector.encoder.cache]
    detector.encoder.load()  # off the clock, as a server's warm-up does
    model_cache = dict(detector.encoder.cache)
    detector.encoder.cache.clear()
    detector.store.clear_caches()
    progress("cold pass (empty caches)")
    detector.timings.reset()
    encoded_before = detector.encoder.encoded_count
    cold_s, n_sequences, anomalous = _pipeline_pass(detector, data_path, batch, read_kwargs)
    cold_encoded = detector.encoder.encoded_count - encoded_before
    cold_timings = detector.timings.as_dict()
    warm, warm_timings = [], []
    for k in range(repeat):
        progress(f"warm pass {k + 1}/{repeat}")
        detector.timings.reset()
        warm.append(_pipeline_pass(detector, data_path, batch, read_kwargs)[0])
        warm_timings.append(detector.timings.as_dict())
    warm_s = statistics.median(warm)
    warm_breakdown = warm_timings[warm.index(sorted(warm)[(len(warm) - 1) // 2])]

    progress(f"latency of one sequence alone ({min(latency_samples, len(sequences))} samples)")
    detector.verdict_cache.max_entries = 0  # every sample through the model
    detector.verdict_cache.clear()
    step = max(1, len(sequences) // latency_samples)
    latencies = []
    samples = sequences[::step][:latency_samples]
    for seq in samples:
        start = time.perf_counter()
        detector.detect([seq])
        latencies.append((time.perf_counter() - start) * 1000)
    progress("latency of one sequence of lines new to the encoder")
    novel_latencies = []
    for seq in samples:
        for text in {detector.store.mask(line) for line in seq.lines}:
            if text not in model_cache:  # what the model shipped with stays: those lines are never novel
                detector.encoder.cache.pop(text, None)
        start = time.perf_counter()
        detector.detect([seq])
        novel_latencies.append((time.perf_counter() - start) * 1000)

    lines_per_s = len(lines) / warm_s
    baseline_lines_per_s = len(lines) / baseline_s
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    result = {
        "benchmark": "pipeline",
        "data": data_path,
        "model_version": detector.settings.model_version,
        "lines": len(lines),
        "sequences": n_sequences,
        "anomalous_sequences": anomalous,
        "batch": batch,
        "lines_per_s": round(lines_per_s),
        "warm_pass_s": [round(x, 3) for x in warm],
        "cold_lines_per_s": round(len(lines) / cold_s),
        "baseline": "drain3 TemplateMiner, default config",
        "baseline_lines_per_s": round(baseline_lines_per_s),
        "ratio_to_baseline": round(lines_per_s / baseline_lines_per_s, 3),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "novel_p50_ms": round(float(np.percentile(novel_latencies, 50)), 2),
        "novel_p99_ms": round(float(np.percentile(novel_latencies, 99)), 2),
        "storm": storm,
        "distinct_masked_lines": len(masked),
        "distinct_masked_lines_per_10k": round(len(masked) * 10_000 / len(lines)),
        "novel_masked_lines": len(novel),  # distinct masked lines the model has no embedding for
        "cold_encoded_lines": cold_encoded,
        "encoder_lines_per_s": round(cold_encoded / cold_timings["encoder_s"]) if cold_timings["encoder_s"] else None,
        "encoder_dtype": detector.encoder.dtype,
        "head_dtype": detector.head_dtype,  # the scoring head (evidence is float32 whatever this says)
        "cold_time_share": _shares(cold_timings, cold_s),
        "warm_time_share": _shares(warm_breakdown, warm_s),
        "cold_breakdown": cold_timings,
        "warm_breakdown": warm_breakdown,
        "peak_rss_mb": round(peak_rss_mb),
        "cpu_count": _cpu_count(),
        "torch_threads": _torch_threads(),
        "read_report": {"format": report.fmt, "skipped_malformed": report.skipped_malformed,
                        "invalid_utf8_lines": report.invalid_utf8_lines},
    }
    result["targets"] = dict(TARGETS)
    result["meets_targets"] = {
        "lines_per_s": result["lines_per_s"] >= TARGETS["lines_per_s"],
        "ratio_to_baseline": result["ratio_to_baseline"] >= TARGETS["ratio_to_baseline"],
        "peak_rss_mb": result["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
    }
    return result


def _shares(timings: dict, total_s: float) -> dict:
    """Share of a pass's wall time per stage; `other` is reading, sequencing, masking, cache lookups."""
    encoder = timings["encoder_s"]
    parts = {"encoder": encoder, "featurize_without_encoder": timings["featurize_s"] - encoder,
             "head": timings["head_s"], "evidence": timings["evidence_s"], "novelty": timings["novelty_s"]}
    shares = {name: round(value / total_s, 3) for name, value in parts.items()}
    shares["other"] = round(max(0.0, 1.0 - sum(parts.values()) / total_s), 3)
    return shares


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
