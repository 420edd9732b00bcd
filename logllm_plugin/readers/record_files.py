"""Record inputs: one record a line, as JSON (record_jsonl: message/body/line/msg plus OTel-style
attributes) or as text, optionally parsed by a regex."""
from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Optional

from logllm_plugin.readers.fields import (KEY_KEYS, LEVEL_KEYS, MESSAGE_KEYS, NESTED_KEYS, TIME_KEYS, first_present,
                                          flatten, label_or_none, parse_label, set_label, text_or_none,
                                          timestamp_or_none)
from logllm_plugin.readers.sniffing import RECORD_FORMATS, resolve_format
from logllm_plugin.readers.source import (DEFAULT_MAX_LINE_CHARS, MALFORMED, LineSource, PathLike, ReadReport,
                                          compile_regex, count_long, dumps_json, finish, numbered_lines,
                                          parse_json_counted)
from logllm_plugin.records import LogRecord


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
    line_re, key_re = compile_regex(line_regex, "line_regex"), compile_regex(key_regex, "key_regex")
    lines = LineSource(path)
    report = report if report is not None else ReadReport()
    report.fmt = resolve_format(lines, fmt, RECORD_FORMATS, "read_records")
    return _iter_records(lines, report, line_re, key_re, max_line_chars, label_parser)


def _iter_records(
    lines: LineSource, report: ReadReport, line_re: Optional[re.Pattern[str]],
    key_re: Optional[re.Pattern[str]], max_chars: int,
    label_parser: Callable[[Any], Optional[int]] = parse_label,
) -> Iterator[LogRecord]:
    for lineno, text in numbered_lines(lines, report):
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
        count_long(record.message, max_chars, f"line {lineno}", report)
        report.records += 1
        yield record
    finish(report, lines.path, report.records)


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
        record.timestamp_s = timestamp_or_none(groups["timestamp"], lineno, report)
    if "label" in groups:
        set_label(record, groups["label"], label_parser, lineno, report)
    return record


def _json_record(text: str, lineno: int, report: ReadReport) -> Optional[LogRecord]:
    obj = parse_json_counted(text, f"line {lineno}", report)
    if obj is MALFORMED:
        return None
    if not isinstance(obj, dict):
        # Valid JSON but not a record: keep the text rather than drop a line.
        report.problem(f"line {lineno}: JSON {type(obj).__name__}, not an object; kept as text")
        return LogRecord(message=obj if isinstance(obj, str) else text, source_line=lineno)
    used_msg, message = first_present(obj, MESSAGE_KEYS)
    if used_msg is None:
        report.problem(f"line {lineno}: no message field; whole line kept as the message")
        message = text
    used_key, key = first_present(obj, KEY_KEYS)
    used_time, time_value = first_present(obj, TIME_KEYS)
    used_level, level = first_present(obj, LEVEL_KEYS)
    consumed = {used_msg, used_key, used_time, used_level, "label", *NESTED_KEYS}
    attributes = {k: v for k, v in obj.items() if k not in consumed}
    for nested in NESTED_KEYS:  # later wins: log attributes over resource over top level
        if isinstance(obj.get(nested), dict):
            flatten("", obj[nested], attributes)
        elif obj.get(nested) is not None:
            attributes[nested] = obj[nested]
    return LogRecord(
        message=message if isinstance(message, str) else dumps_json(message),
        key=text_or_none(key),
        timestamp_s=timestamp_or_none(time_value, lineno, report) if used_time else None,
        level=text_or_none(level),
        attributes=attributes,
        label=label_or_none(obj.get("label"), f"line {lineno}", report),
        source_line=lineno,
    )
