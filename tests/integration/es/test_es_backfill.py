"""`logllm-plugin es backfill` against a real Elasticsearch: a time range, in parallel slices."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.integration.es.conftest import T0_MS, all_hits, index_documents, seed_documents
from tests.integration.es.test_es_annotate import counters

pytestmark = pytest.mark.elasticsearch


def test_slice_ranges_cover_the_range_without_gaps_or_overlap():
    from collectors.elastic.backfill import parse_time_ms, slice_ranges

    parts = slice_ranges(1000, 2001, 4)
    assert parts[0][0] == 1000 and parts[-1][1] == 2001
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert parse_time_ms("2026-01-01T00:00:00Z") == T0_MS == parse_time_ms("2026-01-01T00:00:00")
    with pytest.raises(ValueError):
        parse_time_ms("yesterday")


def test_backfill_in_slices_annotates_exactly_the_range_once(es_client, elasticsearch_url):
    index = "backfill-slices"
    docs = seed_documents(limit=80)  # ~880 documents, 10 ms apart
    index_documents(es_client, index, docs)
    start, end = docs[100]["@timestamp"], docs[700]["@timestamp"]
    cmd = [sys.executable, "-m", "logllm_plugin", "es", "backfill", "--url", elasticsearch_url, "--index", index,
           "--key-field", "trace_id", "--from", str(start), "--to", str(end), "--slices", "3", "--json"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert counters(proc)["docs_annotated"] == 600
    hits = all_hits(es_client, index)
    assert len(hits) == len(docs)
    inside = [h for h in hits if start <= h["_source"]["@timestamp"] < end]
    outside = [h for h in hits if not start <= h["_source"]["@timestamp"] < end]
    assert all("logllm" in h["_source"] and h["_version"] == 2 for h in inside)
    assert all("logllm" not in h["_source"] and h["_version"] == 1 for h in outside)
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and counters(again)["docs_annotated"] == 0
