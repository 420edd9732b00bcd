"""The learning history: sequences as the detector saw them, on disk, bounded in bytes per source.

Only masked text is kept: lines pass the personal-data masker before they are written (the same
masker the analyzer uses, applied line by line so a line always masks the same way), and the
detector scores that same masked form, so what a model learned is what it is shown.

Layout under the history directory:

    FORMAT.json                 {"format_version": 1}: another version is refused at start
    <source>/seg-000001.jsonl   one sequence a line: {"t": time, "lines": [...], "edge": reason|null}

Segments rotate at a sixteenth of the cap; when a source's segments exceed the cap, its oldest go.
A write that fails (disk full, permissions changed at run time) never reaches the scoring path:
it is counted and logged once, and scoring goes on.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

logger = logging.getLogger(__name__)

FORMAT_FILE = "FORMAT.json"
FORMAT_VERSION = 1
SEGMENTS_PER_CAP = 16
DEFAULT_SOURCE = "default"


class HistoryError(RuntimeError):
    """A history directory that cannot be used (unwritable, another format version, corrupt)."""


@dataclass
class HistoryEntry:
    lines: list[str]
    time_s: float
    edge: Optional[str] = None  # why the sequence closed when not by its own end: end_of_input, max_lines, ...
    source: str = DEFAULT_SOURCE


def _source_dir_name(source: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", source)[:64].strip(".") or DEFAULT_SOURCE
    return cleaned


class SequenceHistory:
    def __init__(self, directory: str | Path, max_bytes_per_source: int):
        self.directory = Path(directory)
        self.max_bytes = max_bytes_per_source
        self.segment_bytes = max(4096, max_bytes_per_source // SEGMENTS_PER_CAP)
        self._lock = threading.Lock()
        self._open: dict[str, tuple[Path, object]] = {}  # source → (segment path, file)
        self._open_bytes: dict[str, int] = {}  # bytes in each open segment (no stat per append)
        self._bytes: dict[str, int] = {}
        self.count = 0  # sequences held (repeats included)
        self.received = 0  # sequences offered since start
        self.write_errors = 0
        self._warned = False
        self._prepare()

    # -- start --------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(f"history directory {self.directory}: {exc.strerror or exc}") from None
        marker = self.directory / FORMAT_FILE
        if marker.exists():
            try:
                version = json.loads(marker.read_text(encoding="utf-8")).get("format_version")
            except (OSError, ValueError, AttributeError) as exc:
                raise HistoryError(f"{marker} is unreadable or not JSON ({exc}); move the directory away") from None
            if version != FORMAT_VERSION:
                raise HistoryError(f"{self.directory} holds history format {version!r}; this version reads "
                                   f"format {FORMAT_VERSION}: point --learn at a new directory or move it away")
        else:
            try:
                marker.write_text(json.dumps({"format_version": FORMAT_VERSION}) + "\n", encoding="utf-8")
            except OSError as exc:
                raise HistoryError(f"history directory {self.directory} is not writable: {exc.strerror or exc}") from None
        probe = self.directory / ".write-probe"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"x")
            probe.unlink()
        except OSError as exc:
            raise HistoryError(f"history directory {self.directory} is not writable: {exc.strerror or exc}") from None
        for source_dir in self._source_dirs():
            for segment in sorted(source_dir.glob("seg-*.jsonl")):
                with open(segment, "rb") as handle:
                    self.count += sum(1 for _ in handle)
            self._bytes[source_dir.name] = sum(p.stat().st_size for p in source_dir.glob("seg-*.jsonl"))

    def _source_dirs(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- writing ------------------------------------------------------------------------------------
    def append(self, sequences: Sequence[Sequence[str]], edges: Optional[Sequence[Optional[str]]] = None,
               source: str = DEFAULT_SOURCE) -> int:
        """Add sequences (already masked); returns how many were written. Never raises."""
        now = time.time()
        payload = "".join(
            json.dumps({"t": round(now, 3), "lines": list(lines), "edge": edges[n] if edges else None},
                       ensure_ascii=False) + "\n"
            for n, lines in enumerate(sequences) if lines)
        written = sum(1 for lines in sequences if lines)
        with self._lock:
            self.received += len(sequences)
            if not written:
                return 0
            name = _source_dir_name(source)
            try:
                handle = self._segment(name)
                data = payload.encode("utf-8", "surrogatepass")
                handle.write(data)
                handle.flush()
            except OSError as exc:
                self.write_errors += len(sequences)
                if not self._warned:
                    logger.error("learning history: cannot write to %s (%s); scoring goes on, history does not grow",
                                 self.directory, exc.strerror or exc)
                    self._warned = True
                self._drop_open(name)
                return 0
            self._warned = False
            self._bytes[name] = self._bytes.get(name, 0) + len(data)
            self._open_bytes[name] = self._open_bytes.get(name, 0) + len(data)
            self.count += written
            self._evict(name)
            return written

    def _segment(self, name: str):
        current = self._open.get(name)
        if current is not None and self._open_bytes.get(name, 0) < self.segment_bytes:
            return current[1]
        if current is not None:  # rotate: the full segment is made durable, then closed
            current[1].flush()
            os.fsync(current[1].fileno())
            current[1].close()
        folder = self.directory / name
        folder.mkdir(exist_ok=True)
        numbers = [int(p.stem.split("-")[1]) for p in folder.glob("seg-*.jsonl")]
        path = folder / f"seg-{(max(numbers) + 1 if numbers else 1):06d}.jsonl"
        handle = open(path, "ab")
        self._open[name] = (path, handle)
        self._open_bytes[name] = 0
        return handle

    def _drop_open(self, name: str) -> None:
        current = self._open.pop(name, None)
        if current is not None:
            try:
                current[1].close()
            except OSError:
                pass

    def _evict(self, name: str) -> None:
        """Delete the source's oldest segments while it holds more than the cap (never the open one)."""
        folder = self.directory / name
        open_path = self._open.get(name, (None,))[0]
        while self._bytes.get(name, 0) > self.max_bytes:
            segments = sorted(folder.glob("seg-*.jsonl"))
            oldest = next((p for p in segments if p != open_path), None)
            if oldest is None:
                break
            try:
                with open(oldest, "rb") as handle:
                    lines = sum(1 for _ in handle)
                size = oldest.stat().st_size
                oldest.unlink()
            except OSError:
                break
            self._bytes[name] -= size
            self.count -= lines

    @property
    def bytes_held(self) -> int:
        """Bytes of history on disk across sources (segments written so far, the open ones included)."""
        return sum(self._bytes.values())

    def flush(self) -> None:
        with self._lock:
            for _, handle in self._open.values():
                try:
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError:
                    pass

    def close(self) -> None:
        self.flush()
        with self._lock:
            for name in list(self._open):
                self._drop_open(name)

    # -- reading ------------------------------------------------------------------------------------
    def entries(self) -> Iterator[HistoryEntry]:
        """Every held sequence in arrival order (sources merged by time)."""
        import heapq

        self.flush()
        yield from heapq.merge(*(self._source_entries(d) for d in self._source_dirs()), key=lambda e: e.time_s)

    def _source_entries(self, source_dir: Path) -> Iterator[HistoryEntry]:
        for segment in sorted(source_dir.glob("seg-*.jsonl")):
            yield from self._segment_entries(segment, source_dir.name)

    @staticmethod
    def _segment_entries(segment: Path, source: str) -> Iterator[HistoryEntry]:
        try:
            handle = open(segment, "rb")
        except OSError:
            return  # evicted while we read
        with handle:
            for raw in handle:
                try:
                    item = json.loads(raw)
                    lines = [str(x) for x in item["lines"]]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash
                yield HistoryEntry(lines, float(item.get("t", 0.0)), item.get("edge"), source)

    def recent(self, limit: int) -> list[HistoryEntry]:
        """The `limit` most recent sequences over all sources, in arrival order.

        Reads each source's segments newest first and stops once it has `limit`: a full history
        (hundreds of MB) costs no more to sample than the window it gives."""
        import heapq

        if limit <= 0:
            return []
        self.flush()
        per_source = [self._source_recent(d, limit) for d in self._source_dirs()]
        merged = list(heapq.merge(*per_source, key=lambda e: e.time_s))
        return merged[-limit:]

    def _source_recent(self, source_dir: Path, limit: int) -> list[HistoryEntry]:
        chunks: list[list[HistoryEntry]] = []
        held = 0
        for segment in sorted(source_dir.glob("seg-*.jsonl"), reverse=True):
            chunk = list(self._segment_entries(segment, source_dir.name))
            chunks.append(chunk)
            held += len(chunk)
            if held >= limit:
                break
        entries = [e for chunk in reversed(chunks) for e in chunk]
        return entries[-limit:]
