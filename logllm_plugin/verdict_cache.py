"""Verdicts of sequences already judged, keyed by their masked lines.

Two sequences with the same masked lines in the same order are the same model input, so they get
the same verdict; logs repeat whole sequences all the time (7,940 HDFS blocks hold 509 distinct
ones), and a long-running server or bridge sees the same ones again and again. Bounded LRU; safe to
share between threads.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, Optional


@dataclass(frozen=True)
class Judgement:
    """A verdict without the sequence's id (what identical sequences share)."""

    label: str
    score: float
    category: str
    evidence: tuple[int, ...]
    novel_templates: int
    familiarity: float = 0.0


class VerdictCache:
    def __init__(self, max_entries: int = 50_000):
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0 (0 turns the cache off)")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Judgement] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Optional[Judgement]:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: Hashable, judgement: Judgement) -> None:
        if not self.max_entries:
            return
        with self._lock:
            self._entries[key] = judgement
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
