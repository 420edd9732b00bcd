"""Quality figures (precision, recall, F1, accuracy, PR-AUC) and the PNG report."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def binary_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict:
    from sklearn.metrics import average_precision_score

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    pred = s >= threshold
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    tn = int((~pred & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pr_auc = float(average_precision_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "accuracy": round((tp + tn) / max(1, len(y)), 4),
        "pr_auc": round(pr_auc, 4) if pr_auc == pr_auc else None,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "n": int(len(y)), "anomalies": int(y.sum()),
        "threshold": round(float(threshold), 6),
    }


def evidence_metrics(sequences, verdicts) -> Optional[dict]:
    """How often the evidence points at truly anomalous lines, where the data labels lines.

    Over the sequences flagged anomalous whose `line_labels` mark at least one line: `precision`
    (evidence lines that are labeled anomalous / all evidence lines) and `hit_rate` (sequences
    whose evidence holds at least one labeled line). None when no such sequence exists.
    """
    hits = shown = hit_sequences = counted = 0
    for seq, verdict in zip(sequences, verdicts):
        labels = getattr(seq, "line_labels", None)
        if verdict.label != "anomalous" or not labels or not any(labels) or not verdict.evidence:
            continue
        true_lines = sum(labels[i] for i in verdict.evidence)
        hits += true_lines
        shown += len(verdict.evidence)
        hit_sequences += true_lines > 0
        counted += 1
    if not counted:
        return None
    return {"sequences": counted, "precision": round(hits / shown, 4), "hit_rate": round(hit_sequences / counted, 4)}


def best_f1_threshold(labels: Sequence[int], scores: Sequence[float], tolerance: float = 0.01) -> float:
    """A threshold with (near-)best F1 on these scores, robust to where the next data falls.

    Validation sets are small, and the single best cut often hugs one sequence's score. We take
    every cut whose F1 is within `tolerance` of the best and return the median of them in logit
    space: the middle of the plateau rather than its edge.
    """
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if y.sum() == 0 or y.sum() == len(y):
        return 0.5
    candidates = np.unique(s)
    cuts = np.concatenate([[candidates[0]], (candidates[1:] + candidates[:-1]) / 2])
    f1s = np.array([binary_metrics(y, s, cut)["f1"] for cut in cuts])
    good = cuts[f1s >= f1s.max() - tolerance]
    clipped = np.clip(good, 1e-12, 1 - 1e-12)
    median_logit = float(np.median(np.log(clipped / (1 - clipped))))
    return float(1.0 / (1.0 + np.exp(-median_logit)))


def write_report(directory: str | Path, labels: Sequence[int], scores: Sequence[float], threshold: float,
                 baseline_scores: Sequence[float] | None = None) -> list[Path]:
    """PR curve and confusion matrix as PNG files; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    y = np.asarray(labels, dtype=int)
    written = []
    fig, ax = plt.subplots(figsize=(5, 4))
    if 0 < y.sum() < len(y):
        p, r, _ = precision_recall_curve(y, scores)
        ax.plot(r, p, label="logllm (BERT+MoE)")
        if baseline_scores is not None:
            bp, br, _ = precision_recall_curve(y, baseline_scores)
            ax.plot(br, bp, "--", label="baseline (LR on template counts)")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall")
    ax.legend(loc="lower left")
    fig.tight_layout()
    written.append(directory / "pr_curve.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    m = binary_metrics(y, scores, threshold)
    grid = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(grid, cmap="Blues")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set_xticks([0, 1], ["normal", "anomalous"])
    ax.set_yticks([0, 1], ["normal", "anomalous"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion (threshold {threshold:.3f})")
    fig.tight_layout()
    written.append(directory / "confusion_matrix.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)
    return written
