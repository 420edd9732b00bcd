"""`logllm-plugin bench annotate`: documents/s annotated in a real cluster, beside the write path alone.

The data (sequence JSONL or any input `detect` reads) is indexed twice, into two fresh indexes,
one document per line (`message`, `trace_id` = the sequence id, increasing `@timestamp`). Then,
in the same run:

* warm-up (not measured): a tenth of the data through the baseline, so a freshly started
  cluster's JIT does not slow whichever pass comes first;
* baseline: the annotator with a scorer that answers "normal" at once — the same point-in-time
  reads, sequencing and bulk partial updates, no model: what the cluster costs;
* annotate: the annotator with the model (its verdict cache emptied first), as `es annotate --once`.

Both indexes, and the index template `es setup` put in for them, are deleted at the end. Use data without repeated sequences (e.g. a real dataset)
for a figure that is not mostly verdict-cache hits: the result says how many the cache answered.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from logllm_plugin.records import Verdict

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PATTERN = "logllm-bench-*"  # its index template is removed again at the end


def _index_lines(client, index: str, sequences, spacing_ms: int = 10) -> int:
    n, ops = 0, []
    for seq in sequences:
        for line in seq.lines:
            ops += [{"index": {"_index": index}},
                    {"@timestamp": T0_MS + n * spacing_ms, "trace_id": seq.id, "message": line}]
            n += 1
            if len(ops) >= 4000:
                _bulk(client, ops)
                ops = []
    if ops:
        _bulk(client, ops)
    client.refresh(index)
    return n


def _bulk(client, ops) -> None:
    response = client.bulk(ops)
    if response.get("errors"):
        raise RuntimeError(f"indexing the benchmark data failed: {str(response)[:300]}")


def _normal(sequences, timeout_s: float) -> list[Verdict]:
    return [Verdict(id=str(n), label="normal", score=0.0, category="normal", evidence=[], novel_templates=0,
                    model_version="baseline") for n, _ in enumerate(sequences)]


def _annotate(client, index: str, score, detector=None) -> tuple[float, object]:
    from collectors.elastic.annotator import Annotator, AnnotatorConfig

    config = AnnotatorConfig(index=index, key_fields=("trace_id",), checkpoint_name=f"{index}-bench")
    annotator = Annotator(client, score, config)
    started = time.perf_counter()
    stats = annotator.run_once()
    return time.perf_counter() - started, stats


def run_annotate_bench(*, url: str, data_path: str, model_dir: Optional[str] = None, threads: Optional[int] = None,
                       progress: Callable[[str], None] = lambda _: None) -> dict:
    from collectors.elastic.connection import connect
    from collectors.elastic.setup import index_template_name, setup_cluster
    from collectors.scoring import local_scorer
    from logllm_plugin.detector import load_detector
    from logllm_plugin.inputs import load_input

    sequences, _ = load_input(data_path)
    client = connect(url)
    stamp = time.strftime("%Y%m%d%H%M%S")
    indexes = {"warmup": f"logllm-bench-{stamp}-warmup", "baseline": f"logllm-bench-{stamp}-baseline",
               "model": f"logllm-bench-{stamp}-model"}
    detector = load_detector(model_dir, device="cpu")
    detector.threads = threads
    try:
        setup_cluster(client, PATTERN, key_fields=("trace_id",))
        for name, index in indexes.items():
            docs = _index_lines(client, index, sequences[: max(1, len(sequences) // 10)] if name == "warmup" else sequences)
            progress(f"indexed {docs:,} documents into {index}")
        _annotate(client, indexes["warmup"], _normal)  # a fresh cluster's JIT warms up off the clock
        detector.detect([sequences[0].lines])  # load the model off the clock
        detector.verdict_cache.clear()
        cache = detector.verdict_cache
        cache.hits = cache.misses = 0
        progress("baseline: annotate with a constant verdict (no model)")
        baseline_s, baseline_stats = _annotate(client, indexes["baseline"], _normal)
        progress("annotate with the model")
        model_s, stats = _annotate(client, indexes["model"], local_scorer(detector=detector))
    finally:
        for index in indexes.values():
            client.raw.indices.delete(index=index, ignore_unavailable=True)
        template = index_template_name(PATTERN)
        if client.backend == "elasticsearch":
            client.raw.options(ignore_status=404).indices.delete_index_template(name=template)
        else:
            client.raw.indices.delete_index_template(name=template, ignore=404)
        client.close()
    return {
        "benchmark": "annotate",
        "backend": client.backend,
        "data": data_path,
        "docs": stats.docs_annotated,
        "sequences": stats.sequences,
        "anomalous_sequences": stats.anomalous_sequences,
        "docs_per_s": round(stats.docs_annotated / model_s, 1),
        "baseline": "the same annotator with a constant verdict: reads, sequencing and bulk updates, no model",
        "baseline_docs_per_s": round(baseline_stats.docs_annotated / baseline_s, 1),
        "ratio_to_baseline": round((stats.docs_annotated / model_s) / (baseline_stats.docs_annotated / baseline_s), 3),
        "failures": stats.failures + baseline_stats.failures,
        "verdict_cache": {"hits": cache.hits, "misses": cache.misses},
        "torch_threads": threads,
    }
