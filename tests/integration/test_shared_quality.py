"""Quality on the real labeled datasets, through the CLI only (the issue's 'must show').

Needs ../shared/datasets (or SHARED_DATASETS=DIR), which exists on the project's machines and in CI
but not in a user's clone: there the tests skip with that reason, under CI=true they fail (the
`shared_data` marker, tests/conftest.py). Slow: each trains a real default-size model.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED

pytestmark = [pytest.mark.slow, pytest.mark.shared_data()]


def _cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "logllm_plugin", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def train_and_eval(tmp_path, train_args: list[str], eval_args: list[str]) -> dict:
    """eval's JSON figures, with the trained model's metrics.json under "trained"."""
    model = tmp_path / "model"
    _cli("train", "small", *train_args, "--out", str(model))
    figures = json.loads(_cli("eval", "--model", str(model), *eval_args, "--json").strip().splitlines()[-1])
    return {**figures, "trained": json.loads((model / "metrics.json").read_text())}


def labels_in(path) -> list[int]:
    """The label of every sequence in a sequence JSONL file, in file order (read here, not by the code under test)."""
    with open(path, encoding="utf-8") as rows:
        return [int(json.loads(row)["label"]) for row in rows if row.strip()]


def test_hdfs_blocks_own_split_reaches_the_template_ceiling(tmp_path):
    data = str(SHARED / "hdfs_100k_blocks" / "sequences.jsonl")
    m = train_and_eval(tmp_path, ["--train", data, "--train-split", "train"], ["--data", data, "--split", "test"])
    assert m["f1"] >= 0.68, m
    assert m["f1"] >= m["baseline"]["f1"], m


def test_bgl_windows_first_70_percent_to_last_30_percent(tmp_path):
    data = str(SHARED / "bgl_20k" / "sequences_win20.jsonl")
    m = train_and_eval(tmp_path, ["--train", data, "--train-range", "0:0.7"], ["--data", data, "--range", "0.7:1"])
    # The target; seeds 42/1/2 measured 0.943/0.959/0.940 (README).
    assert m["f1"] >= 0.90, m
    assert m["f1"] >= m["baseline"]["f1"] + 0.2, m


def test_seed_synthetic_validation_to_test(tmp_path):
    m = train_and_eval(tmp_path, ["--train", str(SHARED / "seed_synthetic" / "validation_data.json")],
                       ["--data", str(SHARED / "seed_synthetic" / "test_data.json")])
    assert m["f1"] >= 0.99, m
    assert m["f1"] >= m["baseline"]["f1"], m


def test_bgl_2k_windows_beat_the_in_run_baseline(tmp_path):
    data = str(SHARED / "bgl_2k" / "sequences_win20.jsonl")
    m = train_and_eval(tmp_path, ["--train", data, "--train-range", "0:0.7"], ["--data", data, "--range", "0.7:1"])
    assert m["baseline"]["f1"] > 0.5, m  # a baseline that finds something: the comparison means something
    assert m["f1"] >= m["baseline"]["f1"], m


@pytest.mark.parametrize("name, rel, selection", [
    ("hdfs_2k_raw", "hdfs_2k_raw/sequences.jsonl", []),
    ("openstack", "openstack_loghub_instances/sequences.jsonl", ["--shuffle-seed", "7"]),
])
def test_sets_too_weak_to_learn_still_split_70_30_and_report_the_test_part_exactly(tmp_path, name, rel, selection):
    """hdfs_2k_raw (1-2 line fragments: `data check` puts the template-only F1 ceiling at 0.17) and
    openstack (weak per-instance labels) teach neither model nor baseline anything (README), so no
    F1 is promised. What is: the 70% / 30% selections are disjoint and cover the file, and eval's
    counts and figures are those of the test part's labels."""
    data = str(SHARED / rel)
    m = train_and_eval(tmp_path, ["--train", data, *selection, "--train-range", "0:0.7"],
                       ["--data", data, *selection, "--range", "0.7:1"])
    labels = labels_in(data)
    assert m["trained"]["train_sequences"] + m["trained"]["valid_sequences"] + m["n"] == len(labels), (name, m)
    assert m["n"] == len(labels) - round(len(labels) * 0.7), (name, m)
    if not selection:  # file order: the test part is the last 30% of the file
        assert m["anomalies"] == sum(labels[round(len(labels) * 0.7):]), (name, m)
    assert m["trained"]["train_anomalies"] + m["anomalies"] <= sum(labels), (name, m)
    for figures in (m, m["baseline"]):
        assert figures["tp"] + figures["fn"] == m["anomalies"] and figures["fp"] + figures["tn"] == m["n"] - m["anomalies"]
        tp, fp, fn = figures["tp"], figures["fp"], figures["fn"]
        assert figures["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp else 0.0, abs=1e-4), (name, figures)
