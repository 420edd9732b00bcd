"""Quality on the real labeled datasets, through the CLI only (the issue's 'must show').

Needs ../shared/datasets, which exists on the project's machines and in CI but not in a user's
clone; there the tests are skipped with that reason. Slow: each trains a real default-size model.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_data,
    pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/datasets (present on project machines and CI only)"),
]


def _cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "logllm_plugin", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def train_and_eval(tmp_path, train_args: list[str], eval_args: list[str]) -> dict:
    model = str(tmp_path / "model")
    _cli("train", "small", *train_args, "--out", model)
    return json.loads(_cli("eval", "--model", model, *eval_args, "--json").strip().splitlines()[-1])


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


@pytest.mark.parametrize("name, rel, train_sel, eval_sel", [
    ("bgl_2k", "bgl_2k/sequences_win20.jsonl", ["--train-range", "0:0.7"], ["--range", "0.7:1"]),
    ("hdfs_2k_raw", "hdfs_2k_raw/sequences.jsonl", ["--train-range", "0:0.7"], ["--range", "0.7:1"]),
    ("openstack", "openstack_loghub_instances/sequences.jsonl", ["--shuffle-seed", "7", "--train-range", "0:0.7"],
     ["--shuffle-seed", "7", "--range", "0.7:1"]),
])
def test_never_worse_than_the_in_run_baseline(tmp_path, name, rel, train_sel, eval_sel):
    data = str(SHARED / rel)
    m = train_and_eval(tmp_path, ["--train", data, *train_sel], ["--data", data, *eval_sel])
    assert m["f1"] >= m["baseline"]["f1"], (name, m)
