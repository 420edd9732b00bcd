"""After a release, the scheduled retrain learns the new normal: traffic whose only unknown lines
are the release's common ones stays in the training window, read as the release meant them
(a line reworded reads as the known line it rewords; a line added is left out), while a sequence
that is an incident under every such reading is still left out."""
from __future__ import annotations

import random
import zlib

import numpy as np

from logllm_plugin.config import load_config
from logllm_plugin.detector import Detector
from logllm_plugin.learning.learner import LearningDetector, _release_readings, nearest_known_lines
from logllm_plugin.records import LogSequence
from logllm_plugin.templates import TemplateStore
from tests.conftest import tiny_config
from trainers.small import train_small

REWORDED = ("receiving block", "received block", "block map updated")
RELEASE_LINE = "feature flags reloaded from config service (release 2.0)"


def block(rng: random.Random) -> list[str]:
    """An HDFS-like block: allocated, then each of three replicas received, stored and acknowledged."""
    blk = rng.randint(10**6, 10**7)
    hosts = rng.sample(range(1, 250), 3)
    lines = [f"allocate block blk_{blk}"]
    lines += [f"receiving block blk_{blk} from 10.0.0.{h}" for h in hosts]
    lines += [f"received block blk_{blk} of size {rng.randint(1000, 99999)} from 10.0.0.{h}" for h in hosts]
    lines += [f"block map updated: blk_{blk} added to 10.0.0.{h}" for h in hosts]
    lines += [f"packet responder {k} for block blk_{blk} terminating" for k in range(3)]
    return lines


def released(lines: list[str], n: int) -> list[str]:
    """The next release: the replica steps reworded, a new line in every other block."""
    out = [f"{line} [build 2.0]" if line.startswith(REWORDED) else line for line in lines]
    return out[:1] + [RELEASE_LINE] + out[1:] if n % 2 == 0 else out


class UnitVectors:
    """Unit vectors seeded by each text's CRC (the same in every process, unlike hash()), with
    one pair made close, standing in for the line encoder."""

    def __init__(self, close: dict[str, str]):
        self.close = close

    def encode(self, texts):
        rows = []
        for text in texts:
            base = np.random.default_rng(zlib.crc32(self.close.get(text, text).encode())).normal(size=32)
            if text in self.close:  # a rewording: near its original, not on it
                base = base + 0.1 * np.random.default_rng(zlib.crc32(text.encode())).normal(size=32)
            rows.append(base / np.linalg.norm(base))
        return np.array(rows)


def test_a_reworded_line_reads_as_its_original_and_an_added_line_is_left_out():
    store = TemplateStore()
    old, new = store.mask("receiving block blk_1 from 10.0.0.1"), store.mask("receiving block blk_1 from 10.0.0.1 [build 2.0]")
    other = store.mask("received block blk_1 of size 5")
    added = store.mask(RELEASE_LINE)
    nearest = nearest_known_lines(UnitVectors({new: old}), {new, added}, {old, other})
    assert nearest[new][0] == old and nearest[new][1] < 0.2 < nearest[added][1]
    lines = ["allocate block blk_1", RELEASE_LINE, "receiving block blk_1 from 10.0.0.1 [build 2.0]", "received block blk_1 of size 5"]
    matches = [store.lookup(line) for line in lines]
    readings = [[store.mask(line) for line in r] for r in _release_readings(lines, matches, {new, added}, nearest)]
    assert [store.mask(lines[0]), old, other] in readings  # reworded read back, added left out
    assert [store.mask(lines[0]), other] in readings  # both left out: a release that only adds lines


def test_the_retrain_keeps_released_traffic_and_still_leaves_out_an_incident(tmp_path):
    rng = random.Random(3)
    history = [LogSequence(id=f"h{n}", lines=block(rng)) for n in range(300)]
    train_small(history, None, tiny_config(epochs=12, seed=0), tmp_path / "m", normal_only=True)
    serving = Detector.load(tmp_path / "m", device="cpu")
    after = [released(block(rng), n) for n in range(200)]
    incident = released(block(rng), 0)
    incident.insert(3, "ERROR disk /dev/sdb failed: I/O error on sector 18817")
    window = after + [incident]
    # This small model is sure of a new line (score 1.0), less of a missing step (0.75, the unseen
    # pair): a confidence the pair reaches makes a block that lost its reworded steps count too.
    config = load_config(environ={"LOGLLM_LEARNING__HIGH_CONFIDENCE": "0.7"})
    high = config.learning.high_confidence
    verdicts = serving.detect(window)
    assert sum(v.label == "anomalous" and v.score >= high for v in verdicts) == len(window)  # the release looks like news
    without_release = [[line for line in seq if "[build" not in line and line != RELEASE_LINE] for seq in after]
    assert all(v.score >= high for v in serving.detect(without_release))  # so does a block without its reworded steps

    learner = LearningDetector(tmp_path / "store", config, device="cpu")
    try:
        learner._current = serving
        left_out = learner._confidently_flagged(window)
    finally:
        learner.close()
    assert left_out == {len(window) - 1}  # only the incident: the release's traffic trains the next model
