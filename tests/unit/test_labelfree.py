"""Label-free detection: the novelty table and rule, its calibration, and `train small --normal-only`
beside the novelty rule on workflows whose anomalies live in order and counts."""
import random

import numpy as np

from logllm_plugin.detector import Detector
from logllm_plugin.novelty import NoveltyScorer
from logllm_plugin.records import LogSequence
from tests.conftest import tiny_config
from trainers.evaluation import binary_metrics
from trainers.novelty import NOVELTY_FILE, HistoryTable, NoveltyRule, calibrate
from trainers.small import train_small


def hashed_embed(texts):
    """Unit vectors that differ per text (no encoder needed for the table tests)."""
    rows = []
    for t in texts:
        v = np.random.default_rng(abs(hash(t)) % (2**32)).normal(size=16)
        rows.append(v / np.linalg.norm(v))
    return np.array(rows)


def test_history_table_names_unseen_lines_pairs_and_counts_and_round_trips():
    table = HistoryTable.fit([["a", "b", "c"], ["a", "b", "b", "c"]])
    assert table.unseen_lines(["a", "x", "c"]) == [1]
    assert table.unseen_pairs(["a", "c"]) == [1]  # both known, never consecutive
    assert table.excess_counts(["a", "b", "b", "b"]) == [1, 2, 3]  # b at most twice in history
    again = HistoryTable.from_dict(table.to_dict())
    assert (again.support, again.max_count, again.pairs) == (table.support, table.max_count, table.pairs)
    rule = NoveltyRule(again)
    assert rule.predict([["a", "b", "c"], ["a", "c"], ["z"]]).tolist() == [0.0, 1.0, 1.0]


def test_calibration_keeps_transitions_for_fixed_workflows_and_drops_them_for_interleaved_logs():
    rng = random.Random(0)
    fixed = [["start", "work", "stop"] for _ in range(200)]
    words = [f"event{i}" for i in range(40)]
    interleaved = [rng.sample(words, 10) for _ in range(200)]  # every window a new order
    assert calibrate(fixed, hashed_embed).use_pairs
    loose = calibrate(interleaved, hashed_embed)
    assert not loose.use_pairs and loose.measured["pair_rate"] > 0.5


def test_where_most_normal_sequences_bring_a_new_message_type_a_new_line_alone_is_not_news():
    rng = random.Random(1)
    common = [f"event{i}" for i in range(10)]
    # a desktop's syslog: every window carries a message type the rest of history never printed
    chatty = [rng.sample(common, 6) + [f"message type {n} of a chatty daemon"] for n in range(200)]
    raised = calibrate(chatty, hashed_embed)
    assert raised.measured["variant_tolerance_flag_rate"] > 0.9  # at the tolerance: nearly all flagged
    assert raised.line_distance > 0 and raised.measured["line_flag_rate"] <= 0.03
    # where new lines are rare (one window in ten), the tolerance stays the cut, as on BGL
    quiet = [rng.sample(common, 7) + ([f"message type {n}"] if n % 10 == 0 else []) for n in range(200)]
    kept = calibrate(quiet, hashed_embed)
    assert kept.line_distance == 0.0 and "variant_tolerance_flag_rate" not in kept.measured


STEPS = ["order {id} received", "payment for order {id} authorized", "stock reserved for order {id}",
         "invoice {id} generated", "shipment for order {id} scheduled", "order {id} closed"]
RETRY = "payment gateway busy, retry {n} for order {id}"


def workflow(rng: random.Random, kind: str) -> list[str]:
    oid = rng.randint(1000, 9999)
    steps = list(STEPS)
    if kind == "swapped":
        i = rng.randrange(len(steps) - 1)
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
    lines = [s.format(id=oid) for s in steps]
    # normal payments retry 0-2 times; a retry storm (an order/count anomaly, no new line or pair) 6-9
    retries = rng.randint(6, 9) if kind == "storm" else rng.choice([0, 0, 1, 2])
    lines[2:2] = [RETRY.format(n=k + 1, id=oid) for k in range(retries)]
    if kind == "foreign":
        lines.insert(rng.randrange(1, len(lines)), f"ERROR ledger write failed for order {oid}")
    return lines


def make(n: int, anomaly_share: float, seed: int) -> list[LogSequence]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.choice(["swapped", "storm", "storm", "foreign"]) if rng.random() < anomaly_share else "normal"
        out.append(LogSequence(id=f"s{i}", lines=workflow(rng, kind), label=int(kind != "normal"), category=kind))
    return out


def _train_and_score(history, test, tmp_path):
    train_small([LogSequence(id=s.id, lines=s.lines) for s in history], None, tiny_config(epochs=12, seed=0),
                tmp_path / "m", normal_only=True)
    detector = Detector.load(tmp_path / "m", device="cpu")
    labels = [s.label for s in test]
    ours = binary_metrics(labels, [v.score for v in detector.detect(test)], detector.settings.threshold)
    table = NoveltyScorer.from_dict(__import__("json").loads((tmp_path / "m" / NOVELTY_FILE).read_text())).table
    rule = binary_metrics(labels, NoveltyRule(table).predict(
        [[detector.store.mask(x) for x in s.lines] for s in test]), 0.5)
    return ours, rule


def test_label_free_training_beats_the_novelty_rule_on_order_and_count_anomalies(tmp_path):
    history = make(400, 0.0, seed=1)
    test = make(300, 0.3, seed=2)
    ours, rule = _train_and_score(history, test, tmp_path)
    # the rule cannot see a retry storm: every line and every pair of it is in the history
    assert rule["recall"] <= 0.6, rule
    assert ours["f1"] >= rule["f1"] + 0.1 and ours["recall"] >= 0.8, (ours, rule)


def test_label_free_training_does_not_collapse_when_history_holds_three_percent_anomalies(tmp_path):
    history = make(400, 0.03, seed=3)
    assert 0 < sum(s.label for s in history) < 25
    test = make(300, 0.3, seed=4)
    ours, rule = _train_and_score(history, test, tmp_path)
    assert 0.0 < ours["precision"] and 0 < ours["tp"] + ours["fp"] < ours["n"], ours  # neither nothing nor all
    assert ours["fp"] <= 0.1 * (ours["n"] - ours["anomalies"]), ours
    assert ours["f1"] >= rule["f1"], (ours, rule)


def test_count_gate_keeps_the_model_unless_validation_favours_the_count_view():
    from trainers.small import choose_count_gate

    labels = [0] * 8 + [1] * 4
    counts = np.array([0.1] * 8 + [0.9] * 4)  # the count view separates validation perfectly
    weak_model = np.array([0.2] * 6 + [0.7] * 2 + [0.8, 0.8, 0.3, 0.3])
    gate, options = choose_count_gate(weak_model, 0.5, counts, labels)
    assert gate in ("count", "max") and options[gate]["f1"] == 1.0 > options["model"]["f1"]
    strong_model = np.array([0.1] * 8 + [0.9] * 4)
    assert choose_count_gate(strong_model, 0.5, counts, labels)[0] is None  # ties keep the model


def _detector_flags(scores, model_threshold):
    """The detector's label-free decision on the model view: shifted logit, compared with 0.5."""
    p = np.clip(np.asarray(scores, dtype=float), 1e-12, 1 - 1e-12)
    shift = np.log(model_threshold / (1 - model_threshold))
    return 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) - shift))) >= 0.5


def test_the_label_free_cut_does_not_sit_on_a_cluster_of_identical_normal_scores():
    """Identical held-out sequences score identically; the 98% quantile landing on their score
    must not leave the cut one rounding error away from flagging all of them."""
    from trainers.small import normal_fpr_threshold

    rng = np.random.default_rng(0)
    cluster = 0.6956275402616333  # one frequent workflow: 5% of held-out normal sequences
    normal = np.concatenate([rng.uniform(0.05, 0.6, 950), [cluster] * 50, rng.uniform(0.72, 0.9, 10)])
    labels = [0] * len(normal)
    valid = [LogSequence(id=str(i), lines=["x"], label=0) for i in range(len(normal))]
    assert np.quantile(normal, 0.98) == cluster  # the case: the quantile is the cluster's score
    cut = normal_fpr_threshold(0.3, valid, normal, labels, quantile=0.98)
    for eps in (-1e-7, -1e-12, 0.0, 1e-12, 1e-7):  # the same sequences, rounded or embedded a bit differently
        assert not _detector_flags([cluster + eps], cut).any(), eps
    assert _detector_flags([0.72], cut).all()  # the next higher held-out score is still flagged
    # ... and the cut keeps its decision when the held-out scores come in another order
    order = rng.permutation(len(normal))
    assert normal_fpr_threshold(0.3, valid, normal[order], labels, quantile=0.98) == cut
    # a best-F1 cut above the quantile wins as before
    assert normal_fpr_threshold(0.8, valid, normal, labels, quantile=0.98) == 0.8


def test_the_label_free_model_flags_no_held_out_normal_sequence_by_default():
    """The model's recall on validation is recall on injected anomalies, which it learns; its own
    cut therefore sits above every genuine held-out normal score, with a margin."""
    from trainers.small import normal_fpr_threshold

    rng = np.random.default_rng(1)
    normal = rng.uniform(0.05, 0.97, 1200)
    valid = [LogSequence(id=str(i), lines=["x"], label=0) for i in range(len(normal))]
    injected = rng.uniform(0.9, 1.0, 600)  # half of them score like the top normal ones
    scores = np.concatenate([normal, injected])
    labels = [0] * len(normal) + [1] * len(injected)
    cut = normal_fpr_threshold(0.5, valid + valid[:600], scores, labels)
    assert not _detector_flags(normal, cut).any()
    assert not _detector_flags([normal.max() + 1e-9], cut).any()  # the top one, rounded otherwise
    assert _detector_flags([0.999], cut).all()  # what scores above all normal history still flags


def test_the_label_free_cut_keeps_a_margin_when_the_quantile_is_the_top_score():
    from trainers.small import cut_above

    scores = [0.1, 0.2, 0.5, 0.5, 0.5]
    cut = cut_above(scores, 0.5)
    assert not _detector_flags([0.5 + 1e-7], cut).any() and _detector_flags([0.7], cut).all()


def test_the_label_free_trainer_leaves_a_bursty_incident_out_of_its_history_when_the_screen_is_on(tmp_path):
    """An incident repeating its error line over 12 consecutive requests is not rare (the rarity
    screen keeps it), so without the out-of-fold screen its line becomes "seen"; with it, the
    trainer (the one learning mode runs) leaves those requests out and the line stays novel."""
    import dataclasses
    import json

    rng = random.Random(7)
    history = [LogSequence(id=f"h{i}", lines=workflow(rng, "foreign" if 100 <= i < 112 else "normal"))
               for i in range(400)]
    error = "ERROR ledger write failed for order <*>"
    for share, expect_out, expect_seen in ((0.0, 0, True), (0.05, 12, False)):
        config = tiny_config(epochs=2, seed=0)
        config = dataclasses.replace(config, training=dataclasses.replace(
            config.training, oof_screen_share=share, leave_out_alarm_share=0.0))  # this screen alone
        outcome = train_small(list(history), None, config, tmp_path / f"m{share}", normal_only=True)
        table = NoveltyScorer.from_dict(json.loads((tmp_path / f"m{share}" / NOVELTY_FILE).read_text())).table
        assert outcome.metrics["left_out_rare"] == 0 and outcome.metrics["left_out_of_fold"] == expect_out, share
        assert (error in table.support) == expect_seen, (share, sorted(table.support))
        assert "order <*> received" in table.support


def test_the_label_free_trainer_leaves_an_incident_that_names_itself_out_of_its_history(tmp_path):
    """Eight requests that fail with the same error line are not rare (rarity keeps them), but the
    line says "failed": the default trainer leaves them out, so the line stays novel; with the
    alarm screen off it is learned as normal."""
    import dataclasses
    import json

    rng = random.Random(11)
    history = [LogSequence(id=f"h{i}", lines=workflow(rng, "foreign" if 200 <= i < 208 else "normal"))
               for i in range(400)]
    error = "ERROR ledger write failed for order <*>"
    for share, expect_out in ((0.05, 8), (0.0, 0)):
        config = tiny_config(epochs=2, seed=0)
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, leave_out_alarm_share=share))
        outcome = train_small(list(history), None, config, tmp_path / f"m{share}", normal_only=True)
        table = NoveltyScorer.from_dict(json.loads((tmp_path / f"m{share}" / NOVELTY_FILE).read_text())).table
        assert outcome.metrics["left_out_alarm"] == expect_out, share
        assert (error in table.support) == (expect_out == 0), share
