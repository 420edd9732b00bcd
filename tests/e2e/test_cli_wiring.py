"""What SREs hit when they wire the CLI in (issue 16, items 5-11), with the embedded default model."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from logllm_plugin.cli import main
from tests.conftest import DATA, REPO

HDFS = DATA / "hdfs_400.log"
KEY = ["--key-regex", r"blk_-?\d+"]


def _run(args, env=None):
    result = CliRunner().invoke(main, args, env=env)
    return result


def _rows(result):
    return [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]


# ----------------------------------------------------------------- item 5: numeric options
def test_max_lines_below_the_default_min_lines_just_works():
    result = _run(["detect", "--input", str(HDFS), "--max-lines", "5", "--show", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    assert rows and max(len(r["line_numbers"]) for r in rows) == 5


@pytest.mark.parametrize("args", [
    ["detect", "--input", str(HDFS), "--max-lines", "-1"],
    ["detect", "--input", str(HDFS), "--max-lines", "0"],
    ["detect", "--input", str(HDFS), "--server", "127.0.0.1:1", "--timeout-s", "0"],
    ["eval", "--data", str(DATA / "seed_test.jsonl"), "--max-lines", "0"],
    ["analyze", "--input", str(HDFS), "--max-lines", "-3"],
    ["train", "small", "--train", str(DATA / "seed_train.jsonl"), "--out", "unused", "--epochs", "0"],
    ["serve", "--port", "70000"],
    ["serve", "--max-batch", "0"],
    ["serve", "--grace-s", "-1"],
    ["otel", "bridge", "--forward", "127.0.0.1:1", "--max-lines", "0"],
    ["otel", "bridge", "--forward", "127.0.0.1:1", "--idle-s", "0"],
    ["es", "annotate", "--url", "http://127.0.0.1:1", "--index", "x", "--page-size", "0"],
    ["data", "generate", "--out", "unused", "--anomaly-rate", "1.5"],
    ["bench", "server", "--requests", "0"],
])
def test_every_number_option_is_checked_by_click_with_one_line(args):
    result = _run(args)
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert re.search(r"Error: Invalid value for '--[a-z-]+'", result.output), result.output


def test_a_min_lines_set_above_max_lines_is_one_clear_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("sequencer:\n  min_lines: 8\n")
    result = _run(["detect", "--input", str(HDFS), "--max-lines", "5", "--config", str(config)])
    assert result.exit_code == 1 and not isinstance(result.exception, ValueError)
    assert "min_lines (8) must not exceed max_lines (5)" in result.output


# ------------------------------------------------- item 6: --config and LOGLLM_ everywhere
def test_detect_takes_the_environment_then_config_then_flags(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("sequencer:\n  max_lines: 4\n")
    sizes = {}
    for name, args, env in (
        ("env", [], {"LOGLLM_SEQUENCER__MAX_LINES": "3"}),
        ("file", ["--config", str(config)], {}),
        ("env over file", ["--config", str(config)], {"LOGLLM_SEQUENCER__MAX_LINES": "2"}),
        ("flag over env", ["--max-lines", "7"], {"LOGLLM_SEQUENCER__MAX_LINES": "2"}),
    ):
        result = _run(["detect", "--input", str(HDFS), "--show", "jsonl", *args], env=env)
        assert result.exit_code == 0, (name, result.output)
        sizes[name] = max(len(r["line_numbers"]) for r in _rows(result))
    assert sizes == {"env": 3, "file": 4, "env over file": 2, "flag over env": 7}


def test_eval_takes_config_and_environment(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("sequencer:\n  max_lines: [4\n")  # eval reads it: a syntax error must surface
    result = _run(["eval", "--data", str(HDFS), "--config", str(config)])
    assert result.exit_code == 1 and f"not valid YAML: {config}: line " in result.output, result.output
    result = _run(["eval", "--data", str(HDFS)], env={"LOGLLM_SEQUENCER__MAX_LINES": "zero"})
    assert result.exit_code == 1 and "sequencer.max_lines must be an integer" in result.output, result.output


@pytest.mark.parametrize("command", [
    ["detect", "--input", str(HDFS), "--show", "jsonl"],
    ["analyze", "--input", str(DATA / "seed_test.jsonl"), "--json"],
])
def test_an_unknown_logllm_variable_is_a_warning_naming_the_closest_setting(command):
    result = _run(command, env={"LOGLLM_SEQUENCR__MAX_LINES": "3", "LOGLLM_SERVER_TOKEN": "x",
                                "LOGLLM_ES_API_KEY": "not-a-setting-but-known"})
    assert result.exit_code == 0, result.output
    assert "LOGLLM_SEQUENCR__MAX_LINES is not a setting" in result.stderr
    assert "did you mean LOGLLM_SEQUENCER__MAX_LINES?" in result.stderr
    assert "did you mean LOGLLM_SERVER__TOKEN?" in result.stderr
    assert "LOGLLM_ES_API_KEY" not in result.stderr


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    from logllm_plugin.config import ConfigError, load_config

    bad = tmp_path / "broken.yaml"
    bad.write_text("server:\n  port: 1\n  host: [oops\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad, environ={})
    assert f"not valid YAML: {bad}: line " in str(caught.value)
    assert "<unicode string>" not in str(caught.value)


# --------------------------------------------------------------- item 7: one token-file helper
@pytest.mark.parametrize("command", [
    ["analyze", "--input", str(DATA / "seed_test.jsonl"), "--server", "127.0.0.1:1"],
    ["detect", "--input", str(DATA / "seed_test.jsonl"), "--server", "127.0.0.1:1"],
    ["otel", "bridge", "--forward", "127.0.0.1:1", "--server", "127.0.0.1:1"],
    ["es", "backfill", "--url", "http://127.0.0.1:1", "--backend", "elasticsearch", "--index", "x",
     "--server", "127.0.0.1:1", "--from", "2024-01-01T00:00:00Z", "--to", "2024-01-02T00:00:00Z"],
    ["feedback", "--input", str(DATA / "seed_test.jsonl"), "--server", "127.0.0.1:1", "--as", "normal"],
])
@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_a_bad_token_file_is_one_line_on_every_command(command, problem, tmp_path):
    token_file = tmp_path / "token"
    if problem == "empty":
        token_file.write_text("  \n")
    # A subprocess with a timeout: a bridge that accepted an empty token would serve until killed.
    out = subprocess.run([sys.executable, "-m", "logllm_plugin", *command, "--token-file", str(token_file)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    expected = "No such file or directory" if problem == "missing" else "is empty"
    assert f"Error: --token-file {token_file}" in out.stderr and expected in out.stderr, out.stderr


def test_no_cli_module_reads_a_token_file_by_itself():
    for path in sorted((REPO / "logllm_plugin").glob("cli*.py")):
        text = path.read_text()
        assert not re.search(r"Path\(token_file\)|open\(token_file", text), path.name


# --------------------------------------------------------- items 8 and 9: detect's JSONL
def test_detect_output_file_and_piped_stdout_are_the_same_jsonl(tmp_path):
    out = tmp_path / "verdicts.jsonl"
    result = _run(["detect", "--input", str(HDFS), *KEY, "--output", str(out)])  # stdout is not a terminal
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written and _rows(result) == written
    assert "sequences," not in result.stdout  # no table on a pipe


def test_detect_jsonl_maps_back_to_the_input_in_input_order():
    result = _run(["detect", "--input", str(HDFS), *KEY, "--max-lines", "4", "--show", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    text = HDFS.read_text().splitlines()
    numbers = [n for r in rows for n in r["line_numbers"]]
    assert sorted(numbers) == list(range(1, len(text) + 1))  # every input line once
    assert [r["line_numbers"][0] for r in rows] == sorted(r["line_numbers"][0] for r in rows)
    for r in rows:
        assert r["key"] and all(r["key"] in text[n - 1] for n in r["line_numbers"])
        assert r["evidence_lines"] == [text[r["line_numbers"][i] - 1] for i in r["evidence"]]


def test_detect_category_is_the_knowledge_base_class():
    from logllm_plugin.analyzers.knowledge_base import load_knowledge_base

    classes, generic = load_knowledge_base()
    names = {c.name for c in classes} | {generic.name}
    result = _run(["detect", "--input", str(DATA / "seed_test.jsonl"), "--show", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    anomalous = [r for r in rows if r["label"] == "anomalous"]
    assert anomalous and {r["category"] for r in anomalous} <= names
    assert {r["category"] for r in anomalous} - {generic.name}  # real classes, not only "anomaly"
    assert all(r["category"] == "normal" for r in rows if r["label"] == "normal")
    assert all(r["line_numbers"] is None for r in rows)  # sequence files carry no input line numbers


# ------------------------------------------------------------- item 10: train small output
def test_train_small_off_a_terminal_prints_epochs_and_warns_on_tiny_data(tmp_path):
    rows = [json.loads(line) for line in (DATA / "seed_train.jsonl").read_text().splitlines()]
    few = [r for r in rows if r["label"] == 1][:3] + [r for r in rows if r["label"] == 0][:3]
    data = tmp_path / "six.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in few))
    config = tmp_path / "tiny.yaml"
    config.write_text("model:\n  hidden_size: 32\n  num_layers: 1\n  num_heads: 2\n  expert_ffn_size: 64\n"
                      "  max_positions: 32\ntraining:\n  batch_size: 16\n")
    out = subprocess.run([sys.executable, "-m", "logllm_plugin", "train", "small", "--train", str(data), "--out",
                          str(tmp_path / "m"), "--config", str(config), "--epochs", "3"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    epochs = re.findall(r"^epoch (\d)/3 \((dense|gated)\): loss [0-9.]+", out.stderr, re.M)
    assert [e[0] for e in epochs] == ["1", "2", "3"], out.stderr
    assert re.search(r"^validation \(.*; \d+ sequences, \d+ anomalous\): precision", out.stdout, re.M), out.stdout
    assert "warning: trained on 5 sequences" in out.stderr  # one of six is held out
    assert re.search(r"warning: the validation figures rest on \d+ sequences", out.stderr), out.stderr


# ---------------------------------------------------------------- item 11: --valid agrees
def test_valid_help_readme_and_plugin_yaml_agree_on_the_holdout():
    import yaml

    from logllm_plugin.config import TrainingConfig

    defaults = TrainingConfig()
    percent = f"{round(defaults.valid_fraction * 100)}%"
    result = _run(["train", "small", "--help"])
    help_text = " ".join(result.output.split())
    valid_help = help_text.split("--valid TEXT", 1)[1].split(" --config ", 1)[0]
    assert defaults.holdout == "random"
    assert "random" in valid_help and percent in valid_help and "last part" not in valid_help.split(";")[0]
    assert "holdout: tail" in valid_help  # the other choice is named
    readme = (REPO / "README.md").read_text()
    train_line = next(line for line in readme.splitlines() if line.startswith("logllm-plugin train small --train train.jsonl"))
    assert f"random {percent}" in train_line
    plugin = yaml.safe_load((REPO / "configs" / "plugin.yaml").read_text())["training"]
    assert (plugin["valid_fraction"], plugin["holdout"]) == (defaults.valid_fraction, defaults.holdout)


# ------------------------------------------------------------- item 14: the encoder stays lazy
def test_detect_on_cached_templates_never_loads_the_encoder(tmp_path):
    """Lines whose templates the model has embeddings for need no encoder: no transformers import,
    no MiniLM load (the rest of the start-up is torch and the head; README "Start-up")."""
    one = tmp_path / "one.jsonl"
    one.write_text((REPO / "examples" / "requests.jsonl").read_text().splitlines()[0] + "\n")
    novel = tmp_path / "novel.log"
    novel.write_text("\n".join(HDFS.read_text().splitlines()[:10]) + "\n")
    seen = {}
    for name, path in (("cached", one), ("novel", novel)):
        out = subprocess.run([sys.executable, "-X", "importtime", "-m", "logllm_plugin", "-v", "detect", "--input",
                              str(path), "--show", "jsonl"], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        seen[name] = ("loaded line encoder" in out.stderr, bool(re.search(r"\| transformers$", out.stderr, re.M)))
    assert seen == {"cached": (False, False), "novel": (True, True)}
