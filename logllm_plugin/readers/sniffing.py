"""Which of the four formats an input is, from its first non-empty lines."""
from __future__ import annotations

from typing import Optional

from logllm_plugin.readers.fields import MESSAGE_KEYS
from logllm_plugin.readers.source import BOM, InputError, LineSource, PathLike, loads_json

FORMATS = ("sequence_jsonl", "sequence_json", "record_jsonl", "text")
SEQUENCE_FORMATS = ("sequence_jsonl", "sequence_json")
RECORD_FORMATS = ("record_jsonl", "text")
SNIFF_LINES = 5


def detect_format(path: PathLike) -> str:
    """Guess the format from the first non-empty lines; "text" when nothing else fits."""
    lines = LineSource(path)
    head = [raw.removeprefix(BOM) for raw in lines.sniff(SNIFF_LINES)]
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
        if any(isinstance(obj.get(k), str) for k in MESSAGE_KEYS):
            return "record_jsonl"
        break
    return "text"


def resolve_format(lines: LineSource, fmt: Optional[str], allowed: tuple[str, ...], who: str) -> str:
    if fmt is None:
        fmt = detect_format(lines.path)
    if fmt not in FORMATS:
        raise InputError(f"unknown input format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt not in allowed:
        other = "read_sequence_file" if fmt in SEQUENCE_FORMATS else "read_records"
        raise InputError(f"{lines.path}: {who} cannot read {fmt} input; use {other}")
    return fmt
