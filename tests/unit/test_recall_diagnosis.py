"""When a label-free model misses much, `eval` says whether the data or the model is why."""
import json

from click.testing import CliRunner

from logllm_plugin.cli import main
from logllm_plugin.records import LogSequence
from tests.conftest import tiny_config
from tests.unit.test_labelfree import make
from trainers.novelty import HistoryTable
from trainers.recall_diagnosis import diagnose_missed, low_recall_message
from trainers.small import train_small


def test_missed_anomalies_are_split_by_the_evidence_they_hold():
    table = HistoryTable.fit([["a", "b", "c"], ["a", "b", "b", "c"]])
    masked = [["a", "b", "c"],  # normal
              ["a", "b", "c"],  # anomaly, same lines as the normal one, missed
              ["a", "c"],  # anomaly with a new transition, missed
              ["a", "b", "b", "b", "c"],  # anomaly with a new count, missed
              ["x"]]  # anomaly with a new line, caught
    labels = [0, 1, 1, 1, 1]
    flagged = [False, False, False, False, True]
    d = diagnose_missed(table, masked, labels, flagged)
    assert (d["missed"], d["nothing_new"], d["identical_to_normal"]) == (3, 1, 1)
    assert 0 < d["ceiling_f1"] < 1  # one anomaly shares its shape with a normal sequence
    assert "detector's cuts" in low_recall_message(0.25, d)


def test_the_message_names_the_data_when_the_anomalies_look_exactly_like_normal():
    d = {"missed": 10, "nothing_new": 9, "identical_to_normal": 8, "ceiling_f1": 0.2}
    assert "Labels would not help" in low_recall_message(0.1, d)
    # shapes shared with normal sequences but mostly anomalous ones: labels do help there
    for identical in (0, 8):
        d = {"missed": 10, "nothing_new": 9, "identical_to_normal": identical, "ceiling_f1": 0.9}
        message = low_recall_message(0.1, d)
        assert "train with labels" in message and "Labels would not help" not in message


def _write(path, sequences):
    path.write_text("".join(json.dumps({"id": s.id, "lines": s.lines, "label": s.label}) + "\n" for s in sequences))


def test_eval_explains_low_recall_of_a_label_free_model_and_stays_quiet_otherwise(tmp_path):
    history = make(300, 0.0, seed=1)
    train_small([LogSequence(id=s.id, lines=s.lines) for s in history], None, tiny_config(epochs=6, seed=0),
                tmp_path / "m", normal_only=True)
    # anomalies that are normal workflows under another label: nothing to see, for any detector
    relabeled = make(120, 0.0, seed=2)
    for s in relabeled[::4]:
        s.label = 1
    _write(tmp_path / "relabeled.jsonl", relabeled)
    result = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "m"), "--data",
                                       str(tmp_path / "relabeled.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    d = figures["recall_diagnosis"]
    assert figures["recall"] < 0.8 and d["missed"] == figures["fn"]
    assert d["identical_to_normal"] >= d["missed"] * 0.9 and d["nothing_new"] >= d["missed"] * 0.9, d
    assert "note: recall" in result.stderr and "Labels would not help" in result.stderr
    # anomalies with a line the history never held are caught, and eval says nothing more
    foreign = make(120, 0.0, seed=3)
    for s in foreign[::4]:
        s.lines.insert(2, "FATAL ledger corrupted, aborting")
        s.label = 1
    _write(tmp_path / "foreign.jsonl", foreign)
    result = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "m"), "--data",
                                       str(tmp_path / "foreign.jsonl"), "--json"])
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["recall"] >= 0.8 and "recall_diagnosis" not in figures, figures
    assert "note: recall" not in result.stderr
