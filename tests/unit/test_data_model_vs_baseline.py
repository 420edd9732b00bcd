"""Generated data does what it is for: order/count anomalies that a bag of templates cannot see.

A small model trained on `data generate` output and scored on a fresh generated set (another
seed) must beat the logistic regression on template counts on the order/count-only anomalies.
"""
from __future__ import annotations

import pytest

from logllm_plugin.data.generate import GenerateOptions, generate
from logllm_plugin.data.io import write_jsonl
from logllm_plugin.detector import Detector
from logllm_plugin.readers import read_sequence_file
from tests.conftest import tiny_config
from trainers.baseline import TemplateCountBaseline
from trainers.evaluation import binary_metrics
from trainers.small import train_small

MIX = dict(anomaly_rate=0.4, silent_rate=0.8)  # mostly silent anomalies: the case under test


def _generated(tmp_path, name: str, n: int, seed: int):
    rows = generate(GenerateOptions(n=n, seed=seed, **MIX))
    write_jsonl(tmp_path / name, rows)
    return list(read_sequence_file(tmp_path / name)), {r["id"]: r.get("anomaly_kind") for r in rows}


@pytest.mark.slow
def test_model_beats_the_template_count_baseline_on_order_and_count_anomalies(tmp_path, one_thread):
    train, _ = _generated(tmp_path, "train.jsonl", 700, seed=11)
    test, kind = _generated(tmp_path, "test.jsonl", 300, seed=12)
    config = tiny_config(epochs=60, seed=0)
    config.model.num_layers = 2
    train_small(train, None, config, tmp_path / "model")
    detector = Detector.load(tmp_path / "model", device="cpu")
    scores = [v.score for v in detector.detect(test)]

    def ids(seqs):
        return [detector.store_ids(s.lines) for s in seqs]

    baseline = TemplateCountBaseline(detector.store.vocab_size).fit(ids(train), [s.label for s in train])
    base_scores = baseline.predict_proba(ids(test))

    def f1_on(kinds, which, threshold):
        chosen = [i for i, s in enumerate(test) if s.label == 0 or kind[s.id] in kinds]
        return binary_metrics([test[i].label for i in chosen], [which[i] for i in chosen], threshold)["f1"]

    ours_silent, theirs_silent = f1_on({"order", "count"}, scores, detector.settings.threshold), \
        f1_on({"order", "count"}, base_scores, 0.5)
    ours_order, theirs_order = f1_on({"order"}, scores, detector.settings.threshold), \
        f1_on({"order"}, base_scores, 0.5)
    figures = dict(ours_silent=ours_silent, theirs_silent=theirs_silent, ours_order=ours_order,
                   theirs_order=theirs_order)
    # Seeds 11/0 give 0.88 vs 0.67 (silent) and 0.81 vs 0.11 (order); over other seeds the tiny
    # model ranged 0.78-0.93 (silent) and 0.60-0.89 (order), the baseline 0.62-0.68 and 0.0-0.12.
    assert ours_silent >= theirs_silent + 0.05, figures
    assert theirs_order <= 0.3 and ours_order >= theirs_order + 0.3, figures
