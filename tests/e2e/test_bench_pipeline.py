"""`logllm-plugin bench pipeline`: figures that agree with the data and with `detect`."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from logllm_plugin.cli import main
from tests.conftest import DATA


@pytest.fixture
def restore_torch_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # --threads sets it for the whole process


def test_bench_pipeline_json_holds_the_figures_the_benchmarks_issue_asks_for(seed_model_dir, restore_torch_threads):
    model, data = seed_model_dir, DATA / "hdfs_400.log"
    result = CliRunner().invoke(main, ["bench", "pipeline", "--model", str(model), "--data", str(data),
                                       "--key-regex", r"blk_-?\d+", "--repeat", "2", "--batch", "16",
                                       "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    detect = CliRunner().invoke(main, ["detect", "--model", str(model), "--input", str(data),
                                       "--key-regex", r"blk_-?\d+", "--show", "jsonl"])
    verdicts = [json.loads(line) for line in detect.stdout.splitlines() if line.startswith("{")]
    assert figures["lines"] == len(data.read_text(encoding="utf-8").splitlines())
    assert figures["sequences"] == len(verdicts)
    assert figures["anomalous_sequences"] == sum(v["label"] == "anomalous" for v in verdicts)
    for key in ("lines_per_s", "baseline_lines_per_s", "cold_lines_per_s", "p99_ms", "peak_rss_mb"):
        assert figures[key] > 0, key
    assert len(figures["warm_pass_s"]) == 2
    assert figures["ratio_to_baseline"] == round(figures["lines_per_s"] / figures["baseline_lines_per_s"], 3) or \
        abs(figures["ratio_to_baseline"] - figures["lines_per_s"] / figures["baseline_lines_per_s"]) < 0.01
    assert figures["p50_ms"] <= figures["p99_ms"]
    assert figures["torch_threads"] == 1
    assert set(figures["meets_targets"]) == {"lines_per_s", "ratio_to_baseline", "peak_rss_mb"}


def test_bench_pipeline_refuses_a_missing_data_file(tmp_path):
    result = CliRunner().invoke(main, ["bench", "pipeline", "--data", str(tmp_path / "nope.log")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
