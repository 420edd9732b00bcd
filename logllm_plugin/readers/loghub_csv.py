"""loghub's structured CSV (`*_structured.csv`, parser output): one record a row."""
from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Optional

from logllm_plugin.readers.fields import loghub_label, set_label, timestamp_or_none
from logllm_plugin.readers.source import (BOM, DEFAULT_MAX_LINE_CHARS, InputError, LineSource, PathLike, ReadReport,
                                          compile_regex, count_long, finish, numbered_lines)
from logllm_plugin.records import LogRecord


def is_structured_csv(path: PathLike) -> bool:
    """loghub's `*_structured.csv` (parser output): a header with LineId and Content columns."""
    if str(path) == "-":
        return False
    head = LineSource(path).sniff(1)
    first = head[0].removeprefix(BOM).decode("utf-8", errors="replace") if head else ""
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

    key_re = compile_regex(key_regex, "key_regex")
    lines = LineSource(path)
    report = report if report is not None else ReadReport()
    report.fmt = "structured_csv"
    return _iter_csv_records(lines, report, key_re, label_parser, max_line_chars, csv)


def _iter_csv_records(lines: LineSource, report: ReadReport, key_re: Optional[re.Pattern[str]],
                      label_parser: Callable[[Any], Optional[int]], max_chars: int, csv: Any) -> Iterator[LogRecord]:
    numbered = numbered_lines(lines, report)
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
            record.timestamp_s = timestamp_or_none(fields["Timestamp"], lineno, report)
        if "Label" in fields:
            set_label(record, fields["Label"], label_parser, lineno, report)
        if key_re is not None and (m := key_re.search(message)) is not None:
            record.key = m.group("key") if "key" in key_re.groupindex else m.group(0)
        count_long(message, max_chars, f"line {lineno}", report)
        report.records += 1
        yield record
    finish(report, lines.path, report.records)
