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
