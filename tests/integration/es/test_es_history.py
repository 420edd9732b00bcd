"""History → train → evaluate: `train small --from-es` reads labeled sequences from a real Elasticsearch."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from logllm_plugin.cli import main
from tests.conftest import DATA
from tests.integration.es.conftest import T0_MS, index_documents

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]

TINY_YAML = ("model:\n  hidden_size: 32\n  num_layers: 1\n  num_heads: 2\n  expert_ffn_size: 64\n  max_positions: 32\n"
             "training:\n  batch_size: 16\n  learning_rate: 0.003\n")


def labeled_history_documents() -> list[dict]:
    """seed_train.jsonl as log documents: every line of an anomalous sequence carries label "anomalous"."""
    from logllm_plugin.readers import read_sequence_file

    docs, n = [], 0
    for seq in read_sequence_file(DATA / "seed_train.jsonl"):
        for line in seq.lines:
            docs.append({"@timestamp": T0_MS + n * 10, "trace_id": seq.id, "message": line,
                         "label": "anomalous" if seq.label == 1 else "normal"})
            n += 1
    return docs


def test_history_to_train_to_a_model_that_beats_the_in_run_baseline(es_client, elasticsearch_url, tmp_path):
    docs = labeled_history_documents()
    index_documents(es_client, "history-train", docs)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML)
    out = tmp_path / "model"
    result = CliRunner().invoke(main, [
        "train", "small", "--from-es", elasticsearch_url, "--index", "history-*", "--key-field", "trace_id",
        "--label-field", "label", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z",
        "--out", str(out), "--config", str(config), "--epochs", "5", "--seed", "3"])
    assert result.exit_code == 0, result.output
    # The 300 bundled sequences, cut at the sequencer's 15 lines as any other input would be.
    from logllm_plugin.readers import read_sequence_file

    original = list(read_sequence_file(DATA / "seed_train.jsonl"))
    expected = sum(-(-len(s.lines) // 15) for s in original)
    expected_anomalous = sum(-(-len(s.lines) // 15) for s in original if s.label == 1)
    assert f"{expected} sequences ({expected_anomalous} anomalous)" in result.output
    evaluated = CliRunner().invoke(main, ["eval", "--model", str(out), "--data", str(DATA / "seed_test.jsonl"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert figures["n"] == 200
    assert figures["f1"] >= figures["baseline"]["f1"] and figures["f1"] > 0.8, figures


def test_from_es_needs_a_label_field_or_normal_only(elasticsearch_url, tmp_path):
    result = CliRunner().invoke(main, ["train", "small", "--from-es", elasticsearch_url, "--index", "history-*",
                                       "--key-field", "trace_id", "--from", "0", "--out", str(tmp_path / "m")])
    assert result.exit_code != 0 and "--label-field F or --normal-only" in result.output
