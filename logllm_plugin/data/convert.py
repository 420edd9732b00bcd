"""Raw logs → our sequence JSONL (`data convert`).

Sources, all read by `logllm_plugin.readers` (nothing here parses a log line itself):
  text           plain log lines, grouped by a key regex (HDFS block ids, request ids) or cut into
                 consecutive windows of N lines; optional per-key labels from a CSV (loghub's
                 HDFS anomaly_label.csv)
  loghub         loghub's line-labeled logs (BGL, Thunderbird, Spirit, Liberty): the first column
                 is the label, "-" normal, an alert tag anomalous; a sequence is anomalous when any
                 of its lines is, and keeps the per-line labels. loghub's `*_structured.csv`
                 (LineId, ..., Content[, Label]) is read too.
  jsonl-records  one record a line (OTel/ECS-ish JSON), grouped by its trace id / key, a chosen
                 attribute, or windows; a record's `label` becomes a line label
  seed-json      the original LogLLM project's JSON arrays (sequence_id / log_entries / label and
                 its prompt / input / output fine-tuning items)

Strict by default: a line that is not valid UTF-8 or cannot be parsed in the declared format
stops the conversion with a message naming it, because a half-converted file trains a model on
data nobody looked at. `lenient` keeps going (bad bytes replaced, malformed lines skipped) and
the counts stay in the report.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from logllm_plugin.readers import (InputError, ReadReport, detect_format, is_structured_csv, loghub_label,
                                   parse_label, read_records, read_sequence_file, read_structured_csv)
from logllm_plugin.records import LogRecord, LogSequence
from logllm_plugin.sequencer import SequencerConfig, group_records

logger = logging.getLogger(__name__)

SOURCES = ("text", "loghub", "jsonl-records", "seed-json")
_READER_FORMAT = {"text": "text", "loghub": "text", "jsonl-records": "record_jsonl", "seed-json": "sequence_json"}
_SOURCE_OF_FORMAT = {"text": "text or loghub", "record_jsonl": "jsonl-records", "sequence_json": "seed-json"}
LOGHUB_LINE_REGEX = r"^(?P<label>\S+)\s+(?P<message>.*)$"
_NEVER = 1e18  # seconds: "do not close by time" for the sequencer, which wants a positive number


@dataclass
class ConvertOptions:
    source: str
    key_regex: Optional[str] = None  # text/loghub: the first match in a line keys its sequence
    window: Optional[int] = None  # consecutive windows of this many lines instead of keys
    line_regex: Optional[str] = None  # text: named groups key/timestamp/level/message/label
    key_field: Optional[str] = None  # jsonl-records: the attribute that keys a sequence
    key_labels: Optional[str] = None  # CSV of key,label (e.g. loghub HDFS anomaly_label.csv)
    max_lines: Optional[int] = None  # with keys: split a key's lines into sequences of at most this many
    idle_s: Optional[float] = None  # with keys and timestamps: a gap this long starts a new sequence
    lenient: bool = False

    def problems(self) -> list[str]:
        out = []
        if self.source not in SOURCES:
            out.append(f"unknown source {self.source!r}; expected one of {', '.join(SOURCES)}")
        if self.window is not None and (self.key_regex or self.key_field):
            out.append("--window and a key (--key-regex/--key-field) exclude each other")
        if self.window is not None and self.window < 1:
            out.append(f"--window must be at least 1, got {self.window}")
        if self.source in ("text", "loghub") and self.window is None and not self.key_regex:
            out.append(f"--from {self.source} needs --key-regex (group lines by a key) or --window N")
        if self.source == "seed-json" and (self.window or self.key_regex or self.key_field or self.key_labels):
            out.append("--from seed-json is already grouped: --window/--key-* do not apply")
        if self.key_labels and self.window is not None:
            out.append("--key-labels needs sequences keyed by --key-regex/--key-field, not --window")
        return out


@dataclass
class ConvertResult:
    sequences: list[LogSequence]
    report: ReadReport
    keys_labeled: int = 0  # sequences whose label came from --key-labels


def read_key_labels(path: str) -> dict[str, int]:
    """key → 0/1 from a two-column CSV with a header (loghub: BlockId,Label with Normal/Anomaly)."""
    labels: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise InputError(f"--key-labels {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"--key-labels {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            if len(row) < 2:
                raise ValueError("expected two columns: key,label")
            label = parse_label(row[1])
            if label is None:
                raise ValueError("empty label")
        except ValueError as exc:
            raise InputError(f"--key-labels {path} line {lineno}: {exc}") from None
        labels[row[0].strip()] = label
    if not labels:
        raise InputError(f"--key-labels {path}: no key,label rows after the header")
    return labels


def _check_format(path: str, source: str) -> None:
    if path == "-":
        return  # stdin cannot be sniffed twice cheaply; the reader reports what does not parse
    found = detect_format(path)
    expected = _READER_FORMAT[source]
    if found != expected and not (expected == "sequence_json" and found == "sequence_jsonl"):
        hint = ("it already is sequence JSONL: use it as it is" if found == "sequence_jsonl"
                else f"convert it with --from {_SOURCE_OF_FORMAT.get(found, found)}")
        raise InputError(f"{path} looks like {found} input, not {source} ({hint})")


def _windowed(records: Iterable[LogRecord]) -> Iterator[LogRecord]:
    for record in records:
        record.key = "window"  # one stream: consecutive lines, whatever the records say
        yield record


def _keyed_by_field(records: Iterable[LogRecord], field: str) -> Iterator[LogRecord]:
    for record in records:
        value = record.attributes.get(field)
        record.key = None if value is None else str(value)
        yield record


def _group(records: Iterable[LogRecord], opts: ConvertOptions, stem: str) -> list[LogSequence]:
    if opts.window is not None:
        config = SequencerConfig(max_lines=opts.window, min_lines=min(6, opts.window), idle_s=_NEVER,
                                 max_age_s=_NEVER, max_open_sequences=1)
        sequences = list(group_records(_windowed(records), config))
        for n, seq in enumerate(sequences):
            seq.id, seq.key = f"{stem}-w{n:06d}", None
        return sequences
    if opts.key_field:
        records = _keyed_by_field(records, opts.key_field)
    config = SequencerConfig(max_lines=opts.max_lines or 1_000_000, min_lines=1, idle_s=opts.idle_s or _NEVER,
                             max_age_s=_NEVER, max_open_sequences=10_000_000)
    return list(group_records(records, config))


def _strictness(report: ReadReport, path: str, lenient: bool) -> None:
    bad = []
    if report.invalid_utf8_lines:
        bad.append(f"{report.invalid_utf8_lines} lines are not valid UTF-8")
    if report.skipped_malformed:
        bad.append(f"{report.skipped_malformed} lines/items could not be read as {report.fmt} (mixed formats?)")
    if not bad:
        return
    message = f"{path}: " + "; ".join(bad) + (f"; first problem: {report.problems[0]}" if report.problems else "")
    if lenient:
        logger.warning("%s (kept going: --lenient)", message)
        return
    raise InputError(message + ". Fix the input, or pass --lenient to replace bad bytes and skip unreadable lines "
                               "(both counted in the summary).")


def convert(path: str, opts: ConvertOptions) -> ConvertResult:
    """Read `path` as `opts.source` and return its sequences; raises InputError with a user message."""
    problems = opts.problems()
    if problems:
        raise InputError("; ".join(problems))
    _check_format(path, opts.source)
    report = ReadReport()
    stem = "stdin" if path == "-" else Path(path).stem
    if opts.source == "seed-json":
        sequences = list(read_sequence_file(path, None if path == "-" else detect_format(path), report))
    elif opts.source == "loghub" and is_structured_csv(path):
        records = read_structured_csv(path, key_regex=opts.key_regex, report=report)
        sequences = _group(records, opts, stem)
    else:
        line_regex = opts.line_regex or (LOGHUB_LINE_REGEX if opts.source == "loghub" else None)
        records = read_records(path, _READER_FORMAT[opts.source], line_regex=line_regex, key_regex=opts.key_regex,
                               report=report, label_parser=loghub_label if opts.source == "loghub" else parse_label)
        sequences = _group(records, opts, stem)
    _strictness(report, path, opts.lenient)
    result = ConvertResult(sequences, report)
    if opts.key_labels:
        labels = read_key_labels(opts.key_labels)
        for seq in sequences:
            if seq.key in labels:
                seq.label = labels[seq.key]
                result.keys_labeled += 1
        if result.keys_labeled == 0:
            raise InputError(f"--key-labels {opts.key_labels}: none of its {len(labels)} keys matches a sequence key "
                             f"(first sequence key: {sequences[0].key!r})")
    return result
