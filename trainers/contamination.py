"""Unlabeled history holds a few anomalies; leave out the ones that give themselves away by rarity.

A label-free model learns "normal" from history as it was, so an incident inside the history
teaches its own lines as normal, and later the same incident passes. Incidents often print lines
that almost no other sequence prints (error lines, a failing device's messages); normal traffic
repeats its shapes. So the sequences that hold a masked line seen in at most
max(2, `support_share` × history) sequences are left out of what the model and the novelty table
learn, rarest first, at most `max_share` of the history: a history with no rare lines loses
nothing, and one full of rare-but-normal lines loses a bounded slice.

Measured (same data, same run, with and without) in README "Learning mode": contamination.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence

from logllm_plugin.records import LogSequence

SUPPORT_SHARE = 0.002  # a masked line in at most this share of sequences (and at least 2) is rare


def rare_line_sequences(masked: Sequence[Sequence[str]], max_share: float,
                        support_share: float = SUPPORT_SHARE) -> list[int]:
    """Indexes of the sequences to leave out: those holding a rare masked line, rarest first,
    at most `max_share` of them (0 disables)."""
    if max_share <= 0 or not masked:
        return []
    support = Counter(line for lines in masked for line in set(lines))
    limit = max(2, int(support_share * len(masked)))
    rarest = {n: min(support[line] for line in lines) for n, lines in enumerate(masked) if lines}
    candidates = sorted((s, n) for n, s in rarest.items() if s <= limit)
    budget = int(max_share * len(masked))
    return sorted(n for _, n in candidates[:budget])


def leave_out_rare(history: Sequence[LogSequence], mask: Callable[[str], str],
                   max_share: float) -> tuple[list[LogSequence], int]:
    """History without its rare-line sequences (never an operator's labeled anomaly: those stay
    as training data), and how many were left out."""
    unlabeled = [n for n, s in enumerate(history) if s.label != 1]
    masked = [[mask(line) for line in history[n].lines] for n in unlabeled]
    out = {unlabeled[k] for k in rare_line_sequences(masked, max_share)}
    return [s for n, s in enumerate(history) if n not in out], len(out)
