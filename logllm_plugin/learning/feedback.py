"""Operators' corrections: "this verdict was wrong". Suppression at once, training data later.

A correction is keyed by the sequence's masked form (the same lines as the detector and the
history see them, template variables masked), so every later occurrence of that sequence gets the
corrected label with `suppressed: true`. Bounded (oldest first out), expiring, and persisted as
JSONL beside the history so a restart keeps them.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Sequence

from logllm_plugin.variable_masks import MASKS, LineMasker

logger = logging.getLogger(__name__)

LABELS = ("normal", "anomalous")
FEEDBACK_FILE = "feedback.jsonl"


class FeedbackError(ValueError):
    """A correction that cannot be taken (no sequence, an empty or oversized one, a wrong label)."""


def sequence_signature(lines: Sequence[str], masker: Optional[LineMasker] = None) -> tuple[str, ...]:
    masker = masker or _MASKER
    return tuple(masker.mask(line) for line in lines)


_MASKER = LineMasker([list(m) for m in MASKS])


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """An advisory lock across processes; without one (read-only directory) writes go on unlocked."""
    try:
        handle = open(lock_path, "a")
    except OSError:
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing releases the lock


class FeedbackStore:
    def __init__(self, directory: str | Path, max_entries: int, ttl_s: float, max_lines: int = 10_000):
        self.path = Path(directory) / FEEDBACK_FILE
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.max_lines = max_lines
        self._entries: OrderedDict[tuple[str, ...], tuple[str, float]] = OrderedDict()  # sig → (label, expires)
        self._lock = threading.Lock()
        self._seen_mtime_ns: Optional[int] = None
        self._load()

    def _mtime_ns(self) -> Optional[int]:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def reload_if_changed(self) -> None:
        """Followers share the learner's file: take its corrections when it changed."""
        if self._mtime_ns() != self._seen_mtime_ns:
            with self._lock:
                self._entries.clear()
                self._load()

    def _load(self) -> None:
        self._seen_mtime_ns = self._mtime_ns()
        if not self.path.exists():
            return
        now = time.time()
        with open(self.path, "r", encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                try:
                    item = json.loads(raw)
                    sig, label, expires = tuple(item["sig"]), item["label"], float(item["expires"])
                except (ValueError, KeyError, TypeError):
                    continue
                if label in LABELS and expires > now:
                    self._entries[sig] = (label, expires)
                    self._entries.move_to_end(sig)
        self._trim()

    def _trim(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def add(self, sequences: Sequence[Sequence[str]], label: str) -> int:
        """Store corrections; raises FeedbackError naming the first problem (nothing stored then)."""
        if label not in LABELS:
            raise FeedbackError(f"label must be normal or anomalous, not {label!r}")
        if not sequences:
            raise FeedbackError("feedback holds no sequence")
        for n, lines in enumerate(sequences):
            if not lines or not any(str(x).strip() for x in lines):
                raise FeedbackError(f"sequence {n} is empty")
            if len(lines) > self.max_lines:
                raise FeedbackError(f"sequence {n} has {len(lines)} lines; the limit is {self.max_lines}")
        expires = time.time() + self.ttl_s
        sigs = [sequence_signature([str(x) for x in lines]) for lines in sequences]
        with self._lock, _exclusive(self.path.with_suffix(".lock")):
            # Another process (`es feedback --learn DIR`, the learner itself) may have written the
            # file since: take its corrections first, so no writer's are lost.
            if self._mtime_ns() != self._seen_mtime_ns:
                self._entries.clear()
                self._load()
            for sig in sigs:
                self._entries[sig] = (label, expires)
                self._entries.move_to_end(sig)
            self._trim()
            self._rewrite()
        return len(sigs)

    def _rewrite(self) -> None:
        """Persist the whole (bounded) store: temp file, fsync, rename."""
        temp = self.path.with_suffix(".tmp")
        try:
            with open(temp, "w", encoding="utf-8") as handle:
                for sig, (label, expires) in self._entries.items():
                    handle.write(json.dumps({"sig": list(sig), "label": label, "expires": expires},
                                            ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            self._seen_mtime_ns = self._mtime_ns()
        except OSError as exc:  # the correction holds in memory; it is lost only with a restart
            logger.error("feedback: cannot persist to %s: %s", self.path, exc.strerror or exc)

    def lookup(self, signature: tuple[str, ...]) -> Optional[str]:
        with self._lock:
            found = self._entries.get(signature)
            if found is None:
                return None
            label, expires = found
            if expires <= time.time():
                del self._entries[signature]
                return None
            return label

    def labeled(self) -> list[tuple[tuple[str, ...], str]]:
        now = time.time()
        with self._lock:
            return [(sig, label) for sig, (label, expires) in self._entries.items() if expires > now]

    def __len__(self) -> int:
        return len(self._entries)
