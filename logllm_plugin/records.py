"""Plain data types shared by every stage: a log record, a sequence of them, a verdict.

Kept free of torch and numpy so `import logllm_plugin` stays light (DESIGN §2).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class LogRecord:
    """One log line as it arrived, before any grouping."""

    message: str
    key: Optional[str] = None  # sequence key when the input already names one (trace id, block id)
    timestamp_s: Optional[float] = None  # event time in seconds since the epoch, when known
    level: Optional[str] = None
    attributes: dict[str, Any] = field(default_factory=dict)
    label: Optional[int] = None  # 0/1 when the input is line-labeled
    source_line: Optional[int] = None  # 1-based line number in the input file


@dataclass
class LogSequence:
    """An ordered group of lines that is scored as one unit."""

    id: str
    lines: list[str]
    key: Optional[str] = None
    label: Optional[int] = None  # 0 normal, 1 anomalous, None unlabeled
    category: Optional[str] = None  # anomaly type when the data names one
    split: Optional[str] = None  # the split the source defined (train/test/...)
    short: bool = False  # closed by time before reaching min_lines
    # Why the sequencer closed it: full | idle | age | pressure | end. A sequence closed by `end`
    # (end of input), `age` or `pressure` may be missing its tail; None when the input came grouped.
    closed_by: Optional[str] = None
    line_labels: Optional[list[int]] = None
    source_lines: Optional[list[int]] = None  # input line numbers, parallel to `lines`
    explanation: Optional[str] = None  # why it is anomalous, when the data says (LLM fine-tuning)


class ClosedLines(list):
    """A sequence's lines, a plain list to every scorer, that also says why the sequencer closed it
    (`closed_by`): integrations hand these to scorers, so a learner, in process or behind the
    server, keeps the reason with its history while custom scorers see lists of lines as before."""

    def __init__(self, lines, closed_by: Optional[str] = None):
        super().__init__(lines)
        self.closed_by = closed_by

    @classmethod
    def of(cls, sequence: "LogSequence") -> "ClosedLines":
        return cls(sequence.lines, sequence.closed_by)


@dataclass
class Verdict:
    """What the detector says about one sequence."""

    id: str
    label: str  # "anomalous" | "normal" | "unscored" (no model yet: `status` says why)
    score: float  # 0-1
    category: str
    evidence: list[int]  # indexes into the sequence's lines that drive the score
    novel_templates: int
    model_version: str = ""
    # Share of the lines whose masked form the model saw in training: an operator can tell
    # "anomalous" from "never seen logs like these" (low familiarity).
    familiarity: float = 0.0
    status: str = "ok"  # ok | learning (no model yet, the history is growing)
    suppressed: bool = False  # an operator's feedback decided this verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "score": round(self.score, 6),
            "category": self.category,
            "evidence": list(self.evidence),
            "novel_templates": self.novel_templates,
            "model_version": self.model_version,
            "familiarity": round(self.familiarity, 4),
            "status": self.status,
            "suppressed": self.suppressed,
        }
