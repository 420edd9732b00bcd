"""Anomalies that live only in the order or count of lines — no error words anywhere.

A bag of templates cannot see two steps swapped; the order-aware head must.
"""
import random

import numpy as np

from logllm_plugin.detector import Detector
from logllm_plugin.records import LogSequence
from tests.conftest import tiny_config
from trainers.baseline import TemplateCountBaseline
from trainers.evaluation import binary_metrics
from trainers.small import train_small

STEPS = [
    "order {id} received from web checkout",
    "payment for order {id} authorized",
    "inventory reserved for order {id}",
    "invoice {id} generated",
    "shipment for order {id} scheduled",
    "customer notified about order {id}",
    "order {id} closed",
]
NOISE = ["cache refresh completed in {n} ms", "heartbeat from worker {n}"]


def workflow(rng: random.Random, kind: str) -> list[str]:
    steps = list(range(len(STEPS)))
    if kind == "swapped":
        i = rng.randrange(len(steps) - 1)
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
    elif kind == "repeated":
        i = rng.randrange(len(steps))
        steps.insert(i, steps[i])
    elif kind == "missing":
        del steps[rng.randrange(1, len(steps))]
    oid = rng.randint(1000, 9999)
    lines = [STEPS[s].format(id=oid) for s in steps]
    for _ in range(rng.randint(0, 3)):  # benign noise varies the counts of normal sequences too
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(NOISE).format(n=rng.randint(1, 500)))
    return lines


def make(n: int, seed: int) -> list[LogSequence]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = "normal" if rng.random() < 0.6 else rng.choice(["swapped", "swapped", "repeated", "missing"])
        out.append(LogSequence(id=f"s{i}", lines=workflow(rng, kind), label=int(kind != "normal"), category=kind))
    return out


def test_order_and_count_anomalies_are_learned_beyond_a_bag_of_templates(tmp_path):
    train, test = make(700, seed=1), make(300, seed=2)
    config = tiny_config(epochs=60, seed=0)
    config.model.num_layers = 2
    train_small(train, None, config, tmp_path / "m")
    detector = Detector.load(tmp_path / "m", device="cpu")
    verdicts = detector.detect(test)
    labels = [s.label for s in test]
    ours = binary_metrics(labels, [v.score for v in verdicts], detector.settings.threshold)

    ids = lambda seqs: [detector.store_ids(s.lines) for s in seqs]  # noqa: E731
    baseline = TemplateCountBaseline(detector.store.vocab_size).fit(ids(train), [s.label for s in train])
    base_scores = baseline.predict_proba(ids(test))
    theirs = binary_metrics(labels, base_scores, 0.5)

    swapped = [i for i, s in enumerate(test) if s.category == "swapped"]
    our_swap_recall = np.mean([verdicts[i].label == "anomalous" for i in swapped])
    their_swap_recall = np.mean([base_scores[i] >= 0.5 for i in swapped])
    assert ours["f1"] >= 0.9, ours
    assert ours["f1"] >= theirs["f1"] + 0.15, (ours, theirs)
    assert our_swap_recall >= 0.85 and their_swap_recall <= 0.5, (our_swap_recall, their_swap_recall)
