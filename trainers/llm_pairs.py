"""Chat-format prompt/response pairs from labeled sequences (`data llm-pairs`).

Lives in trainers/ because it builds on llm_data (logllm_plugin never imports trainers).

The pairs are exactly what `train llm` trains on (trainers/llm_data.build_pairs): the analyzer's
system + user prompt for an anomalous sequence, and the JSON answer (category, summary,
suggestion, evidence) as the assistant turn. Written as {"messages": [...]} JSONL, the format
chat fine-tuning tools (TRL's SFTTrainer, most hosted APIs) read, so the same data can train a
model elsewhere. Categories are kept as the data names them; for the categories the default
analyzer's knowledge base knows, its suggestion is the target suggestion, so a fine-tuned model
and the knowledge base give the same advice.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from logllm_plugin.analyzers.knowledge_base import load_knowledge_base
from logllm_plugin.analyzers.prompt import answer_json
from logllm_plugin.records import LogSequence
from trainers.llm_data import build_pairs


def knowledge_base_suggestions(path: Optional[str] = None) -> dict[str, str]:
    classes, _generic = load_knowledge_base(path)
    return {c.name: " ".join(c.suggestion.split()) for c in classes}


def chat_rows(sequences: Sequence[LogSequence], *, max_lines: Optional[int] = None,
              knowledge_base: Optional[str] = None, context_lines: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """One {"id", "category", "messages"} row per labeled anomalous sequence (each among normal
    lines of the data with `context_lines`, as `train llm --context-lines` with `--seed` trains).

    Raises trainers.llm_data.LLMTrainingError when there is no labeled anomaly.
    """
    options = {"max_lines": max_lines} if max_lines else {}
    pairs = build_pairs(sequences, suggestions=knowledge_base_suggestions(knowledge_base),
                        context_lines=context_lines, seed=seed, **options)
    return [{
        "id": pair.sequence_id,
        "category": pair.answer["category"],
        "messages": [*pair.messages, {"role": "assistant", "content": answer_json(pair.answer)}],
    } for pair in pairs]
