"""Input readers: log files (or stdin) into `LogRecord`s and `LogSequence`s.

Four formats, sniffed from the first non-empty lines (`detect_format`):
  sequence_jsonl  one sequence a line: {"id", "lines": [...], "label", ...}
  sequence_json   a JSON array of such objects (seed data: sequence_id / log_entries / label, or
                  the seed's fine-tuning items: prompt / input / output)
  record_jsonl    one record a line: {"line" | "message" | "body" | "msg": str, ...}
  text            one record a line, optionally parsed by a regex

These files come from the wild, so no line is lost silently and bad input never ends in a
traceback. Files are read as bytes and decoded per line (errors="replace"): one bad byte costs one
character, not the file. Only empty lines and malformed JSON are skipped, both counted in the
`ReadReport` the caller may pass in. Fatal problems raise `InputError` with a user-ready message:
missing file, unknown format or bad regex when the reader is called; "contains no log lines" from
the generator itself at the end of iteration, so no caller can forget that check.
"""
from __future__ import annotations

import json
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Optional, Union

from logllm_plugin.records import LogRecord, LogSequence

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
FORMATS = ("sequence_jsonl", "sequence_json", "record_jsonl", "text")
SEQUENCE_FORMATS = ("sequence_jsonl", "sequence_json")
RECORD_FORMATS = ("record_jsonl", "text")
DEFAULT_MAX_LINE_CHARS = 64 * 1024  # far above any real log line, far below a runaway blob
MAX_PROBLEMS = 20
_SNIFF_LINES = 5

_MESSAGE_KEYS = ("message", "body", "line", "msg")
_KEY_KEYS = ("key", "trace_id", "traceId")
_TIME_KEYS = ("timestamp", "@timestamp", "time")
_LEVEL_KEYS = ("level", "severity", "severity_text", "severityText")
_NESTED_KEYS = ("resource", "attributes")  # flattened; log attributes win over resource ones
_NEXT_ELEMENT = re.compile(r",\s*\{")  # where the next object of a damaged array may start
_MALFORMED = object()
_BOM = b"\xef\xbb\xbf"
_LABEL_WORDS = {"0": 0, "1": 1, "normal": 0, "anomalous": 1, "anomaly": 1, "abnormal": 1}


class InputError(Exception):
    """A problem with the input as a whole; the message is meant for the user as is."""


def loads_json(text: str) -> Any:
    """json.loads, with nesting too deep for the parser reported as ValueError like any bad JSON.

    json raises RecursionError (not ValueError) for `[[[[...` a few thousand levels deep; one
    hostile line must be a counted malformed line, not a traceback.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def dumps_json(value: Any) -> str:
    """json.dumps for a value that came from loads_json (so it is JSON), tolerating deep nesting."""
    try:
        return json.dumps(value)
    except RecursionError:
        return repr(value)[:DEFAULT_MAX_LINE_CHARS]


@dataclass
class ReadReport:
    """What a reader saw; every input line is accounted for in these counters."""

    fmt: Optional[str] = None
    lines_read: int = 0  # physical input lines, empty ones included
    records: int = 0
    sequences: int = 0
    skipped_empty: int = 0
    skipped_malformed: int = 0
    invalid_utf8_lines: int = 0  # decoded with U+FFFD replacements and kept
    long_lines: int = 0  # log lines over max_line_chars, kept whole
    unmatched_regex: int = 0  # text lines kept whole because line_regex did not match
    bad_timestamps: int = 0  # timestamp present but unparseable; record kept with None
    bad_labels: int = 0  # label present but not 0/1-like; kept as unlabeled
    problems: list[str] = field(default_factory=list)
    problems_dropped: int = 0

    def problem(self, message: str) -> None:
        # Cap the list: a file of a million bad lines must not hold a million messages.
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)
        else:
            self.problems_dropped += 1
        logger.debug("input problem: %s", message)

    def summary(self) -> str:
        parts = [f"read {self.lines_read} lines ({self.fmt or 'unknown format'})"]
        parts += [
            f"{name.replace('_', ' ')}: {value}"
            for name in ("records", "sequences", "skipped_empty", "skipped_malformed",
                         "invalid_utf8_lines", "long_lines", "unmatched_regex", "bad_timestamps",
                         "bad_labels")
            if (value := getattr(self, name))
        ]
        if self.problems:
            more = f" (+{self.problems_dropped} more)" if self.problems_dropped else ""
            parts.append(f"first problem: {self.problems[0]}{more}")
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------- input
class _Lines:
    """(1-based line number, decoded text) pairs from a file or stdin, with sniffed lines replayed.

    stdin cannot be reopened, so lines read while sniffing are kept and handed out again.
    """

    _stdin_pushback: list[bytes] = []  # process-wide: stdin itself is process-wide

    def __init__(self, path: PathLike) -> None:
        self.path = str(path)
        self.is_stdin = self.path == "-"
        self.stem = "stdin" if self.is_stdin else Path(self.path).stem
        if not self.is_stdin and not Path(self.path).exists():
            raise InputError(f"{self.path}: no such file")
        if not self.is_stdin and Path(self.path).is_dir():
            raise InputError(f"{self.path}: is a directory, expected a log file")

    def _open(self) -> IO[bytes]:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open: {exc.strerror or exc}") from exc

    def raw(self) -> Iterator[bytes]:
        if not self.is_stdin:
            with self._open() as fh:
                yield from fh
            return
        pushed, _Lines._stdin_pushback = _Lines._stdin_pushback, []
        yield from pushed
        yield from sys.stdin.buffer

    def sniff(self, n: int) -> list[bytes]:
        """The first n non-empty raw lines, without consuming them."""
        if not self.is_stdin:
            with self._open() as fh:
                return list(islice((raw for raw in fh if raw.strip()), n))
        seen = _Lines._stdin_pushback
        while sum(1 for raw in seen if raw.strip()) < n:
            raw = sys.stdin.buffer.readline()
            if not raw:
                break
            seen.append(raw)
        return [raw for raw in seen if raw.strip()][:n]


def _decode(raw: bytes, lineno: int, report: ReadReport) -> str:
    raw = raw.rstrip(b"\r\n")
    if lineno == 1:
        raw = raw.removeprefix(_BOM)  # editors on Windows write one; JSON parsers reject it
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.invalid_utf8_lines += 1
        report.problem(f"line {lineno}: invalid UTF-8 at byte {exc.start}, replaced")
        return raw.decode("utf-8", errors="replace")


def _numbered(lines: _Lines, report: ReadReport) -> Iterator[tuple[int, str]]:
    for lineno, raw in enumerate(lines.raw(), start=1):
        report.lines_read += 1
        yield lineno, _decode(raw, lineno, report)


def _finish(report: ReadReport, path: str, produced: int) -> None:
    if produced == 0:
        raise InputError(
            f"{path} contains no log lines ({report.lines_read} lines read, "
            f"{report.skipped_empty} empty, {report.skipped_malformed} malformed)"
            + (f"; first problem: {report.problems[0]}" if report.problems else "")
        )
    logger.info("%s: %s", path, report.summary())


# ------------------------------------------------------------------------------------ sniffing
def detect_format(path: PathLike) -> str:
    """Guess the format from the first non-empty lines; "text" when nothing else fits."""
    lines = _Lines(path)
    head = [raw.removeprefix(_BOM) for raw in lines.sniff(_SNIFF_LINES)]
    if not head or not head[0].strip():
        raise InputError(f"{lines.path} contains no log lines (empty file)")
    first = head[0].lstrip()
    # "[{" (or "[]") opens a JSON array; "[2025-07-13 ..." is an ordinary bracketed log line.
    if first.startswith(b"[") and first[1:].lstrip()[:1] in (b"{", b"]", b""):
        return "sequence_json"
    for raw in head:
        try:
            obj = loads_json(raw.decode("utf-8", errors="replace"))
        except ValueError:
            continue  # one malformed line must not turn a JSONL file into "text"
        if not isinstance(obj, dict):
            break
        if any(isinstance(obj.get(k), list) for k in ("lines", "log_entries")):
            return "sequence_jsonl"
        if any(isinstance(obj.get(k), str) for k in _MESSAGE_KEYS):
            return "record_jsonl"
        break
    return "text"


def _resolve_format(lines: _Lines, fmt: Optional[str], allowed: tuple[str, ...], who: str) -> str:
    if fmt is None:
        fmt = detect_format(lines.path)
    if fmt not in FORMATS:
        raise InputError(f"unknown input format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt not in allowed:
        other = "read_sequences" if fmt in SEQUENCE_FORMATS else "read_records"
        raise InputError(f"{lines.path}: {who} cannot read {fmt} input; use {other}")
    return fmt


# ------------------------------------------------------------------------------ field parsing
def parse_label(value: Any) -> Optional[int]:
    """0/1 from ints, bools and the usual words; None when absent; ValueError when not 0/1-like."""
    if value is None:
        return None
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _LABEL_WORDS:
        return _LABEL_WORDS[value.strip().lower()]
    raise ValueError(f"label {value!r} is not 0/1/normal/anomalous")


def loghub_label(value: Any) -> Optional[int]:
    """loghub's label column (BGL, Thunderbird, Spirit, Liberty): "-" is normal, an alert tag anomalous."""
    if value is None or not str(value).strip():
        return None
    return 0 if str(value).strip() == "-" else 1


def parse_timestamp(value: Any) -> Optional[float]:
    """Seconds since the epoch from epoch numbers (s/ms/us/ns) or ISO-8601; None when unparseable.

    Naive ISO times are taken as UTC, so results do not depend on the host's time zone.
    """
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except ValueError:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace(",", "."))
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    if not math.isfinite(number):
        return None
    # Epoch seconds stay below 1e11 until the year 5138; larger values are finer units.
    for scale in (1.0, 1e3, 1e6, 1e9):
        if abs(number) < 1e11 * scale:
            return number / scale
    return None


def _str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[Optional[str], Any]:
    for k in keys:
        if obj.get(k) is not None:
            return k, obj[k]
    return None, None


def _flatten(prefix: str, value: dict[str, Any], out: dict[str, Any]) -> None:
    # Depth-first like a recursive walk (same order, same "later wins"), but with an explicit
    # stack, so JSON nested as deep as the parser allows cannot overflow the Python stack.
    stack = [(prefix, iter(value.items()))]
    while stack:
        prefix, items = stack[-1]
        for k, v in items:
            if isinstance(v, dict):
                # OTel JSON wraps resource attributes as {"resource": {"attributes": {...}}}.
                stack.append((prefix if k == "attributes" else f"{prefix}{k}.", iter(v.items())))
                break
            out[f"{prefix}{k}"] = v
        else:
            stack.pop()


def _label_or_none(value: Any, where: str, report: ReadReport) -> Optional[int]:
    try:
        return parse_label(value)
    except ValueError as exc:
        report.bad_labels += 1
        report.problem(f"{where}: {exc}; kept as unlabeled")
        return None


def _count_long(text: str, max_line_chars: int, where: str, report: ReadReport) -> None:
    if len(text) > max_line_chars:
        report.long_lines += 1
        report.problem(f"{where}: long line ({len(text)} chars), kept whole")


# ------------------------------------------------------------------------------- sequences
def read_sequences(
    path: PathLike, fmt: Optional[str] = None, report: Optional[ReadReport] = None,
    *, max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
) -> Iterator[LogSequence]:
    """Sequences from sequence_jsonl or sequence_json input (sniffed when fmt is None)."""
    lines = _Lines(path)
    report = report if report is not None else ReadReport()
    report.fmt = _resolve_format(lines, fmt, SEQUENCE_FORMATS, "read_sequences")
    return _iter_sequences(lines, report, max_line_chars)


def _iter_sequences(lines: _Lines, report: ReadReport, max_chars: int) -> Iterator[LogSequence]:
    jsonl = report.fmt == "sequence_jsonl"
    items = _jsonl_objects(lines, report) if jsonl else _json_array_objects(lines, report)
    for where, index, obj in items:
        seq = _to_sequence(obj, f"{lines.stem}:{index}", where, report, max_chars)
        if seq is not None:
            report.sequences += 1
            yield seq
    _finish(report, lines.path, report.sequences)


def _parse_json(text: str, where: str, report: ReadReport) -> Any:
    try:
        return loads_json(text)
    except ValueError as exc:
        report.skipped_malformed += 1
        report.problem(f"{where}: malformed JSON: {exc}")
        return _MALFORMED


def _jsonl_objects(lines: _Lines, report: ReadReport) -> Iterator[tuple[str, int, Any]]:
    for lineno, text in _numbered(lines, report):
        if not text.strip():
            report.skipped_empty += 1
        elif (obj := _parse_json(text, f"line {lineno}", report)) is not _MALFORMED:
            yield f"line {lineno}", lineno, obj


def _json_array_objects(lines: _Lines, report: ReadReport) -> Iterator[tuple[str, int, Any]]:
    text = "\n".join(t for _, t in _numbered(lines, report))
    if not text.lstrip().startswith("["):
        raise InputError(f"{lines.path}: sequence_json input must be a JSON array")
    decoder = json.JSONDecoder()
    # Decode element by element so a truncated or damaged array still yields its good elements.
    pos, index = text.index("[") + 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        index += 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except RecursionError:
            report.skipped_malformed += 1
            report.problem(f"item {index}: malformed JSON: nested too deeply")
            resync = _NEXT_ELEMENT.search(text, pos)
            if resync is None:
                return
            pos = resync.start() + 1
            continue
        except json.JSONDecodeError as exc:
            report.skipped_malformed += 1
            report.problem(f"item {index} (line {exc.lineno}): malformed JSON: {exc.msg}")
            resync = _NEXT_ELEMENT.search(text, exc.pos)
            if resync is None:
                return
            pos = resync.start() + 1
            continue
        yield f"item {index}", index, obj


def _from_unified(obj: dict[str, Any]) -> dict[str, Any]:
    """The original project's fine-tuning items ({prompt, input: fenced log lines, output: JSON
    {status, category}}) as a plain sequence object; other objects are returned unchanged."""
    if "lines" in obj or "log_entries" in obj or not isinstance(obj.get("input"), str):
        return obj
    body = obj["input"].strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    item: dict[str, Any] = {**obj, "lines": [line for line in body.splitlines() if line.strip()]}
    try:
        answer = json.loads(obj.get("output") or "{}")
    except (TypeError, ValueError):
        answer = {}
    if isinstance(answer, dict):
        status = str(answer.get("status", "")).strip().lower()
        item["label"] = {"normal": 0, "abnormal": 1, "anomalous": 1}.get(status, answer.get("status"))
        if item["label"] == 1 and answer.get("category") not in (None, "", "None"):
            item["category"] = answer["category"]
    return item


def _to_sequence(
    obj: Any, default_id: str, where: str, report: ReadReport, max_chars: int
) -> Optional[LogSequence]:
    if isinstance(obj, dict):
        obj = _from_unified(obj)
    raw_lines = _first(obj, ("lines", "log_entries"))[1] if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or not isinstance(raw_lines, list) or not raw_lines:
        report.skipped_malformed += 1
        what = "empty 'lines' list" if isinstance(raw_lines, list) else "no 'lines' list"
        report.problem(f"{where}: {what}; sequence skipped")
        return None
    seq_lines = [x if isinstance(x, str) else dumps_json(x) for x in raw_lines]
    for i, line in enumerate(seq_lines):
        _count_long(line, max_chars, f"{where} entry {i}", report)
    first = obj.get("first_lineno")
    source_lines = None
    if isinstance(first, int) and not isinstance(first, bool):
        source_lines = list(range(first, first + len(seq_lines)))
    return LogSequence(
        id=_str(_first(obj, ("id", "sequence_id"))[1]) or default_id,
        lines=seq_lines,
        key=_str(obj.get("key")),
        label=_label_or_none(obj.get("label"), where, report),
        category=_str(_first(obj, ("category", "label_detail"))[1]),
        split=_str(obj.get("split")),
        line_labels=_line_labels(obj.get("line_labels"), len(seq_lines), where, report),
        source_lines=source_lines,
        explanation=_str(obj.get("explanation")),
        closed_by=_str(obj.get("closed_by")),
    )


def _line_labels(value: Any, n: int, where: str, report: ReadReport) -> Optional[list[int]]:
    if value is None:
        return None
    try:
        labels = [parse_label(v) for v in value] if isinstance(value, list) else []
        if len(labels) != n or None in labels:
            raise ValueError(f"line_labels must be a list of {n} 0/1 labels")
    except ValueError as exc:
        report.bad_labels += 1
        report.problem(f"{where}: {exc}; line labels dropped")
        return None
    return [int(v) for v in labels if v is not None]


# --------------------------------------------------------------------------------- records
def read_records(
    path: PathLike, fmt: Optional[str] = None, *, line_regex: Optional[str] = None,
    key_regex: Optional[str] = None, report: Optional[ReadReport] = None,
    max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
    label_parser: Callable[[Any], Optional[int]] = parse_label,
) -> Iterator[LogRecord]:
    """Records from record_jsonl or text input (sniffed when fmt is None).

    line_regex (text only) is searched in each line; its named groups key, timestamp, level,
    message and label fill the record, and a line it does not match is kept whole as the message.
    label_parser turns a text line's `label` group into 0/1 (`loghub_label` for loghub's column).
    key_regex: the first match in the raw line (its `key` group if any) becomes the record key.
    """
    line_re, key_re = _compile(line_regex, "line_regex"), _compile(key_regex, "key_regex")
    lines = _Lines(path)
    report = report if report is not None else ReadReport()
    report.fmt = _resolve_format(lines, fmt, RECORD_FORMATS, "read_records")
    return _iter_records(lines, report, line_re, key_re, max_line_chars, label_parser)


def _compile(pattern: Optional[str], name: str) -> Optional[re.Pattern[str]]:
    try:
        return None if pattern is None else re.compile(pattern)
    except re.error as exc:
        raise InputError(f"{name} {pattern!r} is not a valid regular expression: {exc}") from exc


def _iter_records(
    lines: _Lines, report: ReadReport, line_re: Optional[re.Pattern[str]],
    key_re: Optional[re.Pattern[str]], max_chars: int,
    label_parser: Callable[[Any], Optional[int]] = parse_label,
) -> Iterator[LogRecord]:
    for lineno, text in _numbered(lines, report):
        if not text.strip():
            report.skipped_empty += 1
            continue
        if report.fmt == "record_jsonl":
            record = _json_record(text, lineno, report)
        else:
            record = _text_record(text, lineno, line_re, report, label_parser)
        if record is None:
            continue
        if key_re is not None and (m := key_re.search(text)) is not None:
            record.key = m.group("key") if "key" in key_re.groupindex else m.group(0)
        _count_long(record.message, max_chars, f"line {lineno}", report)
        report.records += 1
        yield record
    _finish(report, lines.path, report.records)


def _text_record(
    text: str, lineno: int, line_re: Optional[re.Pattern[str]], report: ReadReport,
    label_parser: Callable[[Any], Optional[int]] = parse_label,
) -> LogRecord:
    record = LogRecord(message=text, source_line=lineno)
    if line_re is None:
        return record
    m = line_re.search(text)
    if m is None:
        report.unmatched_regex += 1
        return record
    groups = {k: v for k, v in m.groupdict().items() if v is not None}
    record.message = groups.get("message", text)
    record.key, record.level = groups.get("key"), groups.get("level")
    if "timestamp" in groups:
        record.timestamp_s = _timestamp(groups["timestamp"], lineno, report)
    if "label" in groups:
        _set_label(record, groups["label"], label_parser, lineno, report)
    return record


def _set_label(record: LogRecord, value: Any, label_parser: Callable[[Any], Optional[int]], lineno: int,
               report: ReadReport) -> None:
    """A line's own label; one that does not parse is counted and the line kept unlabeled."""
    try:
        record.label = label_parser(value)
    except ValueError as exc:
        report.bad_labels += 1
        report.problem(f"line {lineno}: {exc}; kept as unlabeled")


def _timestamp(value: Any, lineno: int, report: ReadReport) -> Optional[float]:
    ts = parse_timestamp(value)
    if ts is None:
        report.bad_timestamps += 1
        report.problem(f"line {lineno}: unparseable timestamp {str(value)[:40]!r}")
    return ts


def _json_record(text: str, lineno: int, report: ReadReport) -> Optional[LogRecord]:
    obj = _parse_json(text, f"line {lineno}", report)
    if obj is _MALFORMED:
        return None
    if not isinstance(obj, dict):
        # Valid JSON but not a record: keep the text rather than drop a line.
        report.problem(f"line {lineno}: JSON {type(obj).__name__}, not an object; kept as text")
        return LogRecord(message=obj if isinstance(obj, str) else text, source_line=lineno)
    used_msg, message = _first(obj, _MESSAGE_KEYS)
    if used_msg is None:
        report.problem(f"line {lineno}: no message field; whole line kept as the message")
        message = text
    used_key, key = _first(obj, _KEY_KEYS)
    used_time, time_value = _first(obj, _TIME_KEYS)
    used_level, level = _first(obj, _LEVEL_KEYS)
    consumed = {used_msg, used_key, used_time, used_level, "label", *_NESTED_KEYS}
    attributes = {k: v for k, v in obj.items() if k not in consumed}
    for nested in _NESTED_KEYS:  # later wins: log attributes over resource over top level
        if isinstance(obj.get(nested), dict):
            _flatten("", obj[nested], attributes)
        elif obj.get(nested) is not None:
            attributes[nested] = obj[nested]
    return LogRecord(
        message=message if isinstance(message, str) else dumps_json(message),
        key=_str(key),
        timestamp_s=_timestamp(time_value, lineno, report) if used_time else None,
        level=_str(level),
        attributes=attributes,
        label=_label_or_none(obj.get("label"), f"line {lineno}", report),
        source_line=lineno,
    )


# ------------------------------------------------------------------------- loghub structured CSV
def is_structured_csv(path: PathLike) -> bool:
    """loghub's `*_structured.csv` (parser output): a header with LineId and Content columns."""
    if str(path) == "-":
        return False
    head = _Lines(path).sniff(1)
    first = head[0].removeprefix(_BOM).decode("utf-8", errors="replace") if head else ""
    columns = {c.strip() for c in first.strip().split(",")}
    return {"LineId", "Content"} <= columns


def read_structured_csv(
    path: PathLike, *, key_regex: Optional[str] = None, report: Optional[ReadReport] = None,
    label_parser: Callable[[Any], Optional[int]] = loghub_label, max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
) -> Iterator[LogRecord]:
    """Records from a loghub structured CSV: Content is the message, Label (when present) the line
    label, Timestamp (epoch) the time, Level the level; the other columns become attributes.

    key_regex is searched in Content. A row with the wrong number of columns is skipped and counted.
    """
    import csv

    key_re = _compile(key_regex, "key_regex")
    lines = _Lines(path)
    report = report if report is not None else ReadReport()
    report.fmt = "structured_csv"
    return _iter_csv_records(lines, report, key_re, label_parser, max_line_chars, csv)


def _iter_csv_records(lines: _Lines, report: ReadReport, key_re: Optional[re.Pattern[str]],
                      label_parser: Callable[[Any], Optional[int]], max_chars: int, csv: Any) -> Iterator[LogRecord]:
    numbered = _numbered(lines, report)
    reader = csv.reader(text for _, text in numbered)
    header = next(reader, None)
    if not header or "Content" not in header:
        raise InputError(f"{lines.path}: a structured CSV needs a header with a Content column")
    header = [h.strip() for h in header]
    content_at = header.index("Content")
    for row in reader:
        lineno = reader.line_num
        if not row or not "".join(row).strip():
            report.skipped_empty += 1
            continue
        if len(row) != len(header):
            report.skipped_malformed += 1
            report.problem(f"line {lineno}: {len(row)} columns, the header has {len(header)}")
            continue
        fields = dict(zip(header, row))
        message = row[content_at]
        record = LogRecord(message=message, level=fields.get("Level") or None, source_line=lineno,
                           attributes={k: v for k, v in fields.items()
                                       if k not in ("Content", "Label", "Timestamp", "Level")})
        if "Timestamp" in fields:
            record.timestamp_s = _timestamp(fields["Timestamp"], lineno, report)
        if "Label" in fields:
            _set_label(record, fields["Label"], label_parser, lineno, report)
        if key_re is not None and (m := key_re.search(message)) is not None:
            record.key = m.group("key") if "key" in key_re.groupindex else m.group(0)
        _count_long(message, max_chars, f"line {lineno}", report)
        report.records += 1
        yield record
    _finish(report, lines.path, report.records)
