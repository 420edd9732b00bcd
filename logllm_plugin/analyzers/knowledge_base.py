"""The default analyzer: explanations from an editable YAML knowledge base, no LLM needed.

It reads the evidence lines the detector pointed at, finds the first knowledge-base class whose
patterns match them (then the rest of the sequence), and writes a summary that quotes the real
evidence with the class's remediation advice. When no pattern matches, the lines are classified
by meaning: each class is described by a few sentences in the YAML, and a line goes to the class
whose description it is nearest to (cosine similarity of the line encoder's embeddings, the
MiniLM the detector uses), when that similarity reaches `semantic.floor`. Regexes only know the
words they were written with; the embedding also places "ETIMEDOUT after 3 attempts" or "the
broker did not answer in 30000 ms" near "a call waited longer than its deadline". Sequences whose
anomaly lies in their shape (order, repetition, never-seen lines) get the generic answer, which
says so.
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


DEFAULT_SEMANTIC_FLOOR = 0.45


@dataclass
class KnowledgeClass:
    name: str
    title: str
    suggestion: str
    pattern: Optional[re.Pattern[str]]  # None for the generic answer
    descriptions: tuple[str, ...] = ()  # sentences that say what lines of this class mean


@dataclass
class SemanticSettings:
    enabled: bool = True
    floor: float = DEFAULT_SEMANTIC_FLOOR  # below this cosine similarity the answer stays generic
    normal: tuple[str, ...] = ()  # sentences of normal work: a line nearest to these is no error


def load_knowledge_base(path: Optional[str | Path] = None) -> tuple[list[KnowledgeClass], KnowledgeClass]:
    """(classes in match order, generic answer); every problem in the file is reported at once."""
    classes, generic, _semantic = load_knowledge_base_file(path)
    return classes, generic


def load_knowledge_base_file(path: Optional[str | Path] = None):
    """(classes, generic answer, SemanticSettings); every problem in the file is reported at once."""
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
        descriptions = entry.get("descriptions") or []
        if not isinstance(descriptions, list) or not all(isinstance(d, str) and d.strip() for d in descriptions):
            problems.append(f"{where} ({entry['name']}): descriptions must be a list of non-empty sentences")
            continue
        classes.append(KnowledgeClass(str(entry["name"]), str(entry["title"]), str(entry["suggestion"]).strip(), pattern,
                                      tuple(d.strip() for d in descriptions)))
    generic = data.get("generic") or {}
    if not generic.get("title") or not generic.get("suggestion"):
        problems.append("`generic:` needs a title and a suggestion")
    semantic_data = data.get("semantic") or {}
    semantic = SemanticSettings()
    if not isinstance(semantic_data, dict):
        problems.append("`semantic:` must be a mapping (enabled, floor)")
    else:
        semantic.enabled = bool(semantic_data.get("enabled", True))
        floor = semantic_data.get("floor", DEFAULT_SEMANTIC_FLOOR)
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not -1.0 <= floor <= 1.0:
            problems.append(f"semantic.floor must be a number in [-1, 1], got {floor!r}")
        else:
            semantic.floor = float(floor)
        normal = semantic_data.get("normal") or []
        if not isinstance(normal, list) or not all(isinstance(d, str) and d.strip() for d in normal):
            problems.append("semantic.normal must be a list of non-empty sentences")
        else:
            semantic.normal = tuple(d.strip() for d in normal)
    if problems:
        raise ConfigError(problems, str(source))
    return (classes, KnowledgeClass("anomaly", str(generic["title"]), str(generic["suggestion"]).strip(), None),
            semantic)


def _quote(line: str) -> str:
    line = " ".join(line.split())
    return line if len(line) <= MAX_QUOTE_CHARS else line[: MAX_QUOTE_CHARS - 1] + "…"


class SemanticClassifier:
    """Nearest knowledge-base class of a line by meaning: max cosine similarity to the class's descriptions."""

    def __init__(self, classes: Sequence[KnowledgeClass], encoder, floor: float, normal: Sequence[str] = ()):
        self.classes = [c for c in classes if c.descriptions]
        self.floor = floor
        self.normal = tuple(normal)
        self._encoder = encoder
        self._matrix = None  # [descriptions, dim], rows grouped by class
        self._owner: list[int] = []  # class index of each description row

    def _ready(self):
        if self._matrix is None:
            texts = [d for c in self.classes for d in c.descriptions] + list(self.normal)
            # The normal sentences are one more "class" (index len(classes)): nearest to it = no error.
            self._owner = [k for k, c in enumerate(self.classes) for _ in c.descriptions] + [len(self.classes)] * len(self.normal)
            self._matrix = self._encoder.embed(texts)
        return self._matrix

    def similarities(self, lines: Sequence[str]):
        """[lines, classes (+1 for normal work if configured)] max cosine similarity to each class's sentences."""
        import numpy as np

        matrix = self._ready()
        vectors = self._encoder.embed([semantic_text(line) for line in lines])
        sims = vectors @ matrix.T  # both L2-normalised: cosine similarity
        per_class = np.full((len(lines), len(self.classes) + (1 if self.normal else 0)), -1.0, dtype=np.float32)
        for row, owner in enumerate(self._owner):
            per_class[:, owner] = np.maximum(per_class[:, owner], sims[:, row])
        return per_class

    def best(self, lines: Sequence[str]) -> Optional[tuple[KnowledgeClass, int, float]]:
        """(class, index into `lines`, similarity) of the closest line-class pair at or above the floor.

        A line nearer to the normal-work sentences than to every class counts for no class.
        """
        import numpy as np

        if not self.classes or not lines:
            return None
        per_class = self.similarities(lines)
        if self.normal:
            is_error = per_class[:, :-1].max(axis=1) > per_class[:, -1]
            per_class = np.where(is_error[:, None], per_class[:, :-1], -1.0)
        line, k = np.unravel_index(int(np.argmax(per_class)), per_class.shape)
        score = float(per_class[line, k])
        return (self.classes[k], int(line), score) if score >= self.floor else None

    def nearest_of(self, line: str, candidates: Sequence[KnowledgeClass]) -> KnowledgeClass:
        """Of the classes whose patterns all match `line`, the one nearest in meaning."""
        scores = self.similarities([line])[0]
        index = {c.name: k for k, c in enumerate(self.classes)}
        return max(candidates, key=lambda c: scores[index[c.name]] if c.name in index else -2.0)


_NOISE = re.compile(r"<[A-Z_]+_?\d*>|\[trace=[^\]]*\]|\b(?:INFO|DEBUG|TRACE|NOTICE)\b")


def semantic_text(line: str) -> str:
    """The words of a line that carry its meaning: no timestamp, ids, masks or benign level names."""
    from logllm_plugin.analyzers.prompt import compact_line

    return " ".join(_NOISE.sub(" ", compact_line(line)).split())[:300]


class KnowledgeBaseAnalyzer:
    name = "knowledge_base"

    def __init__(self, path: Optional[str | Path] = None, encoder=None, semantic: Optional[bool] = None):
        """`encoder`: a LineEncoder (the detector's, to share its model); None loads the default
        MiniLM on the first sequence no pattern explains. `semantic=False` (or `semantic.enabled:
        false` in the YAML): patterns only."""
        self.classes, self.generic, self.semantic_settings = load_knowledge_base_file(path)
        enabled = self.semantic_settings.enabled if semantic is None else semantic
        self._encoder = encoder
        self._semantic: Optional[SemanticClassifier] = None
        self._semantic_enabled = enabled and any(c.descriptions for c in self.classes)
        self._semantic_error: Optional[str] = None

    def _semantic_classifier(self) -> Optional[SemanticClassifier]:
        if not self._semantic_enabled or self._semantic_error:
            return None
        if self._semantic is None:
            encoder = self._encoder
            if encoder is None:
                from logllm_plugin.encoder import LineEncoder

                encoder = LineEncoder()
            self._semantic = SemanticClassifier(self.classes, encoder, self.semantic_settings.floor,
                                                self.semantic_settings.normal)
        return self._semantic

    def classify(self, lines: Sequence[str], evidence: Sequence[int]) -> tuple[KnowledgeClass, list[int]]:
        """The class of the first line (evidence lines first) that any class matches, and all its lines.

        Going line by line rather than class by class lets the detector's evidence decide: a
        permission error it pointed at beats a timeout elsewhere in the sequence. When no pattern
        matches: the class nearest in meaning to the evidence lines (all lines if there are
        none), if near enough; else the generic answer.
        """
        pointed = [i for i in evidence if 0 <= i < len(lines)]
        ordered = pointed + [i for i in range(len(lines)) if i not in set(pointed)]
        for i in ordered:
            matching = [cls for cls in self.classes if cls.pattern.search(lines[i])]
            if matching:
                cls = self._tie_break(lines[i], matching)
                return cls, [k for k in ordered if cls.pattern.search(lines[k])]
        found = self._nearest(lines, pointed or list(range(len(lines))))
        if found is not None:
            return found
        return self.generic, []

    def _tie_break(self, line: str, matching: list[KnowledgeClass]) -> KnowledgeClass:
        """One class for a line that several classes' patterns match ("nvme0: I/O timeout" is timeout
        and hardware): the nearest in meaning; the first in file order without the encoder."""
        if len(matching) == 1:
            return matching[0]
        classifier = self._semantic_classifier()
        if classifier is None:
            return matching[0]
        try:
            return classifier.nearest_of(line, matching)
        except Exception as exc:
            import logging

            self._semantic_error = str(exc)
            logging.getLogger(__name__).warning("knowledge base: no classification by meaning (%s)", exc)
            return matching[0]

    def _nearest(self, lines: Sequence[str], candidates: list[int]) -> Optional[tuple[KnowledgeClass, list[int]]]:
        classifier = self._semantic_classifier()
        if classifier is None or not candidates:
            return None
        try:
            best = classifier.best([lines[i] for i in candidates])
        except Exception as exc:  # the encoder cannot load here: patterns only, said once
            import logging

            self._semantic_error = str(exc)
            logging.getLogger(__name__).warning("knowledge base: no classification by meaning (%s)", exc)
            return None
        if best is None:
            return None
        cls, position, _score = best
        return cls, [candidates[position]]

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
