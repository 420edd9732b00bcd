"""A small durable queue: append + fsync before answering, replay after a crash, truncate on ack.

The OTLP bridge answers an Export only once the request is on disk here, so the collector's
retry keeps its at-least-once promise while the bridge is free to hold records until their
sequence closes (DESIGN §5). Layout: segment files of entries
`[seq u64][length u32][crc32 u32][payload]`, plus `committed` holding the highest sequence number
whose records all reached the downstream. A torn entry at the tail (a crash mid-write) fails its
CRC or length check and is cut off at open; everything before it is kept.

A disk that fills up or turns read-only is a status, not a crash: `append` raises SpoolWriteError
(the bridge answers UNAVAILABLE, so the collector keeps the data and retries) after cutting its
own torn bytes, and a `committed` mark that cannot be written is kept in memory and written by a
later `ack`/`retry_commit` (until then a restart may replay, never lose, those entries).
"""
from __future__ import annotations

import collections
import json
import logging
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

HEADER = struct.Struct(">QII")  # seq, length, crc32


class SpoolFull(Exception):
    """The spool holds max_bytes of unacknowledged data; callers should retry later."""


class SpoolWriteError(SpoolFull):
    """The spool directory cannot be written (disk full, read-only); callers should retry later."""


def _problem(exc: OSError) -> str:
    return f"{exc.strerror or exc} (errno {exc.errno})" if exc.errno else str(exc)


class Spool:
    def __init__(self, directory: str | Path, *, max_bytes: int = 256 << 20, segment_bytes: int = 16 << 20):
        if max_bytes < 1 or segment_bytes < 1:
            raise ValueError("max_bytes and segment_bytes must be >= 1")
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._probe_writable()
        except OSError as exc:
            raise SpoolWriteError(f"spool directory {self.directory} is not writable: {_problem(exc)}") from None
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Condition()
        self._committed = self._read_committed()
        self._pending: collections.deque[tuple[int, bytes]] = collections.deque()
        self._segments: list[tuple[int, Path]] = []  # (first seq, path), oldest first
        self._next_seq = self._committed + 1
        self._bytes = 0
        self._load()
        self._writer = None
        self._writer_size = 0
        self._acked = self._committed  # acknowledged in memory; `committed` on disk may lag behind
        self.commit_error: Optional[str] = None  # why the last write of `committed` failed, if it did

    # -- opening -------------------------------------------------------------------------------------
    def _probe_writable(self) -> None:
        """Fail at start, with the reason, rather than on the first Export: create, fsync, delete."""
        probe = self.directory / ".write-probe"
        with open(probe, "wb") as fh:
            fh.write(b"probe")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()

    def _read_committed(self) -> int:
        path = self.directory / "committed"
        try:
            return int(json.loads(path.read_text())["seq"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is damaged ({exc}); move the spool aside to start empty") from None

    def _load(self) -> None:
        for path in sorted(self.directory.glob("segment-*.log"), key=lambda p: int(p.stem.split("-")[1])):
            entries, good_size = self._scan(path)
            if good_size < path.stat().st_size:
                logger.warning("%s: cutting a torn entry at byte %d (crash while writing)", path, good_size)
                with open(path, "r+b") as fh:
                    fh.truncate(good_size)
                    os.fsync(fh.fileno())
            first = int(path.stem.split("-")[1])
            if entries and entries[-1][0] <= self._committed:
                path.unlink()  # every entry acknowledged: only its deletion was lost
                continue
            self._segments.append((first, path))
            for seq, payload in entries:
                self._next_seq = max(self._next_seq, seq + 1)
                if seq > self._committed:
                    self._pending.append((seq, payload))
                    self._bytes += len(payload)

    @staticmethod
    def _scan(path: Path) -> tuple[list[tuple[int, bytes]], int]:
        data = path.read_bytes()
        entries, offset = [], 0
        while offset + HEADER.size <= len(data):
            seq, length, crc = HEADER.unpack_from(data, offset)
            end = offset + HEADER.size + length
            if end > len(data):
                break
            payload = data[offset + HEADER.size : end]
            if zlib.crc32(payload) != crc:
                break
            entries.append((seq, payload))
            offset = end
        return entries, offset

    # -- writing -------------------------------------------------------------------------------------
    def append(self, payload: bytes) -> int:
        """Write and fsync one entry; returns its sequence number. Raises SpoolFull / SpoolWriteError."""
        with self._lock:
            if self._bytes + len(payload) > self.max_bytes and self._pending:
                raise SpoolFull(f"spool holds {self._bytes} of {self.max_bytes} bytes not yet forwarded")
            seq = self._next_seq
            record = HEADER.pack(seq, len(payload), zlib.crc32(payload)) + payload
            try:
                if self._writer is None or self._writer_size >= self.segment_bytes:
                    self._rotate(seq)
                self._writer.write(record)
                self._writer.flush()
                os.fsync(self._writer.fileno())
            except OSError as exc:
                self._abandon_writer()
                logger.error("spool write failed in %s: %s; answering UNAVAILABLE until it works again",
                             self.directory, _problem(exc))
                raise SpoolWriteError(f"spool {self.directory} cannot be written: {_problem(exc)}") from None
            self._writer_size += len(record)
            self._next_seq += 1
            self._pending.append((seq, payload))
            self._bytes += len(payload)
            self._lock.notify_all()
            return seq

    def _abandon_writer(self) -> None:
        """After a failed write: cut the torn bytes (a torn entry would hide every later one at replay)
        and drop the handle, so the next append reopens (and re-checks) the segment."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except OSError:
            pass  # the buffered bytes that failed are exactly the ones to lose
        try:
            os.truncate(writer.name, self._writer_size)
        except OSError as exc:
            logger.warning("cannot cut the torn entry in %s (%s); it is cut at the next open", writer.name,
                           _problem(exc))

    def _rotate(self, first_seq: int) -> None:
        if self._writer is not None:
            self._writer.close()
        path = self.directory / f"segment-{first_seq}.log"
        if path.is_file() and path.stat().st_size:  # reopened after a failed write: drop its torn tail
            _, good_size = self._scan(path)
            os.truncate(path, good_size)
        self._writer = open(path, "ab")
        self._writer_size = path.stat().st_size
        if not self._segments or self._segments[-1][1] != path:
            self._segments.append((first_seq, path))
        dir_fd = os.open(self.directory, os.O_RDONLY)  # the new file's name must survive a crash too
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- reading and acknowledging ---------------------------------------------------------------------
    def take(self, timeout_s: float) -> Optional[tuple[int, bytes]]:
        """The next entry to process (each is handed out once per process), or None on timeout."""
        with self._lock:
            if not self._pending:
                self._lock.wait(timeout_s)
            if not self._pending:
                return None
            seq, payload = self._pending.popleft()
            return seq, payload

    def ack(self, seq: int, size: int) -> None:
        """Every entry up to `seq` reached the downstream: persist that, drop finished segments."""
        with self._lock:
            if seq <= self._acked:
                return
            self._acked = seq
            self._bytes = max(0, self._bytes - size)  # forwarded: no longer counts against max_bytes
            self._write_committed()

    def retry_commit(self) -> None:
        """Write the acknowledged mark if an earlier write of it failed (called by the worker)."""
        if self._acked > self._committed:
            with self._lock:
                self._write_committed()

    def _write_committed(self) -> None:
        seq = self._acked
        tmp = self.directory / "committed.tmp"
        try:
            with open(tmp, "w") as fh:
                fh.write(json.dumps({"seq": seq}))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.directory / "committed")
        except OSError as exc:
            if self.commit_error is None:
                logger.error("cannot write the spool's committed mark in %s: %s; forwarding goes on, a restart "
                             "before it is written replays (duplicates) the entries since %d",
                             self.directory, _problem(exc), self._committed)
            self.commit_error = _problem(exc)
            return
        if self.commit_error is not None:
            logger.info("spool committed mark written again in %s", self.directory)
            self.commit_error = None
        self._committed = seq
        # A segment is finished when the next one starts at or below the committed mark + 1.
        while len(self._segments) > 1 and self._segments[1][0] <= seq + 1:
            _, path = self._segments.pop(0)
            path.unlink(missing_ok=True)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._lock.notify_all()
