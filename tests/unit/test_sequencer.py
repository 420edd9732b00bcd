"""The sequencer cuts by size, idleness, age and memory pressure, and never loses a record."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from logllm_plugin.readers import read_records
from logllm_plugin.records import LogRecord
from logllm_plugin.sequencer import Sequencer, SequencerConfig, group_records


def rec(message: str, key: str | None = None, t: float | None = None, **kw: object) -> LogRecord:
    return LogRecord(message=message, key=key, timestamp_s=t, **kw)  # type: ignore[arg-type]


def test_a_default_sequencer_behaves_as_the_readme_and_plugin_yaml_describe() -> None:
    """The defaults as the user documentation states them (README "Record JSONL": closing at 15
    lines, keyed by service.name + host.name; configs/plugin.yaml: under 6 lines is short, 2 s idle,
    30 s old, 10,000 open), checked through what a default Sequencer does, not its fields."""
    seq = Sequencer()
    record = lambda n, t, **attrs: rec(f"line {n}", t=t, attributes={"service.name": "api", "host.name": "h1", **attrs})
    closed = [s for n in range(16) for s in seq.add(record(n, t=100.0 + 0.1 * n))]
    assert [(s.id, len(s.lines), s.short) for s in closed] == [("api|h1#0", 15, False)]  # full at 15
    assert seq.flush_expired(101.5 + 1.99) == []  # the 16th line (t=101.5) is not idle yet...
    (idle,) = seq.flush_expired(101.5 + 2.0)  # ...at 2 s it is, and one line is short
    assert (idle.id, idle.lines, idle.short) == ("api|h1#1", ["line 15"], True)

    seq.add(record(0, t=200.0, **{"host.name": "h2"}))
    seq.add(record(1, t=170.5, **{"host.name": "h2"}))  # a line stamped 29.5 s earlier arrives late
    assert seq.flush_expired(200.4) == []  # 0.4 s idle, 29.9 s old
    (old,) = seq.flush_expired(200.5)  # 30 s old: closed, however recently it was active
    assert (old.id, len(old.lines), seq.stats.closed_age) == ("api|h2#0", 2, 1)
    for n, count in ((5, True), (6, False)):  # below 6 lines a sequence is short, at 6 it is not
        for k in range(n):
            seq.add(rec(f"x{k}", key=f"k{n}", t=300.0))
        (cut,) = seq.flush_expired(302.0)
        assert (len(cut.lines), cut.short) == (n, count)

    crowd = Sequencer()
    pressured = [s for n in range(10_001) for s in crowd.add(rec("m", key=f"trace-{n}", t=0.0))]
    assert [s.id for s in pressured] == ["trace-0#0"]  # the 10,001st open sequence pushes out the oldest


def test_invalid_config_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as info:
        SequencerConfig(max_lines=0, min_lines=-1, idle_s=0, max_age_s=float("inf"),
                        max_open_sequences=True)
    message = str(info.value)
    for name in ("max_lines", "min_lines", "idle_s", "max_age_s", "max_open_sequences"):
        assert name in message


def test_min_lines_above_max_lines_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not exceed max_lines"):
        SequencerConfig(max_lines=5, min_lines=6)


def test_a_sequence_closes_at_max_lines_and_the_next_line_starts_a_new_one() -> None:
    seq = Sequencer(SequencerConfig(max_lines=3, min_lines=1))
    closed = [s for i in range(4) for s in seq.add(rec(f"l{i}", key="k"), now_s=0.0)]
    assert [(s.id, s.lines, s.short) for s in closed] == [("k#0", ["l0", "l1", "l2"], False)]
    (rest,) = seq.flush_all()
    assert (rest.id, rest.lines) == ("k#1", ["l3"])


def test_idle_sequences_are_flushed_by_record_timestamps() -> None:
    seq = Sequencer(SequencerConfig(max_lines=15, min_lines=2, idle_s=2.0))
    assert seq.add(rec("a1", "a", t=100.0)) == []
    assert seq.add(rec("b1", "b", t=101.0)) == []
    assert seq.flush_expired(101.9) == []
    (closed,) = seq.flush_expired(102.0)
    assert (closed.id, closed.lines, closed.short) == ("a#0", ["a1"], True)
    assert seq.open_sequences == 1


def test_a_late_line_for_an_idle_key_starts_a_new_sequence_without_a_flush_call() -> None:
    seq = Sequencer(SequencerConfig(min_lines=1, idle_s=2.0))
    seq.add(rec("a1", "a", t=0.0))
    (closed,) = seq.add(rec("a2", "a", t=5.0))
    assert closed.lines == ["a1"]
    assert [s.id for s in seq.flush_all()] == ["a#1"]


def test_sequences_older_than_max_age_are_flushed_even_when_busy() -> None:
    seq = Sequencer(SequencerConfig(max_lines=100, min_lines=1, idle_s=5.0, max_age_s=10.0))
    for t in range(10):
        seq.add(rec(f"l{t}", "k", t=float(t)))
    (closed,) = seq.flush_expired(10.0)
    assert len(closed.lines) == 10
    assert seq.stats.closed_age == 1


def test_short_flag_marks_sequences_flushed_below_min_lines() -> None:
    seq = Sequencer(SequencerConfig(max_lines=10, min_lines=3))
    for _ in range(3):
        seq.add(rec("x", "full", t=0.0))
    seq.add(rec("y", "thin", t=0.0))
    by_id = {s.id: s for s in seq.flush_all()}
    assert by_id["full#0"].short is False
    assert by_id["thin#0"].short is True
    assert seq.stats.short == 1


def test_oldest_sequence_is_flushed_when_too_many_are_open() -> None:
    seq = Sequencer(SequencerConfig(max_open_sequences=2, min_lines=1))
    seq.add(rec("a", "a"), now_s=0.0)
    seq.add(rec("b", "b"), now_s=0.0)
    seq.add(rec("a again", "a"), now_s=0.0)  # activity does not change arrival order
    (flushed,) = seq.add(rec("c", "c"), now_s=0.0)
    assert (flushed.id, flushed.lines) == ("a#0", ["a", "a again"])
    assert seq.open_sequences == 2
    assert seq.stats.closed_pressure == 1


def test_key_falls_back_to_service_and_host_attributes_then_default() -> None:
    seq = Sequencer()
    both = rec("m", attributes={"service.name": "api", "host.name": "h1"})
    service_only = rec("m", attributes={"service.name": "api"})
    assert seq.key_of(both) == "api|h1"
    assert seq.key_of(service_only) == "api"
    assert seq.key_of(rec("m")) == "default"
    assert seq.key_of(rec("m", key="trace-1", attributes={"service.name": "api"})) == "trace-1"


def test_labels_roll_up_to_the_sequence() -> None:
    seq = Sequencer(SequencerConfig(min_lines=1))
    cases: dict[str, list[int | None]] = {
        "bad": [0, 1], "good": [0, 0], "none": [None, None], "part": [0, None],
    }
    for key, labels in cases.items():
        for label in labels:
            seq.add(rec("m", key, label=label, source_line=1), now_s=0.0)
    by_key = {s.key: s for s in seq.flush_all()}
    assert (by_key["bad"].label, by_key["bad"].line_labels) == (1, [0, 1])
    assert (by_key["good"].label, by_key["good"].line_labels) == (0, [0, 0])
    assert (by_key["none"].label, by_key["none"].line_labels) == (None, None)
    assert (by_key["part"].label, by_key["part"].line_labels) == (None, None)
    assert by_key["bad"].source_lines == [1, 1]


def test_every_record_lands_in_exactly_one_sequence() -> None:
    rng = random.Random(7)
    clock, records = 0.0, []
    for i in range(2000):
        clock += rng.expovariate(2.0)  # bursts and gaps, so every kind of cut happens
        records.append(rec(f"m{i}", key=rng.choice("abcdefg"), t=clock, source_line=i))
    config = SequencerConfig(max_lines=7, min_lines=3, idle_s=2.0, max_age_s=9.0,
                             max_open_sequences=4)
    seqs = list(group_records(records, config))
    seen = sorted(line for s in seqs for line in (s.source_lines or []))
    assert seen == list(range(2000))
    assert len({s.id for s in seqs}) == len(seqs)
    assert all(1 <= len(s.lines) <= 7 for s in seqs)
    for key in "abcdefg":  # arrival order per key survives the cuts
        lines = [n for s in seqs if s.key == key for n in (s.source_lines or [])]
        assert lines == sorted(lines)


def test_records_without_timestamps_are_cut_only_by_size_in_batch_mode() -> None:
    records = [rec(f"m{i}", key="k") for i in range(20)]
    seqs = list(group_records(records, SequencerConfig(max_lines=15)))
    assert [len(s.lines) for s in seqs] == [15, 5]
    assert [s.short for s in seqs] == [False, True]


def test_hdfs_block_ids_from_key_regex_group_lines_into_block_sequences(tmp_path: Path) -> None:
    path = tmp_path / "hdfs.log"
    path.write_text(
        "\n".join(
            [
                "081109 203615 148 INFO Receiving block blk_-1 src: /10.0.0.1",
                "081109 203615 149 INFO Receiving block blk_2 src: /10.0.0.2",
                "081109 203616 150 INFO Received block blk_-1 of size 91",
                "081109 203617 151 WARN Exception for blk_2",
                "081109 203618 152 INFO Deleting blk_-1",
            ]
        )
        + "\n"
    )
    records = read_records(path, key_regex=r"blk_-?\d+")
    seqs = list(group_records(records, SequencerConfig(min_lines=1)))
    assert {s.id: s.source_lines for s in seqs} == {"blk_-1#0": [1, 3, 5], "blk_2#0": [2, 4]}


def test_every_sequence_says_why_it_closed() -> None:
    """full / idle / age / pressure / end: a sequence cut by end of input, age or pressure may be
    missing its tail, and the verdict's reader (and the trainer) must be able to tell."""
    def fresh() -> Sequencer:
        return Sequencer(SequencerConfig(max_lines=3, min_lines=1, idle_s=5, max_age_s=10, max_open_sequences=2))

    s = fresh()
    full = s.add(rec("a", "k", t=0)) + s.add(rec("b", "k", t=0.1)) + s.add(rec("c", "k", t=0.2))
    assert [q.closed_by for q in full] == ["full"]

    s = fresh()
    s.add(rec("a", "k", t=0))
    assert [q.closed_by for q in s.flush_expired(5.5)] == ["idle"]

    s = Sequencer(SequencerConfig(max_lines=10, min_lines=1, idle_s=5, max_age_s=10))
    for t in (0, 4, 8):
        s.add(rec("a", "k", t=t))
    assert [q.closed_by for q in s.add(rec("c", "k", t=10.5))] == ["age"]  # never idle, but open 10.5 s

    s = fresh()
    s.add(rec("a", "k1", t=0))
    s.add(rec("a", "k2", t=0.1))
    pressured = s.add(rec("a", "k3", t=0.2))
    assert [(q.key, q.closed_by) for q in pressured] == [("k1", "pressure")]
    assert sorted((q.key, q.closed_by) for q in s.flush_all()) == [("k2", "end"), ("k3", "end")]
