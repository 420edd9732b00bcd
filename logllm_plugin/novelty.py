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
    its largest count in one sequence, and the consecutive pairs of masked lines with their counts."""

    support: dict[str, int] = field(default_factory=dict)
    max_count: dict[str, int] = field(default_factory=dict)
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    sequences: int = 0

    def __post_init__(self) -> None:
        self._chances: Optional[tuple[dict[str, float], dict[str, float]]] = None

    @classmethod
    def fit(cls, history: Sequence[Masked]) -> "HistoryTable":
        table = cls()
        for lines in history:
            table.add(lines)
        return table

    def add(self, lines: Masked) -> None:
        self.sequences += 1
        self._chances = None
        counts: dict[str, int] = {}
        for line in lines:
            counts[line] = counts.get(line, 0) + 1
        for line, n in counts.items():
            self.support[line] = self.support.get(line, 0) + 1
            if n > self.max_count.get(line, 0):
                self.max_count[line] = n
        for pair in zip(lines, lines[1:]):
            self.pairs[pair] = self.pairs.get(pair, 0) + 1

    def unseen_lines(self, lines: Masked) -> list[int]:
        return [i for i, line in enumerate(lines) if line not in self.support]

    def unseen_pairs(self, lines: Masked, max_chance: Optional[float] = None) -> list[int]:
        """Positions i where (lines[i-1], lines[i]) is new although both lines are known; with
        `max_chance`, only those whose `new_transition_chance` is at most that."""
        found = [i for i in range(1, len(lines)) if lines[i - 1] in self.support and lines[i] in self.support
                 and (lines[i - 1], lines[i]) not in self.pairs]
        if max_chance is None:
            return found
        return [i for i in found if self.new_transition_chance(lines[i - 1], lines[i]) <= max_chance]

    def new_transition_chance(self, before: str, after: str) -> float:
        """How likely history makes a transition never seen from `before` or into `after`: the
        Good-Turing estimate (transitions seen once / all transitions, add-one smoothed), the higher
        of the two sides. A step that is always followed by the same next step scores ~0, so a new
        successor there is strong evidence; a line that turns up anywhere (a benign WARN, a
        heartbeat, interleaved syslog) meets new neighbours all the time and scores high."""
        if self._chances is None:
            self._chances = self._transition_chances()
        after_chance, before_chance = self._chances
        return max(after_chance.get(before, 1.0), before_chance.get(after, 1.0))

    def _transition_chances(self) -> tuple[dict[str, float], dict[str, float]]:
        totals = ({}, {})  # transitions out of a line, into a line
        once = ({}, {})
        for (a, b), n in self.pairs.items():
            for side, line in ((0, a), (1, b)):
                totals[side][line] = totals[side].get(line, 0) + n
                if n == 1:
                    once[side][line] = once[side].get(line, 0) + 1
        chance = tuple({line: (once[side].get(line, 0) + 1) / (total + 2) for line, total in totals[side].items()}
                       for side in (0, 1))
        # a known line with no transition on a side (always first, always last): half a chance
        for side in (0, 1):
            for line in self.support:
                chance[side].setdefault(line, 0.5)
        return chance[0], chance[1]

    def min_new_transition_chance(self, lines: Masked) -> float:
        """The most surprising unseen transition of a sequence (2.0 when it has none)."""
        return min((self.new_transition_chance(lines[i - 1], lines[i]) for i in self.unseen_pairs(lines)),
                   default=2.0)

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
        pairs = sorted(([index[a], index[b]], n) for (a, b), n in self.pairs.items())
        return {
            "sequences": self.sequences,
            "lines": lines,
            "support": [self.support[x] for x in lines],
            "max_count": [self.max_count[x] for x in lines],
            "pairs": [p for p, _ in pairs],
            "pair_counts": [n for _, n in pairs],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "HistoryTable":
        lines = list(data["lines"])
        # tables written before pair counts were kept count every pair once
        counts = data.get("pair_counts") or [1] * len(data["pairs"])
        return cls(dict(zip(lines, map(int, data["support"]))), dict(zip(lines, map(int, data["max_count"]))),
                   {(lines[a], lines[b]): int(n) for (a, b), n in zip(data["pairs"], counts)},
                   int(data.get("sequences", 0)))


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
    # unseen transitions count only where history makes them this unlikely (new_transition_chance;
    # 1.0 or more: every unseen transition, as before the chance was kept)
    pair_chance: float = 1.0
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
            pairs = self.table.unseen_pairs(lines, c.pair_chance if c.pair_chance < 1.0 else None)
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
                                "pair_chance": c.pair_chance, "use_counts": c.use_counts, "target_fpr": c.target_fpr, "measured": c.measured}}

    @classmethod
    def from_dict(cls, data: dict) -> "NoveltyScorer":
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"novelty table format {data.get('format_version')!r}, expected {FORMAT_VERSION}")
        c = data.get("calibration", {})
        return cls(HistoryTable.from_dict(data["table"]),
                   Calibration(float(c.get("line_distance", 0.0)), bool(c.get("use_pairs", True)),
                               float(c.get("pair_chance", 1.0)), bool(c.get("use_counts", True)),
                               float(c.get("target_fpr", 0.02)), dict(c.get("measured", {}))))


