"""The label-free detector's choice of views on held-out history, and the transition chance that
lets unseen transitions count on workflows but not on lines that turn up anywhere."""
import random

import numpy as np

from logllm_plugin.novelty import Calibration, HistoryTable, NoveltyScorer
from trainers.view_choice import HeldOutEvidence, Views, apply, choose_views, expected_f1


def history_with_a_wandering_line(n: int = 300, seed: int = 0) -> list[list[str]]:
    """start → a → b → c → stop; a third of the sequences get a benign WARN at a random place."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lines = ["start", "a", "b", "c", "stop"]
        if rng.random() < 0.33:
            lines.insert(rng.randrange(1, len(lines)), "WARN slow query")
        out.append(lines)
    return out


def test_a_new_successor_of_a_fixed_step_is_unlikely_and_one_of_a_wandering_line_is_not():
    table = HistoryTable.fit(history_with_a_wandering_line())
    fixed = table.new_transition_chance("a", "c")  # a skipped step: a is always followed by b or the WARN
    wandering = table.new_transition_chance("WARN slow query", "start")
    assert fixed < 0.02, fixed
    assert wandering > 5 * fixed, (fixed, wandering)
    assert table.unseen_pairs(["start", "a", "c", "stop"], max_chance=0.05) == [2]
    assert table.min_new_transition_chance(["start", "a", "b", "c", "stop"]) == 2.0  # nothing unseen


def test_pair_counts_round_trip_and_old_tables_without_counts_still_load():
    table = HistoryTable.fit([["a", "b"], ["a", "b"], ["a", "c"]])
    data = table.to_dict()
    again = HistoryTable.from_dict(data)
    assert again.pairs == {("a", "b"): 2, ("a", "c"): 1}
    del data["pair_counts"]
    old = HistoryTable.from_dict(data)
    assert old.pairs == {("a", "b"): 1, ("a", "c"): 1}


def test_the_scorer_counts_only_unlikely_transitions_when_the_calibration_says_so():
    table = HistoryTable.fit(history_with_a_wandering_line())
    skipped = ["start", "a", "c", "stop"]
    new_neighbour = ["start", "a", "b", "c", "WARN slow query", "stop"]
    if ("c", "WARN slow query") in table.pairs:  # make sure the example really is unseen
        new_neighbour = ["WARN slow query", "start", "a", "b", "c", "stop"]
    assert table.unseen_pairs(new_neighbour)
    every = NoveltyScorer(table, Calibration(use_pairs=True, pair_chance=1.0, use_counts=False))
    unlikely = NoveltyScorer(table, Calibration(use_pairs=True, pair_chance=0.05, use_counts=False))
    assert every.score(skipped)[0] >= 0.5 and every.score(new_neighbour)[0] >= 0.5
    assert unlikely.score(skipped)[0] >= 0.5
    assert unlikely.score(new_neighbour)[0] < 0.5


def evidence(line, pair, count, copies: int = 10):
    """Validation evidence, each sequence `copies` times (a choice needs 100 normal sequences)."""
    rep = lambda xs, kind: np.repeat(np.array(xs, dtype=kind), copies)  # noqa: E731
    return HeldOutEvidence(rep(line, float), rep(pair, float), rep(count, bool))


def labels(normal: int, anomalous: int, copies: int = 10) -> list[int]:
    return [0] * normal * copies + [1] * anomalous * copies


def model(flags, copies: int = 10) -> list[bool]:
    return np.repeat(np.array(flags, dtype=bool), copies).tolist()


def test_transitions_are_chosen_where_they_catch_anomalies_that_normal_history_never_shows():
    # 10 normal, 10 anomalous; only unseen transitions (chance 0.001) tell the anomalies apart
    ev = evidence([-1] * 20, [2.0] * 10 + [0.001] * 10, [False] * 20)
    default = Calibration(line_distance=0.2, use_pairs=False, use_counts=True)
    views, report = choose_views(default, ev, model([False] * 20), labels(10, 10))
    assert views.pair_chance is not None and views.pair_chance <= 1.0
    assert report["best"]["recall"] == 1.0 and report["best"]["false_positive_rate"] == 0.0
    apply(views, default)
    assert default.use_pairs and default.pair_chance == views.pair_chance


def test_transitions_that_every_normal_sequence_shows_are_left_out_and_ties_keep_the_default():
    # every sequence holds a likely unseen transition (interleaved logs); unseen lines catch the anomalies
    ev = evidence([-1] * 10 + [0.5] * 10, [0.4] * 20, [False] * 20)
    default = Calibration(line_distance=0.2, use_pairs=False, use_counts=True)
    views, _ = choose_views(default, ev, model([False] * 20), labels(10, 10))
    assert views == Views(0.2, None, True, True)  # the default: pairs off, and ties keep the rest


def test_a_model_that_flags_normal_history_without_catching_more_is_left_out():
    ev = evidence([-1] * 10 + [0.5] * 10, [2.0] * 20, [False] * 20)
    model_flags = [True] * 3 + [False] * 7 + [True] * 10  # 30% false positives, nothing new caught
    default = Calibration(line_distance=0.2, use_pairs=False, use_counts=False)
    views, report = choose_views(default, ev, model(model_flags), labels(10, 10))
    assert not views.use_model
    assert report["default"]["false_positive_rate"] == 0.3


def test_a_validation_too_small_to_resolve_false_positives_keeps_the_default():
    ev = evidence([-1] * 20, [2.0] * 10 + [0.001] * 10, [False] * 20, copies=1)
    default = Calibration(line_distance=0.2, use_pairs=False, use_counts=True)
    views, report = choose_views(default, ev, [False] * 20, labels(10, 10, copies=1))
    assert views == Views(0.2, None, True, True) and "too few" in report["note"]


def test_expected_f1_weighs_false_positives_by_the_assumed_share():
    assert expected_f1(1.0, 0.0) == 1.0
    assert expected_f1(0.0, 0.0) == 0.0
    # at 5% anomalies, 10% false positives sink precision to about a third
    assert abs(expected_f1(1.0, 0.1) - 2 * (0.05 / 0.145) / (1 + 0.05 / 0.145)) < 1e-9


def test_a_detector_whose_views_leave_the_model_out_ignores_its_score(tmp_path):
    import json

    from logllm_plugin.detector import Detector
    from logllm_plugin.records import LogSequence
    from tests.conftest import tiny_config
    from tests.unit.test_labelfree import make
    from trainers.small import train_small

    history = make(200, 0.0, seed=1)
    train_small([LogSequence(id=s.id, lines=s.lines) for s in history], None, tiny_config(epochs=4, seed=0),
                tmp_path / "m", normal_only=True)
    meta_file = tmp_path / "m" / "detector.json"
    meta = json.loads(meta_file.read_text())
    assert isinstance(meta["novelty"]["use_model"], bool)
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["view_choice"]["chosen"]  # the figures behind the choice are kept
    normal = make(40, 0.0, seed=5)

    def flagged(use_model: bool) -> int:
        meta["novelty"].update(model_threshold=1e-9, use_model=use_model)  # the model alone would flag all
        meta_file.write_text(json.dumps(meta))
        detector = Detector.load(tmp_path / "m", device="cpu")
        if not use_model:  # left out: not even run (its score would be ignored)
            detector.score_batch = lambda batch: (_ for _ in ()).throw(AssertionError("model ran"))
        return sum(v.label == "anomalous" for v in detector.detect(normal))

    assert flagged(True) == len(normal)
    assert flagged(False) < len(normal) // 4
    broken = [list(s.lines) for s in normal[:5]]
    broken[0].insert(2, "ERROR ledger write failed for order 1234")  # an unseen line: novelty alone flags it
    meta["novelty"].update(model_threshold=0.999999, use_model=False)
    meta_file.write_text(json.dumps(meta))
    verdicts = Detector.load(tmp_path / "m", device="cpu").detect(broken)
    assert verdicts[0].label == "anomalous" and verdicts[0].evidence and verdicts[0].category == "anomaly"
