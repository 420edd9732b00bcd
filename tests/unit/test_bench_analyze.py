"""`bench analyze`: padded items keep the labeled evidence; the JSON accounts for every explanation."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny_dir and one_thread: tests/unit/conftest.py


def _generated(tmp_path, n=60):
    from logllm_plugin.data.generate import GenerateOptions, generate

    path = tmp_path / "gen.jsonl"
    rows = generate(GenerateOptions(n=n, anomaly_rate=0.5, silent_rate=0.0, seed=2))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_padded_items_have_the_asked_length_and_point_at_the_incident_lines(tmp_path):
    from logllm_plugin.benchmarks.analyze import padded_items
    from logllm_plugin.readers import read_sequence_file

    path, rows = _generated(tmp_path)
    sequences = list(read_sequence_file(path))
    items, categories = padded_items(sequences, 5, 20)
    anomalies = [r for r in rows if r["label"] == 1][:5]
    assert [len(i.lines) for i in items] == [max(20, len(r["lines"])) for r in anomalies]
    assert categories == [r["category"] for r in anomalies]
    for item, row in zip(items, anomalies):
        offset = len(item.lines) - len(row["lines"])
        assert item.verdict.evidence == [offset + k for k, flag in enumerate(row["line_labels"]) if flag]


def test_bench_analyze_reports_every_explanation_with_its_status(tiny_dir, tmp_path):
    from click.testing import CliRunner

    from logllm_plugin.cli import main

    path, _ = _generated(tmp_path)
    result = CliRunner().invoke(main, ["bench", "analyze", "--llm", str(tiny_dir), "--input", str(path), "--n", "3",
                                       "--lines", "12", "--threads", "1", "--timeout-s", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["explanations"] == 3 and sum(report["statuses"].values()) == 3
    assert report["fallback_rate"] == round(1 - report["statuses"].get("ok", 0) / 3, 3)
    assert report["seconds_per_explanation_p50"] > 0 and report["prompt_tokens_mean"] > 50
    assert report["knowledge_base_category_accuracy"] is not None and report["quantize"] == "int8"
