import pytest

from logllm_plugin.config import ConfigError, ModelConfig, PluginConfig, load_config


def test_defaults_load_without_a_file():
    config = load_config(None, environ={})
    assert config == PluginConfig()


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model:\n  hidden_size: -4\n  top_p: 2.0\n  colour: blue\n"
        "training:\n  epochs: many\nsequencer:\n  min_lines: 20\n  max_lines: 10\nnonsense: {}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    text = "\n".join(info.value.problems)
    assert "model.hidden_size" in text and "model.top_p" in text and "model.colour" in text
    assert "training.epochs must be an integer" in text
    assert "min_lines" in text
    assert "'nonsense' is not a known section" in text
    assert len(info.value.problems) >= 6


def test_broken_yaml_gives_a_clear_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path, environ={})


def test_precedence_is_cli_over_environment_over_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 3\n  seed: 5\nmodel:\n  hidden_size: 64\n")
    env = {"LOGLLM_TRAINING__EPOCHS": "7", "LOGLLM_MODEL__NUM_LAYERS": "3"}
    config = load_config(path, overrides={"training": {"epochs": 9, "seed": None}}, environ=env)
    assert config.training.epochs == 9  # CLI
    assert config.training.seed == 5  # file (CLI passed None = not given)
    assert config.model.num_layers == 3  # environment
    assert config.model.hidden_size == 64  # file


def test_original_paper_sizes_are_selectable():
    original = ModelConfig.original()
    assert (original.hidden_size, original.num_layers, original.num_heads) == (512, 6, 8)
    assert (original.num_experts, original.expert_ffn_size, original.top_p) == (4, 256, 0.8)
    assert original.problems() == []


def test_example_config_in_configs_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "configs" / "plugin.yaml"
    config = load_config(example, environ={})
    assert config.sequencer.max_lines == 15
    from logllm_plugin.config import PluginConfig

    assert config == PluginConfig()  # the file lists the defaults: it must not drift from the code


def test_an_environment_value_is_text_where_yaml_would_read_a_comment_and_null_where_it_says_null(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  threads: 2\n")
    env = {"LOGLLM_ENCODER__PARAM_TEXT": "#", "LOGLLM_SERVER__THREADS": "null"}
    config = load_config(path, environ=env)
    assert config.encoder.param_text == "#"  # not dropped as a YAML comment (null)
    assert config.server.threads is None  # the environment may set a setting back to null
