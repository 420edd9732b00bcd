"""Train/valid/test splits of sequence files (`data split`).

Chronological by default: logs drift (deploys, traffic, new templates), and a random split lets
the model see the future of every incident it is tested on, which overstates quality. `key`
keeps every sequence of one key (a host, a block, a session) in one part, so no part tests on a
key it trained on; `random` is there for comparison. `stratify` splits each label class on its
own, so every part gets the same anomaly rate (in time order within the class for `time`).
"""
from __future__ import annotations

import hashlib
import logging
import random
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from logllm_plugin.readers import InputError, parse_timestamp
from logllm_plugin.records import LogSequence

logger = logging.getLogger(__name__)

METHODS = ("time", "random", "key")
PART_NAMES = {2: ("train", "test"), 3: ("train", "valid", "test")}
# A timestamp at the start of a line, optionally bracketed: ISO-8601 (T or space) or epoch seconds/ms.
_LEADING_TIME = re.compile(
    r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?|\d{10}(?:\d{3})?(?:\.\d+)?)\b")


def parse_ratios(text: str) -> tuple[float, ...]:
    try:
        ratios = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--ratios {text!r}: expected comma-separated numbers, e.g. 0.8,0.1,0.1") from None
    if len(ratios) not in PART_NAMES:
        raise InputError(f"--ratios {text!r}: give 2 (train,test) or 3 (train,valid,test) parts")
    if any(r <= 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise InputError(f"--ratios {text!r}: parts must be positive and add up to 1")
    return ratios


def sequence_time(seq: LogSequence) -> Optional[float]:
    """The earliest leading timestamp of the sequence's lines (lines need not be in time order)."""
    times = []
    for line in seq.lines:
        m = _LEADING_TIME.match(line.lstrip())
        if m and (t := parse_timestamp(m.group(1).replace(" ", "T", 1))) is not None:
            times.append(t)
    return min(times) if times else None


def _cut(items: Sequence, ratios: Sequence[float]) -> list[list]:
    """Consecutive parts of `items` in the given ratios (rounding never loses or repeats an item)."""
    n, parts, start, acc = len(items), [], 0, 0.0
    for r in ratios[:-1]:
        acc += r
        end = int(round(n * acc))
        parts.append(list(items[start:end]))
        start = end
    parts.append(list(items[start:]))
    return parts


@dataclass
class SplitResult:
    parts: dict[str, list[LogSequence]]
    ordered_by: str  # what decided the order: "timestamps", "file order", "seed N", "key hash"


def _key_of(seq: LogSequence) -> str:
    return seq.key if seq.key is not None else seq.id


def split_sequences(sequences: list[LogSequence], ratios: Sequence[float], by: str = "time",
                    stratify: bool = False, seed: int = 0) -> SplitResult:
    if by not in METHODS:
        raise InputError(f"--by {by!r}: expected one of {', '.join(METHODS)}")
    if not sequences:
        raise InputError("nothing to split: no sequences")
    if stratify and by == "key":
        raise InputError("--stratify does not combine with --by key: whole keys cannot be split by label")
    names = PART_NAMES[len(ratios)]
    ordered_by = f"seed {seed}"
    if by == "time":
        times = [sequence_time(s) for s in sequences]
        if all(t is not None for t in times):
            order = sorted(range(len(sequences)), key=lambda i: times[i])  # stable: ties keep file order
            ordered_by = "timestamps"
        else:
            missing = sum(t is None for t in times)
            logger.info("%d of %d sequences have no leading timestamp: splitting in file order", missing, len(times))
            order = list(range(len(sequences)))
            ordered_by = "file order"
        ordered = [sequences[i] for i in order]
    elif by == "random":
        ordered = list(sequences)
        random.Random(seed).shuffle(ordered)
    else:
        ordered = _by_key(sequences, seed)
        ordered_by = f"keys shuffled with seed {seed}"

    if by == "key":
        parts_lists = _cut_keys(ordered, ratios)
    elif stratify:
        parts_lists = [[] for _ in ratios]
        for label in sorted({s.label for s in ordered}, key=lambda x: (x is None, x)):
            for i, part in enumerate(_cut([s for s in ordered if s.label == label], ratios)):
                parts_lists[i].extend(part)
        if by == "time":  # keep each part in time order after merging the classes
            position = {id(s): i for i, s in enumerate(ordered)}
            parts_lists = [sorted(p, key=lambda s: position[id(s)]) for p in parts_lists]
    else:
        parts_lists = _cut(ordered, ratios)
    parts = dict(zip(names, parts_lists))
    for name, part in parts.items():
        for seq in part:
            seq.split = name
    empty = [name for name, part in parts.items() if not part]
    if empty:
        raise InputError(f"{len(sequences)} sequences are too few for --ratios {','.join(map(str, ratios))}: "
                         f"{', '.join(empty)} would be empty")
    return SplitResult(parts, ordered_by)


def _by_key(sequences: list[LogSequence], seed: int) -> list[LogSequence]:
    """Sequences grouped by key, the keys in a seeded order that does not depend on the file order."""
    def rank(key: str) -> str:
        return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()

    return sorted(sequences, key=lambda s: rank(_key_of(s)))


def _cut_keys(ordered: list[LogSequence], ratios: Sequence[float]) -> list[list[LogSequence]]:
    """Cut at key boundaries only, as near the ratios as the key sizes allow."""
    n = len(ordered)
    targets, acc = [], 0.0
    for r in ratios[:-1]:
        acc += r
        targets.append(n * acc)
    parts: list[list[LogSequence]] = [[] for _ in ratios]
    part, done = 0, 0
    i = 0
    while i < n:
        j = i
        while j < n and _key_of(ordered[j]) == _key_of(ordered[i]):
            j += 1
        # move on to the next part when this key would take us further past the target than stopping short
        while part < len(targets) and done and abs(done + (j - i) - targets[part]) > abs(done - targets[part]):
            part += 1
        parts[part].extend(ordered[i:j])
        done += j - i
        i = j
    return parts
