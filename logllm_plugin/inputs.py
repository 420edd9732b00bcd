"""One entry point from a path to scored units: sequences, whatever the input format.

Sequence files are used as grouped; record and text files go through the sequencer. A selection
(`split` name, a `start:end` fraction range in file order, optionally after a seeded shuffle) picks a subset without any
dataset-specific code: `--range 0:0.7` is "the first 70%".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from logllm_plugin.readers import InputError, ReadReport, detect_format, read_records, read_sequence_file
from logllm_plugin.records import LogSequence
from logllm_plugin.sequencer import SequencerConfig, group_records

SEQUENCE_FORMATS = ("sequence_jsonl", "sequence_json")


@dataclass
class Selection:
    split: Optional[str] = None
    start: float = 0.0
    end: float = 1.0
    shuffle_seed: Optional[int] = None  # shuffle (deterministically) before taking the range

    @classmethod
    def parse(cls, split: Optional[str] = None, fraction_range: Optional[str] = None,
              shuffle_seed: Optional[int] = None) -> "Selection":
        start, end = 0.0, 1.0
        if fraction_range:
            try:
                left, right = fraction_range.split(":")
                start, end = float(left or 0.0), float(right or 1.0)
            except ValueError:
                raise InputError(f"range {fraction_range!r} must look like START:END with fractions, e.g. 0:0.7") from None
            if not 0.0 <= start < end <= 1.0:
                raise InputError(f"range {fraction_range!r} needs 0 <= START < END <= 1")
        return cls(split, start, end, shuffle_seed)

    def apply(self, sequences: list[LogSequence]) -> list[LogSequence]:
        if self.split is not None:
            chosen = [s for s in sequences if s.split == self.split]
            if not chosen:
                found = sorted({str(s.split) for s in sequences})
                raise InputError(f"no sequence has split {self.split!r} (splits present: {', '.join(found)})")
            sequences = chosen
        if self.shuffle_seed is not None:
            import random

            sequences = list(sequences)
            random.Random(self.shuffle_seed).shuffle(sequences)
        n = len(sequences)
        return sequences[int(round(n * self.start)) : int(round(n * self.end))]


def load_input(
    path: str,
    *,
    fmt: Optional[str] = None,
    line_regex: Optional[str] = None,
    key_regex: Optional[str] = None,
    sequencer: Optional[SequencerConfig] = None,
    selection: Optional[Selection] = None,
    report: Optional[ReadReport] = None,
) -> tuple[list[LogSequence], ReadReport]:
    report = report if report is not None else ReadReport()
    fmt = fmt or detect_format(path)
    if fmt in SEQUENCE_FORMATS:
        sequences = list(read_sequence_file(path, fmt, report))
    else:
        records = read_records(path, fmt, line_regex=line_regex, key_regex=key_regex, report=report)
        sequences = list(group_records(records, sequencer or SequencerConfig()))
    if selection is not None:
        sequences = selection.apply(sequences)
        if not sequences:
            raise InputError(f"{path}: the selection leaves no sequence")
    return sequences, report
