"""Sequence files: one sequence a line (sequence_jsonl), or a JSON array of them (sequence_json,
with the seed data's and its fine-tuning items' field names). A damaged line or array element is
skipped and counted; the rest is read."""
from __future__ import annotations

import json
import re
from typing import Any, Iterator, Optional

from logllm_plugin.readers.fields import first_present, label_or_none, line_labels, text_or_none
from logllm_plugin.readers.sniffing import SEQUENCE_FORMATS, resolve_format
from logllm_plugin.readers.source import (DEFAULT_MAX_LINE_CHARS, MALFORMED, InputError, LineSource, PathLike,
                                          ReadReport, count_long, dumps_json, finish, numbered_lines,
                                          parse_json_counted)
from logllm_plugin.records import LogSequence

_NEXT_ELEMENT = re.compile(r",\s*\{")  # where the next object of a damaged array may start


def read_sequence_file(
    path: PathLike, fmt: Optional[str] = None, report: Optional[ReadReport] = None,
    *, max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
) -> Iterator[LogSequence]:
    """Sequences from sequence_jsonl or sequence_json input (sniffed when fmt is None)."""
    lines = LineSource(path)
    report = report if report is not None else ReadReport()
    report.fmt = resolve_format(lines, fmt, SEQUENCE_FORMATS, "read_sequence_file")
    return _iter_sequences(lines, report, max_line_chars)


def _iter_sequences(lines: LineSource, report: ReadReport, max_chars: int) -> Iterator[LogSequence]:
    jsonl = report.fmt == "sequence_jsonl"
    items = _jsonl_objects(lines, report) if jsonl else _json_array_objects(lines, report)
    for where, index, obj in items:
        seq = _to_sequence(obj, f"{lines.stem}:{index}", where, report, max_chars)
        if seq is not None:
            report.sequences += 1
            yield seq
    finish(report, lines.path, report.sequences)


def _jsonl_objects(lines: LineSource, report: ReadReport) -> Iterator[tuple[str, int, Any]]:
    for lineno, text in numbered_lines(lines, report):
        if not text.strip():
            report.skipped_empty += 1
        elif (obj := parse_json_counted(text, f"line {lineno}", report)) is not MALFORMED:
            yield f"line {lineno}", lineno, obj


def _json_array_objects(lines: LineSource, report: ReadReport) -> Iterator[tuple[str, int, Any]]:
    text = "\n".join(t for _, t in numbered_lines(lines, report))
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
    raw_lines = first_present(obj, ("lines", "log_entries"))[1] if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or not isinstance(raw_lines, list) or not raw_lines:
        report.skipped_malformed += 1
        what = "empty 'lines' list" if isinstance(raw_lines, list) else "no 'lines' list"
        report.problem(f"{where}: {what}; sequence skipped")
        return None
    seq_lines = [x if isinstance(x, str) else dumps_json(x) for x in raw_lines]
    for i, line in enumerate(seq_lines):
        count_long(line, max_chars, f"{where} entry {i}", report)
    first = obj.get("first_lineno")
    source_lines = None
    if isinstance(first, int) and not isinstance(first, bool):
        source_lines = list(range(first, first + len(seq_lines)))
    return LogSequence(
        id=text_or_none(first_present(obj, ("id", "sequence_id"))[1]) or default_id,
        lines=seq_lines,
        key=text_or_none(obj.get("key")),
        label=label_or_none(obj.get("label"), where, report),
        category=text_or_none(first_present(obj, ("category", "label_detail"))[1]),
        split=text_or_none(obj.get("split")),
        line_labels=line_labels(obj.get("line_labels"), len(seq_lines), where, report),
        source_lines=source_lines,
        explanation=text_or_none(obj.get("explanation")),
        closed_by=text_or_none(obj.get("closed_by")),
    )
