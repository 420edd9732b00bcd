"""The default analyzer: explanations from an editable YAML knowledge base, no LLM needed.

It reads the evidence lines the detector pointed at, finds the first knowledge-base class whose
patterns match them (then the rest of the sequence), and writes a summary that quotes the real
evidence with the class's remediation advice. Sequences whose anomaly lies in their shape
(order, repetition, never-seen lines) get the generic answer, which says so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from logllm_plugin.analyzers.base import AnalysisItem, EvidenceLine, Explanation
from logllm_plugin.config import ConfigError

DEFAULT_KNOWLEDGE_BASE = Path(__file__).with_name("knowledge_base.yaml")
MAX_QUOTE_CHARS = 200
MAX_EVIDENCE_LINES = 3


@dataclass
class KnowledgeClass:
    name: str
    title: str
    suggestion: str
    pattern: Optional[re.Pattern[str]]  # None for the generic answer


def load_knowledge_base(path: Optional[str | Path] = None) -> tuple[list[KnowledgeClass], KnowledgeClass]:
    """(classes in match order, generic answer); every problem in the file is reported at once."""
    import yaml

    source = Path(path) if path else DEFAULT_KNOWLEDGE_BASE
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], str(source)) from None
    except yaml.YAMLError as exc:
        from logllm_plugin.config import yaml_error_text

        raise ConfigError([f"not valid YAML: {source}: {yaml_error_text(exc)}"], str(source)) from None
    problems: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ConfigError(["needs a `classes:` list (see configs/knowledge_base.yaml)"], str(source))
    classes = []
    for n, entry in enumerate(data["classes"]):
        where = f"classes[{n}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be a mapping")
            continue
        missing = [k for k in ("name", "title", "patterns", "suggestion") if not entry.get(k)]
        if missing:
            problems.append(f"{where} ({entry.get('name', '?')}) lacks {', '.join(missing)}")
            continue
        try:
            pattern = re.compile("|".join(f"(?:{p})" for p in entry["patterns"]), re.IGNORECASE)
        except (re.error, TypeError) as exc:
            problems.append(f"{where} ({entry['name']}): a pattern is not a valid regex: {exc}")
            continue
        classes.append(KnowledgeClass(str(entry["name"]), str(entry["title"]), str(entry["suggestion"]).strip(), pattern))
    generic = data.get("generic") or {}
    if not generic.get("title") or not generic.get("suggestion"):
        problems.append("`generic:` needs a title and a suggestion")
    if problems:
        raise ConfigError(problems, str(source))
    return classes, KnowledgeClass("anomaly", str(generic["title"]), str(generic["suggestion"]).strip(), None)


def _quote(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= MAX_QUOTE_CHARS else line[: MAX_QUOTE_CHARS - 1] + "…"


class KnowledgeBaseAnalyzer:
    name = "knowledge_base"

    def __init__(self, path: Optional[str | Path] = None):
        self.classes, self.generic = load_knowledge_base(path)

    def classify(self, lines: Sequence[str], evidence: Sequence[int]) -> tuple[KnowledgeClass, list[int]]:
        """The class of the first line (evidence lines first) that any class matches, and all its lines.

        Going line by line rather than class by class lets the detector's evidence decide: a
        permission error it pointed at beats a timeout elsewhere in the sequence.
        """
        pointed = [i for i in evidence if 0 <= i < len(lines)]
        ordered = pointed + [i for i in range(len(lines)) if i not in set(pointed)]
        for i in ordered:
            for cls in self.classes:
                if cls.pattern.search(lines[i]):
                    return cls, [k for k in ordered if cls.pattern.search(lines[k])]
        return self.generic, []

    def explain_batch(self, items: Sequence[AnalysisItem]) -> list[Explanation]:
        return [self.explain(item) for item in items]

    def explain(self, item: AnalysisItem) -> Explanation:
        lines, verdict = item.lines, item.verdict
        cls, hits = self.classify(lines, verdict.evidence)
        evidence_indexes = [i for i in verdict.evidence if 0 <= i < len(lines)]
        # Quote the detector's evidence; add the lines that matched the class if the detector's
        # evidence does not show the error itself (e.g. it points at a missing step's neighbour).
        quoted = (evidence_indexes + [i for i in hits if i not in evidence_indexes])[:MAX_EVIDENCE_LINES]
        learned = verdict.category not in ("", "anomaly", "normal")
        category = verdict.category if learned else cls.name
        summary = self._summary(cls, lines, quoted, hits, verdict, category if learned else None)
        return Explanation(
            category=category,
            summary=summary,
            suggestion=cls.suggestion,
            evidence=[EvidenceLine(i, lines[i]) for i in sorted(quoted)],
            analyzer=self.name,
        )

    @staticmethod
    def _summary(cls: KnowledgeClass, lines, quoted, hits, verdict, learned_category) -> str:
        lead = f"Anomalous sequence (score {verdict.score:.2f}"
        lead += f", detector category {learned_category})" if learned_category else ")"
        if cls.pattern is not None and hits:
            first = hits[0]
            also = f"; {len(hits) - 1} more line(s) point the same way" if len(hits) > 1 else ""
            return f"{lead}: {cls.title}. Line {first} says \"{_quote(lines[first])}\"{also}."
        parts = [f"{lead}: {cls.title}, with no error message to go by"]
        if verdict.novel_templates:
            parts.append(f"{verdict.novel_templates} line(s) have templates never seen in training")
        if quoted:
            first = quoted[0]
            parts.append(f"the detector points at line {first}: \"{_quote(lines[first])}\"")
        return "; ".join(parts) + "."
