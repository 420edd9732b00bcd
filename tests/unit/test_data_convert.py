"""`data convert`: raw logs of every kind become sequences; no line lost, bad input named."""
from __future__ import annotations

import json

import pytest

from logllm_plugin.data.convert import ConvertOptions, convert
from logllm_plugin.data.io import write_sequences
from logllm_plugin.readers import InputError, read_sequence_file
from tests.conftest import DATA

BGL_LIKE = [
    "- 1117838570 2005.06.03 R02-M1-N0 RAS KERNEL INFO instruction cache parity error corrected",
    "KERNDTLB 1117838573 2005.06.03 R02-M1-N0 RAS KERNEL FATAL data TLB error interrupt",
    "- 1117838575 2005.06.03 R02-M1-N0 RAS KERNEL INFO generating core.2275",
]


def _lines(sequences) -> int:
    return sum(len(s.lines) for s in sequences)


def test_text_logs_group_by_key_and_every_line_lands_in_exactly_one_sequence():
    result = convert(str(DATA / "hdfs_400.log"), ConvertOptions("text", key_regex=r"blk_-?\d+"))
    seqs = result.sequences
    assert _lines(seqs) == 400
    assert sorted(n for s in seqs for n in s.source_lines) == list(range(1, 401))
    assert all(s.key.startswith("blk_") and all(s.key in line for line in s.lines) for s in seqs)
    assert all(s.label is None for s in seqs)


def test_text_logs_cut_into_windows_keep_the_remainder(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("".join(f"worker {i % 3} handled job {i}\n" for i in range(45)))
    seqs = convert(str(path), ConvertOptions("text", window=20)).sequences
    assert [len(s.lines) for s in seqs] == [20, 20, 5]
    assert [s.id for s in seqs] == ["app-w000000", "app-w000001", "app-w000002"]
    assert seqs[2].lines[-1] == "worker 2 handled job 44"


def test_loghub_label_column_becomes_line_labels_and_leaves_the_text(tmp_path):
    path = tmp_path / "bgl.log"
    path.write_text("\n".join(BGL_LIKE * 2) + "\n")
    seqs = convert(str(path), ConvertOptions("loghub", window=3)).sequences
    assert [s.label for s in seqs] == [1, 1]
    assert seqs[0].line_labels == [0, 1, 0]
    assert seqs[0].lines[1].startswith("1117838573 ") and "KERNDTLB" not in seqs[0].lines[1]
    normal = tmp_path / "normal.log"
    normal.write_text(BGL_LIKE[0] + "\n" + BGL_LIKE[2] + "\n")
    assert convert(str(normal), ConvertOptions("loghub", window=5)).sequences[0].label == 0


def test_key_labels_csv_labels_keyed_sequences(tmp_path):
    labels = tmp_path / "anomaly_label.csv"
    labels.write_text("BlockId,Label\nblk_38865049064139660,Anomaly\nblk_-6952295868487656571,Normal\n")
    seqs = convert(str(DATA / "hdfs_400.log"), ConvertOptions("text", key_regex=r"blk_-?\d+",
                                                              key_labels=str(labels))).sequences
    by_key = {s.key: s.label for s in seqs}
    assert by_key["blk_38865049064139660"] == 1 and by_key["blk_-6952295868487656571"] == 0
    assert sum(label is None for label in by_key.values()) == len(seqs) - 2
    bad = tmp_path / "bad.csv"
    bad.write_text("BlockId,Label\nblk_1,maybe\n")
    with pytest.raises(InputError, match="line 2: label 'maybe'"):
        convert(str(DATA / "hdfs_400.log"), ConvertOptions("text", key_regex=r"blk_-?\d+", key_labels=str(bad)))


def test_json_records_group_by_trace_id_or_a_chosen_field_with_their_labels(tmp_path):
    path = tmp_path / "records.jsonl"
    rows = [{"message": f"step {i}", "trace_id": f"t{i % 2}", "attributes": {"host.name": f"h{i % 3}"},
             "label": int(i == 3)} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    by_trace = {s.key: s for s in convert(str(path), ConvertOptions("jsonl-records")).sequences}
    assert set(by_trace) == {"t0", "t1"}
    assert by_trace["t1"].label == 1 and by_trace["t1"].line_labels == [0, 1, 0, 0, 0, 0]
    assert by_trace["t0"].label == 0
    by_host = convert(str(path), ConvertOptions("jsonl-records", key_field="host.name")).sequences
    assert sorted(s.key for s in by_host) == ["h0", "h1", "h2"] and _lines(by_host) == 12


def test_the_original_projects_json_arrays_convert_with_labels(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps([
        {"sequence_id": "a", "label": 1, "length": 2, "log_entries": ["x failed", "y ok"]},
        {"prompt": "Analyze...", "input": "```\nline one\nline two\n```",
         "output": json.dumps({"status": "Abnormal", "category": "timeout"})},
    ]))
    seqs = convert(str(path), ConvertOptions("seed-json")).sequences
    assert [(s.id, s.label, s.lines) for s in seqs][0] == ("a", 1, ["x failed", "y ok"])
    assert (seqs[1].lines, seqs[1].label, seqs[1].category) == (["line one", "line two"], 1, "timeout")


def test_written_sequences_read_back_field_for_field(tmp_path):
    seqs = convert(str(DATA / "hdfs_400.log"), ConvertOptions("text", key_regex=r"blk_-?\d+")).sequences[:20]
    seqs[0].label, seqs[0].category, seqs[0].explanation, seqs[0].line_labels = 1, "x", "why", [1]
    write_sequences(tmp_path / "out.jsonl", seqs)
    assert list(read_sequence_file(tmp_path / "out.jsonl")) == [
        type(s)(**{**s.__dict__, "short": False}) for s in seqs]


# ----------------------------------------------------------------------------------- bad input
def test_invalid_utf8_stops_the_conversion_unless_lenient(tmp_path):
    path = tmp_path / "bad.log"
    path.write_bytes(b"job 1 started\njob \xff\xfe 2 started\njob 3 started\n")
    with pytest.raises(InputError, match=r"1 lines are not valid UTF-8; first problem: line 2: invalid UTF-8.*--lenient"):
        convert(str(path), ConvertOptions("text", window=10))
    seqs = convert(str(path), ConvertOptions("text", window=10, lenient=True)).sequences
    assert _lines(seqs) == 3 and "\ufffd" in seqs[0].lines[1]


def test_mixed_formats_inside_one_file_are_named_not_skipped(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps({"message": "a", "trace_id": "t"}) + "\nplain text line\n"
                    + json.dumps({"message": "b", "trace_id": "t"}) + "\n")
    with pytest.raises(InputError, match=r"1 lines/items could not be read as record_jsonl \(mixed formats\?\).*line 2"):
        convert(str(path), ConvertOptions("jsonl-records"))
    result = convert(str(path), ConvertOptions("jsonl-records", lenient=True))
    assert _lines(result.sequences) == 2 and result.report.skipped_malformed == 1


@pytest.mark.parametrize("source, path, message", [
    ("jsonl-records", DATA / "hdfs_400.log", "looks like text input, not jsonl-records"),
    ("text", DATA / "seed_train.jsonl", "already is sequence JSONL"),
    ("seed-json", DATA / "hdfs_400.log", "looks like text input, not seed-json"),
])
def test_a_file_of_another_format_is_refused_with_the_right_source_named(source, path, message):
    opts = ConvertOptions(source, window=10) if source == "text" else ConvertOptions(source)
    with pytest.raises(InputError, match=message):
        convert(str(path), opts)


def test_text_without_a_key_or_window_is_refused():
    with pytest.raises(InputError, match="needs --key-regex .* or --window N"):
        convert(str(DATA / "hdfs_400.log"), ConvertOptions("text"))


def test_loghub_structured_csv_reads_content_labels_and_times(tmp_path):
    path = tmp_path / "BGL_2k.log_structured.csv"
    path.write_text(
        "LineId,Label,Timestamp,Level,Component,Content,EventId\n"
        "1,-,1117838570,INFO,KERNEL,\"instruction cache parity error corrected, 3 times\",E77\n"
        "2,KERNDTLB,1117838573,FATAL,KERNEL,data TLB error interrupt,E12\n"
        "3,-,1117838575,INFO,KERNEL,generating core.2275,E5\n")
    seqs = convert(str(path), ConvertOptions("loghub", window=10)).sequences
    assert len(seqs) == 1 and seqs[0].label == 1 and seqs[0].line_labels == [0, 1, 0]
    assert seqs[0].lines[0] == "instruction cache parity error corrected, 3 times"
    assert seqs[0].source_lines == [2, 3, 4]
    bad = tmp_path / "bad_structured.csv"
    bad.write_text("LineId,Label,Content\n1,-,fine\n2,-,one,column,too,many\n")
    with pytest.raises(InputError, match="line 3: 6 columns, the header has 3"):
        convert(str(bad), ConvertOptions("loghub", window=10))
