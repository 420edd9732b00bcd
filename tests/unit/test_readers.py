"""Readers keep every line they can, count the rest, and fail with InputError, not a traceback."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from logllm_plugin.readers import (
    InputError,
    ReadReport,
    detect_format,
    parse_label,
    parse_timestamp,
    read_records,
    read_sequence_file,
)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def jsonl(path: Path, objs: list[object]) -> Path:
    return write_lines(path, [json.dumps(o) for o in objs])


# --------------------------------------------------------------------------------- sniffing
def test_sequence_jsonl_is_detected_from_a_lines_list(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "s.jsonl", [{"id": "a", "lines": ["x"], "label": 0}])
    assert detect_format(path) == "sequence_jsonl"


def test_log_entries_list_also_means_sequence_jsonl(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "s.jsonl", [{"sequence_id": "a", "log_entries": ["x"]}])
    assert detect_format(path) == "sequence_jsonl"


def test_json_array_of_objects_is_sequence_json(tmp_path: Path) -> None:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps([{"sequence_id": "a", "log_entries": ["x"], "label": 0}], indent=2))
    assert detect_format(path) == "sequence_json"


@pytest.mark.parametrize("field", ["line", "message", "body", "msg"])
def test_jsonl_with_a_message_string_is_record_jsonl(tmp_path: Path, field: str) -> None:
    path = jsonl(tmp_path / "r.jsonl", [{field: "hello", "label": 0}])
    assert detect_format(path) == "record_jsonl"


def test_bracketed_log_lines_are_text_not_a_json_array(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "app.log", ["[2025-07-13 10:12:34.643] [api] [INFO] done"])
    assert detect_format(path) == "text"


def test_a_malformed_first_line_does_not_hide_a_jsonl_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.jsonl", ['{"line": "cut', json.dumps({"line": "ok"})])
    assert detect_format(path) == "record_jsonl"


def test_sniffing_skips_leading_empty_lines_and_tolerates_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\n\n" + b'{"line": "caf\xe9"}\n')
    assert detect_format(path) == "record_jsonl"


def test_a_utf8_byte_order_mark_does_not_hide_a_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"line": "first"}\n')
    assert [r.message for r in read_records(path)] == ["first"]


# --------------------------------------------------------------------------- fatal problems
def test_empty_file_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="contains no log lines"):
        list(read_records(path))


def test_empty_file_with_a_forced_format_raises_at_end_of_iteration(tmp_path: Path) -> None:
    path = tmp_path / "blank.log"
    path.write_text("\n   \n")
    report = ReadReport()
    with pytest.raises(InputError, match="contains no log lines"):
        list(read_records(path, fmt="text", report=report))
    assert report.skipped_empty == 2


def test_file_of_only_malformed_json_raises_input_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ["{nope", "{also nope"])
    with pytest.raises(InputError, match="no log lines"):
        list(read_records(path, fmt="record_jsonl"))


def test_missing_file_raises_input_error_when_called(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_records(tmp_path / "missing.log")


def test_unknown_format_raises_input_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.log", ["x"])
    with pytest.raises(InputError, match="unknown input format"):
        read_records(path, fmt="xml")


def test_reading_sequences_from_a_record_file_names_the_right_reader(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "r.jsonl", [{"line": "x"}])
    with pytest.raises(InputError, match="use read_records"):
        read_sequence_file(path)


def test_invalid_line_regex_raises_input_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.log", ["x"])
    with pytest.raises(InputError, match="line_regex"):
        read_records(path, line_regex="(unclosed")


# ------------------------------------------------------------------------------ text input
def test_invalid_utf8_line_is_kept_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"good line\nbad \xff\xfe byte\nlast line\n")
    report = ReadReport()
    records = list(read_records(path, report=report))
    assert [r.message for r in records] == ["good line", "bad \ufffd\ufffd byte", "last line"]
    assert report.invalid_utf8_lines == 1
    assert report.problems[0].startswith("line 2:")


def test_empty_lines_are_counted_not_returned(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.log", ["one", "", "   ", "two"])
    report = ReadReport()
    records = list(read_records(path, report=report))
    assert [(r.message, r.source_line) for r in records] == [("one", 1), ("two", 4)]
    assert report.skipped_empty == 2
    assert report.lines_read == 4
    assert report.records == 2


def test_a_one_megabyte_line_is_kept_whole_and_counted_as_long(tmp_path: Path) -> None:
    huge = "x" * (1024 * 1024)
    path = write_lines(tmp_path / "a.log", ["short", huge, "after"])
    report = ReadReport()
    records = list(read_records(path, report=report))
    assert len(records) == 3
    assert records[1].message == huge
    assert report.long_lines == 1


def test_line_regex_fills_fields_and_unmatched_lines_are_kept_whole(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "a.log",
        ["2024-05-01T10:00:00Z ERROR disk full", "a stack trace continuation"],
    )
    report = ReadReport()
    regex = r"^(?P<timestamp>\S+) (?P<level>[A-Z]+) (?P<message>.*)$"
    first, second = read_records(path, line_regex=regex, report=report)
    assert (first.level, first.message) == ("ERROR", "disk full")
    assert first.timestamp_s == pytest.approx(1714557600.0)
    assert second.message == "a stack trace continuation"
    assert second.level is None
    assert report.unmatched_regex == 1


def test_unparseable_text_timestamp_becomes_none_and_is_counted(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.log", ["081109 203615 INFO started", "1700000000.5 INFO ok"])
    report = ReadReport()
    regex = r"^(?P<timestamp>\d+(?: \d+)?|\d+\.\d+) (?P<level>\w+) (?P<message>.*)$"
    first, second = read_records(path, line_regex=regex, report=report)
    assert first.timestamp_s is None
    assert second.timestamp_s == pytest.approx(1700000000.5)
    assert report.bad_timestamps == 1


def test_hdfs_key_regex_takes_the_first_block_id_as_the_key(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "hdfs.log",
        [
            "081109 203615 148 INFO Receiving block blk_-1608999687919862906 src: /10.0.0.1",
            "081109 203616 149 INFO Deleting block blk_38865049064139660 and blk_1 file",
            "081109 203617 150 INFO no block here",
        ],
    )
    records = list(read_records(path, key_regex=r"blk_-?\d+"))
    assert [r.key for r in records] == ["blk_-1608999687919862906", "blk_38865049064139660", None]


def test_stdin_dash_is_read_after_sniffing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"line": "a"}\n{"line": "b"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert [r.message for r in read_records("-")] == ["a", "b"]


# ---------------------------------------------------------------------------- record JSONL
def test_malformed_json_lines_are_counted_with_line_numbers_and_good_ones_read(
    tmp_path: Path,
) -> None:
    path = write_lines(
        tmp_path / "r.jsonl",
        [json.dumps({"line": "one"}), "{broken", json.dumps({"line": "three"}), "not json"],
    )
    report = ReadReport()
    records = list(read_records(path, report=report))
    assert [(r.message, r.source_line) for r in records] == [("one", 1), ("three", 3)]
    assert report.skipped_malformed == 2
    assert report.problems[0].startswith("line 2: malformed JSON")
    assert report.problems[1].startswith("line 4: malformed JSON")
    assert "malformed: 2" in report.summary()


def test_record_jsonl_fields_are_mapped_and_the_rest_become_attributes(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "otel.jsonl",
        [
            {
                "body": "payment failed",
                "traceId": "abc",
                "@timestamp": "2024-05-01T10:00:00,500+00:00",
                "severity_text": "ERROR",
                "label": "anomalous",
                "resource": {"attributes": {"service.name": "pay"}},
                "attributes": {"http.status": 500},
                "lineno": 7,
            }
        ],
    )
    (record,) = read_records(path)
    assert record.message == "payment failed"
    assert record.key == "abc"
    assert record.timestamp_s == pytest.approx(1714557600.5)
    assert record.level == "ERROR"
    assert record.label == 1
    assert record.attributes == {"service.name": "pay", "http.status": 500, "lineno": 7}


def test_epoch_milliseconds_and_seconds_both_become_seconds(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "r.jsonl",
        [{"msg": "a", "time": 1700000000123}, {"msg": "b", "timestamp": 1700000000}],
    )
    a, b = read_records(path)
    assert a.timestamp_s == pytest.approx(1700000000.123)
    assert b.timestamp_s == pytest.approx(1700000000.0)


def test_a_json_object_without_a_message_is_kept_as_its_raw_text(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "r.jsonl", [{"line": "a"}, {"other": 1}])
    report = ReadReport()
    records = list(read_records(path, report=report))
    assert records[1].message == '{"other": 1}'
    assert report.skipped_malformed == 0
    assert any("no message field" in p for p in report.problems)


# ------------------------------------------------------------------------------- sequences
def test_sequence_jsonl_is_read_with_labels_categories_and_splits(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "seqs.jsonl",
        [
            {"id": "blk_1", "lines": ["a", "b"], "label": 0, "split": "train"},
            {"lines": ["c", 3], "label": True, "label_detail": "disk", "line_labels": [0, 1],
             "first_lineno": 10},
        ],
    )
    first, second = read_sequence_file(path)
    assert (first.id, first.lines, first.label, first.split) == ("blk_1", ["a", "b"], 0, "train")
    assert second.id == "seqs:2"
    assert second.lines == ["c", "3"]
    assert (second.label, second.category) == (1, "disk")
    assert second.line_labels == [0, 1]
    assert second.source_lines == [10, 11]


def test_seed_json_array_is_read_with_sequence_id_and_log_entries(tmp_path: Path) -> None:
    path = tmp_path / "test_data.json"
    items = [
        {"sequence_id": "s1", "label": 0, "length": 2, "log_entries": ["[x] [INFO] ok", "b"]},
        {"sequence_id": "s2", "label": 1, "length": 1, "log_entries": ["[x] [ERROR] boom"]},
    ]
    path.write_text(json.dumps(items, indent=2))
    report = ReadReport()
    seqs = list(read_sequence_file(path, report=report))
    assert [(s.id, s.label, len(s.lines)) for s in seqs] == [("s1", 0, 2), ("s2", 1, 1)]
    assert report.fmt == "sequence_json"
    assert report.sequences == 2


def test_a_truncated_json_array_still_yields_its_complete_items(tmp_path: Path) -> None:
    full = json.dumps([{"id": "a", "lines": ["x"]}, {"id": "b", "lines": ["y"]}], indent=2)
    path = tmp_path / "cut.json"
    path.write_text(full[: full.rindex('"y"')])
    report = ReadReport()
    seqs = list(read_sequence_file(path, report=report))
    assert [s.id for s in seqs] == ["a"]
    assert report.skipped_malformed == 1


def test_a_sequence_with_no_lines_is_counted_as_malformed(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "s.jsonl", [{"id": "a", "lines": []}, {"id": "b", "lines": ["x"]}])
    report = ReadReport()
    assert [s.id for s in read_sequence_file(path, report=report)] == ["b"]
    assert report.skipped_malformed == 1
    assert "line 1: empty 'lines' list" in report.problems[0]


def test_an_unknown_label_is_kept_unlabeled_and_reported(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "s.jsonl", [{"id": "a", "lines": ["x"], "label": "maybe"}])
    report = ReadReport()
    (seq,) = read_sequence_file(path, report=report)
    assert seq.label is None
    assert report.bad_labels == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1, 1), (True, 1), (False, 0), ("normal", 0), ("Anomalous", 1), ("anomaly", 1),
     ("0", 0), ("1", 1), (None, None)],
)
def test_labels_accept_ints_bools_and_words(value: object, expected: object) -> None:
    assert parse_label(value) == expected


def test_garbage_timestamps_parse_to_none() -> None:
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp(float("nan")) is None
    assert parse_timestamp("2024-05-01 10:00:00") == pytest.approx(1714557600.0)
