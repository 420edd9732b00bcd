"""Learning mode's pieces without a model: the history, the model store, operators' corrections."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from logllm_plugin.artifacts import ModelDirError
from logllm_plugin.learning.feedback import FeedbackError, FeedbackStore, sequence_signature
from logllm_plugin.learning.history import HistoryError, SequenceHistory
from logllm_plugin.learning.model_store import ModelStore

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "logllm_plugin" / "default_model"


# -- history ------------------------------------------------------------------------------------------
def test_history_counts_every_sequence_and_survives_a_restart(tmp_path):
    history = SequenceHistory(tmp_path, 1 << 20)
    history.append([["a 1", "b 2"], ["a 1", "b 2"], ["c"]])
    history.append([["d"]], source="payments")
    history.close()
    again = SequenceHistory(tmp_path, 1 << 20)
    assert again.count == 4
    assert [e.lines for e in again.entries()] == [["a 1", "b 2"], ["a 1", "b 2"], ["c"], ["d"]]
    assert {e.source for e in again.entries()} == {"default", "payments"}


def test_history_stays_under_its_cap_by_dropping_the_oldest_segments(tmp_path):
    cap = 1 << 16
    history = SequenceHistory(tmp_path, cap)
    for n in range(3000):
        history.append([[f"line number {n} with some padding text to fill the segment quickly"]])
    history.close()
    held = sum(p.stat().st_size for p in (tmp_path / "default").glob("seg-*.jsonl"))
    assert held <= cap + history.segment_bytes  # the open segment may run over by one append
    assert history.bytes_held == held  # what it counts is what is on disk
    kept = [e.lines[0] for e in history.entries()]
    assert kept[-1].startswith("line number 2999 ")
    assert not any(line.startswith("line number 0 ") for line in kept)
    assert history.count == len(kept) < 3000


def test_recent_gives_the_newest_window_over_sources_without_reading_every_segment(tmp_path, monkeypatch):
    history = SequenceHistory(tmp_path, 1 << 16)  # 4 KiB segments
    clock = iter(range(1, 10_000))
    monkeypatch.setattr("logllm_plugin.learning.history.time.time", lambda: float(next(clock)))
    for n in range(600):
        history.append([[f"request {n} handled by the web tier, padded to fill segments"]],
                       source="web" if n % 3 else "db")
    assert len(list((tmp_path / "web").glob("seg-*.jsonl"))) >= 4
    want = [e.lines for e in history.entries()][-50:]
    read = []
    real = SequenceHistory._segment_entries
    monkeypatch.setattr(SequenceHistory, "_segment_entries",
                        staticmethod(lambda seg, src: (read.append(seg), real(seg, src))[1]))
    assert [e.lines for e in history.recent(50)] == want
    assert [e.lines[0].split()[1] for e in history.recent(3)] == ["597", "598", "599"]
    segments = len(list(tmp_path.glob("*/seg-*.jsonl")))
    assert len(set(read)) < segments / 2, f"read {len(set(read))} of {segments} segments for 50 sequences"


def test_history_of_another_format_version_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "FORMAT.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(HistoryError, match="format 99.*new directory"):
        SequenceHistory(tmp_path, 1 << 20)


def test_a_history_directory_that_cannot_be_made_is_refused_at_start(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(HistoryError, match="history directory .*a-file/h: Not a directory"):
        SequenceHistory(tmp_path / "a-file" / "h", 1 << 20)


def test_a_write_failure_at_run_time_is_counted_and_never_raises(tmp_path):
    history = SequenceHistory(tmp_path, 1 << 20)
    history.append([["ok"]])
    history.close()
    shutil.rmtree(tmp_path / "default")
    (tmp_path / "default").write_text("a file where the source directory should be")
    assert history.append([["lost"], ["lost too"]]) == 0
    assert history.write_errors == 2 and history.received == 3


# -- model store --------------------------------------------------------------------------------------
def _built(store: ModelStore) -> Path:
    work = store.temp_dir()
    shutil.copytree(DEFAULT_MODEL, work / "model", ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return work / "model"


def test_publish_makes_versions_in_order_and_keeps_the_last_n(tmp_path):
    store = ModelStore(tmp_path, keep=2)
    published = [store.publish(_built(store), {"checks": {"n": i}}) for i in range(3)]
    assert published == ["v000001", "v000002", "v000003"]
    assert store.versions() == ["v000002", "v000003"] and store.current_version() == "v000003"
    assert not list(store.root.glob(".tmp-*/model"))


def test_rollback_and_promote_move_current_and_refuse_what_is_not_there(tmp_path):
    store = ModelStore(tmp_path, keep=5)
    for _ in range(2):
        store.publish(_built(store))
    assert store.rollback() == "v000001" and store.current_version() == "v000001"
    with pytest.raises(ModelDirError, match="nothing to roll back"):
        store.rollback()
    store.set_current("v000002")
    assert store.current_version() == "v000002"
    with pytest.raises(ModelDirError, match="v000009 is not in"):
        store.set_current("v000009")


def test_a_half_written_version_is_refused_and_temporaries_are_cleaned(tmp_path):
    store = ModelStore(tmp_path)
    (store.root / "v000001").mkdir()
    (store.root / "v000001" / "config.json").write_text("{}")
    with pytest.raises(ModelDirError, match="missing"):
        store.set_current("v000001")
    store.temp_dir()
    assert store.remove_stale_temps() == 1


# -- feedback -----------------------------------------------------------------------------------------
def test_feedback_is_keyed_by_the_masked_sequence_and_persisted(tmp_path):
    store = FeedbackStore(tmp_path, max_entries=10, ttl_s=3600)
    store.add([["GET /api/orders 200 in 31ms", "done 17"]], "normal")
    same_shape = sequence_signature(["GET /api/orders 200 in 45ms", "done 99"])
    assert store.lookup(same_shape) == "normal"
    assert store.lookup(sequence_signature(["something else"])) is None
    assert FeedbackStore(tmp_path, max_entries=10, ttl_s=3600).lookup(same_shape) == "normal"


def test_feedback_expires_and_is_bounded(tmp_path):
    expiring = FeedbackStore(tmp_path / "a", max_entries=10, ttl_s=1e-6)
    (tmp_path / "a").mkdir()
    expiring.add([["x"]], "normal")
    assert expiring.lookup(sequence_signature(["x"])) is None
    (tmp_path / "b").mkdir()
    bounded = FeedbackStore(tmp_path / "b", max_entries=2, ttl_s=3600)
    bounded.add([["first"], ["second"], ["third"]], "anomalous")
    assert len(bounded) == 2 and bounded.lookup(sequence_signature(["first"])) is None


@pytest.mark.parametrize("sequences,label,problem", [
    ([], "normal", "no sequence"),
    ([[]], "normal", "sequence 0 is empty"),
    ([["  "]], "normal", "sequence 0 is empty"),
    ([["x"] * 11], "normal", "11 lines; the limit is 10"),
    ([["x"]], "fine", "label must be normal or anomalous"),
])
def test_bad_feedback_is_refused_naming_the_problem(tmp_path, sequences, label, problem):
    store = FeedbackStore(tmp_path, max_entries=10, ttl_s=3600, max_lines=10)
    with pytest.raises(FeedbackError, match=problem):
        store.add(sequences, label)
    assert len(store) == 0


# -- checks -------------------------------------------------------------------------------------------
def _result(flag_rate, injected_recall):
    from logllm_plugin.learning.checks import CheckResult

    return CheckResult(flag_rate=flag_rate, injected_recall=injected_recall, holdout_sequences=100,
                       injected_sequences=100)


@pytest.mark.parametrize("candidate,current,passes,why", [
    ((0.02, 0.60), None, True, ""),
    ((0.00, 0.00), None, False, "catches 0.0% of injected anomalies"),  # collapsed: flags nothing
    ((0.30, 0.90), None, False, "flags 30.0% of the recent held-out history"),
    ((0.08, 0.12), None, False, "catches 12.0%"),
    ((0.09, 0.16), None, False, "hardly more often than normal"),  # flags at random
    # after a release the serving model flags half of all traffic: its recall is no standard
    ((0.01, 0.54), (0.50, 0.82), True, ""),
    ((0.02, 0.40), (0.02, 0.60), False, "worse than the serving model"),
    ((0.06, 0.60), (0.02, 0.60), False, "flags more than the serving model"),
    # half the false positives for less recall is better where anomalies are rare (seen in a retrain)
    ((0.051, 0.576), (0.107, 0.734), True, ""),
    ((0.05, 0.30), (0.05, 0.70), False, "worse than the serving model"),
])
def test_a_candidate_must_catch_injected_anomalies_flag_little_and_not_regress(candidate, current, passes, why):
    from logllm_plugin.learning.checks import judge

    judged = judge(_result(*candidate), _result(*current) if current else None, flag_rate_ceiling=0.1,
                   min_injected_recall=0.15)
    assert judged.passed is passes, judged.reasons
    assert why in "; ".join(judged.reasons)


class _ScoresAsGiven:
    """A detector whose score for a sequence is the number on its first line."""

    def __init__(self, threshold):
        from logllm_plugin.detector import DetectorSettings
        from logllm_plugin.verdict_cache import VerdictCache

        self.settings = DetectorSettings(threshold=threshold)
        self.verdict_cache = VerdictCache(10)

    def detect(self, sequences):
        from logllm_plugin.records import Verdict

        return [Verdict(id="", label="anomalous" if float(s[0]) >= self.settings.threshold else "normal",
                        score=float(s[0]), category="", evidence=[], novel_templates=0) for s in sequences]


def test_the_threshold_is_raised_until_the_target_share_of_recent_traffic_is_flagged():
    from logllm_plugin.learning.checks import calibrate_threshold

    detector = _ScoresAsGiven(threshold=0.3)
    recent = [[str(x / 100)] for x in range(100)]  # scores 0.00 .. 0.99
    info = calibrate_threshold(detector, recent, target_false_positive_rate=0.05)
    flagged = sum(v.label == "anomalous" for v in detector.detect(recent))
    assert flagged == 5 and info["trained_threshold"] == 0.3 and info["threshold"] > 0.94


def test_calibration_never_lowers_the_trainers_threshold():
    from logllm_plugin.learning.checks import calibrate_threshold

    detector = _ScoresAsGiven(threshold=0.9)
    calibrate_threshold(detector, [["0.1"], ["0.2"], ["0.3"]], target_false_positive_rate=0.05)
    assert detector.settings.threshold == 0.9


def test_corrections_go_to_the_trainer_with_their_labels_and_enough_weight_to_count(tmp_path):
    from logllm_plugin.learning.train_job import FEEDBACK_COPIES, write_training_set

    path = tmp_path / "train.jsonl"
    write_training_set(path, [["a", "b"], ["a", "c"]], marked_normal=[["x", "y"]], marked_anomalous=[["boom"]],
                       closed_by=["end", None])
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["lines"] for r in rows[-2:]] == [["a", "b"], ["a", "c"]]  # history last, in time order: the newest
    assert [r.get("closed_by") for r in rows[-2:]] == ["end", None]  # the sequencer's reason reaches the trainer
    by_lines = Counter((tuple(r["lines"]), r["label"]) for r in rows)
    assert by_lines == {(("a", "b"), 0): 1, (("a", "c"), 0): 1, (("x", "y"), 0): FEEDBACK_COPIES,
                        (("boom",), 1): FEEDBACK_COPIES}
    assert len({r["id"] for r in rows}) == len(rows)


def test_bench_learn_takes_a_normal_only_split_field_as_history_and_test():
    from logllm_plugin.benchmarks.learning import split_parts
    from logllm_plugin.records import LogSequence

    def seq(n, split):
        return LogSequence(id=str(n), lines=[f"line {n}"], split=split, label=int(split == "test_abnormal"))

    rows = [seq(0, "train_normal"), seq(1, "test_abnormal"), seq(2, "train_normal"), seq(3, "test_normal")]
    history, test, protocol = split_parts(rows, 0.7)
    assert [s.id for s in history] == ["0", "2"] and [s.id for s in test] == ["1", "3"]
    assert protocol == "split field"
    # without a split field: the file order at the fraction
    plain = [seq(n, None) for n in range(10)]
    history, test, protocol = split_parts(plain, 0.7)
    assert [s.id for s in history] == [str(n) for n in range(7)] and protocol.startswith("chronological")


def test_a_crashed_trainer_is_tried_again_without_new_traffic_and_backs_off(tmp_path, monkeypatch):
    """A trainer that died (here: as a gRPC fork handler once made it, -6) must not leave the
    learner `learning` until more traffic arrives; a candidate the checks refused waits for traffic."""
    from logllm_plugin.config import load_config
    from logllm_plugin.learning import learner as learner_module

    monkeypatch.setattr(learner_module, "CRASH_RETRY_S", 0.0)
    learner = learner_module.LearningDetector(tmp_path / "store", load_config(environ={}), device="cpu")
    learner._count_at_last_training = learner.history.received  # a first attempt was made
    assert not learner.due()
    crashed = {"published": False, "error": "trainer exited with -6: ['epoll_wait error: Bad file descriptor']"}
    learner._schedule_retry(crashed)
    assert learner.due() and crashed["retry_in_s"] == 0.0
    monkeypatch.setattr(learner_module, "CRASH_RETRY_S", 30.0)
    again = dict(crashed)
    learner._schedule_retry(again)
    assert again["retry_in_s"] == 60.0 and not learner.due()  # the second crash in a row waits twice as long
    learner._schedule_retry({"published": False, "checks": {"passed": False}})  # refused: wait for traffic
    assert not learner.due()
    learner.close()


def test_a_learned_model_masks_raw_input_as_its_history_was_masked(tmp_path):
    """The learner trains on personal-data-masked history; its model directory says so, and used
    anywhere else (`detect --model DIR/models/vN`) it masks raw lines the same way first."""
    from logllm_plugin.config import load_config
    from logllm_plugin.detector import Detector
    from logllm_plugin.learning.train_job import mark_input_masking
    from logllm_plugin.personal_data import PersonalDataMasker

    model = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL, model)
    raw = ["login ok for user=u63315 from 10.223.254.157", "session token validated for user=u63315"]
    masked = PersonalDataMasker().mask_sequence(raw)
    plain = Detector.load(model, device="cpu")
    assert plain.input_masker is None
    assert plain.detect([raw])[0].score != plain.detect([masked])[0].score  # the two forms score differently
    mark_input_masking(model, load_config(environ={}))
    learned = Detector.load(model, device="cpu")
    assert learned.input_masker is not None
    on_raw, on_masked = learned.detect([raw])[0], plain.detect([masked])[0]
    assert (on_raw.score, on_raw.familiarity) == (on_masked.score, on_masked.familiarity)
    assert learned.detect([masked])[0].score == on_masked.score  # masked input passes unchanged
