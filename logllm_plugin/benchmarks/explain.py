"""`logllm-plugin bench explain`: every analyzer scored on the same labeled anomalies in one run.

The items are `bench analyze`'s: the first `n` labeled anomalies, padded in front with normal
lines to `lines` lines, masked like the service masks, with a verdict naming the labeled incident
lines as evidence. Each analyzer (the knowledge base; with --llm the base model; with --adapter
the tuned one; with --openai-url a served model) explains every item, one item per call, and is
scored on what a user would get, fallbacks included:

* category_accuracy: the explanation names the labeled category.
* evidence_precision: of the line indexes cited, the share the data labels as incident lines
  (evidence_recall: of the labeled lines, the share cited).
* completeness: summary, suggestion and category non-empty and at least one evidence line.
* personal_data_absent: no text of the explanation holds anything the masker would mask
  (placeholders such as <USER_1> are fine: they are what the masker leaves).
* seconds per explanation (p50, mean), and for the LLM analyzers the fallback rate and the
  category accuracy of their own answers alone (status ok).

Use data the adapter was not trained on (`data generate` with another seed than the training
file's): the score is meant for unseen sequences.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from logllm_plugin.analyzers.base import AnalysisItem, Explanation
from logllm_plugin.records import LogSequence

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")


@dataclass
class Labeled:
    """What the data says about one item: its category and its incident lines."""

    category: str
    incident_lines: list[int]


def personal_data_in(explanation: Explanation, masker=None) -> bool:
    """True when any text of the explanation holds something the personal-data masker would mask."""
    from logllm_plugin.personal_data import PersonalDataMasker

    masker = masker or PersonalDataMasker()
    texts = [explanation.category, explanation.summary, explanation.suggestion, *(e.line for e in explanation.evidence)]
    for text in texts:
        # A value inside a placeholder ("USER_1" of "<USER_1>") is what masking left: not a leak.
        masked = [m.span() for m in _PLACEHOLDER.finditer(text)]
        for _kind, start, end in masker.spans(text):
            if not any(a <= start and end <= b for a, b in masked):
                return True
    return False


def is_complete(explanation: Explanation) -> bool:
    return all(s.strip() for s in (explanation.category, explanation.summary, explanation.suggestion)) and bool(
        explanation.evidence)


def score_explanations(explanations: Sequence[Explanation], labeled: Sequence[Labeled],
                       seconds: Sequence[float]) -> dict[str, Any]:
    """The figures of one analyzer over the items (see the module docstring)."""
    from logllm_plugin.personal_data import PersonalDataMasker

    if len(explanations) != len(labeled) or len(seconds) != len(labeled) or not labeled:
        raise ValueError("one explanation and one time per labeled item, and at least one item")
    masker = PersonalDataMasker()
    n = len(labeled)
    cited = cited_right = wanted = found = 0
    correct = own = own_correct = complete = clean = 0
    statuses: dict[str, int] = {}
    for e, truth in zip(explanations, labeled):
        indexes = {x.index for x in e.evidence}
        cited += len(indexes)
        cited_right += len(indexes & set(truth.incident_lines))
        wanted += len(truth.incident_lines)
        found += len(set(truth.incident_lines) & indexes)
        correct += e.category == truth.category
        if e.status == "ok":
            own += 1
            own_correct += e.category == truth.category
        complete += is_complete(e)
        clean += not personal_data_in(e, masker)
        statuses[e.status] = statuses.get(e.status, 0) + 1
    return {
        "explanations": n,
        "category_accuracy": round(correct / n, 3),
        "evidence_precision": round(cited_right / cited, 3) if cited else None,
        "evidence_recall": round(found / wanted, 3) if wanted else None,
        "completeness": round(complete / n, 3),
        "personal_data_absent": round(clean / n, 3),
        "seconds_per_explanation_p50": round(float(np.percentile(seconds, 50)), 4),
        "seconds_per_explanation_mean": round(float(np.mean(seconds)), 4),
        "statuses": statuses,
        "fallback_rate": round(1 - own / n, 3),
        "own_answer_category_accuracy": round(own_correct / n, 3),
    }


def explain_each(analyzer, items: Sequence[AnalysisItem],
                 progress: Optional[Callable[[str], None]] = None) -> tuple[list[Explanation], list[float]]:
    """One explain_batch call per item (the figures are latencies): explanations and seconds."""
    explanations, seconds = [], []
    for k, item in enumerate(items, start=1):
        started = time.monotonic()
        (answer,) = analyzer.explain_batch([item])
        seconds.append(time.monotonic() - started)
        explanations.append(answer)
        if progress:
            progress(f"{getattr(analyzer, 'name', '?')} {k}/{len(items)}: {seconds[-1]:.2f} s, {answer.status}, "
                     f"{answer.category}")
    return explanations, seconds


def _score(result: tuple[list[Explanation], list[float]], labeled: Sequence[Labeled]) -> dict[str, Any]:
    explanations, seconds = result
    return score_explanations(explanations, labeled, seconds)


def run_explain_bench(sequences: Sequence[LogSequence], *, llm_dir: Optional[str] = None,
                      adapter_dir: Optional[str] = None, openai_url: Optional[str] = None,
                      openai_model: Optional[str] = None, n: int = 20, lines: int = 20,
                      threads: Optional[int] = None, timeout_s: Optional[float] = None,
                      progress: Optional[Callable[[str], None]] = None) -> dict[str, Any]:
    """{"items", "lines_per_sequence", "analyzers": {name: figures}, ...} for every analyzer asked for."""
    from logllm_plugin.analyzers.knowledge_base import KnowledgeBaseAnalyzer
    from logllm_plugin.benchmarks.analyze import padded_items
    from logllm_plugin.config import AnalysisConfig

    if adapter_dir and not llm_dir:
        raise ValueError("an adapter needs the base model it adapts (llm_dir)")
    if bool(openai_url) != bool(openai_model):
        raise ValueError("openai_url and openai_model go together")
    defaults = AnalysisConfig()
    timeout = timeout_s or defaults.timeout_s
    items, categories = padded_items(sequences, n, lines)
    labeled = [Labeled(c, list(i.verdict.evidence)) for i, c in zip(items, categories)]
    knowledge_base = KnowledgeBaseAnalyzer()
    knowledge_base.explain_batch(items[:1])  # loads the line encoder: a one-off, not per explanation
    results: dict[str, Any] = {}
    results["knowledge_base"] = _score(explain_each(knowledge_base, items, progress), labeled)

    def qwen(adapter: Optional[str]):
        from logllm_plugin.analyzers.qwen import QwenAnalyzer, set_torch_threads

        analyzer = QwenAnalyzer(llm_dir, adapter_dir=adapter, fallback=knowledge_base, device="cpu",
                                max_new_tokens=defaults.max_new_tokens, timeout_s=timeout, batch_size=1,
                                threads=threads, quantize=defaults.quantize)
        if threads:
            set_torch_threads(threads)
        analyzer.load()
        analyzer.explain_batch(items[:1])  # warm-up: first-call allocations
        return analyzer

    if llm_dir:
        results["base_llm"] = _score(explain_each(qwen(None), items, progress), labeled)
    if adapter_dir:
        results["tuned_llm"] = _score(explain_each(qwen(adapter_dir), items, progress), labeled)
    if openai_url:
        from logllm_plugin.analyzers.openai_compat import OpenAIAnalyzer

        served = OpenAIAnalyzer(openai_url, openai_model, fallback=knowledge_base, timeout_s=timeout,
                                max_new_tokens=defaults.max_new_tokens)
        results["openai"] = _score(explain_each(served, items, progress), labeled)
    return {"items": len(items), "lines_per_sequence": lines, "llm_dir": llm_dir, "adapter_dir": adapter_dir,
            "openai_url": openai_url, "openai_model": openai_model, "threads": threads, "timeout_s": timeout,
            "analyzers": results, "loadavg": list(os.getloadavg()), "cpu_count": os.cpu_count()}


def table(report: dict[str, Any]) -> str:
    """The figures as a Markdown table (one row per analyzer)."""
    head = ("| analyzer | category accuracy | own answers right | evidence precision | completeness "
            "| personal data absent | s/explanation (p50) | fallback rate |")
    rows = [head, "|" + "---|" * 8]
    for name, f in report["analyzers"].items():
        rows.append(f"| {name} | {f['category_accuracy']} | {f['own_answer_category_accuracy']} "
                    f"| {f['evidence_precision']} | {f['completeness']} | {f['personal_data_absent']} "
                    f"| {f['seconds_per_explanation_p50']} | {f['fallback_rate']} |")
    return "\n".join(rows)
