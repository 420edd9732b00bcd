"""Synthetic anomalies for users without labels: history is treated as normal, and copies of it
are broken the ways real incidents break sequences (DESIGN §6): a step dropped, a step repeated,
two steps swapped, or a line that does not belong (a foreign template).

A sequence the sequencer closed early (end of input, a time or size limit) or that began before the
input did is missing its head or tail without anything having gone wrong: `truncated_copies` adds
such cuts of normal history as normal examples, and a dropped step is always an inner one, so the
model learns "a step is missing inside the session" and not "the session was cut".
"""
from __future__ import annotations

import random
from typing import Sequence

from logllm_plugin.records import LogSequence

# Lines of shapes that do not occur in healthy history of most systems; used as foreign templates
# only when the history itself offers no rare line to borrow.
FOREIGN_LINES = (
    "ERROR connection refused while contacting upstream service",
    "FATAL out of memory: cannot allocate buffer",
    "ERROR request timed out after 30000 ms",
    "WARN retry limit exceeded, giving up",
    "ERROR permission denied for requested resource",
    "ERROR unexpected end of stream while reading payload",
)

KINDS = ("dropped", "duplicated", "reordered", "foreign")
GIVE_UP_AFTER = 20  # bases in a row that could not take a kind: go on with the next kind


def _inject_one(lines: list[str], kind: str, rng: random.Random, foreign_pool: Sequence[str]) -> list[str] | None:
    out = list(lines)
    if kind == "dropped" and len(out) >= 3:
        del out[rng.randrange(1, len(out) - 1)]  # an inner step: a missing head or tail is a cut
    elif kind == "duplicated" and out:
        i = rng.randrange(len(out))
        out[i:i] = [out[i]] * rng.randint(1, 3)
    elif kind == "reordered" and len(set(out)) >= 2:
        for _ in range(10):  # swap two lines that differ, else the copy equals the original
            i, j = rng.sample(range(len(out)), 2)
            if out[i] != out[j]:
                out[i], out[j] = out[j], out[i]
                break
    elif kind == "foreign":
        out.insert(rng.randrange(len(out) + 1), rng.choice(foreign_pool))
    else:
        return None
    return out if out != lines else None


def inject_anomalies(normal: Sequence[LogSequence], rate: float, seed: int) -> list[LogSequence]:
    """History as normal (label 0) plus about `rate` × len(normal) broken copies (label 1).

    A sequence already labeled anomalous (an operator's correction) keeps its label and is never
    the base of a copy."""
    rng = random.Random(seed)
    result = [LogSequence(id=s.id, lines=list(s.lines), key=s.key, label=1 if s.label == 1 else 0, split=s.split)
              for s in normal]
    candidates = [s for s in normal if s.lines and s.label != 1]
    if not candidates:
        return result
    target = max(1, int(round(rate * len(normal))))
    made = attempts = failed = skipped = 0
    while made < target and attempts < target * 20:
        attempts += 1
        base = rng.choice(candidates)
        kind = KINDS[(made + skipped) % len(KINDS)]
        broken = _inject_one(list(base.lines), kind, rng, FOREIGN_LINES)
        if broken is None:
            failed += 1
            if failed == GIVE_UP_AFTER:  # this history cannot take the kind (no inner step in 1-2 lines)
                skipped, failed = skipped + 1, 0
            continue
        failed = 0
        result.append(LogSequence(id=f"{base.id}~{kind}{made}", lines=broken, key=base.key, label=1, category=kind))
        made += 1
    return result


def truncated_copies(normal: Sequence[LogSequence], share: float, seed: int) -> list[LogSequence]:
    """About `share` × (the sequencer-made part of `normal`) copies of those sequences cut at the
    tail (two in three: end of input, idle or age limits) or at the head (input that starts
    mid-session), labeled normal.

    Only sequences a sequencer closed (`closed_by` set: read from raw logs or records) are cut:
    sequences that came grouped (HDFS blocks in a sequence file) are whole units, and there a
    block that stops early is an incident (12 of hdfs_100k's 57 test anomalies are prefixes of a
    normal block)."""
    rng = random.Random(seed)
    candidates = [s for s in normal if len(s.lines) >= 2 and s.label != 1 and s.closed_by]
    if not candidates:
        return []
    out: list[LogSequence] = []
    for n in range(max(1, int(round(share * len(candidates))))):
        base = rng.choice(candidates)
        keep = rng.randint(1, len(base.lines) - 1)
        tail_cut = n % 3 != 2
        lines = list(base.lines[:keep]) if tail_cut else list(base.lines[-keep:])
        out.append(LogSequence(id=f"{base.id}~cut{n}", lines=lines, key=base.key, label=0, split=base.split,
                               closed_by="end" if tail_cut else None))
    return out
