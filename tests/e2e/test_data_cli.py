"""`logllm-plugin data ...` end to end: generate → split → check → llm-pairs, convert, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from logllm_plugin.cli import main
from tests.conftest import DATA, REPO


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logllm_plugin", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "gen.jsonl"
    result = _invoke("data", "generate", "--out", str(path), "--n", "300", "--seed", "5", "--anomaly-rate", "0.3")
    assert result.exit_code == 0, result.output
    return path


def test_generate_split_check_and_llm_pairs_chain_together(generated, tmp_path):
    rows = [json.loads(line) for line in generated.read_text().splitlines()]
    assert len(rows) == 300 and {r["label"] for r in rows} == {0, 1}

    split = _invoke("data", "split", "--in", str(generated), "--out", str(tmp_path / "parts"), "--stratify")
    assert split.exit_code == 0, split.output
    sizes = {p.stem: len(p.read_text().splitlines()) for p in (tmp_path / "parts").glob("*.jsonl")}
    assert sizes == {"train": 240, "valid": 30, "test": 30}

    checked = _invoke("data", "check", str(tmp_path / "parts"), "--json")
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert list(report["parts"]) == ["train", "valid", "test"] and report["errors"] == []
    assert report["conflicts"]["template_ids"]["f1_ceiling"] == 1.0

    pairs = _invoke("data", "llm-pairs", "--in", str(generated), "--out", str(tmp_path / "pairs.jsonl"))
    assert pairs.exit_code == 0, pairs.output
    chat = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(chat) == sum(r["label"] for r in rows)
    assert all([m["role"] for m in c["messages"]] == ["system", "user", "assistant"] for c in chat)
    # the very prompts `train llm` trains on at its defaults: anomalies among normal lines, seed 0
    from logllm_plugin.readers import read_sequence_file
    from trainers.llm import LLMTrainConfig
    from trainers.llm_data import build_pairs

    defaults = LLMTrainConfig()
    trained_on = build_pairs(list(read_sequence_file(generated)), context_lines=defaults.context_lines,
                             seed=defaults.seed, max_lines=defaults.max_lines)
    assert [c["messages"][:2] for c in chat] == [p.messages for p in trained_on]
    assert any(p.n_lines > len(r["lines"]) for p, r in zip(trained_on, (r for r in rows if r["label"] == 1)))


def test_check_prints_a_readable_report_and_conflicts_fail_only_with_strict(tmp_path):
    lines = ["user 1 logged in", "user 1 logged out"]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "lines": lines, "label": int(i < 2)}) + "\n" for i in range(6)))
    plain = _cli("data", "check", str(path))
    assert plain.returncode == 0, plain.stderr
    assert "label conflicts in all: 2 of 2 anomalies" in plain.stdout and "F1 ceiling" in plain.stdout
    strict = _cli("data", "check", str(path), "--strict")
    assert strict.returncode == 1


def test_convert_then_train_ready_file(tmp_path):
    out = tmp_path / "hdfs.jsonl"
    result = _invoke("data", "convert", "--from", "text", "--in", str(DATA / "hdfs_400.log"), "--out", str(out),
                     "--key-regex", r"blk_-?\d+")
    assert result.exit_code == 0, result.output
    assert "wrote 400 sequences (400 lines; 0 anomalous, 400 unlabeled)" in result.stdout
    assert len(out.read_text().splitlines()) == 400


# ----------------------------------------------------------------------------------- bad input
def test_invalid_utf8_fails_convert_with_the_line_named_and_lenient_converts(tmp_path):
    path = tmp_path / "bad.log"
    path.write_bytes(b"job 1 started\njob \xff 2 started\n")
    out = tmp_path / "out.jsonl"
    proc = _cli("data", "convert", "--from", "text", "--window", "5", "--in", str(path), "--out", str(out))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "line 2: invalid UTF-8" in proc.stderr and "--lenient" in proc.stderr
    assert not out.exists()  # nothing half-written
    ok = _cli("data", "convert", "--from", "text", "--window", "5", "--in", str(path), "--out", str(out), "--lenient")
    assert ok.returncode == 0, ok.stderr
    assert "invalid utf8 lines: 1" in ok.stderr and out.exists()


def test_missing_labels_fail_check_and_llm_pairs(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "lines": ["a 1", "b 2"]}) + "\n" for i in range(4)))
    proc = _cli("data", "check", str(path))
    assert proc.returncode == 1 and "ERROR: no sequence has a label" in proc.stdout
    assert _cli("data", "check", str(path), "--allow-unlabeled").returncode == 0
    pairs = _cli("data", "llm-pairs", "--in", str(path), "--out", str(tmp_path / "p.jsonl"))
    assert pairs.returncode != 0 and "no sequence has a label" in pairs.stderr and "Traceback" not in pairs.stderr


def test_mixed_formats_fail_with_a_clear_message(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"id": "a", "lines": ["x 1"], "label": 0}) + "\n"
                    + json.dumps({"message": "a record, not a sequence"}) + "\n"
                    + json.dumps({"id": "b", "lines": ["y 2"], "label": 1}) + "\n")
    check = _cli("data", "check", str(path))
    assert check.returncode == 1 and "1 lines/items are not sequences" in check.stdout
    split = _cli("data", "split", "--in", str(path), "--out", str(tmp_path / "parts"))
    assert split.returncode != 0 and "skipped malformed: 1" in split.stderr and "Traceback" not in split.stderr
    convert = _cli("data", "convert", "--from", "jsonl-records", "--in", str(DATA / "seed_train.jsonl"),
                   "--out", str(tmp_path / "o.jsonl"))
    assert convert.returncode != 0 and "already is sequence JSONL" in convert.stderr


def test_bad_generate_options_are_usage_errors():
    result = _invoke("data", "generate", "--out", "/dev/null", "--categories", "timeout,gremlins")
    assert result.exit_code == 2 and "unknown categories gremlins" in result.output
