"""Bad input fuzzing over the readers, the input loader, the template miner and the sequencer.

Files from the wild hold invalid UTF-8, control characters, huge lines and odd or deeply nested
JSON. The promise: every line is accounted for (a record, or a counted skip), bad input gives a
clear `InputError` or a counted problem, never a traceback.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from logllm_plugin.inputs import load_input
from logllm_plugin.readers import InputError, ReadReport, detect_format, read_records, read_sequence_file
from logllm_plugin.records import LogRecord
from logllm_plugin.sequencer import Sequencer, SequencerConfig, group_records
from logllm_plugin.templates import NOVEL_ID, TemplateStore
from tests.reliability.conftest import fuzz

pytestmark = pytest.mark.reliability

DEEP = 50_000  # far beyond any recursion limit: json would raise RecursionError, not ValueError

# Raw lines: arbitrary bytes (invalid UTF-8, NUL, CR, other control characters), never a newline.
raw_line = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" "))
odd_text = st.text(alphabet=st.characters(codec=None, exclude_characters="\n"), max_size=200)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | odd_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4),
    max_leaves=20,
)
json_line = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries({"message": odd_text}, optional={"key": odd_text, "timestamp": json_values,
                                                           "level": json_values, "label": json_values,
                                                           "resource": json_values, "attributes": json_values})
    .map(json.dumps),
    st.fixed_dictionaries({"lines": st.lists(json_values, max_size=5)},
                          optional={"id": json_values, "label": json_values, "line_labels": json_values,
                                    "first_lineno": json_values}).map(json.dumps),
    st.sampled_from(["[" * DEEP + "]" * DEEP, '{"message": ' + "[" * DEEP + "]" * DEEP + "}",
                     '{"message": "x", "attributes": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}",
                     '{"lines": ["a", ' + "[" * DEEP + "]" * DEEP + "]}"]),
)
any_line = st.one_of(raw_line, json_line.map(lambda s: s.encode("utf-8", "surrogatepass")))
files = st.lists(any_line, min_size=0, max_size=25)


def write(tmp_path: Path, lines: list[bytes], name: str = "input.log") -> Path:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + (b"\n" if lines else b""))
    return path


def blank(raw: bytes) -> bool:
    """What the readers count as an empty line: only Unicode whitespace (which includes the
    separators U+001C..U+001F and U+0085) once decoded."""
    return not raw.decode("utf-8", "replace").strip()


def physical_lines(lines: list[bytes]) -> int:
    return len(lines)


@fuzz(150)
@given(lines=files)
@example(lines=[b"[" * DEEP + b"]" * DEEP])  # regression: RecursionError escaped the readers
@example(lines=[b'{"message": "a"}', b'{"message": ' + b"[" * DEEP + b"]" * DEEP + b"}"])
def test_record_readers_account_for_every_line_or_fail_with_input_error(tmp_path_factory, lines):
    """Promise: read_records either raises InputError or yields one record per non-empty line that is
    not malformed JSON, with every physical line counted exactly once in the ReadReport."""
    path = write(tmp_path_factory.mktemp("fuzz"), lines)
    report = ReadReport()
    try:
        fmt = detect_format(path)
    except InputError:
        assert not any(line.strip() for line in lines)  # only an empty file has no format
        return
    if fmt not in ("record_jsonl", "text"):
        return  # sequence formats: the next test
    try:
        records = list(read_records(path, report=report))
    except InputError as exc:
        assert "contains no log lines" in str(exc)
        records = []
    assert report.lines_read == physical_lines(lines)
    assert len(records) == report.records
    assert report.records + report.skipped_empty + report.skipped_malformed == report.lines_read
    assert all(isinstance(r.message, str) for r in records)
    numbers = [r.source_line for r in records]
    assert numbers == sorted(set(numbers))  # in file order, each line at most once
    if fmt == "text":  # text keeps every non-empty line, whatever its bytes (a leading BOM is not text)
        text = [lines[0].removeprefix(b"\xef\xbb\xbf")] + lines[1:]
        assert report.records == sum(1 for line in text if not blank(line))


@fuzz(100)
@given(lines=st.lists(json_line.map(str.encode), min_size=1, max_size=20))
@example(lines=[b'{"lines": ["a", ' + b"[" * DEEP + b"]" * DEEP + b"]}"])
def test_sequence_reader_counts_every_line_as_a_sequence_or_a_skip(tmp_path_factory, lines):
    """Promise: read_sequence_file on sequence_jsonl yields a sequence or counts a skip for every line,
    and raises nothing but InputError."""
    path = write(tmp_path_factory.mktemp("fuzz"), lines, "input.jsonl")
    report = ReadReport()
    try:
        sequences = list(read_sequence_file(path, fmt="sequence_jsonl", report=report))
    except InputError as exc:
        assert "contains no log lines" in str(exc)
        sequences = []
    assert report.lines_read == len(lines)
    assert len(sequences) == report.sequences
    assert report.sequences + report.skipped_empty + report.skipped_malformed == report.lines_read
    assert all(s.lines and all(isinstance(x, str) for x in s.lines) for s in sequences)


@fuzz(60)
@given(items=st.lists(json_line, max_size=12), cut=st.integers(min_value=0, max_value=400))
@example(items=['{"lines": ["a"]}', "[" * DEEP + "]" * DEEP], cut=0)
def test_a_damaged_json_array_yields_its_good_items_or_an_input_error(tmp_path_factory, items, cut):
    """Promise: a sequence_json array, even truncated anywhere or holding garbage items, yields its
    well-formed sequences or raises InputError, never another exception."""
    text = "[" + ",\n".join(items) + "]"
    if cut:
        text = text[: max(1, len(text) - cut)]
    path = tmp_path_factory.mktemp("fuzz") / "input.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    report = ReadReport()
    try:
        sequences = list(read_sequence_file(path, fmt="sequence_json", report=report))
    except InputError:
        return
    assert len(sequences) == report.sequences >= 1


@fuzz(60)
@given(lines=st.lists(raw_line, min_size=1, max_size=60), max_lines=st.integers(1, 15))
@example(lines=[b"\xef\xbb\xbf"], max_lines=1)  # a BOM alone is an empty line
@example(lines=[b"\x00", b"\x1c"], max_lines=1)  # NUL is text; U+001C alone is whitespace
def test_load_input_puts_every_text_line_into_exactly_one_sequence_in_order(tmp_path_factory, lines, max_lines):
    """Promise: the text path of load_input (reader + sequencer) keeps every non-empty line,
    each in exactly one sequence, in file order."""
    path = write(tmp_path_factory.mktemp("fuzz"), lines)
    # A UTF-8 byte order mark opening the file is not part of the first line.
    text = [line.removeprefix(b"\xef\xbb\xbf") if n == 1 else line for n, line in enumerate(lines, start=1)]
    expected = [n for n, line in enumerate(text, start=1) if not blank(line)]
    config = SequencerConfig(max_lines=max_lines, min_lines=1)
    try:
        sequences, report = load_input(str(path), fmt="text", sequencer=config)
    except InputError:
        assert not expected
        return
    numbers = [n for s in sequences for n in s.source_lines]
    assert numbers == expected
    assert all(1 <= len(s.lines) <= max_lines for s in sequences)


# ------------------------------------------------------------------------------ template miner
@fuzz(150)
@given(lines=st.lists(odd_text | st.text(max_size=3000), min_size=1, max_size=20))
def test_template_miner_masks_every_digit_and_matches_what_it_learned(lines):
    """Promise: any text (control characters, odd Unicode, long lines) is masked without error,
    no decimal digit survives masking, lookups are deterministic, and a learned line is never
    reported as a novel template."""
    store = TemplateStore()
    store.learn(lines)
    for line in lines:
        first, again = store.lookup(line), store.lookup(line)
        assert first == again
        assert re.search(r"\d", first.text) is None
        assert len(first.text) <= store.config.max_template_chars
        assert first.template_id != NOVEL_ID, f"learned line {line!r} reported novel"


@fuzz(40)
@given(lines=st.lists(odd_text, min_size=1, max_size=20), probes=st.lists(odd_text, max_size=10))
def test_a_saved_template_store_answers_like_the_original(tmp_path_factory, lines, probes):
    """Promise: save/load (plain JSON) keeps every template id, for learned and unseen lines."""
    store = TemplateStore()
    store.learn(lines)
    path = tmp_path_factory.mktemp("tpl") / "templates.json"
    store.save(path)
    loaded = TemplateStore.load(path)
    for line in lines + probes:
        assert loaded.lookup(line) == store.lookup(line)


# ---------------------------------------------------------------------------------- sequencer
events = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abcde"),
                  st.one_of(st.none(), st.floats(-1e3, 1e3), st.just(float("nan")), st.just(float("inf")))),
        st.tuples(st.just("tick"), st.floats(0, 100)),
    ),
    max_size=200,
)


@fuzz(200)
@given(events=events, max_lines=st.integers(1, 8), max_open=st.integers(1, 4),
       idle_s=st.floats(0.01, 10), max_age_s=st.floats(0.01, 50))
def test_streaming_sequencer_emits_every_record_exactly_once_in_order_per_key(events, max_lines, max_open,
                                                                              idle_s, max_age_s):
    """Promise: whatever the timestamps (missing, out of order, NaN, infinite) and flush calls,
    every record added ends up in exactly one output sequence, arrival order per key is kept,
    no sequence exceeds max_lines and no more than max_open_sequences stay open."""
    sequencer = Sequencer(SequencerConfig(max_lines=max_lines, min_lines=1, idle_s=idle_s, max_age_s=max_age_s,
                                          max_open_sequences=max_open))
    out, added, clock = [], [], 0.0
    for event in events:
        if event[0] == "tick":
            clock += event[1]
            out.extend(sequencer.flush_expired(clock))
            continue
        _, key, ts = event
        n = len(added)
        added.append(key)
        out.extend(sequencer.add(LogRecord(message=f"line {n}", key=key, timestamp_s=ts, source_line=n), now_s=clock))
        assert sequencer.open_sequences <= max_open
    out.extend(sequencer.flush_all())
    assert sequencer.open_sequences == 0
    seen = sorted(n for s in out for n in s.source_lines)
    assert seen == list(range(len(added)))
    assert all(1 <= len(s.lines) <= max_lines for s in out)
    assert all(s.lines == [f"line {n}" for n in s.source_lines] for s in out)
    for key in "abcde":
        order = [n for s in out if s.key == key for n in s.source_lines]
        assert order == sorted(order)
        assert order == [n for n, k in enumerate(added) if k == key]


@fuzz(60)
@given(keys=st.lists(st.sampled_from(["k1", "k2", None]), max_size=80),
       timestamps=st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=80))
def test_batch_sequencing_keeps_every_record_whatever_the_timestamps(keys, timestamps):
    """Promise: group_records (the file path) loses and duplicates no record for any mix
    of keyed and unkeyed records and any timestamps."""
    records = [LogRecord(message=f"m{n}", key=k, timestamp_s=(timestamps[n] if n < len(timestamps) else None),
                         source_line=n) for n, k in enumerate(keys)]
    out = list(group_records(records, SequencerConfig(max_lines=5, min_lines=1, idle_s=1, max_age_s=3)))
    assert sorted(n for s in out for n in s.source_lines) == list(range(len(records)))
