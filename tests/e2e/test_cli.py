"""The CLI end to end: train on the bundled sample, eval, detect; bad input gives clear messages."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from logllm_plugin.cli import main
from tests.conftest import DATA, REPO

TINY = ["--epochs", "4", "--seed", "3"]


@pytest.fixture(scope="module")
def tiny_config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text("model:\n  hidden_size: 32\n  num_layers: 1\n  num_heads: 2\n  expert_ffn_size: 64\n"
                    "  max_positions: 32\ntraining:\n  batch_size: 16\n  learning_rate: 0.003\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_config_file) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    result = CliRunner().invoke(main, ["train", "small", "--train", str(DATA / "seed_train.jsonl"), "--out", str(out),
                                       "--config", str(tiny_config_file), *TINY])
    assert result.exit_code == 0, result.output
    return out


def test_training_writes_a_complete_model_directory(trained):
    for name in ("config.json", "model.safetensors", "templates.json", "embeddings.safetensors",
                 "embedding_texts.json", "detector.json", "metrics.json", "baseline.json"):
        assert (trained / name).is_file(), name
    assert not list(trained.glob("*.bin")) and not list(trained.glob("*.pkl"))  # no pickle anywhere
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["valid"]["f1"] > 0.8


def test_training_is_deterministic_for_a_seed(trained, tmp_path, tiny_config_file):
    again = tmp_path / "again"
    result = CliRunner().invoke(main, ["train", "small", "--train", str(DATA / "seed_train.jsonl"), "--out", str(again),
                                       "--config", str(tiny_config_file), *TINY])
    assert result.exit_code == 0, result.output
    assert (again / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()


def test_eval_json_last_line_holds_the_figures_and_the_baseline(trained, tmp_path):
    result = CliRunner().invoke(main, ["eval", "--model", str(trained), "--data", str(DATA / "seed_test.jsonl"),
                                       "--json", "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # Recomputed here from `detect`'s verdicts (a separate command) and the file's own labels.
    labels = {row["id"]: row["label"] for row in map(json.loads, (DATA / "seed_test.jsonl").read_text().splitlines())}
    detected = CliRunner().invoke(main, ["detect", "--model", str(trained), "--input", str(DATA / "seed_test.jsonl"),
                                         "--show", "jsonl"])
    verdicts = [json.loads(x) for x in detected.stdout.splitlines() if x.startswith("{")]
    flagged = {v["id"]: v["label"] == "anomalous" for v in verdicts}
    tp = sum(flagged[i] and labels[i] == 1 for i in labels)
    fp = sum(flagged[i] and labels[i] == 0 for i in labels)
    fn = sum(not flagged[i] and labels[i] == 1 for i in labels)
    tn = len(labels) - tp - fp - fn
    assert (figures["tp"], figures["fp"], figures["fn"], figures["tn"]) == (tp, fp, fn, tn)
    assert figures["precision"] == pytest.approx(tp / (tp + fp), abs=1e-4)
    assert figures["recall"] == pytest.approx(tp / (tp + fn), abs=1e-4)
    assert figures["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-4)
    assert figures["accuracy"] == pytest.approx((tp + tn) / len(labels), abs=1e-4)
    assert figures["pr_auc"] == pytest.approx(average_precision(verdicts, labels), abs=0.01)
    assert figures["f1"] > 0.9
    assert figures["baseline"]["kind"].startswith("logistic regression")
    assert figures["n"] == 200
    assert (tmp_path / "report" / "pr_curve.png").stat().st_size > 1000
    assert (tmp_path / "report" / "confusion_matrix.png").stat().st_size > 1000


def average_precision(verdicts, labels) -> float:
    """Area under the precision-recall steps, by hand: sum over the anomalies, ranked by score, of
    the precision at each (ties counted together, as a threshold cannot split them)."""
    ranked = sorted(verdicts, key=lambda v: -v["score"])
    positives = sum(labels.values())
    total, seen, hits, k = 0.0, 0, 0, 0
    while k < len(ranked):
        tie = [v for v in ranked[k:] if v["score"] == ranked[k]["score"]]
        new_hits = sum(labels[v["id"]] for v in tie)
        seen, hits, k = seen + len(tie), hits + new_hits, k + len(tie)
        total += new_hits / positives * (hits / seen)
    return total


def test_detect_writes_one_verdict_per_sequence(trained, tmp_path):
    out = tmp_path / "verdicts.jsonl"
    result = CliRunner().invoke(main, ["detect", "--model", str(trained), "--input", str(DATA / "seed_test.jsonl"),
                                       "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 200
    assert set(rows[0]) >= {"id", "label", "score", "category", "evidence", "novel_templates"}
    anomalous = [r for r in rows if r["label"] == "anomalous"]
    assert anomalous and all(r["evidence"] for r in anomalous)
    assert [json.loads(x) for x in result.stdout.splitlines()] == rows  # stdout off a terminal: the same JSONL


def test_detect_groups_plain_text_logs_by_a_key_regex(trained):
    result = CliRunner().invoke(main, ["detect", "--model", str(trained), "--input", str(DATA / "hdfs_400.log"),
                                       "--key-regex", r"blk_-?\d+", "--show", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert all(r["id"].startswith("blk_") for r in rows)
    assert sum(r["novel_templates"] > 0 for r in rows) > 0  # HDFS lines are foreign to a seed-trained model


def test_default_model_detects_without_any_model_argument():
    result = CliRunner().invoke(main, ["detect", "--input", str(REPO / "examples" / "requests.jsonl"), "--show", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert len(rows) == 40
    assert {r["label"] for r in rows} == {"normal", "anomalous"}


def test_training_data_with_one_class_only_is_refused_with_advice(tmp_path, tiny_config_file):
    data = tmp_path / "normal.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "lines": ["a ok", "b ok"], "label": 0}) + "\n" for i in range(20)))
    result = CliRunner().invoke(main, ["train", "small", "--train", str(data), "--out", str(tmp_path / "m"),
                                       "--config", str(tiny_config_file), *TINY])
    assert result.exit_code != 0
    assert "--normal-only" in result.output and "Traceback" not in result.output


def test_normal_only_training_learns_from_history_with_injected_anomalies(tmp_path, tiny_config_file):
    normal = [s for s in map(json.loads, (DATA / "seed_train.jsonl").read_text().splitlines()) if s["label"] == 0]
    data = tmp_path / "history.jsonl"
    data.write_text("".join(json.dumps({"id": s["id"], "lines": s["lines"]}) + "\n" for s in normal))
    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["train", "small", "--train", str(data), "--out", str(out), "--normal-only",
                                       "--config", str(tiny_config_file), *TINY])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_anomalies"] > 0
    assert set(metrics["categories"]) >= {"dropped", "duplicated", "reordered", "foreign"}


@pytest.mark.parametrize("extra, epochs", [([], 3), (["--epochs", "2"], 2)])
def test_normal_only_training_takes_learning_modes_epochs_unless_told(tmp_path, tiny_config_file, extra, epochs):
    """`train small --normal-only` trains the model learning mode trains, for learning.epochs, not
    training.epochs (the supervised count); --epochs still decides."""
    normal = [s for s in map(json.loads, (DATA / "seed_train.jsonl").read_text().splitlines()) if s["label"] == 0]
    data = tmp_path / "history.jsonl"
    data.write_text("".join(json.dumps({"id": s["id"], "lines": s["lines"]}) + "\n" for s in normal))
    config = tmp_path / "c.yaml"
    config.write_text(tiny_config_file.read_text().replace("training:\n", "training:\n  epochs: 7\n")
                      + "learning:\n  epochs: 3\n")
    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["train", "small", "--train", str(data), "--out", str(out), "--normal-only",
                                       "--config", str(config), "--seed", "3", *extra])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == epochs


# ------------------------------------------------------------------------- bad input, no traceback
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logllm_plugin", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


@pytest.mark.parametrize("content, expect", [
    (b"", "contains no log lines"),
    (b"\n\n   \n", "contains no log lines"),
])
def test_empty_input_is_a_clear_error(tmp_path, content, expect):
    path = tmp_path / "in.log"
    path.write_bytes(content)
    proc = _cli("detect", "--input", str(path))
    assert proc.returncode != 0
    assert expect in proc.stderr and "Traceback" not in proc.stderr


def test_bad_lines_are_counted_and_every_good_line_is_scored(tmp_path):
    path = tmp_path / "messy.jsonl"
    good = {"id": "ok", "lines": ["[2025-07-13 10:00:00.000] [api_user] [INFO] Health check passed"] * 6, "label": 0}
    path.write_bytes(b"\n".join([
        json.dumps(good).encode(),
        b"{not json",
        b"",
        json.dumps({"id": "bytes", "lines": ["caf\xc3\xa9 ok"] * 6}).encode().replace(b"\\u00e9", b"\xff"),
        json.dumps({"id": "huge", "lines": ["x" * 1_000_000, "short line 1"]}).encode(),
    ]) + b"\n")
    proc = _cli("detect", "--input", str(path), "--show", "jsonl")
    assert proc.returncode == 0, proc.stderr
    ids = [json.loads(x)["id"] for x in proc.stdout.splitlines() if x.startswith("{")]
    assert ids == ["ok", "bytes", "huge"]
    assert "skipped malformed: 1" in proc.stderr and "skipped empty: 1" in proc.stderr
    assert "long lines: 1" in proc.stderr


def test_invalid_utf8_in_text_logs_is_kept_and_counted(tmp_path):
    path = tmp_path / "bad.log"
    path.write_bytes(b"service started ok\n\xff\xfe broken bytes here 12\nservice stopped ok\n")
    proc = _cli("detect", "--input", str(path), "--show", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert "invalid utf8 lines: 1" in proc.stderr
    rows = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(rows) == 1  # three records, one key, one (short) sequence


def test_model_directory_from_another_version_is_a_clear_error(tmp_path, trained):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained, old)
    meta = json.loads((old / "detector.json").read_text())
    meta["format_version"] = 0
    (old / "detector.json").write_text(json.dumps(meta))
    proc = _cli("detect", "--model", str(old), "--input", str(DATA / "seed_test.jsonl"))
    assert proc.returncode != 0
    assert "not supported" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_input_file_is_a_clear_error(tmp_path):
    proc = _cli("detect", "--input", str(tmp_path / "nope.log"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "nope.log" in proc.stderr


def test_importing_the_package_does_not_import_torch():
    code = "import sys, logllm_plugin, logllm_plugin.cli, logllm_plugin.config; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.strip() == "False", proc.stderr


def test_analyze_explains_each_anomalous_sequence_with_masked_evidence():
    done = _cli("analyze", "--input", str(REPO / "examples" / "requests.jsonl"), "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    detected = _cli("detect", "--input", str(REPO / "examples" / "requests.jsonl"), "--show", "jsonl")
    anomalous = [json.loads(line)["id"] for line in detected.stdout.splitlines()
                 if json.loads(line)["label"] == "anomalous"]
    assert [r["id"] for r in rows] == anomalous
    for row in rows:
        assert row["summary"] and row["suggestion"] and row["evidence"]
        assert row["analyzer"] == "knowledge_base" and row["status"] == "ok"
    text = done.stdout
    assert "user_" not in text.lower().replace("<user_", "")  # user ids from the input are masked
    assert "<USER_1>" in text
