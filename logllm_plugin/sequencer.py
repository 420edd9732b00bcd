"""Groups log records into sequences by key (DESIGN §1).

A sequence closes when it reaches `max_lines`, after `idle_s` without a new line, at `max_age_s`
after its first line, when too many sequences are open (oldest first), or at end of input.
Sequences closed before `min_lines` are still emitted, flagged `short`, so no record is dropped:
every record lands in exactly one sequence, in arrival order per key.

Time is the record's event time (`timestamp_s`) when present, else the `now_s` the caller passes,
else `time.monotonic()`. Mixing event time and wall time in one stream is the caller's choice;
`flush_expired` must be given a clock of the same kind as the records carry.
"""
from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

from logllm_plugin.records import LogRecord, LogSequence

logger = logging.getLogger(__name__)

DEFAULT_KEY = "default"
DEFAULT_MIN_LINES = 6
# Why a sequence closed (LogSequence.closed_by): at max_lines, under max_open_sequences pressure,
# idle, too old, at the end of input. All but "full" may cut a normal sequence short.
CLOSE_REASONS = ("full", "pressure", "idle", "age", "end")


@dataclass
class SequencerConfig:
    max_lines: int = 15
    # Sequences closed by time below this are flagged `short`. None (unset): DEFAULT_MIN_LINES, or
    # max_lines when that is smaller, so `--max-lines 5` alone is valid.
    min_lines: Optional[int] = None
    idle_s: float = 2.0
    max_age_s: float = 30.0
    max_open_sequences: int = 10000
    key_attributes: tuple[str, ...] = ("service.name", "host.name")

    def __post_init__(self) -> None:
        if self.min_lines is None:
            ok = isinstance(self.max_lines, int) and not isinstance(self.max_lines, bool) and self.max_lines >= 1
            self.min_lines = min(DEFAULT_MIN_LINES, self.max_lines) if ok else DEFAULT_MIN_LINES
        if isinstance(self.key_attributes, list):
            self.key_attributes = tuple(self.key_attributes)
        problems: list[str] = []
        for name in ("max_lines", "min_lines", "max_open_sequences"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        for name in ("idle_s", "max_age_s"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= 0:
                problems.append(f"{name} must be a positive number of seconds, got {value!r}")
        if (
            isinstance(self.min_lines, int)
            and isinstance(self.max_lines, int)
            and self.min_lines > self.max_lines
        ):
            problems.append(
                f"min_lines ({self.min_lines}) must not exceed max_lines ({self.max_lines})"
            )
        if not isinstance(self.key_attributes, tuple) or not all(
            isinstance(a, str) and a for a in self.key_attributes
        ):
            problems.append(
                f"key_attributes must be a tuple of attribute names, got {self.key_attributes!r}"
            )
        if problems:
            raise ValueError("invalid sequencer config: " + "; ".join(problems))


@dataclass
class SequencerStats:
    """Why sequences closed; the pressure counter is the one to alert on."""

    closed_full: int = 0
    closed_idle: int = 0
    closed_age: int = 0
    closed_pressure: int = 0  # flushed because max_open_sequences was exceeded
    closed_end: int = 0
    short: int = 0


@dataclass
class _Open:
    key: str
    index: int
    first_s: float
    last_s: float
    records: list[LogRecord] = field(default_factory=list)


class Sequencer:
    """Stateful grouper; not thread-safe (one per stream, or guard it with a lock)."""

    def __init__(self, config: Optional[SequencerConfig] = None) -> None:
        self.config = config if config is not None else SequencerConfig()
        self.stats = SequencerStats()
        # Two orders over the same open sequences: by first arrival (age, memory pressure) and
        # by last activity (idleness), so flush_expired stops at the first one still live
        # instead of scanning all of them for every record.
        self._by_arrival: OrderedDict[str, _Open] = OrderedDict()
        self._by_activity: OrderedDict[str, _Open] = OrderedDict()
        # Next sequence number per key. Bounded: with unique keys (trace ids) an unbounded map
        # would grow forever; a key unseen for this many other keys may restart at #0.
        self._next_index: OrderedDict[str, int] = OrderedDict()
        self._max_tracked_keys = max(10 * self.config.max_open_sequences, 1024)
        self._warned_pressure = False

    @property
    def open_sequences(self) -> int:
        return len(self._by_arrival)

    def key_of(self, record: LogRecord) -> str:
        if record.key:
            return record.key
        attrs = record.attributes or {}
        found = [str(attrs[a]) for a in self.config.key_attributes if attrs.get(a) is not None]
        return "|".join(found) if found else DEFAULT_KEY

    def add(self, record: LogRecord, now_s: Optional[float] = None) -> list[LogSequence]:
        """Add one record; returns the sequences this call closed (usually none)."""
        closed: list[LogSequence] = []
        t = self._time_of(record, now_s)
        key = self.key_of(record)
        current = self._by_arrival.get(key)
        if current is not None:
            # A late line after the key went idle / old starts a new sequence, even when the
            # caller has not called flush_expired in between (batch input).
            reason = self._expiry_reason(current, t)
            if reason is not None:
                closed.append(self._close(key, reason))
                current = None
        if current is None:
            current = _Open(key=key, index=self._take_index(key), first_s=t, last_s=t)
            self._by_arrival[key] = current
            self._by_activity[key] = current
        current.records.append(record)
        current.first_s = min(current.first_s, t)
        current.last_s = max(current.last_s, t)
        self._by_activity.move_to_end(key)
        if len(current.records) >= self.config.max_lines:
            closed.append(self._close(key, "full"))
        while len(self._by_arrival) > self.config.max_open_sequences:
            oldest = next(iter(self._by_arrival))
            if not self._warned_pressure:
                logger.warning(
                    "more than %d open sequences; flushing the oldest early "
                    "(raise max_open_sequences or lower idle_s/max_age_s)",
                    self.config.max_open_sequences,
                )
                self._warned_pressure = True
            closed.append(self._close(oldest, "pressure"))
        return closed

    def flush_expired(self, now_s: Optional[float] = None) -> list[LogSequence]:
        """Close sequences idle for >= idle_s or open for >= max_age_s at time now_s."""
        now = time.monotonic() if now_s is None else now_s
        closed: list[LogSequence] = []
        while self._by_activity:
            seq = next(iter(self._by_activity.values()))
            if now - seq.last_s < self.config.idle_s:
                break
            closed.append(self._close(seq.key, "idle"))
        while self._by_arrival:
            seq = next(iter(self._by_arrival.values()))
            if now - seq.first_s < self.config.max_age_s:
                break
            closed.append(self._close(seq.key, "age"))
        return closed

    def flush_all(self) -> list[LogSequence]:
        """Close every open sequence, oldest first (end of input, shutdown)."""
        return [self._close(key, "end") for key in list(self._by_arrival)]

    # ------------------------------------------------------------------------------ internals
    @staticmethod
    def _time_of(record: LogRecord, now_s: Optional[float]) -> float:
        if record.timestamp_s is not None:
            return record.timestamp_s
        return time.monotonic() if now_s is None else now_s

    def _expiry_reason(self, seq: _Open, t: float) -> Optional[str]:
        if t - seq.last_s >= self.config.idle_s:
            return "idle"
        if t - seq.first_s >= self.config.max_age_s:
            return "age"
        return None

    def _take_index(self, key: str) -> int:
        index = self._next_index.pop(key, 0)
        self._next_index[key] = index + 1  # re-inserted at the end: most recently used
        if len(self._next_index) > self._max_tracked_keys:
            self._next_index.popitem(last=False)
        return index

    def _close(self, key: str, reason: str) -> LogSequence:
        seq = self._by_arrival.pop(key)
        self._by_activity.pop(key, None)
        setattr(self.stats, f"closed_{reason}", getattr(self.stats, f"closed_{reason}") + 1)
        short = len(seq.records) < self.config.min_lines
        if short:
            self.stats.short += 1
        return _to_sequence(seq, short, reason)


def _to_sequence(seq: _Open, short: bool, closed_by: str) -> LogSequence:
    labels = [r.label for r in seq.records]
    known = [x for x in labels if x is not None]
    if any(x == 1 for x in known):
        label: Optional[int] = 1
    elif known and len(known) == len(labels):
        label = 0
    else:
        label = None  # unlabeled, or partly labeled without an anomaly: unknown, not normal
    all_labeled = len(known) == len(labels)
    source = [r.source_line for r in seq.records]
    return LogSequence(
        id=f"{seq.key}#{seq.index}",
        lines=[r.message for r in seq.records],
        key=seq.key,
        label=label,
        short=short,
        closed_by=closed_by,
        line_labels=[int(x) for x in known] if all_labeled else None,
        source_lines=[int(s) for s in source if s is not None]
        if all(s is not None for s in source)
        else None,
    )


def group_records(
    records: Iterable[LogRecord], config: Optional[SequencerConfig] = None
) -> Iterator[LogSequence]:
    """Batch helper: group a finite stream, closing by record time when records carry it."""
    sequencer = Sequencer(config)
    # A file has no wall clock: a record without a timestamp is placed at the last event time
    # seen (0.0 before any), so reading speed never decides where sequences are cut.
    clock = 0.0
    for record in records:
        if record.timestamp_s is not None:
            clock = record.timestamp_s
        yield from sequencer.add(record, now_s=clock)
        if record.timestamp_s is not None:
            yield from sequencer.flush_expired(clock)
    yield from sequencer.flush_all()
