"""The in-run baseline: logistic regression on template-count vectors (loglizer style).

Every quality figure we print stands next to this one, measured in the same run on the same
data; it is saved with the model as plain JSON so `eval` can score it without pickle.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def count_matrix(template_ids: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
    matrix = np.zeros((len(template_ids), vocab_size), dtype=np.float32)
    for row, ids in enumerate(template_ids):
        np.add.at(matrix[row], np.clip(ids, 0, vocab_size - 1), 1.0)
    return matrix


class TemplateCountBaseline:
    def __init__(self, vocab_size: int, coef: np.ndarray | None = None, intercept: float = 0.0):
        self.vocab_size = vocab_size
        self.coef = coef if coef is not None else np.zeros(vocab_size, dtype=np.float64)
        self.intercept = intercept

    def fit(self, template_ids: Sequence[np.ndarray], labels: Sequence[int], seed: int = 0) -> "TemplateCountBaseline":
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels)
        if len(set(labels.tolist())) < 2:
            return self  # one class only: the baseline says "normal" everywhere
        clf = LogisticRegression(max_iter=2000, random_state=seed)
        clf.fit(count_matrix(template_ids, self.vocab_size), labels)
        self.coef, self.intercept = clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
        return self

    def predict_proba(self, template_ids: Sequence[np.ndarray]) -> np.ndarray:
        logits = count_matrix(template_ids, self.vocab_size) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def to_dict(self) -> dict:
        return {
            "kind": "logistic_regression_on_template_counts",
            "vocab_size": self.vocab_size,
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "TemplateCountBaseline":
        return cls(int(data["vocab_size"]), np.asarray(data["coef"], dtype=np.float64), float(data["intercept"]))
