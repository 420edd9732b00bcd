"""Writing sequence JSONL: the format `readers.read_sequence_file` reads back field for field."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from logllm_plugin.records import LogSequence

# Optional fields written only when set, in this order (README of the shared datasets).
_OPTIONAL = ("key", "label", "category", "split", "line_labels", "explanation", "closed_by")


def sequence_to_dict(seq: LogSequence, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": seq.id, "lines": list(seq.lines)}
    for name in _OPTIONAL:
        value = getattr(seq, name)
        if value is not None:
            row[name] = value
    if seq.source_lines and seq.source_lines == list(range(seq.source_lines[0], seq.source_lines[0] + len(seq.lines))):
        row["first_lineno"] = seq.source_lines[0]  # what the reader turns back into source_lines
    row.update({k: v for k, v in extra.items() if v is not None})
    return row


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows atomically (temp file + rename): a failed run never leaves half a file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def write_sequences(path: str | Path, sequences: Iterable[LogSequence]) -> int:
    return write_jsonl(path, (sequence_to_dict(s) for s in sequences))
