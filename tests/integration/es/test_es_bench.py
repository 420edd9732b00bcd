"""`logllm-plugin bench annotate` against the real Elasticsearch: figures that match the data, no litter."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from logllm_plugin.cli import main
from tests.conftest import DATA

pytestmark = pytest.mark.elasticsearch


def test_bench_annotate_annotates_every_line_twice_over_and_cleans_up(elasticsearch_url, es_client, seed_model_dir):
    data = DATA / "seed_test.jsonl"
    lines = sum(len(json.loads(row)["lines"]) for row in data.read_text(encoding="utf-8").splitlines())
    result = CliRunner().invoke(main, ["bench", "annotate", "--url", elasticsearch_url, "--data", str(data),
                                       "--model", str(seed_model_dir), "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["docs"] == lines and figures["failures"] == 0
    assert figures["docs_per_s"] > 0 and figures["baseline_docs_per_s"] > 0
    assert figures["anomalous_sequences"] > 0  # the seed test set holds anomalies the seed model finds
    assert figures["verdict_cache"]["misses"] > 0
    assert not es_client.matching_indices("logllm-bench-*")  # both indexes deleted
    from collectors.elastic.setup import index_template_name

    assert not es_client.raw.indices.exists_index_template(name=index_template_name("logllm-bench-*"))
