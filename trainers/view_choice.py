"""Which evidence a label-free detector decides with, chosen on held-out history.

A label-free detector flags a sequence when the model or the novelty evidence says so: an unseen
line (beyond the history's variant tolerance, or any), an unseen transition, a count above the
history's maximum. Which of these help depends on the system: on interleaved syslog windows nearly
every normal window holds a new transition, on request workflows a new transition is what a
reordered or skipped step looks like and normal requests almost never show one. A fixed cut on
each view's false-positive rate (calibrate's 2%) threw away transitions that catch every reordered
request at 9% false positives (generated workflows: the novelty rule's recall 1.0 against 0.53).

So every combination of views is measured on the validation part, against a history table fit on
the *training part only* (the validation's normal sequences are then as new to it as tomorrow's
traffic): false-positive rate on its normal sequences, recall on its anomalies (injected ones when
there are no labels). The combination with the best F1 at an assumed anomaly share wins; the
calibrated default keeps ties. The share is an assumption about traffic, not a fitted figure: the
learning checks compare candidate models at the same share (logllm_plugin.learning.checks).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import product
from typing import Optional, Sequence

import numpy as np

from logllm_plugin.novelty import Calibration, Embed, HistoryTable, Masked, nearest_distances

ASSUMED_ANOMALY_SHARE = 0.05  # of sequences; logllm_plugin.learning.checks compares candidates at it too
# A combination must beat the calibrated default by this much expected F1 to replace it: the
# validation holds a few hundred sequences, and a hair's difference there is noise.
MIN_GAIN = 0.01
# Fewer held-out normal sequences cannot resolve a false-positive rate of a few percent (one
# sequence more or less moves it by more than the cut): the calibrated default stays.
MIN_VALIDATION_NORMAL = 100
# Cuts tried for unseen transitions (HistoryTable.new_transition_chance): off, every one, or only
# those history makes unlikely (a step with one usual successor: ~1/N).
PAIR_CHANCES = (None, 1.0, 0.1, 0.03, 0.01)


@dataclass(frozen=True)
class Views:
    line_distance: float  # unseen lines farther than this from every seen line flag (0: any unseen line)
    pair_chance: Optional[float]  # unseen transitions at most this likely flag (None: off, 1.0: every one)
    use_counts: bool
    use_model: bool

    def label(self) -> str:
        parts = [f"lines>{self.line_distance:.3f}" if self.line_distance > 0 else "any unseen line"]
        if self.pair_chance is not None:
            parts.append("pairs" if self.pair_chance >= 1.0 else f"pairs with chance<={self.pair_chance:g}")
        parts += ["counts"] * self.use_counts + ["model"] * self.use_model
        return " + ".join(parts)


def default_views(c: Calibration) -> Views:
    return Views(c.line_distance, (c.pair_chance if c.use_pairs else None), c.use_counts, True)


def apply(views: Views, c: Calibration) -> None:
    """Set the scorer's calibration to these views (the model's part is the detector's flag)."""
    c.line_distance, c.use_counts = views.line_distance, views.use_counts
    c.use_pairs = views.pair_chance is not None
    c.pair_chance = views.pair_chance if views.pair_chance is not None else 1.0


@dataclass
class Measured:
    views: Views
    false_positive_rate: float
    recall: float
    expected_f1: float

    def to_dict(self) -> dict:
        return {"views": self.views.label(), **{k: round(v, 4) for k, v in asdict(self).items() if k != "views"}}


def expected_f1(recall: float, false_positive_rate: float, share: float = ASSUMED_ANOMALY_SHARE) -> float:
    """F1 on traffic with `share` anomalies caught at `recall`, the rest flagged at the false-positive rate."""
    caught = share * recall
    if caught <= 0:
        return 0.0
    precision = caught / (caught + (1 - share) * false_positive_rate)
    return 2 * precision * recall / (precision + recall)


@dataclass
class HeldOutEvidence:
    """Per validation sequence, the novelty evidence against a table of the training part."""

    line: np.ndarray  # distance of the farthest unseen line to the nearest seen one, -1 when none is unseen
    pair: np.ndarray  # the lowest new-transition chance of its unseen transitions, 2.0 when it has none
    count: np.ndarray  # holds a known line more often than any history sequence

    @classmethod
    def measure(cls, table: HistoryTable, sequences: Sequence[Masked], embed: Embed) -> "HeldOutEvidence":
        unseen = sorted({t for s in sequences for t in s if t not in table.support})
        known = sorted(table.support)
        distance = dict(zip(unseen, nearest_distances(unseen, embed(known) if known else None, embed)))
        line = np.array([max((distance[s[i]] for i in table.unseen_lines(s)), default=-1.0) for s in sequences])
        pair = np.array([table.min_new_transition_chance(s) for s in sequences])
        count = np.array([bool(table.excess_counts(s)) for s in sequences])
        return cls(line, pair, count)

    def flags(self, views: Views, model_flags: np.ndarray) -> np.ndarray:
        flagged = self.line > views.line_distance if views.line_distance > 0 else self.line >= 0
        if views.pair_chance is not None:
            flagged = flagged | (self.pair <= views.pair_chance)
        if views.use_counts:
            flagged = flagged | self.count
        if views.use_model:
            flagged = flagged | model_flags
        return flagged


def choose_views(default: Calibration, evidence: HeldOutEvidence, model_flags: Sequence[bool],
                 labels: Sequence[int], share: float = ASSUMED_ANOMALY_SHARE) -> tuple[Views, dict]:
    """The combination of views with the best expected F1 on the validation part (the calibrated
    default unless another beats it by MIN_GAIN), and every combination's figures for metrics.json."""
    labels = np.asarray(labels, dtype=int)
    model_flags = np.asarray(model_flags, dtype=bool)
    normal, anomalous = labels == 0, labels == 1
    if normal.sum() < MIN_VALIDATION_NORMAL or not anomalous.any():
        views = default_views(default)
        return views, {"chosen": views.label(), "note": f"validation of {int(normal.sum())} normal and "
                       f"{int(anomalous.sum())} anomalous sequences: too few to choose, the calibrated default kept"}
    cuts = [default.line_distance] + ([0.0] if default.line_distance > 0 else [])  # ties keep the default's
    measured = []
    for cut, pairs, counts, model in product(cuts, PAIR_CHANCES, (False, True), (True, False)):
        views = Views(cut, pairs, counts, model)
        flagged = evidence.flags(views, model_flags)
        fpr, recall = float(flagged[normal].mean()), float(flagged[anomalous].mean())
        measured.append(Measured(views, fpr, recall, expected_f1(recall, fpr, share)))
    base = next(m for m in measured if m.views == default_views(default))
    best = max(measured, key=lambda m: m.expected_f1)
    chosen = best if best.expected_f1 >= base.expected_f1 + MIN_GAIN else base
    return chosen.views, {"chosen": chosen.views.label(), "assumed_anomaly_share": share,
                          "validation_normal": int(normal.sum()), "validation_anomalies": int(anomalous.sum()),
                          "default": base.to_dict(), "best": best.to_dict(),
                          "all": [m.to_dict() for m in sorted(measured, key=lambda m: -m.expected_f1)]}
