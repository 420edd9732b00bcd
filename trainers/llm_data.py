"""Supervised pairs for fine-tuning a chat model to explain anomalous sequences.

Prompt: the analyzer prompt (analyzers/prompt.py) of a labeled anomalous sequence. Target: the
JSON answer the analyzer must produce. The data sets here name a category at most and rarely an
explanation, so the summary and suggestion are templated from the category and the evidence
lines; what the model mainly learns is the answer format and which lines are evidence.
"""
from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from logllm_plugin.analyzers.base import AnalysisItem
from logllm_plugin.analyzers.prompt import (DEFAULT_MAX_LINE_CHARS, DEFAULT_MAX_LINES, MAX_CATEGORY_CHARS,
                                            MAX_EVIDENCE, MAX_SUGGESTION_CHARS, MAX_SUMMARY_CHARS, answer_json,
                                            build_messages, generation_prompt, parse_answer, prompt_line)
from logllm_plugin.records import LogSequence, Verdict

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label of tokens that carry no loss (the prompt, the padding)
DEFAULT_CATEGORY = "anomaly"

# Without line labels, the lines that read as failures are the evidence: error-or-worse levels
# and the words engineers grep for.
_PROBLEM_LINE = re.compile(
    r"\b(ERROR|FATAL|CRIT(ICAL)?|SEVERE|ALERT|EMERG|PANIC)\b|exception|traceback|\bfail(ed|ure|s)?\b|refused"
    r"|timed? ?out|denied|unavailable|exhausted|corrupt", re.IGNORECASE)

_SUGGESTIONS = {
    "anomaly": "Start with line {first} and what changed in that component just before it.",
}


class LLMTrainingError(ValueError):
    """The data or the setup cannot train an explainer; the message says what to change."""


@dataclass
class SupervisedPair:
    sequence_id: str
    messages: list[dict[str, str]]  # system + user, as the analyzer would send them
    answer: dict[str, Any]  # the target {category, summary, suggestion, evidence}
    n_lines: int


@dataclass
class TokenizedPair:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on the prompt, the token ids on the answer


def evidence_indexes(sequence: LogSequence) -> list[int]:
    """Evidence lines: the labeled ones when the data has line labels, else the problem-looking ones."""
    if sequence.line_labels is not None:
        found = [i for i, label in enumerate(sequence.line_labels) if label]
    else:
        found = [i for i, line in enumerate(sequence.lines) if _PROBLEM_LINE.search(line)]
    return found[:MAX_EVIDENCE]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s|[:;]\s")


def one_sentence(text: str) -> str:
    """The first sentence (or clause before a colon/semicolon) of `text`, ending with a full stop.

    The answer schema asks for one sentence of suggestion: the knowledge base's advice is a
    paragraph (~50 tokens), its first sentence ~15-20 tokens of generation.
    """
    first = _SENTENCE_END.split(" ".join(text.split()), maxsplit=1)[0].rstrip(" .")
    return first + "." if first else ""


def _excerpt(line: str, max_chars: int = 80) -> str:
    flat = " ".join(line.split()).replace('"', "'")
    return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"


def templated_answer(category: str, lines: Sequence[str], evidence: Sequence[int]) -> dict[str, Any]:
    """A target answer from the category and the evidence lines alone."""
    words = category.replace("_", " ")
    if evidence:
        first = evidence[0]
        summary = f"{words.capitalize()} at line {first}: \"{_excerpt(prompt_line(lines[first]))}\"."
        template = _SUGGESTIONS.get(category, "Check the component line {first} names and what changed before it.")
        suggestion = template.format(first=first, words=words)
    else:
        summary = f"{words.capitalize()}: the sequence deviates from normal runs without an error line."
        suggestion = "Compare it with normal runs of the same component for missing or extra steps."
    return {"category": category, "summary": summary, "suggestion": suggestion, "evidence": list(evidence)}


def in_context(lines: Sequence[str], evidence: Sequence[int], normal_lines: Sequence[str], context_lines: int,
               rng: random.Random) -> tuple[list[str], list[int]]:
    """The anomaly's lines inside a run of normal lines, as a detector's window shows them: a
    seeded total length between the anomaly's own and `context_lines`, the normal lines (a
    contiguous stretch of `normal_lines`) split at random before and after it; the evidence
    indexes shifted with it. Unchanged when there is no normal line or no room."""
    need = max(0, rng.randint(len(lines), max(len(lines), context_lines)) - len(lines))
    if not need or not normal_lines:
        return list(lines), list(evidence)
    start = rng.randrange(max(1, len(normal_lines) - need))
    context = list(normal_lines[start:start + need])
    before = rng.randint(0, len(context))
    return context[:before] + list(lines) + context[before:], [before + i for i in evidence]


def build_pairs(sequences: Sequence[LogSequence], *, max_lines: int = DEFAULT_MAX_LINES,
                max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
                suggestions: Optional[Mapping[str, str]] = None,
                context_lines: int = 0, seed: int = 0) -> list[SupervisedPair]:
    """One pair per labeled anomalous sequence; raises LLMTrainingError when there is none.

    The summary is the sequence's own `explanation` when the data has one (generated data does),
    else templated; `suggestions` (category → advice, e.g. the knowledge base's) replace the
    templated suggestion, by their first sentence, for the categories they name. With
    `context_lines`, each anomaly sits among normal lines of the data's normal sequences, up to
    that many lines in all (`in_context`): the model learns to find the incident lines in a
    window, not only to restate a sequence that holds nothing else.
    """
    from logllm_plugin.personal_data import PersonalDataMasker

    masker = PersonalDataMasker()
    normal_lines = [line for s in sequences if s.label == 0 for line in s.lines] if context_lines else []
    rng = random.Random(seed)
    pairs = []
    for seq in sequences:
        if seq.label != 1 or not seq.lines:
            continue
        lines, evidence = in_context(seq.lines, evidence_indexes(seq), normal_lines, context_lines, rng)
        # Masked as the service masks before any analyzer sees a line: the model trains on the
        # placeholders it will see, and never learns to write an address or a user id. The
        # explanation is masked with the lines, so "user=u77147" is the same <USER_1> in both.
        explanation = (seq.explanation or "").strip()
        masked = masker.mask_sequence([*lines, explanation])
        lines, explanation = masked[:-1], masked[-1]
        category = (seq.category or DEFAULT_CATEGORY).strip()[:MAX_CATEGORY_CHARS] or DEFAULT_CATEGORY
        # The prompt's verdict is what the detector would say: anomalous, with the evidence lines,
        # but with the generic category, so the model learns to name the category from the lines.
        verdict = Verdict(id="", label="anomalous", score=1.0, category=DEFAULT_CATEGORY, evidence=evidence,
                          novel_templates=0)
        messages = build_messages(AnalysisItem(lines=lines, verdict=verdict), max_lines=max_lines,
                                  max_line_chars=max_line_chars)
        answer = templated_answer(category, lines, evidence)
        if explanation:
            answer["summary"] = _excerpt(explanation, MAX_SUMMARY_CHARS)
        if suggestions and suggestions.get(category):
            answer["suggestion"] = _excerpt(one_sentence(suggestions[category]), MAX_SUGGESTION_CHARS)
        parse_answer(answer_json(answer), len(lines))  # a target the analyzer would reject teaches nothing
        pairs.append(SupervisedPair(sequence_id=seq.id, messages=messages, answer=answer, n_lines=len(lines)))
    if not pairs:
        raise LLMTrainingError("no labeled anomalous sequences (label 1) in the training data: "
                               "the explainer learns from anomalies only")
    return pairs


def tokenize_pair(tokenizer, pair: SupervisedPair, max_length: int) -> Optional[TokenizedPair]:
    """Prompt + answer token ids with loss on the answer (and its end-of-turn) only; None if too long."""
    # What the analyzer sends: the template's opened assistant turn plus ANSWER_PREFIX (the start
    # of every answer), so loss falls on what the model writes after it, as at serving time.
    prompt = generation_prompt(tokenizer, pair.messages)
    # The full conversation's text, so the answer ends the way the chat template ends a turn.
    full = tokenizer.apply_chat_template(
        [*pair.messages, {"role": "assistant", "content": answer_json(pair.answer)}], tokenize=False)
    if not full.startswith(prompt):
        raise LLMTrainingError("the tokenizer's chat template renders the prompt differently inside a "
                               "conversation; cannot separate the answer tokens")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):].rstrip("\n"), add_special_tokens=False)["input_ids"]
    if len(prompt_ids) + len(answer_ids) > max_length:
        return None
    return TokenizedPair(input_ids=prompt_ids + answer_ids, labels=[IGNORE_INDEX] * len(prompt_ids) + answer_ids)


def tokenize_pairs(tokenizer, pairs: Sequence[SupervisedPair], max_length: int) -> list[TokenizedPair]:
    tokenized = [tokenize_pair(tokenizer, p, max_length) for p in pairs]
    kept = [t for t in tokenized if t is not None]
    if len(kept) < len(tokenized):
        logger.warning("%d of %d pairs are longer than %d tokens and were skipped (lower --max-lines or "
                       "raise --max-length)", len(tokenized) - len(kept), len(tokenized), max_length)
    return kept


def collate(batch: Sequence[TokenizedPair], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, labels (IGNORE_INDEX on padding)."""
    import torch

    width = max(len(t.input_ids) for t in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, t in enumerate(batch):
        n = len(t.input_ids)
        input_ids[row, :n] = torch.tensor(t.input_ids)
        labels[row, :n] = torch.tensor(t.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
