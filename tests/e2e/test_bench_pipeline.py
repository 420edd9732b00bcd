"""`logllm-plugin bench pipeline`: figures that agree with the data and with `detect`."""
from __future__ import annotations

import json
import resource

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
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the bench runs in this process
    result = CliRunner().invoke(main, ["bench", "pipeline", "--model", str(model), "--data", str(data),
                                       "--key-regex", r"blk_-?\d+", "--repeat", "2", "--batch", "16",
                                       "--threads", "1", "--json"])
    rss_after_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    detect = CliRunner().invoke(main, ["detect", "--model", str(model), "--input", str(data),
                                       "--key-regex", r"blk_-?\d+", "--show", "jsonl"])
    verdicts = [json.loads(line) for line in detect.stdout.splitlines() if line.startswith("{")]
    lines = len(data.read_text(encoding="utf-8").splitlines())
    assert figures["lines"] == lines
    assert figures["sequences"] == len(verdicts)
    assert figures["anomalous_sequences"] == sum(v["label"] == "anomalous" for v in verdicts)
    # Throughput is the lines over the median warm pass (two passes: their mean), to the rounding
    # of the pass times (1 ms).
    assert len(figures["warm_pass_s"]) == 2
    median_s = sum(figures["warm_pass_s"]) / 2
    assert lines / (median_s + 0.001) <= figures["lines_per_s"] <= lines / max(median_s - 0.001, 1e-6)
    assert figures["ratio_to_baseline"] == pytest.approx(figures["lines_per_s"] / figures["baseline_lines_per_s"],
                                                         abs=0.002)
    # The cold pass embeds each distinct masked line with MiniLM; the warm ones find them cached.
    assert figures["cold_lines_per_s"] < figures["lines_per_s"]
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert rss_before_mb - 1 <= figures["peak_rss_mb"] <= rss_after_mb + 1  # ru_maxrss of this very process
    assert figures["torch_threads"] == 1
    assert figures["meets_targets"] == {name: (figures[name] <= target if name == "peak_rss_mb" else figures[name] >= target)
                                        for name, target in figures["targets"].items()}
    assert figures["targets"] == {"lines_per_s": 20_000, "ratio_to_baseline": 0.3, "peak_rss_mb": 1_500}  # the README's
    # Distinct masked lines as the model's template store masks them; each one the model has no
    # embedding for goes through the encoder exactly once, in the cold pass.
    from logllm_plugin.detector import load_detector

    store = load_detector(str(model), device="cpu").store
    detector = load_detector(str(model), device="cpu")
    masked = {store.mask(line) for line in data.read_text(encoding="utf-8").splitlines()}
    assert figures["distinct_masked_lines"] == len(masked)
    assert figures["novel_masked_lines"] == sum(text not in detector.encoder.cache for text in masked)
    assert figures["cold_encoded_lines"] == figures["novel_masked_lines"]
    assert figures["warm_breakdown"]["encoder_s"] == 0.0  # nothing new once the cache is filled
    for phase in ("cold", "warm"):
        shares = figures[f"{phase}_time_share"]
        assert all(v >= 0 for v in shares.values()) and sum(shares.values()) == pytest.approx(1.0, abs=0.01)
    assert figures["novel_p50_ms"] > 0 and figures["storm"] is False


def test_bench_pipeline_storm_flags_and_explains_every_sequence(seed_model_dir, restore_torch_threads):
    result = CliRunner().invoke(main, ["bench", "pipeline", "--model", str(seed_model_dir), "--data",
                                       str(DATA / "hdfs_400.log"), "--key-regex", r"blk_-?\d+", "--repeat", "1",
                                       "--batch", "16", "--threads", "1", "--storm", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["storm"] is True
    assert figures["anomalous_sequences"] == figures["sequences"] > 0
    assert figures["warm_breakdown"]["evidence_s"] > 0


def test_bench_pipeline_refuses_a_missing_data_file(tmp_path):
    result = CliRunner().invoke(main, ["bench", "pipeline", "--data", str(tmp_path / "nope.log")])
    assert result.exit_code == 2
    assert "does not exist" in result.output
