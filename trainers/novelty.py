"""Label-free evidence from normal history (the table and scorer live in logllm_plugin.novelty).

Two users of one table of what normal history held:

* `NoveltyRule` is the label-free *baseline* (DeepLog's idea without the LSTM): a sequence is
  anomalous when it holds a masked line, or a pair of consecutive masked lines, that the normal
  history never held. `eval` prints it beside our figure so users see what a simple rule gets.
* `NoveltyScorer` grades the same evidence and sets its own cut from held-out normal history:
  an unseen line counts by how far it lies from every seen line (cosine distance of the cached
  line embeddings: "torus x+ wire" after "torus y+ wire" is barely new, "kernel panic" is), an
  unseen transition or a count above the history's maximum counts only where held-out normal
  history shows that kind of evidence is rare. The label-free trainer combines it with the model.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from logllm_plugin.novelty import (NOVELTY_FILE, Calibration, Embed, HistoryTable, Masked, NoveltyScorer,
                                   nearest_distances)

__all__ = ["NOVELTY_FILE", "Calibration", "HistoryTable", "NoveltyRule", "NoveltyScorer", "calibrate",
           "out_of_fold", "variant_tolerance"]


class NoveltyRule:
    """The baseline: 1 when a sequence holds an unseen masked line or an unseen consecutive pair."""

    def __init__(self, table: HistoryTable):
        self.table = table

    def predict(self, sequences: Sequence[Masked]) -> np.ndarray:
        return np.array([1.0 if (self.table.unseen_lines(s) or self.table.unseen_pairs(s)) else 0.0
                         for s in sequences])



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
        known = sorted(table.support)
        dist = dict(zip(unseen, nearest_distances(unseen, embed(known) if known else None, embed)))
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


# Above this share of held-out normal sequences flagged by new lines at the variant tolerance, the
# line cut moves out to the held-out distances themselves (see `calibrate`). BGL's syslog windows
# measure 0.10-0.26 here (their incidents print lines never seen before: the tolerance is right
# there); Mac-like desktop logs 0.85.
LINE_NEWS_CEILING = 0.5


def calibrate(history: Sequence[Masked], embed: Embed, variants: Sequence[Sequence[str]] = (),
              target_fpr: float = 0.02, folds: int = 5) -> Calibration:
    """Cuts for the scorer, from normal history alone.

    Unseen lines: evidence beyond the variant tolerance (see `variant_tolerance`); a quantile of
    held-out distances would put the cut where normal history is most novel, and on syslog windows
    a quarter of held-out normal windows hold a line the other folds lack. Only where the tolerance
    would flag most held-out normal sequences (`LINE_NEWS_CEILING`) does the cut move out to the
    held-out distances' (1 - target_fpr) quantile. Transitions and counts
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
    cut = tolerance
    tolerance_rate = float(np.mean(oof["line"] > tolerance))
    if tolerance_rate > LINE_NEWS_CEILING:
        # Most normal sequences hold a line the rest of history lacks, farther than variants lie
        # (a desktop's syslog: hundreds of message types, each seen a few times): here a new line
        # is not news. Only lines as far out as the farthest `target_fpr` of held-out normal
        # history's new lines count, or the view would flag most of the traffic it learned from.
        cut = max(tolerance, float(np.quantile(oof["line"], 1.0 - target_fpr)))
    line_flags = oof["line"] > cut
    pair_rate = float(np.mean(oof["pair"] & ~line_flags))
    count_rate = float(np.mean(oof["count"] & ~line_flags))
    measured = {"held_out_sequences": int(len(history)), "folds": folds,
                "unseen_line_rate": round(float(np.mean(oof["line"] > 0)), 4),
                "line_flag_rate": round(float(np.mean(line_flags)), 4),
                "pair_rate": round(pair_rate, 4), "count_rate": round(count_rate, 4)}
    if cut > tolerance:
        measured.update(variant_tolerance=round(tolerance, 4), variant_tolerance_flag_rate=round(tolerance_rate, 4))
    return Calibration(line_distance=cut, use_pairs=pair_rate <= target_fpr,
                       use_counts=count_rate <= target_fpr, target_fpr=target_fpr, measured=measured)
