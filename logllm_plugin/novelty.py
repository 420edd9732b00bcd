"""Novelty evidence from normal history, as the detector scores it: lines, transitions and counts
never seen before (the table and the scorer; `trainers.novelty` fits and calibrates them).

An unseen line counts by how far it lies from every seen line (cosine distance of the cached line
embeddings: "torus x+ wire" after "torus y+ wire" is barely new, "kernel panic" is); an unseen
transition or a count above the history's maximum counts only where calibration found that kind
of evidence rare in held-out normal history. Plain JSON in the model dir (`novelty.json`), no
pickle; numpy only, embeddings come from the caller (the detector's encoder cache).
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


Embed = Callable[[Sequence[str]], np.ndarray]  # texts → [N, D] unit-norm rows


def nearest_distances(texts: Sequence[str], reference: Optional[np.ndarray], embed: Embed,
                      chunk: int = 512) -> np.ndarray:
    """Per text: cosine distance (1 - cos) to its nearest row of `reference` (unit-norm embeddings
    of the known lines), in [0, 2]; 1 for every text when nothing is known."""
    if not texts:
        return np.zeros(0)
    if reference is None or not len(reference):
        return np.ones(len(texts))
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
MAX_REMEMBERED = 200_000  # distances of unseen lines kept per scorer


class NoveltyScorer:
    """Graded novelty: a score in [0, 1] per sequence, 0.5 the cut, plus the positions that drove it."""

    def __init__(self, table: HistoryTable, calibration: Calibration):
        self.table = table
        self.calibration = calibration
        self._distance: dict[str, float] = {}
        self._known = sorted(table.support)
        self._reference: Optional[np.ndarray] = None  # embeddings of the known lines, on first need

    def distances(self, texts: Sequence[str], embed: Embed) -> None:
        """Remember the nearest-seen distance of every unseen text (once per text)."""
        todo = sorted({t for t in texts if t not in self.table.support and t not in self._distance})
        if not todo:
            return
        if len(self._distance) > MAX_REMEMBERED:  # unseen lines can be endless: bound the memory
            self._distance.clear()
        if self._reference is None and self._known:
            self._reference = embed(self._known)
        for text, d in zip(todo, nearest_distances(todo, self._reference, embed)):
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


