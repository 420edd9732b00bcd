"""Unlabeled history holds a few anomalies; leave out the ones that give themselves away.

A label-free model learns "normal" from history as it was, so an incident inside the history
teaches its own lines as normal, and later the same incident passes. Two screens, both bounded by
a share of the history so that a history full of rare-but-normal sequences loses a bounded slice:

* Rarity (`leave_out_rare`, on by default): incidents often print lines that almost no other
  sequence prints (error lines, a failing device's messages); normal traffic repeats its shapes.
  The sequences that hold a masked line seen in at most max(2, `support_share` × history)
  sequences are left out, rarest first, at most `training.leave_out_rare_share` of the history.
* Alarm words (`leave_out_alarming`, on by default): an incident that repeats its error lines
  across dozens of sequences is not rare, but its lines say what they are ("exception", "failed",
  "refused"). The sequences holding a line with such a word that at most 2% of the history holds
  are left out, when they are at most `training.leave_out_alarm_share` of the history (more: this
  system's normal traffic talks that way, and they stay). On hdfs_100k with 3% anomalies mixed in
  it takes out 37 sequences, all anomalies, and the novelty view goes back from 0.161 to its clean
  0.480; clean histories of the shared sets lose nothing (README "Learning mode": contamination).
* Out of fold (`screen_out_of_fold`, off by default): an incident that lasts a while repeats its
  lines across many sequences, so they are not rare, but it sits in one stretch of time. The
  time-ordered history is cut into contiguous folds; a sequence holding a masked line that no
  other fold holds, farther than the variant tolerance from every line the other folds hold, is
  left out, farthest first, at most `training.oof_screen_share` of the history.

Measured (same data, same run, with and without) in README "Learning mode": contamination. On
bgl_20k the out-of-fold screen costs clean history more than it wins back: that system's normal
windows around an incident print lines as rare, as far from the rest and as bunched in time as
the incident's own alert lines, so it stays off there (see the README for the figures).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Sequence

import numpy as np

from logllm_plugin.novelty import Embed, nearest_distances
from logllm_plugin.records import LogSequence

SUPPORT_SHARE = 0.002  # a masked line in at most this share of sequences (and at least 2) is rare
SCREEN_FOLDS = 2  # contiguous parts of the history for the out-of-fold screen
# Words that operators' logs use for trouble, in any system: an incident's lines carry them far
# more often than normal traffic's. Generic on purpose (no system's own phrasing).
ALARM_WORDS = re.compile(
    r"(?<![A-Za-z])(?:errors?|err|fail(?:s|ed|ure|ures|ing)?|fatal|exceptions?|panic|abort(?:s|ed|ing)?|critical"
    r"|refused|denied|unable|cannot|can't|timed out|timeouts?|unreachable|corrupt(?:ed|ion)?|killed|severe"
    r"|crash(?:es|ed)?|lost|broken)(?![A-Za-z])", re.IGNORECASE)
ALARM_SUPPORT_SHARE = 0.02  # an alarm-word line in at most this share of sequences (and at least 2) is suspect


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


def _unlabeled_masked(history: Sequence[LogSequence], mask: Callable[[str], str]) -> tuple[list[int], list[list[str]]]:
    unlabeled = [n for n, s in enumerate(history) if s.label != 1]
    return unlabeled, [[mask(line) for line in history[n].lines] for n in unlabeled]


def _without(history: Sequence[LogSequence], out: set[int]) -> list[LogSequence]:
    return [s for n, s in enumerate(history) if n not in out]


def leave_out_rare(history: Sequence[LogSequence], mask: Callable[[str], str],
                   max_share: float) -> tuple[list[LogSequence], int]:
    """History without its rare-line sequences (never an operator's labeled anomaly: those stay
    as training data), and how many were left out."""
    unlabeled, masked = _unlabeled_masked(history, mask)
    out = {unlabeled[k] for k in rare_line_sequences(masked, max_share)}
    return _without(history, out), len(out)


def out_of_fold_distances(masked: Sequence[Sequence[str]], embed: Embed, folds: int = SCREEN_FOLDS) -> np.ndarray:
    """Per sequence: the cosine distance of its farthest masked line that no other contiguous fold
    holds, to the nearest line the other folds hold (0 when the other folds hold all its lines)."""
    n = len(masked)
    scores = np.zeros(n)
    if n < folds or folds < 2:
        return scores
    bounds = np.linspace(0, n, folds + 1).round().astype(int)
    for k in range(folds):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        others = {line for i, lines in enumerate(masked) if not lo <= i < hi for line in lines}
        unseen = sorted({line for lines in masked[lo:hi] for line in lines if line not in others})
        if not unseen:
            continue
        known = sorted(others)
        distance = dict(zip(unseen, nearest_distances(unseen, embed(known) if known else None, embed)))
        for i in range(lo, hi):
            scores[i] = max((distance[line] for line in masked[i] if line in distance), default=0.0)
    return scores


def out_of_fold_sequences(masked: Sequence[Sequence[str]], embed: Embed, tolerance: float, max_share: float,
                          folds: int = SCREEN_FOLDS) -> list[int]:
    """Indexes of the sequences to leave out: those whose out-of-fold distance exceeds `tolerance`
    (the history's variant tolerance: closer is one more variant of a known line), farthest first,
    at most `max_share` of them (0 disables)."""
    budget = int(max_share * len(masked))
    if budget <= 0:
        return []
    scores = out_of_fold_distances(masked, embed, folds)
    candidates = sorted((-scores[n], n) for n in range(len(masked)) if scores[n] > tolerance)
    return sorted(n for _, n in candidates[:budget])


def screen_out_of_fold(history: Sequence[LogSequence], mask: Callable[[str], str], embed: Embed, tolerance: float,
                       max_share: float, folds: int = SCREEN_FOLDS) -> tuple[list[LogSequence], int]:
    """History (in its time order) without the sequences the out-of-fold screen flags (never an
    operator's labeled anomaly), and how many were left out."""
    unlabeled, masked = _unlabeled_masked(history, mask)
    out = {unlabeled[k] for k in out_of_fold_sequences(masked, embed, tolerance, max_share, folds)}
    return _without(history, out), len(out)


def alarm_line_sequences(masked: Sequence[Sequence[str]], max_share: float,
                         support_share: float = ALARM_SUPPORT_SHARE) -> list[int]:
    """Indexes of the sequences to leave out: those holding a masked line with an alarm word that
    at most max(2, `support_share` × history) sequences hold, when they are at most `max_share`
    of the history; none when they are more (0 disables). More means this system's normal traffic
    speaks that way (on bgl_20k 14-25% of the windows, most of them labeled normal, hold such a
    line), and leaving them out would teach the model that its normal is an incident."""
    if max_share <= 0 or not masked:
        return []
    support = Counter(line for lines in masked for line in set(lines))
    limit = max(2, int(support_share * len(masked)))
    alarming = {line for line, n in support.items() if n <= limit and ALARM_WORDS.search(line)}
    found = [n for n, lines in enumerate(masked) if alarming.intersection(lines)]
    return found if len(found) <= max_share * len(masked) else []


def leave_out_alarming(history: Sequence[LogSequence], mask: Callable[[str], str],
                       max_share: float) -> tuple[list[LogSequence], int]:
    """History without the sequences `alarm_line_sequences` picks (an operator's labeled
    anomalies stay), and how many were left out."""
    unlabeled, masked = _unlabeled_masked(history, mask)
    out = {unlabeled[k] for k in alarm_line_sequences(masked, max_share)}
    return _without(history, out), len(out)
