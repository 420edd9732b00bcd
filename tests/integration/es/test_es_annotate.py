"""`logllm-plugin es annotate` against a real Elasticsearch 8.19 started by scripts/local-stack.

"Annotated exactly once" is checked with `_version`: a document is indexed at version 1 and every
annotation write carries a fresh `logllm.annotated_at`, so a second write would make it version 3.
"""
from __future__ import annotations

import collections
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import REPO
from tests.integration.es.conftest import all_hits, index_documents, seed_documents

pytestmark = pytest.mark.elasticsearch


def annotate_cli(url: str, index: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "logllm_plugin", "es", "annotate", "--url", url, "--index", index,
           "--key-field", "trace_id", "--once", "--json", *extra]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def counters(proc: subprocess.CompletedProcess) -> dict:
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_annotated_exactly_once(hits: list[dict], expected_docs: list[dict]) -> None:
    assert len(hits) == len(expected_docs), "documents were lost or added"
    assert sorted(h["_source"]["@timestamp"] for h in hits) == sorted(d["@timestamp"] for d in expected_docs)
    not_annotated = [h["_id"] for h in hits if "logllm" not in h["_source"]]
    assert not not_annotated, f"{len(not_annotated)} documents not annotated"
    twice = [h["_id"] for h in hits if h["_version"] != 2]
    assert not twice, f"{len(twice)} documents written more than once (or not at all)"
    by_sequence = collections.defaultdict(list)
    for h in hits:
        ann = h["_source"]["logllm"]
        assert ann["status"] == "ok" and ann["anomaly"]["label"] in ("normal", "anomalous")
        assert ann["sequence"]["key"] == h["_source"]["trace_id"]
        by_sequence[ann["sequence"]["id"]].append(ann["sequence"]["position"])
    for seq_id, positions in by_sequence.items():
        assert sorted(positions) == list(range(len(positions))), seq_id
        assert len(positions) <= 15


def test_setup_is_idempotent_and_says_the_cluster_lacks_ingest(es_client, elasticsearch_url):
    from click.testing import CliRunner

    from logllm_plugin.cli import main

    runner = CliRunner()
    first = runner.invoke(main, ["es", "setup", "--url", elasticsearch_url, "--index", "setup-*"])
    second = runner.invoke(main, ["es", "setup", "--url", elasticsearch_url, "--index", "setup-*"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "installed: index template logllm-setup" in first.output
    assert "installed:" not in second.output
    assert "cluster lacks: ingest processor(s) set" in second.output
    es_client.raw.index(index="setup-1", document={"message": "x", "@timestamp": "2026-01-01T00:00:00Z"},
                        refresh=True)
    mapping = es_client.raw.indices.get_mapping(index="setup-1")["setup-1"]["mappings"]["properties"]["logllm"]
    props = mapping["properties"]
    assert props["anomaly"]["properties"]["score"]["type"] == "float"
    assert props["anomaly"]["properties"]["label"]["type"] == "keyword"
    assert props["evidence"]["type"] == "boolean"
    assert props["sequence"]["properties"]["position"]["type"] == "integer"


def test_annotate_marks_every_document_once_and_a_second_pass_changes_nothing(es_client, elasticsearch_url):
    index = "annotate-once"
    docs = seed_documents(limit=120)
    index_documents(es_client, index, docs)
    first = counters(annotate_cli(elasticsearch_url, index))
    assert first["docs_annotated"] == len(docs) and first["failures"] == 0
    hits = all_hits(es_client, index)
    assert_annotated_exactly_once(hits, docs)
    anomalous = [h for h in hits if h["_source"]["logllm"]["anomaly"]["label"] == "anomalous"]
    assert anomalous and all(h["_source"]["logllm"]["explanation"]["summary"] for h in anomalous)
    second = counters(annotate_cli(elasticsearch_url, index))
    assert second["docs_read"] == 0 and second["docs_annotated"] == 0
    assert [h["_version"] for h in all_hits(es_client, index)] == [2] * len(docs)


def test_kill_9_mid_run_then_restart_annotates_every_document_exactly_once(es_client, elasticsearch_url):
    index = "annotate-kill"
    docs = seed_documents(copies=4)
    index_documents(es_client, index, docs)
    cmd = [sys.executable, "-m", "logllm_plugin", "es", "annotate", "--url", elasticsearch_url, "--index", index,
           "--key-field", "trace_id", "--once", "--batch", "4", "--page-size", "50"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    annotated_at_kill = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            es_client.refresh(index)
            annotated_at_kill = es_client.raw.count(index=index, query={"exists": {"field": "logllm.sequence.id"}})["count"]
            if annotated_at_kill >= 200:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the annotator finished before it could be killed: {proc.stderr.read()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert 0 < annotated_at_kill < len(docs)
    after = counters(annotate_cli(elasticsearch_url, index))
    assert after["docs_annotated"] + after["conflicts"] <= len(docs) - annotated_at_kill + 4 * 15
    assert_annotated_exactly_once(all_hits(es_client, index), docs)


class _RefuseFirstBulkProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the cluster, except that the first `_bulk` request is answered `status`."""

    target = ""
    status = 429
    bulk_calls: list[int] = []

    def _forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].endswith("/_bulk"):
            self.bulk_calls.append(len(body))
            if len(self.bulk_calls) == 1:
                kind = b"es_rejected_execution_exception" if self.status == 429 else b"unavailable_shards_exception"
                payload = b'{"error":{"type":"' + kind + b'","reason":"test"},"status":' + str(self.status).encode() + b"}"
                self.send_response(self.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
        request = urllib.request.Request(self.target + self.path, data=body or None, method=self.command,
                                         headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, headers, payload = exc.code, exc.headers, exc.read()
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [429, 503])
def test_a_429_or_503_from_the_cluster_is_retried_and_nothing_is_lost(es_client, elasticsearch_url, status):
    from collectors.elastic.annotator import Annotator, AnnotatorConfig
    from collectors.elastic.bulk import BulkWriter
    from collectors.elastic.connection import connect
    from collectors.scoring import local_scorer

    index = f"annotate-{status}"
    docs = seed_documents(limit=30)
    index_documents(es_client, index, docs)
    handler = type("Proxy", (_RefuseFirstBulkProxy,), {"target": elasticsearch_url, "status": status, "bulk_calls": []})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        client = connect(f"http://127.0.0.1:{proxy.server_address[1]}", backend="elasticsearch")
        annotator = Annotator(client, local_scorer(), AnnotatorConfig(index=index, key_fields=("trace_id",)),
                              writer=BulkWriter(client.bulk, backoff_base_s=0.05))
        stats = annotator.run_once()
    finally:
        proxy.shutdown()
    assert len(handler.bulk_calls) >= 2 and handler.bulk_calls[0] == handler.bulk_calls[1]
    assert stats.request_retries == 1 and stats.docs_annotated == len(docs)
    assert_annotated_exactly_once(all_hits(es_client, index), docs)


def test_a_document_the_cluster_rejects_is_recorded_and_the_rest_are_annotated(es_client, elasticsearch_url):
    from collectors.elastic.checkpoint import CheckpointStore

    index = "annotate-reject"
    # Explanations are written on anomalous sequences only: their documents fail, the others do not.
    es_client.raw.indices.create(index=index, mappings={"properties": {"logllm": {"properties": {
        "explanation": {"properties": {"summary": {"type": "integer"}}}}}}})
    docs = seed_documents(limit=20)
    index_documents(es_client, index, docs)
    proc = annotate_cli(elasticsearch_url, index, check=False)
    assert proc.returncode == 3, proc.stderr[-2000:]
    stats = counters(proc)
    failures = CheckpointStore(es_client, index).failures()
    assert stats["failures"] == len(failures) > 0
    assert all(f["status"] == 400 and "summary" in f["error"] for f in failures)
    hits = all_hits(es_client, index)
    assert len(hits) == len(docs)
    assert {h["_id"] for h in hits if "logllm" not in h["_source"]} == {f["doc_id"] for f in failures}
    annotated = [h for h in hits if "logllm" in h["_source"]]
    assert annotated and all(h["_source"]["logllm"]["anomaly"]["label"] == "normal" for h in annotated)


def test_following_annotates_documents_as_they_arrive_and_stops_cleanly_on_sigterm(es_client, elasticsearch_url):
    index = "annotate-follow"
    docs = seed_documents(limit=40)
    half = len(docs) // 2
    index_documents(es_client, index, docs[:half])
    cmd = [sys.executable, "-m", "logllm_plugin", "es", "annotate", "--url", elasticsearch_url, "--index", index,
           "--key-field", "trace_id", "--poll-s", "0.2", "--json"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def annotated() -> int:
        es_client.refresh(index)
        return es_client.raw.count(index=index, query={"exists": {"field": "logllm.sequence.id"}})["count"]

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 120
        while annotated() < count and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert annotated() == count, proc.stderr.read()[-2000:] if proc.poll() is not None else "timed out"

    try:
        wait_for(half)
        index_documents(es_client, index, docs[half:])
        wait_for(len(docs))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    import json

    assert json.loads(out.strip().splitlines()[-1])["docs_annotated"] == len(docs)
    assert_annotated_exactly_once(all_hits(es_client, index), docs)


def test_two_annotators_partitioned_by_key_share_the_work_and_annotate_each_document_once(es_client,
                                                                                           elasticsearch_url):
    index = "annotate-partitioned"
    docs = seed_documents(limit=60)
    index_documents(es_client, index, docs)
    base = [sys.executable, "-m", "logllm_plugin", "es", "annotate", "--url", elasticsearch_url, "--index", index,
            "--key-field", "trace_id", "--once", "--json"]
    procs = [subprocess.Popen(base + ["--partition", f"{i}/2"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in results]
    import json

    import zlib

    shares = [json.loads(out.strip().splitlines()[-1])["docs_annotated"] for out, _ in results]
    expected = [sum(zlib.crc32(d["trace_id"].encode()) % 2 == i for d in docs) for i in range(2)]
    assert shares == expected and min(shares) > 0  # each annotator took exactly its keys' documents
    assert_annotated_exactly_once(all_hits(es_client, index), docs)
