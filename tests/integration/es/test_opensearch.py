"""The ingest-pipeline path and the second backend, against a real OpenSearch 2.19 (scripts/local-stack).

Elasticsearch's test distribution has no ingest processors; OpenSearch's runner has them all.
"""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from logllm_plugin.cli import main
from tests.integration.es.conftest import all_hits, index_documents, seed_documents
from tests.integration.es.test_es_annotate import annotate_cli, assert_annotated_exactly_once, counters

pytestmark = pytest.mark.elasticsearch


def test_setup_installs_a_pipeline_that_stamps_ingest_time_and_sequence_key(os_client, opensearch_url):
    runner = CliRunner()
    args = ["es", "setup", "--url", opensearch_url, "--index", "piped-*", "--key-field", "trace_id"]
    first, second = runner.invoke(main, args), runner.invoke(main, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert first.output.startswith("opensearch at ")
    assert "installed: ingest pipeline logllm-annotations" in first.output
    assert "installed:" not in second.output and "cluster lacks" not in second.output
    os_client.raw.index(index="piped-1", body={"message": "x", "trace_id": "t-1"}, refresh=True)
    source = os_client.raw.search(index="piped-1", body={"query": {"match_all": {}}})["hits"]["hits"][0]["_source"]
    assert source["event"]["ingested"] and source["logllm"]["sequence"]["key"] == "t-1"
    assert "logllm.anomaly" not in str(source)  # the pipeline stamps, it never scores


def test_annotate_tails_on_event_ingested_and_marks_every_document_once(os_client, opensearch_url):
    result = CliRunner().invoke(main, ["es", "setup", "--url", opensearch_url, "--index", "piped-*",
                                       "--key-field", "trace_id"])
    assert result.exit_code == 0, result.output
    docs = seed_documents(limit=60)
    index_documents(os_client, "piped-annotate", docs)
    proc = annotate_cli(opensearch_url, "piped-annotate")
    assert counters(proc)["docs_annotated"] == len(docs)
    checkpoint = os_client.raw.get(index="logllm-annotator-state", id="checkpoint:piped-annotate")["_source"]
    assert checkpoint["time_field"] == "event.ingested"
    hits = all_hits(os_client, "piped-annotate")
    assert all(h["_source"]["event"]["ingested"] for h in hits)
    assert_annotated_exactly_once(hits, docs)
    # Documents ingested in one bulk share their ingest time: positions follow @timestamp, not arrival.
    by_sequence = {}
    for h in hits:
        seq = h["_source"]["logllm"]["sequence"]
        by_sequence.setdefault(seq["id"], []).append((seq["position"], h["_source"]["@timestamp"]))
    assert all([t for _, t in sorted(v)] == sorted(t for _, t in v) for v in by_sequence.values())
    assert counters(annotate_cli(opensearch_url, "piped-annotate"))["docs_read"] == 0
