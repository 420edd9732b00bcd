"""`logllm-plugin bench analyze`: how fast and how often a local chat model explains, beside the knowledge base.

Each labeled anomaly of the input is padded in front with lines of normal sequences to `lines`
lines (20 by default: the size the speed goal is stated for), masked like the service masks, and
explained by the LLM analyzer with the analysis defaults (timeout, max_new_tokens, int8 on CPU,
one repair). The verdict the analyzer sees names the labeled incident lines as evidence, so the
figures do not depend on a detector. Reported: seconds per explanation (p50/p99, one sequence
per call unless --batch-size), prompt and generated tokens/s, the share of explanations that fell
back (and why), JSON validity and category accuracy against the labels, and the knowledge base's
seconds per explanation on the same items (the same-run baseline).
"""
from __future__ import annotations

import os
import resource
import time
from typing import Any, Optional, Sequence

import numpy as np

from logllm_plugin.analyzers.base import AnalysisItem
from logllm_plugin.records import LogSequence, Verdict


def padded_items(sequences: Sequence[LogSequence], n: int, lines: int) -> tuple[list[AnalysisItem], list[str]]:
    """(items, labeled categories): the first `n` anomalies, each preceded by normal lines up to `lines` lines."""
    from logllm_plugin.personal_data import PersonalDataMasker
    from trainers.llm_data import evidence_indexes

    masker = PersonalDataMasker()
    normal_lines = [line for s in sequences if s.label == 0 for line in s.lines]
    anomalies = [s for s in sequences if s.label == 1 and s.lines][:n]
    if not anomalies:
        raise ValueError("the input has no labeled anomalous sequence (label 1) to explain")
    items, categories = [], []
    for k, seq in enumerate(anomalies):
        need = max(0, lines - len(seq.lines))
        start = (k * 7) % max(1, len(normal_lines) - need) if normal_lines else 0
        prefix = normal_lines[start:start + need]
        evidence = [len(prefix) + i for i in evidence_indexes(seq)]
        verdict = Verdict(id=seq.id, label="anomalous", score=0.9, category="anomaly", evidence=evidence,
                          novel_templates=0)
        items.append(AnalysisItem(masker.mask_sequence(prefix + list(seq.lines)), verdict))
        categories.append(seq.category or "anomaly")
    return items, categories


def _percentile(values: Sequence[float], q: float) -> Optional[float]:
    return round(float(np.percentile(values, q)), 3) if values else None


def run_analyze_bench(sequences: Sequence[LogSequence], *, llm_dir: str, adapter_dir: Optional[str] = None,
                      n: int = 8, lines: int = 20, threads: Optional[int] = None, batch_size: int = 1,
                      quantize: Optional[str] = None, timeout_s: Optional[float] = None,
                      max_new_tokens: Optional[int] = None, progress=None) -> dict[str, Any]:
    from logllm_plugin.analyzers.knowledge_base import KnowledgeBaseAnalyzer
    from logllm_plugin.analyzers.qwen import QwenAnalyzer, set_torch_threads
    from logllm_plugin.config import AnalysisConfig

    defaults = AnalysisConfig()
    items, categories = padded_items(sequences, n, lines)
    knowledge_base = KnowledgeBaseAnalyzer()
    analyzer = QwenAnalyzer(llm_dir, adapter_dir=adapter_dir, fallback=knowledge_base, device="cpu",
                            max_new_tokens=max_new_tokens or defaults.max_new_tokens,
                            timeout_s=timeout_s or defaults.timeout_s, batch_size=batch_size, threads=threads,
                            quantize=quantize or defaults.quantize)
    if threads:
        set_torch_threads(threads)
    started = time.monotonic()
    analyzer.load()
    load_s = time.monotonic() - started
    analyzer.explain_batch(items[:1])  # warm-up: first-call allocations, not the steady state
    analyzer.generation_stats.clear()
    seconds, explanations = [], []
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        t0 = time.monotonic()
        answers = analyzer.explain_batch(batch)
        per_item = (time.monotonic() - t0) / len(batch)
        seconds += [per_item] * len(batch)
        explanations += answers
        if progress:
            progress(f"{len(explanations)}/{len(items)}: {per_item:.2f} s/explanation, "
                     f"{[a.status for a in answers]}")
    t0 = time.monotonic()
    kb_answers = knowledge_base.explain_batch(items)
    kb_seconds = (time.monotonic() - t0) / len(items)
    stats = analyzer.generation_stats
    prompt_tokens = sum(s["prompt_tokens"] for s in stats)
    generated = sum(s["generated_tokens"] for s in stats)
    prefill_s = sum(s["prefill_s"] for s in stats)
    decode_s = sum(s["decode_s"] for s in stats)
    statuses: dict[str, int] = {}
    for e in explanations:
        statuses[e.status] = statuses.get(e.status, 0) + 1
    ok = [(e, c) for e, c in zip(explanations, categories) if e.status == "ok"]
    return {
        "llm_dir": str(llm_dir), "adapter_dir": str(adapter_dir) if adapter_dir else None,
        "explanations": len(explanations), "lines_per_sequence": lines, "batch_size": batch_size,
        "threads": threads, "quantize": analyzer.quantize, "timeout_s": analyzer.timeout_s,
        "max_new_tokens": analyzer.max_new_tokens, "load_s": round(load_s, 2),
        "seconds_per_explanation_p50": _percentile(seconds, 50),
        "seconds_per_explanation_p99": _percentile(seconds, 99),
        "seconds_per_explanation_mean": round(float(np.mean(seconds)), 3),
        "generate_calls": len(stats),  # more calls than batches: repairs
        "prompt_tokens_mean": round(prompt_tokens / max(1, sum(s["rows"] for s in stats)), 1),
        "generated_tokens_mean": round(generated / max(1, sum(s["rows"] for s in stats)), 1),
        "prompt_tokens_per_s": round(prompt_tokens / prefill_s, 1) if prefill_s else None,
        "generated_tokens_per_s": round(generated / decode_s, 1) if decode_s else None,
        "statuses": statuses,
        "fallback_rate": round(1 - len(ok) / len(explanations), 3),
        "timeout_fallback_rate": round(statuses.get("timeout", 0) / len(explanations), 3),
        "json_valid_rate": round(len(ok) / len(explanations), 3),
        "category_accuracy": round(sum(e.category == c for e, c in ok) / len(explanations), 3),
        "knowledge_base_category_accuracy": round(
            sum(e.category == c for e, c in zip(kb_answers, categories)) / len(items), 3),
        "knowledge_base_seconds_per_explanation": round(kb_seconds, 5),
        "ratio_to_knowledge_base": round(float(np.median(seconds)) / kb_seconds, 1) if kb_seconds else None,
        "loadavg": list(os.getloadavg()), "cpu_count": os.cpu_count(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
