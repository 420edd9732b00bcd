import dataclasses

import numpy as np

from logllm_plugin.featurize import FeaturizedBatch, FeaturizedSequence
from logllm_plugin.records import LogSequence
from trainers.evaluation import best_f1_threshold, binary_metrics
from trainers.injection import KINDS, inject_anomalies, truncated_copies
from trainers.small import build_examples, length_bucketed_batches, split_holdout


def _feats(rows):
    rows = np.asarray(rows, dtype=np.int64)
    return FeaturizedSequence(template_ids=rows + 1, rows=rows)


def test_identical_windows_merge_into_one_weighted_example():
    batch = FeaturizedBatch([_feats([0, 1, 2]), _feats([0, 1, 2]), _feats([0, 1, 2]), _feats([2, 1, 0])],
                            np.zeros((3, 4), np.float32))
    seqs = [LogSequence(id=str(i), lines=["x"] * 3, label=0) for i in range(4)]
    examples = build_examples(batch, seqs, ["normal", "anomaly"], max_positions=8)
    assert sorted(e.weight for e in examples) == [1.0, 3.0]


def test_a_very_long_sequence_gives_at_most_the_window_cap_but_reaches_its_end():
    batch = FeaturizedBatch([_feats(list(range(1000)))], np.zeros((1000, 4), np.float32))
    examples = build_examples(batch, [LogSequence(id="long", lines=["x"] * 1000, label=1)], ["normal", "anomaly"],
                              max_positions=10, max_windows=5)
    assert len(examples) == 5
    assert examples[-1].rows[-1] == 999 and examples[0].rows[0] == 0


def test_batches_cover_every_example_once_and_group_similar_lengths():
    rng = np.random.default_rng(0)
    examples = build_examples(
        FeaturizedBatch([_feats(list(range(n))) for n in range(1, 65)], np.zeros((64, 4), np.float32)),
        [LogSequence(id=str(n), lines=["x"] * n, label=n % 2) for n in range(1, 65)], ["normal", "anomaly"], 128)
    batches = length_bucketed_batches(examples, 8, rng)
    assert sorted(i for b in batches for i in b) == list(range(64))
    spread = max(max(len(examples[i].rows) for i in b) - min(len(examples[i].rows) for i in b) for b in batches)
    assert spread <= 8


def test_injected_anomalies_are_labeled_changed_and_deterministic():
    normal = [LogSequence(id=f"n{i}", lines=[f"step {k} of job" for k in "abcdef"], label=None) for i in range(40)]
    first = inject_anomalies(normal, rate=0.5, seed=3)
    again = inject_anomalies(normal, rate=0.5, seed=3)
    broken = [s for s in first if s.label == 1]
    assert len(broken) == 20 and all(s.label == 0 for s in first[:40])
    assert {s.category for s in broken} == set(KINDS)
    assert all(s.lines != normal[0].lines for s in broken)
    assert [s.lines for s in first] == [s.lines for s in again]


def test_sequences_of_one_or_two_lines_still_get_their_share_of_injected_anomalies():
    """No inner step to drop in 1-2 lines: the kinds that fit are injected instead (HDFS fragments
    of one or two lines used to get none, and --normal-only failed saying it needed two classes)."""
    normal = [LogSequence(id=f"n{i}", lines=[f"block {i} opened", f"block {i} closed"][: 1 + i % 2]) for i in range(100)]
    broken = [s for s in inject_anomalies(normal, rate=0.3, seed=1) if s.label == 1]
    assert len(broken) == 30
    assert {s.category for s in broken} == {"duplicated", "reordered", "foreign"}


def test_a_dropped_step_is_an_inner_one_so_a_cut_session_is_not_taught_as_broken():
    lines = [f"step {k} of job" for k in "abcdef"]
    normal = [LogSequence(id=f"n{i}", lines=list(lines), label=None) for i in range(200)]
    dropped = [s for s in inject_anomalies(normal, rate=1.0, seed=5) if s.category == "dropped"]
    assert len(dropped) == 50
    assert all(s.lines[0] == lines[0] and s.lines[-1] == lines[-1] and len(s.lines) == 5 for s in dropped)


def test_truncated_copies_are_normal_heads_and_tails_of_sequencer_made_history_only():
    normal = [LogSequence(id=f"n{i}", lines=[f"s{i} step {k}" for k in range(8)], label=0, closed_by="idle")
              for i in range(50)]
    grouped = [LogSequence(id=f"g{i}", lines=[f"block {i} step {k}" for k in range(8)], label=0) for i in range(50)]
    assert truncated_copies(grouped, share=0.4, seed=2) == []  # whole units: a block that stops early is news
    cuts = truncated_copies(normal + grouped, share=0.4, seed=2)
    assert len(cuts) == 20 and all(c.label == 0 for c in cuts)
    by_id = {s.id: s.lines for s in normal}
    heads = tails = 0
    for cut in cuts:
        whole = by_id[cut.id.split("~")[0]]
        assert 1 <= len(cut.lines) < len(whole)
        heads += whole[: len(cut.lines)] == cut.lines
        tails += whole[-len(cut.lines):] == cut.lines
    assert heads >= 10 and tails >= 5  # both ends are cut: end of input and input that starts mid-session
    assert [c.lines for c in cuts] == [c.lines for c in truncated_copies(normal, share=0.4, seed=2)]


def test_a_sequence_an_operator_marked_anomalous_keeps_its_label_and_is_never_copied():
    normal = [LogSequence(id=f"n{i}", lines=[f"step {k}" for k in "abcd"], label=0) for i in range(30)]
    marked = LogSequence(id="m", lines=["disk sda failed", "raid degraded", "rebuild"], label=1)
    out = inject_anomalies(normal + [marked], rate=0.5, seed=1)
    assert [s.label for s in out if s.id == "m"] == [1]
    assert not any(s.id.startswith("m~") for s in out)
    marked.closed_by = "end"
    assert not any(c.id.startswith("m~") for c in truncated_copies(normal + [marked], share=1.0, seed=1))


def test_threshold_separates_cleanly_separable_scores():
    labels = [0, 0, 0, 0, 1, 1, 1]
    scores = [0.01, 0.02, 0.1, 0.2, 0.7, 0.8, 0.95]
    threshold = best_f1_threshold(labels, scores)
    assert 0.2 < threshold < 0.7
    assert binary_metrics(labels, scores, threshold)["f1"] == 1.0


def test_holdout_is_a_seeded_random_share_in_file_order_or_the_tail():
    seqs = [LogSequence(id=str(i), lines=["x"]) for i in range(100)]
    train, valid = split_holdout(seqs, 0.2, "random", seed=3)
    assert len(valid) == 20 and len(train) == 80
    assert sorted(s.id for s in train + valid) == sorted(s.id for s in seqs)  # disjoint, nothing lost
    assert [int(s.id) for s in valid] == sorted(int(s.id) for s in valid)  # file order kept
    assert max(int(s.id) for s in valid) - min(int(s.id) for s in valid) > 50  # spread, not a block
    assert [s.id for s in split_holdout(seqs, 0.2, "random", seed=3)[1]] == [s.id for s in valid]
    assert [s.id for s in split_holdout(seqs, 0.2, "random", seed=4)[1]] != [s.id for s in valid]
    tail_train, tail_valid = split_holdout(seqs, 0.2, "tail")
    assert [s.id for s in tail_valid] == [str(i) for i in range(80, 100)] and len(tail_train) == 80
    mixed_train, mixed_valid = split_holdout(seqs, 0.2, "mixed", seed=3)
    held = [int(s.id) for s in mixed_valid]
    assert len(held) == 20 and sorted(s.id for s in mixed_train + mixed_valid) == sorted(s.id for s in seqs)
    assert held[-10:] == list(range(90, 100)) and held == sorted(held)  # half the newest, file order kept
    assert max(held[:10]) < 90 and max(held[:10]) - min(held[:10]) > 30  # half spread over the rest


def test_label_free_training_takes_learning_epochs_and_holdout_unless_null():
    from logllm_plugin.config import LearningConfig, PluginConfig

    config = PluginConfig()
    assert (config.label_free().training.epochs, config.label_free().training.holdout) == (12, "mixed")
    assert config.training.holdout == "random"  # supervised training keeps its own
    kept = dataclasses.replace(config, learning=LearningConfig(epochs=None, holdout=None)).label_free()
    assert (kept.training.epochs, kept.training.holdout) == (config.training.epochs, "random")
    assert LearningConfig(holdout="newest").problems() == ["learning.holdout must be random, tail, mixed or null, not 'newest'"]


def test_evidence_metrics_count_labeled_lines_among_the_evidence_of_flagged_sequences():
    from logllm_plugin.records import LogSequence, Verdict
    from trainers.evaluation import evidence_metrics

    def verdict(label, evidence):
        return Verdict(id="x", label=label, score=0.9, category="anomaly", evidence=evidence, novel_templates=0,
                       model_version="t")

    seqs = [LogSequence(id="a", lines=["l"] * 4, line_labels=[0, 1, 0, 1]),
            LogSequence(id="b", lines=["l"] * 3, line_labels=[0, 0, 1]),
            LogSequence(id="c", lines=["l"] * 3, line_labels=[0, 0, 0]),  # no labeled line: not counted
            LogSequence(id="d", lines=["l"] * 3, line_labels=[1, 0, 0])]  # not flagged: not counted
    verdicts = [verdict("anomalous", [1, 2]), verdict("anomalous", [0]), verdict("anomalous", [0]),
                verdict("normal", [])]
    assert evidence_metrics(seqs, verdicts) == {"sequences": 2, "precision": round(1 / 3, 4), "hit_rate": 0.5}
    assert evidence_metrics(seqs[2:], verdicts[2:]) is None


def test_history_sequences_with_the_rarest_lines_are_left_out_within_a_budget():
    from trainers.contamination import leave_out_rare, rare_line_sequences

    common = [["GET /a 200", "db query ok", "GET /b 200"]] * 480
    incident = [["GET /a 200", "ERROR pool exhausted after 30 s", "GET /b 500"]] * 2
    odd_but_normal = [["GET /a 200", f"cache warmed in region {r}"] for r in ("eu", "us", "ap")] * 2
    masked = common + incident + odd_but_normal  # 488: a line seen in <= 2 sequences is rare
    out = rare_line_sequences(masked, max_share=0.01)  # a budget of 4: the two rarest-line kinds first
    assert out[:2] == [480, 481] and len(out) == 4
    assert rare_line_sequences(masked, max_share=0.0) == []
    assert rare_line_sequences(common, max_share=0.05) == []  # nothing rare, nothing lost
    history = [LogSequence(id=f"s{n}", lines=list(lines), label=None) for n, lines in enumerate(masked)]
    history[480].label = 1  # an operator's labeled anomaly stays training data
    kept, left = leave_out_rare(history, lambda line: line, max_share=0.01)
    assert left == 4 and any(s.id == "s480" for s in kept) and not any(s.id == "s481" for s in kept)


def test_alarm_screen_leaves_out_a_repeated_incident_unless_alarm_words_are_this_systems_normal():
    from trainers.contamination import alarm_line_sequences, leave_out_alarming

    common = [["GET /a 200", "db query ok", "GET /b 200"]] * 490
    incident = [["GET /a 200", "upstream connection refused by <*>", "GET /b 502"]] * 6  # 6 holders: not rare
    routine = [["GET /a 200", "retry policy loaded", "GET /b 200"]] * 4  # seldom, but no alarm word
    masked = common + incident + routine
    assert alarm_line_sequences(masked, max_share=0.05) == list(range(490, 496))
    assert alarm_line_sequences(masked, max_share=0.0) == []
    # an alarm word in lines that thousands of sequences hold is this system's normal: kept
    assert alarm_line_sequences([["job failed over to standby", "ok"]] * 300 + incident, max_share=0.05) == list(range(300, 306))
    # a system whose normal traffic is full of seldom alarm-word lines (BGL-like): more than the
    # share hold one, so the words tell nothing and nothing is left out
    chatty = [["node up", f"ECC error corrected on DIMM {d % 40}"] for d in range(200)] + common[:200]
    assert alarm_line_sequences(chatty, max_share=0.05) == []
    history = [LogSequence(id=f"s{n}", lines=list(lines), label=None) for n, lines in enumerate(masked)]
    history[490].label = 1  # an operator's labeled anomaly stays training data
    kept, left = leave_out_alarming(history, lambda line: line, max_share=0.05)
    assert left == 5 and any(s.id == "s490" for s in kept) and not any(s.id == "s491" for s in kept)


def _trigram_embed(texts):
    """A deterministic stand-in for the line encoder: unit-norm hashed character trigrams, so lines
    that share most of their text lie close and unrelated lines lie far apart."""
    import zlib

    rows = np.zeros((len(texts), 512), dtype=np.float32)
    for r, text in enumerate(texts):
        padded = f"  {text}  "
        for i in range(len(padded) - 2):
            rows[r, zlib.crc32(padded[i:i + 3].encode()) % 512] += 1.0
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def _history_with_a_burst():
    """300 time-ordered windows of steady traffic; windows 60-67 are an incident that repeats its
    error lines (8 windows: not rare); window 250 holds a new variant of a known line."""
    steady = ["GET /api/users 200 in <*> ms", "db pool checkout ok", "GET /api/orders 200 in <*> ms",
              "cache hit ratio <*>", "GET /healthz 200"]
    history = [[steady[(n + k) % len(steady)] for k in range(5)] for n in range(300)]
    for n in range(60, 68):
        history[n] = ["GET /api/users 200 in <*> ms", "kernel: EXT4-fs error device sda1 journal aborted",
                      "raid controller reset: disk 3 offline", "GET /api/orders 503 in <*> ms"]
    history[250] = steady[:4] + ["GET /api/users 204 in <*> ms"]
    return history


def test_the_out_of_fold_screen_leaves_out_a_bursty_incident_that_rarity_misses():
    from trainers.contamination import out_of_fold_distances, out_of_fold_sequences, rare_line_sequences

    history = _history_with_a_burst()
    burst = list(range(60, 68))
    assert not set(rare_line_sequences(history, max_share=0.05)) & set(burst)  # 8 holders: not rare
    scores = out_of_fold_distances(history, _trigram_embed)
    assert (scores[burst] > 0.5).all()  # the error lines: nothing like them in the other half
    assert 0 < scores[250] < 0.3  # unseen in the other half, but a variant of a known line
    assert scores[[n for n in range(300) if n not in burst + [250]]].max() == 0.0
    assert out_of_fold_sequences(history, _trigram_embed, tolerance=0.3, max_share=0.05) == burst
    assert out_of_fold_sequences(history, _trigram_embed, tolerance=0.3, max_share=0.01) == burst[:3]  # the budget
    assert out_of_fold_sequences(history, _trigram_embed, tolerance=0.3, max_share=0.0) == []
    # steady traffic alone (the burst replaced): nothing flagged, nothing lost
    clean = [h for n, h in enumerate(history) if n not in burst]
    assert out_of_fold_sequences(clean, _trigram_embed, tolerance=0.3, max_share=0.1) == []


def test_the_out_of_fold_screen_keeps_labeled_anomalies_and_history_order():
    from trainers.contamination import screen_out_of_fold

    history = [LogSequence(id=f"s{n}", lines=list(lines), label=None)
               for n, lines in enumerate(_history_with_a_burst())]
    history[61].label = 1  # an operator's labeled anomaly stays training data
    kept, left = screen_out_of_fold(history, lambda line: line, _trigram_embed, tolerance=0.3, max_share=0.05)
    ids = [s.id for s in kept]
    assert left == 7 and "s61" in ids and not {f"s{n}" for n in (60, *range(62, 68))} & set(ids)
    assert ids == [s.id for s in history if s.id in set(ids)] and "s250" in ids


def test_oof_screen_share_is_validated():
    from logllm_plugin.config import TrainingConfig

    assert TrainingConfig().oof_screen_share == 0.0
    assert any("oof_screen_share" in p for p in TrainingConfig(oof_screen_share=0.5).problems())
    assert not TrainingConfig(oof_screen_share=0.1).problems()
