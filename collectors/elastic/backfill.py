"""`es backfill`: annotate a time range of history in parallel slices (DESIGN §5, §7).

The range [from, to) on the tailing field is cut into N equal sub-ranges, each annotated by its own
`Annotator` (own point in time, own checkpoint) in a thread. Scoring is serialised by a lock (one
model, one CPU pool): slices overlap the cluster's search and bulk latency with scoring, and on a
cluster of several nodes their reads and writes go in parallel. A sequence that spans a slice
boundary is cut in two there; a restart resumes each slice, writing nothing twice.
"""
from __future__ import annotations

import datetime
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Callable, Optional

from collectors.elastic.annotator import Annotator, AnnotatorConfig, AnnotatorStats
from collectors.elastic.checkpoint import CheckpointStore
from collectors.annotations import SEQUENCE_ID

logger = logging.getLogger(__name__)


def parse_time_ms(value: str) -> int:
    """Epoch milliseconds from an ISO 8601 time (UTC when no zone is given) or a number of ms."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time or epoch milliseconds: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return int(parsed.timestamp() * 1000)


def slice_ranges(start_ms: int, end_ms: int, slices: int) -> list[tuple[int, int]]:
    if slices < 1 or end_ms <= start_ms:
        raise ValueError("need slices >= 1 and a range that ends after it starts")
    bounds = [start_ms + (end_ms - start_ms) * i // slices for i in range(slices + 1)]
    return [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def pending_count(client, config: AnnotatorConfig, time_field: str, start_ms: int, end_ms: int) -> int:
    client.refresh(config.index)
    query = {"bool": {"filter": [{"range": {time_field: {"gte": start_ms, "lt": end_ms, "format": "epoch_millis"}}}],
                      "must_not": [{"exists": {"field": SEQUENCE_ID}}]}}
    return client.search_index(config.index, {"size": 0, "track_total_hits": True, "query": query})["hits"]["total"]["value"]


def backfill(client, score, config: AnnotatorConfig, start_ms: int, end_ms: int, slices: int = 1, *,
             explainer=None, on_progress: Optional[Callable[[int], None]] = None) -> AnnotatorStats:
    score_lock = threading.Lock()

    def serial_score(lines, timeout_s):
        with score_lock:
            return score(lines, timeout_s)

    explain_lock = threading.Lock()
    serial_explainer = None
    if explainer is not None:
        class _Serial:
            def explain(self, lines, verdicts):
                with explain_lock:
                    return explainer.explain(lines, verdicts)
        serial_explainer = _Serial()

    CheckpointStore(client, "backfill")._ensure_index()  # once, before the slices race to create it
    annotators = []
    for n, (lo, hi) in enumerate(slice_ranges(start_ms, end_ms, slices)):
        name = f"backfill:{config.index}:{start_ms}-{end_ms}:{n + 1}/{slices}"
        part = replace(config, time_range_ms=(lo, hi), checkpoint_name=name)
        annotators.append(Annotator(client, serial_score, part, explainer=serial_explainer, on_progress=on_progress))
    with ThreadPoolExecutor(max_workers=len(annotators), thread_name_prefix="backfill") as pool:
        results = list(pool.map(lambda a: a.run_once(), annotators))
    total = AnnotatorStats()
    for stats in results:
        for name, value in stats.as_dict().items():
            setattr(total, name, getattr(total, name) + value)
    return total
