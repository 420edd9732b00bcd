"""Label conflicts and the F1 ceiling they impose on a template-only detector."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Hashable, Sequence


@dataclass
class ConflictStats:
    sequences: int
    anomalies: int
    distinct: int  # distinct template sequences
    conflicting_groups: int  # template sequences labeled both normal and anomalous
    anomalies_in_conflict: int
    normals_in_conflict: int
    f1_ceiling: float  # best F1 any detector that sees only the template sequence can reach
    ceiling_precision: float
    ceiling_recall: float

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def conflict_stats(keys: Sequence[Hashable], labels: Sequence[int]) -> ConflictStats:
    """Conflicts among labeled items grouped by `keys`, and the best F1 one verdict per key allows.

    A detector that sees only the template sequence gives every occurrence of one template
    sequence g the same verdict. Let g hold a_g anomalies and n_g normals (m_g = a_g + n_g), A
    anomalies in all, and S the set of groups it calls anomalous. Then
        TP = Σ_{g∈S} a_g,   FP = Σ_{g∈S} n_g,   FN = A − TP
        F1 = 2·TP / (2·TP + FP + FN) = 2·Σ_{g∈S} a_g / (A + Σ_{g∈S} m_g).
    For the best S (Dinkelbach's argument on this ratio of linear functions): with F1* its value,
    S must hold exactly the groups with 2·a_g − F1*·m_g > 0, i.e. anomaly share a_g/m_g > F1*/2.
    So the best S is a prefix of the groups sorted by anomaly share, highest first, and trying
    every prefix (cut only between different shares) finds it exactly. The ceiling is an upper
    bound reached only by an oracle that knows the test labels; it is 1.0 when no group conflicts.
    """
    if len(keys) != len(labels):
        raise ValueError("keys and labels differ in length")
    anomalies: dict[Hashable, int] = defaultdict(int)
    sizes: dict[Hashable, int] = defaultdict(int)
    for key, label in zip(keys, labels):
        sizes[key] += 1
        anomalies[key] += int(label == 1)
    total_anomalies = sum(anomalies.values())
    conflicting = [k for k in sizes if 0 < anomalies[k] < sizes[k]]
    groups = sorted(sizes, key=lambda k: anomalies[k] / sizes[k], reverse=True)
    best = (0.0, 0.0, 0.0)
    tp = predicted = 0
    for i, key in enumerate(groups):
        if anomalies[key] == 0:
            break  # adding all-normal groups only adds false positives
        tp += anomalies[key]
        predicted += sizes[key]
        next_share = anomalies[groups[i + 1]] / sizes[groups[i + 1]] if i + 1 < len(groups) else -1.0
        if next_share == anomalies[key] / sizes[key]:
            continue  # equal shares go in together or not at all
        f1 = 2 * tp / (total_anomalies + predicted)
        if f1 > best[0]:
            best = (f1, tp / predicted, tp / total_anomalies)
    return ConflictStats(
        sequences=len(labels), anomalies=total_anomalies, distinct=len(sizes),
        conflicting_groups=len(conflicting),
        anomalies_in_conflict=sum(anomalies[k] for k in conflicting),
        normals_in_conflict=sum(sizes[k] - anomalies[k] for k in conflicting),
        f1_ceiling=best[0] if total_anomalies else 0.0, ceiling_precision=best[1], ceiling_recall=best[2],
    )
