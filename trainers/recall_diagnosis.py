"""Why a detector missed what it missed: the evidence the data holds, not the model's excuse.

A label-free detector can only flag what its normal history did not hold: a new masked line, a new
transition, a line repeated more often than ever before. When recall is low, the user needs to
know whether the model is at fault (the missed anomalies hold such evidence and the detector did
not count it) or the data (the anomalies look exactly like normal traffic, line for line). Two
measures, both from the model's history table and the labeled data alone:

* `nothing_new`: missed anomalies holding no unseen line, transition or count at all. No
  detector that learns only from normal history has anything to go on for them.
* `identical_to_normal`: missed anomalies whose masked line sequence is also a normal sequence of
  the same data; with `ceiling`, the best F1 any detector that sees only masked lines could reach
  here (data.ceiling: an oracle's cut over those groups).
"""
from __future__ import annotations

from typing import Sequence

from logllm_plugin.data.ceiling import conflict_stats
from logllm_plugin.novelty import HistoryTable

MIN_RECALL = 0.8  # below this, eval says why (issue 14's floor for a label-free detector)
# A masked-line F1 ceiling below this: even labels cannot make a template reader useful here.
LOW_CEILING = 0.5


def holds_new_evidence(table: HistoryTable, masked: Sequence[str]) -> bool:
    return bool(table.unseen_lines(masked) or table.unseen_pairs(masked) or table.excess_counts(masked))


def diagnose_missed(table: HistoryTable, masked: Sequence[Sequence[str]], labels: Sequence[int],
                    flagged: Sequence[bool]) -> dict:
    """Counts over the missed anomalies (label 1, not flagged) and the masked-line F1 ceiling."""
    missed = [n for n, (y, f) in enumerate(zip(labels, flagged)) if y == 1 and not f]
    normal_shapes = {tuple(masked[n]) for n, y in enumerate(labels) if y == 0}
    ceiling = conflict_stats([tuple(m) for m in masked], list(labels))
    return {
        "missed": len(missed),
        "nothing_new": sum(not holds_new_evidence(table, masked[n]) for n in missed),
        "identical_to_normal": sum(tuple(masked[n]) in normal_shapes for n in missed),
        "ceiling_f1": round(ceiling.f1_ceiling, 4),
    }


def low_recall_message(recall: float, diagnosis: dict) -> str:
    """One paragraph for stderr: the recall, what the missed anomalies hold, and what to do."""
    d = diagnosis
    text = (f"recall {recall:.3f} is below {MIN_RECALL}: of the {d['missed']} missed anomalies, "
            f"{d['nothing_new']} hold no masked line, transition or line count that the normal history "
            f"lacked (nothing a detector trained on normal history alone can see), and "
            f"{d['identical_to_normal']} have exactly the masked lines of a normal sequence in this data "
            f"(the best F1 any detector reading masked lines can reach here is {d['ceiling_f1']:.3f}).")
    if d["missed"] and d["ceiling_f1"] < LOW_CEILING:
        text += (" Labels would not help either: a detector that reads masked lines cannot tell these from "
                 "normal. Check the labels (are they weak, per sequence rather than per event?) and how "
                 "sequences are cut (`--key-regex`, window size): the anomaly must change what a sequence holds.")
    elif d["missed"] and d["nothing_new"] >= d["missed"] / 2:
        text += (" The data do not support label-free detection of these anomalies: train with labels "
                 "(`logllm-plugin train small --train FILE`, FILE with a `label` per sequence; a detector "
                 "reading masked lines can separate them when their shapes are mostly anomalous ones, as the "
                 "ceiling says), or key sequences so that an anomaly changes what they hold (`--key-regex`).")
    else:
        text += " Most missed anomalies do hold new evidence: the detector's cuts left it uncounted."
    return text
