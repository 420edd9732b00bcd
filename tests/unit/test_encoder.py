import numpy as np

from logllm_plugin.encoder import LineEncoder, default_encoder_path


def test_default_encoder_is_the_packaged_minilm():
    path = default_encoder_path()
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()


def test_similar_templates_embed_closer_than_unrelated_ones():
    encoder = LineEncoder()
    a, b, c = encoder.encode([
        "Connection to database <*> timed out",
        "Database connection timeout after <*> ms",
        "User <*> uploaded a profile picture",
    ])
    assert a.shape == (384,)
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-4)
    assert float(a @ b) > float(a @ c) + 0.1


def test_cached_templates_do_not_reach_the_model_again(tmp_path):
    encoder = LineEncoder()
    encoder.encode(["disk <*> is full", "disk <*> is full", "job <*> started"])
    assert encoder.encoded_count == 2
    encoder.encode(["job <*> started"])
    assert encoder.encoded_count == 2
    encoder.save_cache(tmp_path)
    fresh = LineEncoder()
    fresh.load_cache(tmp_path)
    vec = fresh.encode(["disk <*> is full"])
    assert fresh.encoded_count == 0 and fresh._model is None  # served from the stored cache
    assert np.allclose(vec[0], encoder.cache["disk <*> is full"])


LINES = [
    "Jul <*> <*> <*> kernel[<*>]: AirPort: Link Down on awdl0. Reason <*> (Unspecified).",
    "disk <*> is full",
    "<*> <*> LabSZ sshd[<*>]: pam_unix(sshd:auth): authentication failure; logname= uid=<*> euid=<*> tty=ssh "
    "ruser= rhost=<*> user=root",
    "job <*> started",
    "Failed password for invalid user webmaster from <*> port <*> ssh2",
]


def test_a_line_embeds_the_same_alone_and_in_a_batch_of_longer_and_shorter_lines():
    from logllm_plugin.config import EncoderConfig

    encoder = LineEncoder(EncoderConfig(dtype="float32", batch_size=2))  # batches that mix lengths
    together = encoder.embed(LINES)
    alone = np.stack([encoder.embed([line])[0] for line in LINES])
    assert np.allclose(together, alone, atol=1e-5)


def test_bfloat16_embeddings_agree_with_float32_ones():
    from logllm_plugin.config import EncoderConfig

    full = LineEncoder(EncoderConfig(dtype="float32")).embed(LINES)
    half = LineEncoder(EncoderConfig(dtype="bfloat16")).embed(LINES)
    assert half.dtype == np.float32
    cosines = (full * half).sum(axis=1)
    assert cosines.min() > 0.995, cosines


def test_auto_dtype_takes_bfloat16_only_on_a_cpu_that_has_it(monkeypatch):
    from logllm_plugin import encoder as module

    monkeypatch.setattr(module, "cpu_has_native_bf16", lambda: True)
    assert module.resolve_dtype("auto", "cpu") == "bfloat16"
    assert module.resolve_dtype("auto", "cuda") == "float32"
    assert module.resolve_dtype("float16", "cuda") == "float16"
    monkeypatch.setattr(module, "cpu_has_native_bf16", lambda: False)
    assert module.resolve_dtype("auto", "cpu") == "float32"


def test_an_unknown_encoder_dtype_is_a_config_problem():
    from logllm_plugin.config import EncoderConfig

    assert any("encoder.dtype" in p for p in EncoderConfig(dtype="int4").problems())


def test_the_encoder_reads_each_masked_variable_as_its_placeholder_while_the_cache_keeps_the_masked_line():
    from logllm_plugin.config import EncoderConfig

    star = LineEncoder(EncoderConfig(dtype="float32", param_text="*"))
    legacy = LineEncoder(EncoderConfig(dtype="float32"))  # the default placeholder: "<*>" itself
    masked = LINES[0]
    assert star.model_text(masked) == masked.replace("<*>", "*")
    assert legacy.model_text(masked) == masked
    vec = star.encode([masked])[0]
    assert masked in star.cache  # keyed by the masked line, as templates and novelty look it up
    assert np.allclose(vec, legacy.encode([masked.replace("<*>", "*")])[0], atol=1e-5)
    assert float(vec @ legacy.encode([masked])[0]) < 0.999  # the placeholder changes what is embedded
    # what it buys: "<*>" is three MiniLM tokens, "*" one
    tokens = [len(e._tokenizer(e.model_text(masked))["input_ids"]) for e in (star, legacy)]
    assert tokens[0] == tokens[1] - 2 * masked.count("<*>")


def test_a_placeholder_with_spaces_or_none_is_a_config_problem():
    from logllm_plugin.config import EncoderConfig

    assert EncoderConfig().problems() == []
    for bad in ("", "a b", "x" * 17):
        assert any("encoder.param_text" in p for p in EncoderConfig(param_text=bad).problems())
