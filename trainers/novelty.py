"""Label-free evidence from normal history: lines, transitions and counts never seen before.

Two users of one table of what normal history held:

* `NoveltyRule` is the label-free *baseline* (DeepLog's idea without the LSTM): a sequence is
  anomalous when it holds a masked line, or a pair of consecutive masked lines, that the normal
  history never held. `eval` prints it beside our figure so users see what a simple rule gets.
* `NoveltyScorer` grades the same evidence and sets its own cut from held-out normal history:
  an unseen line counts by how far it lies from every seen line (cosine distance of the cached
  line embeddings: "torus x+ wire" after "torus y+ wire" is barely new, "kernel panic" is), an
  unseen transition or a count above the history's maximum counts only where held-out normal
  history shows that kind of evidence is rare. The label-free trainer combines it with the model.

Everything is plain JSON in the model dir (`novelty.json`), no pickle. The module needs numpy
only; embeddings come from the caller (the detector's encoder cache).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

NOVELTY_FILE = "novelty.json"
FORMAT_VERSION = 1
Masked = Sequence[str]  # one sequence as its masked lines


@dataclass
class HistoryTable:
    """What normal history held: each masked line with its support (sequences holding it) and
    its largest count in one sequence, and the consecutive pairs of masked lines."""

    support: dict[str, int] = field(default_factory=dict)
    max_count: dict[str, int] = field(default_factory=dict)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    sequences: int = 0

    @classmethod
    def fit(cls, history: Sequence[Masked]) -> "HistoryTable":
        table = cls()
        for lines in history:
            table.add(lines)
        return table

    def add(self, lines: Masked) -> None:
        self.sequences += 1
        counts: dict[str, int] = {}
        for line in lines:
            counts[line] = counts.get(line, 0) + 1
        for line, n in counts.items():
            self.support[line] = self.support.get(line, 0) + 1
            if n > self.max_count.get(line, 0):
                self.max_count[line] = n
        self.pairs.update(zip(lines, lines[1:]))

    def unseen_lines(self, lines: Masked) -> list[int]:
        return [i for i, line in enumerate(lines) if line not in self.support]

    def unseen_pairs(self, lines: Masked) -> list[int]:
        """Positions i where (lines[i-1], lines[i]) is new although both lines are known."""
        return [i for i in range(1, len(lines)) if lines[i - 1] in self.support and lines[i] in self.support
                and (lines[i - 1], lines[i]) not in self.pairs]

    def excess_counts(self, lines: Masked) -> list[int]:
        """Positions of known lines that occur more often here than in any history sequence."""
        counts: dict[str, int] = {}
        for line in lines:
            counts[line] = counts.get(line, 0) + 1
        over = {line for line, n in counts.items() if line in self.max_count and n > self.max_count[line]}
        return [i for i, line in enumerate(lines) if line in over]

    def to_dict(self) -> dict:
        lines = sorted(self.support)
        index = {line: i for i, line in enumerate(lines)}
        return {
            "sequences": self.sequences,
            "lines": lines,
            "support": [self.support[x] for x in lines],
            "max_count": [self.max_count[x] for x in lines],
            "pairs": sorted([index[a], index[b]] for a, b in self.pairs),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "HistoryTable":
        lines = list(data["lines"])
        return cls(dict(zip(lines, map(int, data["support"]))), dict(zip(lines, map(int, data["max_count"]))),
                   {(lines[a], lines[b]) for a, b in data["pairs"]}, int(data.get("sequences", 0)))


class NoveltyRule:
    """The baseline: 1 when a sequence holds an unseen masked line or an unseen consecutive pair."""

    def __init__(self, table: HistoryTable):
        self.table = table

    def predict(self, sequences: Sequence[Masked]) -> np.ndarray:
        return np.array([1.0 if (self.table.unseen_lines(s) or self.table.unseen_pairs(s)) else 0.0
                         for s in sequences])


Embed = Callable[[Sequence[str]], np.ndarray]  # texts → [N, D] unit-norm rows


def nearest_distances(texts: Sequence[str], known: Sequence[str], embed: Embed, chunk: int = 512) -> np.ndarray:
    """Per text: cosine distance (1 - cos) to its nearest known text, in [0, 2]."""
    if not texts:
        return np.zeros(0)
    if not known:
        return np.ones(len(texts))
    reference = embed(list(known))
    query = embed(list(texts))
    best = np.full(len(texts), -1.0)
    for start in range(0, len(reference), chunk):
        best = np.maximum(best, (query @ reference[start:start + chunk].T).max(axis=1))
    return np.clip(1.0 - best, 0.0, 2.0)


@dataclass
class Calibration:
    """The cuts the scorer uses, each set on held-out normal history (see `calibrate`)."""

    line_distance: float = 0.0  # an unseen line farther than this from every seen line is evidence
    use_pairs: bool = True
    use_counts: bool = True
    target_fpr: float = 0.02
    measured: dict = field(default_factory=dict)  # held-out rates behind the choices, for metrics.json


# Score levels: 0.5 is the cut; evidence that passed calibration maps above it.
EVIDENCE_SCORE = 0.75


class NoveltyScorer:
    """Graded novelty: a score in [0, 1] per sequence, 0.5 the cut, plus the positions that drove it."""

    def __init__(self, table: HistoryTable, calibration: Calibration):
        self.table = table
        self.calibration = calibration
        self._distance: dict[str, float] = {}

    def distances(self, texts: Sequence[str], embed: Embed) -> None:
        """Remember the nearest-seen distance of every unseen text (once per text)."""
        todo = sorted({t for t in texts if t not in self.table.support and t not in self._distance})
        if todo:
            for text, d in zip(todo, nearest_distances(todo, list(self.table.support), embed)):
                self._distance[text] = float(d)

    def score(self, lines: Masked) -> tuple[float, list[int]]:
        c = self.calibration
        unseen = self.table.unseen_lines(lines)
        best, evidence = 0.0, []
        if unseen:
            dist = np.array([self._distance.get(lines[i], 1.0) for i in unseen])
            top = float(dist.max())
            # distance == the cut maps to 0.5; twice the cut (or an exact new line with cut 0) → 1
            best = 1.0 if c.line_distance <= 0 else min(1.0, 0.5 * top / c.line_distance)
            if top <= c.line_distance:
                best = min(best, 0.499)
            evidence = [unseen[i] for i in np.argsort(-dist, kind="stable")[:3]]
        if best < EVIDENCE_SCORE and c.use_pairs:
            pairs = self.table.unseen_pairs(lines)
            if pairs:
                best, evidence = EVIDENCE_SCORE, sorted({p for i in pairs[:2] for p in (i - 1, i)})
        if best < EVIDENCE_SCORE and c.use_counts:
            over = self.table.excess_counts(lines)
            if over:
                best, evidence = EVIDENCE_SCORE, over[:3]
        return best, sorted(evidence)

    def score_all(self, sequences: Sequence[Masked], embed: Embed) -> np.ndarray:
        self.distances([t for s in sequences for t in s], embed)
        return np.array([self.score(s)[0] for s in sequences])

    def to_dict(self) -> dict:
        c = self.calibration
        return {"format_version": FORMAT_VERSION, "table": self.table.to_dict(),
                "calibration": {"line_distance": c.line_distance, "use_pairs": c.use_pairs,
                                "use_counts": c.use_counts, "target_fpr": c.target_fpr, "measured": c.measured}}

    @classmethod
    def from_dict(cls, data: dict) -> "NoveltyScorer":
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"novelty table format {data.get('format_version')!r}, expected {FORMAT_VERSION}")
        c = data.get("calibration", {})
        return cls(HistoryTable.from_dict(data["table"]),
                   Calibration(float(c.get("line_distance", 0.0)), bool(c.get("use_pairs", True)),
                               bool(c.get("use_counts", True)), float(c.get("target_fpr", 0.02)),
                               dict(c.get("measured", {}))))


def out_of_fold(history: Sequence[Masked], folds: int, embed: Embed) -> dict[str, np.ndarray]:
    """Each history sequence scored against a table fit on the other folds (contiguous blocks, so a
    chronological history is judged on its later and earlier parts): what the evidence looks like
    on normal sequences the table did not hold. Returns per-sequence line distance (0 when every
    line is known), unseen-pair flag and excess-count flag."""
    n = len(history)
    bounds = np.linspace(0, n, folds + 1).round().astype(int)
    line = np.zeros(n)
    pair = np.zeros(n, dtype=bool)
    count = np.zeros(n, dtype=bool)
    for k in range(folds):
        lo, hi = bounds[k], bounds[k + 1]
        if lo == hi:
            continue
        table = HistoryTable.fit([s for i, s in enumerate(history) if not lo <= i < hi])
        held = history[lo:hi]
        unseen = sorted({t for s in held for t in s if t not in table.support})
        dist = dict(zip(unseen, nearest_distances(unseen, list(table.support), embed)))
        for j, s in enumerate(held):
            i = lo + j
            line[i] = max([dist[s[p]] for p in table.unseen_lines(s)], default=0.0)
            pair[i] = bool(table.unseen_pairs(s))
            count[i] = bool(table.excess_counts(s))
    return {"line": line, "pair": pair, "count": count}


def variant_tolerance(variants: Sequence[Sequence[str]], embed: Embed, quantile: float = 0.75) -> float:
    """How far apart known variants of one event lie: over groups of masked lines that share a
    template (Drain merged them), the `quantile` of each line's distance to its nearest sibling.
    An unseen line closer than this to a known one reads as one more variant ("torus y+ wire"
    beside "torus x+ wire"), not as a new event. 0 when history holds no variants."""
    distances = []
    for group in variants:
        group = sorted(set(group))
        if len(group) < 2:
            continue
        vectors = embed(group)
        sims = vectors @ vectors.T
        np.fill_diagonal(sims, -1.0)
        distances.extend((1.0 - sims.max(axis=1)).tolist())
    return float(np.quantile(distances, quantile)) if distances else 0.0


def calibrate(history: Sequence[Masked], embed: Embed, variants: Sequence[Sequence[str]] = (),
              target_fpr: float = 0.02, folds: int = 5) -> Calibration:
    """Cuts for the scorer, from normal history alone.

    Unseen lines: evidence beyond the variant tolerance (see `variant_tolerance`); a quantile of
    held-out distances would put the cut where normal history is most novel, and on syslog windows
    a quarter of held-out normal windows hold a line the other folds lack. Transitions and counts
    are used only when they alone flag at most `target_fpr` of held-out normal sequences (on
    interleaved syslog windows nearly every window holds a new pair: there they would flag
    everything). Held-out folds see less history than the final table, so the rates measured here
    are an upper bound of what the full table shows on the same system.
    """
    tolerance = variant_tolerance(variants, embed)
    if len(history) < folds:
        return Calibration(line_distance=tolerance, target_fpr=target_fpr,
                           measured={"note": f"{len(history)} sequences: too few to hold any out"})
    oof = out_of_fold(history, folds, embed)
    line_flags = oof["line"] > tolerance
    pair_rate = float(np.mean(oof["pair"] & ~line_flags))
    count_rate = float(np.mean(oof["count"] & ~line_flags))
    measured = {"held_out_sequences": int(len(history)), "folds": folds,
                "unseen_line_rate": round(float(np.mean(oof["line"] > 0)), 4),
                "line_flag_rate": round(float(np.mean(line_flags)), 4),
                "pair_rate": round(pair_rate, 4), "count_rate": round(count_rate, 4)}
    return Calibration(line_distance=tolerance, use_pairs=pair_rate <= target_fpr,
                       use_counts=count_rate <= target_fpr, target_fpr=target_fpr, measured=measured)
