"""`data check`: label conflicts and their F1 ceiling, leakage, and the errors that stop training."""
from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from logllm_plugin.data.ceiling import conflict_stats
from logllm_plugin.data.check import check
from logllm_plugin.readers import InputError
from tests.conftest import SHARED

HDFS_REL = "hdfs_100k_blocks/sequences.jsonl"
HDFS = SHARED / HDFS_REL


def _write(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _row(i, lines, label, split=None):
    row = {"id": f"s{i}", "lines": lines, "label": label}
    return {**row, "split": split} if split else row


NORMAL = ["user 1 logged in", "cart 7 updated", "user 1 logged out"]
SWAPPED = ["cart 7 updated", "user 1 logged in", "user 1 logged out"]
FAILED = ["user 1 logged in", "ERROR payment 9 declined", "user 1 logged out"]


# ------------------------------------------------------------------------------ the F1 ceiling
def test_ceiling_of_a_hand_counted_example():
    # group A: 3 anomalies + 1 normal, B: 1 + 3, C: 10 normals. Best: call A anomalous only:
    # TP 3, FP 1, FN 1 → F1 = 6 / 8 = 0.75 (A and B together: 8 / 12 = 0.667).
    keys = ["A"] * 4 + ["B"] * 4 + ["C"] * 10
    labels = [1, 1, 1, 0] + [1, 0, 0, 0] + [0] * 10
    stats = conflict_stats(keys, labels)
    assert stats.f1_ceiling == pytest.approx(0.75)
    assert (stats.conflicting_groups, stats.anomalies_in_conflict, stats.normals_in_conflict) == (2, 4, 4)
    assert (stats.ceiling_precision, stats.ceiling_recall) == (0.75, 0.75)


def test_ceiling_equals_the_best_of_every_verdict_assignment():
    rng = random.Random(0)
    for _ in range(200):
        groups = rng.randint(1, 6)
        keys = [rng.randrange(groups) for _ in range(rng.randint(1, 25))]
        labels = [int(rng.random() < 0.4) for _ in keys]
        best = 0.0
        for chosen in itertools.product((0, 1), repeat=groups):  # every one-verdict-per-group detector
            tp = sum(1 for k, y in zip(keys, labels) if chosen[k] and y)
            fp = sum(1 for k, y in zip(keys, labels) if chosen[k] and not y)
            fn = sum(labels) - tp
            best = max(best, 2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        assert conflict_stats(keys, labels).f1_ceiling == pytest.approx(best)


def test_no_conflicts_means_a_ceiling_of_one():
    assert conflict_stats(["a", "a", "b"], [1, 1, 0]).f1_ceiling == 1.0


# --------------------------------------------------------------------------------- the report
def test_conflicting_labels_and_leakage_across_split_files_are_reported(tmp_path):
    train = _write(tmp_path / "train.jsonl", [_row(i, NORMAL, 0) for i in range(8)] + [_row(8, FAILED, 1)])
    test = _write(tmp_path / "test.jsonl", [_row(20, NORMAL, 0), _row(21, NORMAL, 1), _row(22, FAILED, 1),
                                            _row(23, ["brand new line 5"] * 2, 0)])
    result = check([train, test])
    conflicts = result.summary["conflicts"]
    assert conflicts["part"] == "test"
    assert conflicts["template_ids"]["anomalies_in_conflict"] == 1
    assert conflicts["template_ids"]["f1_ceiling"] == pytest.approx(0.8)  # TP 1, FN 1, FP 0
    leak = result.summary["leakage"]["parts"]["test"]
    assert leak["exact_copies_of_train"] == 3 and leak["train_copy_has_other_label"] == 1
    assert leak["templates_not_in_train"] == 1
    assert not result.errors
    assert any("1 of 2 anomalies share their sequence of template ids" in w for w in result.warnings)
    assert any("3 of 4 sequences also occur line for line in train" in w for w in result.warnings)


def test_parts_come_from_the_split_field_of_one_file_and_order_is_seen(tmp_path):
    path = _write(tmp_path / "all.jsonl", [_row(i, NORMAL, 0, "train") for i in range(5)]
                  + [_row(5, SWAPPED, 1, "train"), _row(6, SWAPPED, 1, "test"), _row(7, NORMAL, 0, "test")])
    result = check([path])
    assert list(result.summary["parts"]) == ["train", "test"]
    # the same templates in another order is another template sequence: no conflict
    assert result.summary["conflicts"]["template_ids"]["conflicting_groups"] == 0
    assert result.summary["parts"]["train"]["duplicate_sequences"] == 4


def test_counts_lengths_and_anomaly_rate(tmp_path):
    path = _write(tmp_path / "d.jsonl", [_row(i, NORMAL * (1 + i % 3), int(i < 3)) for i in range(12)])
    part = check([path]).summary["parts"]["d"]
    assert (part["sequences"], part["anomalies"], part["anomaly_rate"]) == (12, 3, 0.25)
    assert (part["length"]["min"], part["length"]["max"]) == (3, 9)


# ----------------------------------------------------------------------------------- errors
def test_missing_labels_are_an_error(tmp_path):
    partly = _write(tmp_path / "p.jsonl", [_row(0, NORMAL, 0), _row(1, FAILED, 1), {"id": "x", "lines": NORMAL}])
    assert any("1 of 3 sequences have no label (first: x)" in e for e in check([partly]).errors)
    none = _write(tmp_path / "n.jsonl", [{"id": str(i), "lines": NORMAL} for i in range(3)])
    assert any("no sequence has a label" in e for e in check([none]).errors)
    relaxed = check([none], allow_unlabeled=True)
    assert not relaxed.errors and any("no sequence has a label" in w for w in relaxed.warnings)


def test_one_class_only_is_an_error(tmp_path):
    path = _write(tmp_path / "d.jsonl", [_row(i, NORMAL, 0) for i in range(4)])
    assert any("every labeled sequence is normal" in e for e in check([path]).errors)


def test_mixed_formats_are_an_error_and_invalid_utf8_a_warning(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join([json.dumps(_row(0, NORMAL, 0)).encode(), b"user 1 logged in",
                                 json.dumps(_row(1, FAILED, 1)).encode().replace(b"declined", b"decl\xffined")]))
    result = check([str(path)])
    assert any("1 lines/items are not sequences" in e and "line 2" in e for e in result.errors)
    assert any("1 lines are not valid UTF-8" in w and "line 3" in w for w in result.warnings)


def test_a_log_file_is_refused_with_the_command_that_converts_it(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("user 1 logged in\n")
    with pytest.raises(InputError, match="data convert"):
        check([str(path)])


# ------------------------------------------------------------------------------- real data
@pytest.mark.shared_data(HDFS_REL)
def test_hdfs_100k_blocks_has_conflicting_labels_that_cap_a_template_detector():
    """The README's figures for this file, exactly: `data check` is deterministic (no model, no seed)."""
    result = check([str(HDFS)])
    stats = result.summary["conflicts"]["template_ids"]
    assert result.summary["conflicts"]["part"] == "test"
    assert (stats["sequences"], stats["anomalies"]) == (1588, 57)
    assert (stats["anomalies_in_conflict"], stats["normals_in_conflict"], stats["conflicting_groups"]) == (26, 812, 16)
    assert (stats["f1_ceiling"], stats["ceiling_precision"], stats["ceiling_recall"]) == (0.7111, 0.9697, 0.5614)
    # As counts: the best template-only detector flags 33 test sequences, 32 of them anomalies
    # (precision 32/33, recall 32/57, F1 64/90).
    assert result.summary["leakage"]["parts"]["test"]["exact_copies_of_train"] == 1537
    assert not result.errors
