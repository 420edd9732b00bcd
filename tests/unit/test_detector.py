"""The detector on a tiny model trained once on the bundled seed sample."""
import json

import pytest

from logllm_plugin.artifacts import ModelDirError
from logllm_plugin.detector import Detector
from logllm_plugin.featurize import windows
from logllm_plugin.readers import read_sequence_file
from tests.conftest import DATA


@pytest.fixture(scope="module")
def detector(seed_model_dir):
    return Detector.load(seed_model_dir, device="cpu")


def test_trained_model_separates_the_held_out_seed_sample(detector):
    test = list(read_sequence_file(DATA / "seed_test.jsonl"))
    verdicts = detector.detect(test)
    correct = sum((v.label == "anomalous") == (s.label == 1) for v, s in zip(verdicts, test))
    assert correct / len(test) > 0.9
    assert all(0.0 <= v.score <= 1.0 for v in verdicts)


def test_anomalous_verdict_points_at_the_error_lines(detector):
    normal = [s for s in read_sequence_file(DATA / "seed_test.jsonl") if s.label == 0][0]
    broken = list(normal.lines)
    broken.insert(3, "[2025-07-13 10:09:10.913] [api_file] [FATAL] User user_8162 no space left on device")
    verdict = detector.detect([broken])[0]
    assert verdict.label == "anomalous"
    assert 3 in verdict.evidence
    assert detector.detect([normal.lines])[0].evidence == []


def test_long_sequences_are_scored_in_windows_taking_the_highest(detector):
    normal = [s for s in read_sequence_file(DATA / "seed_test.jsonl") if s.label == 0]
    long_lines = [line for s in normal[:10] for line in s.lines]  # far beyond max_positions=32
    assert len(long_lines) > 100
    fault = "[2025-07-13 10:09:10.913] [api_file] [FATAL] User user_1 no space left on device"
    with_fault = long_lines[:90] + [fault] + long_lines[90:]
    calm, faulty = detector.detect([long_lines, with_fault])
    assert faulty.score > calm.score
    # The verdict is that of the best 32-line window holding the fault.
    holding = [(s, e) for s, e in windows(len(with_fault), 32) if s <= 90 < e]
    assert len(holding) >= 2  # half-overlapping windows
    by_window = detector.detect([with_fault[s:e] for s, e in holding])
    assert faulty.score == pytest.approx(max(v.score for v in by_window), abs=1e-5)
    # The fatal line alone makes a window anomalous (as in the short sequence above), so the long
    # one is too, and its evidence points at the line's position in the whole sequence, not the window.
    assert (calm.label, faulty.label) == ("normal", "anomalous")
    assert 90 in faulty.evidence


def test_novel_templates_are_counted_per_sequence(detector):
    lines = ["[2025-07-13 10:00:00.000] [api_user] [INFO] Health check passed",
             "quantum flux capacitor 7 overheated", "quantum flux capacitor 9 overheated",
             "the moon is made of cheese"]
    assert detector.detect([lines])[0].novel_templates == 2


def test_model_directory_from_another_version_is_refused_clearly(seed_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(seed_model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["format_version"] = 99
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelDirError, match="format"):
        Detector.load(copy)


def test_directory_that_is_not_a_model_is_refused_clearly(tmp_path):
    with pytest.raises(ModelDirError, match="missing"):
        Detector.load(tmp_path)


def test_an_empty_sequence_is_rejected(detector):
    with pytest.raises(ValueError, match="at least one line"):
        detector.detect([[]])


def test_repeated_sequences_are_scored_once_and_get_the_verdict_they_get_alone(detector, monkeypatch):
    seqs = list(read_sequence_file(DATA / "seed_test.jsonl"))[:12]
    alone = [detector.detect([s])[0] for s in seqs]
    detector.verdict_cache.clear()
    calls = []
    real = detector.score_batch
    monkeypatch.setattr(detector, "score_batch", lambda batch: calls.append(len(batch.sequences)) or real(batch))
    batch = [seqs[i % 12] for i in range(60)]  # each sequence five times, interleaved
    together = detector.detect(batch)
    assert calls == [12]
    for i, verdict in enumerate(together):
        expected = alone[i % 12]
        assert verdict.id == batch[i].id
        assert (verdict.label, verdict.evidence, verdict.category, verdict.novel_templates) == \
            (expected.label, expected.evidence, expected.category, expected.novel_templates)
        assert verdict.score == pytest.approx(expected.score, abs=1e-5)
    together[0].evidence.append(99)  # verdicts of repeated sequences do not share mutable state
    assert 99 not in together[12].evidence


def test_a_sequence_seen_before_is_answered_from_the_verdict_cache(detector, monkeypatch):
    seqs = list(read_sequence_file(DATA / "seed_test.jsonl"))[:5]
    detector.verdict_cache.clear()
    first = detector.detect(seqs)
    calls = []
    real = detector.score_batch
    monkeypatch.setattr(detector, "score_batch", lambda batch: calls.append(len(batch.sequences)) or real(batch))
    renamed = [type(s)(id=f"again-{s.id}", lines=list(s.lines)) for s in seqs]
    again = detector.detect(renamed + [["a line never seen before", "and another"]])
    assert calls == [1]  # only the new sequence went through the model
    assert [v.id for v in again[:5]] == [f"again-{s.id}" for s in seqs]
    assert [(v.label, v.score, v.evidence) for v in again[:5]] == [(v.label, v.score, v.evidence) for v in first]
    detector.settings.threshold, before = 0.0, detector.settings.threshold
    try:  # another threshold is another question: not answered from the cache
        assert {v.label for v in detector.detect(seqs)} == {"anomalous"}
    finally:
        detector.settings.threshold = before


def test_line_groups_gather_every_position_of_each_distinct_line_in_first_seen_order():
    import numpy as np

    from logllm_plugin.detector import line_groups

    groups = line_groups(np.array([7, 3, 7, 9, 3, 7]))
    assert [g.tolist() for g in groups] == [[0, 2, 5], [1, 4], [3]]


def test_evidence_is_the_distinct_line_whose_absence_lowers_the_score_most_with_all_its_copies():
    import numpy as np

    from logllm_plugin.featurize import FeaturizedBatch, FeaturizedSequence

    rows = np.array([0, 1, 0, 2, 0])  # line 0 three times, lines 1 and 2 once
    batch = FeaturizedBatch([FeaturizedSequence(np.array([5, 6, 5, 7, 5]), rows)], np.zeros((3, 4), np.float32))
    groups = [np.array([0, 2, 4]), np.array([1]), np.array([3])]
    # Without line 0 (every copy) the logit falls by 4, without line 2 by 3: both are evidence, all
    # copies of line 0 first, capped at three positions.
    assert Detector._pick_evidence(batch, 0, 5.0, 0, 5, groups, [1.0, 4.9, 2.0]) == [0, 2, 4]
    assert Detector._pick_evidence(batch, 0, 5.0, 0, 5, groups, [4.0, 4.9, 1.0]) == [3]
    # Nothing lowers the score (the anomaly is in what is missing): novel lines, else the top line.
    novel = FeaturizedBatch([FeaturizedSequence(np.array([5, 0, 5, 7, 5]), rows)], batch.table)
    assert Detector._pick_evidence(novel, 0, 5.0, 0, 5, groups, [5.5, 5.2, 6.0]) == [1]
    assert Detector._pick_evidence(batch, 0, 5.0, 0, 5, groups, [5.5, 5.2, 6.0]) == [1]


def test_model_calls_cut_to_fewer_padded_lines_give_the_same_verdicts(detector, monkeypatch):
    """Model calls are bounded by padded lines (MAX_BATCH_TOKENS) to cap attention memory; where a
    batch is cut changes no verdict (the README's "speed-ups that change no verdict")."""
    import logllm_plugin.detector as detector_module

    seqs = list(read_sequence_file(DATA / "seed_test.jsonl"))[:40]
    detector.verdict_cache.clear()
    whole = detector.detect(seqs)
    real, chunks = detector_module._chunks_by_tokens, []

    def small_chunks(order, lengths, batch_size, max_tokens=40):
        found = list(real(order, lengths, batch_size, max_tokens))
        chunks.extend(found)
        return found

    monkeypatch.setattr(detector_module, "_chunks_by_tokens", small_chunks)
    detector.verdict_cache.clear()
    cut = detector.detect(seqs)
    assert len(chunks) >= 10  # 40 sequences of 6-16 lines, at most 40 padded lines a call
    assert [(v.label, v.evidence, v.category) for v in cut] == [(v.label, v.evidence, v.category) for v in whole]
    assert [v.score for v in cut] == pytest.approx([v.score for v in whole], abs=1e-5)


def _faulty_seed_sequences(count: int = 12):
    fault = "[2025-07-13 10:09:10.913] [api_file] [FATAL] User user_8162 no space left on device"
    normal = [s for s in read_sequence_file(DATA / "seed_test.jsonl") if s.label == 0][:count]
    out = []
    for k, seq in enumerate(normal):
        lines = list(seq.lines)
        lines.insert(k % len(lines), fault)
        out.append(lines)
    return out, fault


@pytest.fixture
def evidence_settings(detector):
    before = (detector.settings.evidence, detector.settings.max_occlusion_lines)
    detector.verdict_cache.clear()
    yield detector.settings
    detector.settings.evidence, detector.settings.max_occlusion_lines = before
    detector.verdict_cache.clear()


def test_occlusion_evidence_of_a_batch_is_what_each_sequence_gets_alone(detector, evidence_settings):
    evidence_settings.evidence = "occlusion"
    sequences, _ = _faulty_seed_sequences()
    together = detector.detect(sequences)
    detector.verdict_cache.clear()
    alone = [detector.detect([lines])[0] for lines in sequences]
    assert [v.evidence for v in together] == [v.evidence for v in alone]
    assert [v.score for v in together] == pytest.approx([v.score for v in alone], abs=1e-5)
    assert sum(v.label == "anomalous" for v in together) >= len(sequences) - 1


def test_gradient_evidence_points_at_the_fault_as_occlusion_does(detector, evidence_settings):
    sequences, fault = _faulty_seed_sequences()
    evidence_settings.evidence = "gradient"
    before = detector.timings.gradient_windows
    by_gradient = detector.detect(sequences)
    assert detector.timings.gradient_windows - before == sum(v.label == "anomalous" for v in by_gradient)
    flagged = [(lines, v) for lines, v in zip(sequences, by_gradient) if v.label == "anomalous"]
    assert flagged
    hits = sum(lines.index(fault) in v.evidence for lines, v in flagged)
    assert hits >= 0.9 * len(flagged)


def test_auto_evidence_occludes_small_windows_and_takes_gradients_for_larger_ones(detector, evidence_settings):
    import numpy as np

    sequences, _ = _faulty_seed_sequences()
    evidence_settings.evidence = "occlusion"
    exact = detector.detect(sequences)
    evidence_settings.evidence = "gradient"
    detector.verdict_cache.clear()
    by_gradient = detector.detect(sequences)
    distinct = [len({detector.store.lookup(line).text for line in lines}) for lines in sequences]
    cut = int(np.median(distinct))
    evidence_settings.evidence, evidence_settings.max_occlusion_lines = "auto", cut
    detector.verdict_cache.clear()
    mixed = detector.detect(sequences)
    assert [v.label for v in mixed] == [v.label for v in exact]  # the method changes evidence, never verdicts
    for n, verdict in enumerate(mixed):
        if verdict.label == "anomalous":
            assert verdict.evidence == (exact if distinct[n] <= cut else by_gradient)[n].evidence
    # ...and depends on the sequence alone, not on the rest of its call
    detector.verdict_cache.clear()
    assert [detector.detect([lines])[0].evidence for lines in sequences] == [v.evidence for v in mixed]


def test_an_unknown_evidence_method_is_refused_at_once():
    from logllm_plugin.detector import DetectorSettings

    with pytest.raises(ValueError, match="evidence"):
        DetectorSettings(evidence="shap")


def test_training_embeds_in_float32_while_the_saved_config_keeps_the_scoring_dtype(seed_model_dir):
    import numpy as np

    from logllm_plugin.config import EncoderConfig
    from logllm_plugin.encoder import LineEncoder

    meta = json.loads((seed_model_dir / "detector.json").read_text())
    assert meta["encoder"]["dtype"] == "auto"  # what scoring of new lines uses
    texts = json.loads((seed_model_dir / "embedding_texts.json").read_text())[:12]
    saved = LineEncoder()
    saved.load_cache(seed_model_dir)
    cached = np.stack([saved.cache[t] for t in texts])
    full = LineEncoder(EncoderConfig(dtype="float32")).embed(texts)
    half = LineEncoder(EncoderConfig(dtype="bfloat16")).embed(texts)
    assert np.abs(cached - full).max() < 1e-5
    assert np.abs(half - full).max() > 1e-4  # bf16 is told apart: the check above could fail


def test_a_model_directory_that_names_no_encoder_dtype_scores_in_float32_as_when_it_was_trained(seed_model_dir, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(seed_model_dir, old)
    meta = json.loads((old / "detector.json").read_text())
    del meta["encoder"]["dtype"]
    (old / "detector.json").write_text(json.dumps(meta))
    assert Detector.load(old, device="cpu").encoder.config.dtype == "float32"
    assert Detector.load(seed_model_dir, device="cpu").encoder.config.dtype == "auto"


def test_a_model_directory_encodes_new_lines_with_the_placeholder_it_was_trained_with(seed_model_dir, tmp_path):
    import shutil

    import numpy as np

    from logllm_plugin.config import EncoderConfig
    from logllm_plugin.encoder import LineEncoder

    assert json.loads((seed_model_dir / "detector.json").read_text())["encoder"]["param_text"] == "<*>"
    line = "volume <*> detached from node <*> after <*> retries"
    for param_text in ("*", None):  # None: a directory from before the setting existed
        other = tmp_path / f"dir-{param_text}"
        shutil.copytree(seed_model_dir, other)
        meta = json.loads((other / "detector.json").read_text())
        if param_text is None:
            del meta["encoder"]["param_text"]
        else:
            meta["encoder"]["param_text"] = param_text
        (other / "detector.json").write_text(json.dumps(meta))
        detector = Detector.load(other, device="cpu")
        expected = param_text or "<*>"
        assert detector.encoder.config.param_text == expected
        as_trained = LineEncoder(EncoderConfig(dtype=detector.encoder.config.dtype, param_text=expected)).embed([line])
        assert np.allclose(detector.encoder.encode([line]), as_trained, atol=1e-5)
    star, legacy = (Detector.load(tmp_path / name, device="cpu").encoder.encode([line]) for name in ("dir-*", "dir-None"))
    assert float(star[0] @ legacy[0]) < 0.999  # the two placeholders embed differently: the check above can fail


def test_a_half_precision_head_scores_while_evidence_keeps_the_float32_weights(seed_model_dir, monkeypatch):
    import torch

    import logllm_plugin.encoder as encoder_module
    from logllm_plugin.detector import resolve_head_dtype

    sequences, fault = _faulty_seed_sequences()
    full = Detector.load(seed_model_dir, device="cpu")
    full.set_dtype("float32")
    half = Detector.load(seed_model_dir, device="cpu")
    half.set_dtype("bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert next(half.evidence_model.parameters()).dtype == torch.float32
    for method in ("occlusion", "gradient"):
        full.settings.evidence = half.settings.evidence = method
        full.verdict_cache.clear(), half.verdict_cache.clear()
        exact, fast = full.detect(sequences), half.detect(sequences)
        assert max(abs(a.score - b.score) for a, b in zip(exact, fast)) > 0  # bf16 really scored
        assert [v.label for v in fast] == [v.label for v in exact]
        assert [v.evidence for v in fast] == [v.evidence for v in exact]
        assert sum(sequences[n].index(fault) in v.evidence for n, v in enumerate(fast) if v.label == "anomalous") > 0
    # on a CPU the head stays float32 unless asked: a bf16 score depends on its batch
    monkeypatch.setattr(encoder_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_head_dtype("auto", "cpu") == "float32"
    assert Detector.load(seed_model_dir, device="cpu").head_dtype == "float32"
    assert resolve_head_dtype("bfloat16", "cpu") == "bfloat16"
