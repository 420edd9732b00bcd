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
    # Every trace id forms at least one sequence (longer ones are cut at the sequencer's max_lines).
    assert 200 <= figures["sequences"] <= lines
    assert 0 < figures["anomalous_sequences"] < figures["sequences"]  # the seed model finds the seed anomalies
    # Each pass annotated all the documents: the ratio is that of the two rates (to their rounding).
    assert figures["ratio_to_baseline"] == pytest.approx(figures["docs_per_s"] / figures["baseline_docs_per_s"],
                                                         rel=0.01)
    # The verdict cache was emptied first and is asked once per distinct sequence of a call.
    cache = figures["verdict_cache"]
    assert 0 < cache["misses"] and cache["hits"] + cache["misses"] <= figures["sequences"]
    assert not es_client.matching_indices("logllm-bench-*")  # both indexes deleted
    from collectors.elastic.setup import index_template_name

    assert not es_client.raw.indices.exists_index_template(name=index_template_name("logllm-bench-*"))
