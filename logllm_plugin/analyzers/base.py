"""The analyzer interface and the explanation it returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from logllm_plugin.records import Verdict

# Why an explanation is what it is. "ok": the analyzer answered. The others name why the answer
# came from the knowledge-base fallback instead of the configured analyzer.
STATUSES = ("ok", "invalid_output", "timeout", "unavailable", "rate_limited", "not_anomalous")


@dataclass
class EvidenceLine:
    index: int  # position in the sequence
    line: str  # the line as the analyzer saw it (personal data masked)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "line": self.line}


@dataclass
class Explanation:
    category: str
    summary: str  # what happened, in one or two sentences
    suggestion: str  # what to do next
    evidence: list[EvidenceLine] = field(default_factory=list)
    analyzer: str = ""  # "knowledge_base", "qwen", ...
    status: str = "ok"  # one of STATUSES
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "summary": self.summary,
            "suggestion": self.suggestion,
            "evidence": [e.to_dict() for e in self.evidence],
            "analyzer": self.analyzer,
            "status": self.status,
            "cached": self.cached,
        }


@dataclass
class AnalysisItem:
    """One sequence to explain. `lines` are already masked for personal data."""

    lines: list[str]
    verdict: Verdict


class Analyzer(Protocol):
    name: str

    def explain_batch(self, items: Sequence[AnalysisItem]) -> list[Explanation]:
        """One explanation per item, in order. May raise; the service then falls back."""
        ...
