"""`data split`: chronological by default, nothing lost or repeated, keys kept whole."""
from __future__ import annotations

import random

import pytest

from logllm_plugin.data.split import parse_ratios, sequence_time, split_sequences
from logllm_plugin.readers import InputError
from logllm_plugin.records import LogSequence


def _seqs(n: int = 200, seed: int = 0, timed: bool = True) -> list[LogSequence]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        stamp = f"2026-03-02T{9 + i // 60:02d}:{i % 60:02d}:00.000Z " if timed else ""
        out.append(LogSequence(id=f"s{i}", key=f"k{i % 17}", label=int(rng.random() < 0.25),
                               lines=[f"{stamp}INFO step a", f"{stamp}INFO step b"]))
    rng.shuffle(out)  # file order is not time order
    return out


def _ids(parts) -> list[str]:
    return [s.id for part in parts.values() for s in part]


def test_time_split_puts_the_past_in_train_and_the_future_in_test():
    seqs = _seqs()
    result = split_sequences(seqs, (0.8, 0.1, 0.1))
    assert result.ordered_by == "timestamps"
    train, valid, test = (result.parts[n] for n in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (160, 20, 20)
    assert max(map(sequence_time, train)) < min(map(sequence_time, valid))
    assert max(map(sequence_time, valid)) < min(map(sequence_time, test))
    assert all(s.split == "train" for s in train) and all(s.split == "test" for s in test)


@pytest.mark.parametrize("by, stratify", [("time", False), ("time", True), ("random", False), ("random", True),
                                          ("key", False)])
def test_every_sequence_lands_in_exactly_one_part(by, stratify):
    seqs = _seqs(n=157)
    ids = _ids(split_sequences(seqs, (0.7, 0.3), by=by, stratify=stratify, seed=3).parts)
    assert sorted(ids) == sorted(s.id for s in seqs)


def test_stratified_parts_share_the_anomaly_rate():
    parts = split_sequences(_seqs(n=400), (0.8, 0.1, 0.1), by="random", stratify=True, seed=1).parts
    anomalies = {name: sum(s.label for s in part) for name, part in parts.items()}
    total = sum(anomalies.values())
    for name, ratio in (("train", 0.8), ("valid", 0.1), ("test", 0.1)):
        assert abs(anomalies[name] - total * ratio) <= 1, anomalies


def test_stratified_time_split_keeps_time_order_inside_each_class():
    parts = split_sequences(_seqs(n=300), (0.5, 0.5), stratify=True).parts
    for label in (0, 1):
        train = [sequence_time(s) for s in parts["train"] if s.label == label]
        test = [sequence_time(s) for s in parts["test"] if s.label == label]
        assert max(train) < min(test)
        assert train == sorted(train)


def test_key_split_never_puts_one_key_in_two_parts():
    parts = split_sequences(_seqs(), (0.6, 0.2, 0.2), by="key", seed=5).parts
    owners = {}
    for name, part in parts.items():
        for s in part:
            assert owners.setdefault(s.key, name) == name
    assert all(parts.values())


def test_random_split_is_fixed_by_its_seed():
    a = split_sequences(_seqs(), (0.8, 0.2), by="random", seed=4).parts
    b = split_sequences(_seqs(), (0.8, 0.2), by="random", seed=4).parts
    c = split_sequences(_seqs(), (0.8, 0.2), by="random", seed=5).parts
    assert _ids(a) == _ids(b) != _ids(c)


def test_without_timestamps_the_time_split_follows_the_file_order():
    seqs = _seqs(n=50, timed=False)
    result = split_sequences(seqs, (0.8, 0.2))
    assert result.ordered_by == "file order"
    assert _ids(result.parts) == [s.id for s in seqs]


def test_bracketed_and_epoch_timestamps_are_read():
    assert sequence_time(LogSequence("a", ["[2025-07-13 10:06:50.135] [api] x", "[2025-07-13 10:04:00.000] y"])) \
        == pytest.approx(1752401040.0)
    assert sequence_time(LogSequence("b", ["1117838570 2005.06.03 R02 RAS KERNEL INFO x"])) == 1117838570.0


@pytest.mark.parametrize("text, message", [
    ("0.8,0.3", "add up to 1"), ("a,b", "comma-separated numbers"), ("1", "give 2"), ("0.5,0.5,0,0", "give 2"),
])
def test_bad_ratios_are_refused(text, message):
    with pytest.raises(InputError, match=message):
        parse_ratios(text)


def test_too_few_sequences_for_the_parts_is_an_error_not_an_empty_file():
    with pytest.raises(InputError, match="test would be empty"):
        split_sequences(_seqs(n=3), (0.8, 0.1, 0.1))
    with pytest.raises(InputError, match="does not combine"):
        split_sequences(_seqs(), (0.8, 0.2), by="key", stratify=True)
