"""The chat prompt an LLM analyzer sees, and the strict check of what it answers.

The same prompt is used to fine-tune (trainers/llm.py) and to serve (analyzers/qwen.py), so a
fine-tuned model sees at serving time exactly the format it was trained on. Only the item's
(already masked) lines and the verdict's label/score/category/evidence reach the prompt: never
the sequence id or key, which can carry personal data the masking did not see.
"""
from __future__ import annotations

import json
import re
from typing import Any, Sequence

from logllm_plugin.analyzers.base import AnalysisItem

# The order the model writes them in: the category and the evidence first (the short, checkable
# part), then one sentence each of summary and suggestion.
ANSWER_KEYS = ("category", "evidence", "summary", "suggestion")
MAX_ANSWER_CHARS = 4000  # longer than any valid answer can be; a model rambling past it is broken
MAX_CATEGORY_CHARS = 64
MAX_SUMMARY_CHARS = 600
MAX_SUGGESTION_CHARS = 600
MAX_EVIDENCE = 20

# Defaults for how much of a sequence goes into the prompt: long HDFS blocks have hundreds of
# lines, and the context (and the latency) of a small model is limited.
# Prefill is ~2 ms a token for SmolLM2 on 2 cores and a 20-line service log is ~300 tokens in
# the compact form below; 32 lines of 160 characters bound the prompt near 1,000 tokens.
DEFAULT_MAX_LINES = 32
DEFAULT_MAX_LINE_CHARS = 160
# What an answer of the compact schema costs: category ~6 tokens, evidence ~2 per index, one
# sentence each of summary and suggestion (~25 each), keys and quotes ~15. The trained answers
# are 50-70 tokens; a model still writing at 128 is rambling (and would never close the object).
DEFAULT_MAX_NEW_TOKENS = 128

# What a line carries that explains nothing but costs most of its tokens (SmolLM2's tokenizer
# spends one token per digit: an ISO timestamp is ~20 tokens, a 16-hex trace id ~12): a leading
# timestamp (the line index keeps the order) and long hex ids. Dropping them halves a typical
# service log line (73 -> ~35 tokens), and prefill time with it. The evidence quoted back to the
# user is always the full line, never this compact form.
_LEADING_TIMESTAMP = re.compile(
    r"^\s*(?:\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"  # ISO 8601
    r"|[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}"  # syslog: Jun 14 15:16:01
    r"|\d{6} \d{6}(?: \d+)?"  # HDFS: 081109 203615 148
    r"|\[\d{4}-\d{2}-\d{2}[T ][\d:.,]+\])\s+")
_SPACES = re.compile(r" {2,}")
# In the prompt only (not in compact_line, which the knowledge base also reads): an id field that
# is nothing but a placeholder ("[trace=<hex>]", 7 tokens on every line of a trace). Decimal ids
# stay although they cost a token per digit: with "order=#" in the prompt, a tuned model wrote
# made-up ids ("order=2222222") into its summaries.
_ID_FIELD = re.compile(r"\s*\[?\b[\w.-]+=<hex>\]?")
_LONG_HEX = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b", re.IGNORECASE)

SYSTEM_PROMPT = (
    "Explain the anomalous log sequence to an on-call engineer as one JSON object: "
    '"category" (snake_case), "evidence" (indexes of the lines that show the problem), '
    '"summary" (one sentence), "suggestion" (one sentence: what to check).'
)

# The answer is started for the model: generation continues after these characters, and the
# decoded text gets them back in front. A small instruct model then writes the JSON object
# instead of echoing the prompt or chatting; training teaches the same continuation (the prefix
# is part of the prompt tokens there too, see trainers/llm_data.tokenize_pair).
ANSWER_PREFIX = '{"category":"'

_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)


class InvalidAnswer(ValueError):
    """The model's answer is not the JSON object the prompt asks for; the message says why."""


def shown_line_indexes(n_lines: int, evidence: Sequence[int], max_lines: int) -> list[int]:
    """Which lines go into the prompt: all when they fit, else the evidence, its neighbours, then the start."""
    if max_lines < 1:
        raise ValueError(f"max_lines must be at least 1, got {max_lines}")
    if n_lines <= max_lines:
        return list(range(n_lines))
    chosen: list[int] = []
    wanted = [i for e in evidence for i in (e, e - 1, e + 1)] + list(range(n_lines))
    for i in wanted:
        if 0 <= i < n_lines and i not in chosen:
            chosen.append(i)
            if len(chosen) == max_lines:
                break
    return sorted(chosen)


def compact_line(text: str) -> str:
    """The line as the prompt shows it: no leading timestamp, long hex ids as <hex>, single spaces."""
    text = _LONG_HEX.sub("<hex>", _LEADING_TIMESTAMP.sub("", text, count=1))
    return _SPACES.sub(" ", text).strip()


def prompt_line(text: str, max_chars: int = DEFAULT_MAX_LINE_CHARS) -> str:
    """The line as the prompt shows it: compact_line, without placeholder-only id fields."""
    # A line break inside a log line would read as a new numbered line: escape it.
    flat = compact_line(text.replace("\r", "\\r").replace("\n", "\\n"))
    flat = _SPACES.sub(" ", _ID_FIELD.sub("", flat)).strip()
    return flat if len(flat) <= max_chars else flat[: max_chars - 1] + "…"


def build_messages(item: AnalysisItem, *, max_lines: int = DEFAULT_MAX_LINES,
                   max_line_chars: int = DEFAULT_MAX_LINE_CHARS) -> list[dict[str, str]]:
    """System + user chat messages asking for the JSON explanation of one item."""
    if max_line_chars < 8:
        raise ValueError(f"max_line_chars must be at least 8, got {max_line_chars}")
    verdict = item.verdict
    n = len(item.lines)
    evidence = [i for i in verdict.evidence if 0 <= i < n]
    shown = shown_line_indexes(n, evidence, max_lines)
    body: list[str] = []
    previous = -1
    first_seen: dict[str, int] = {}
    for i in shown:
        if i != previous + 1:
            body.append(f"[lines {previous + 1}-{i - 1} omitted]")
        text = prompt_line(item.lines[i], max_line_chars)
        # A repeated line (a retry loop, a heartbeat) costs a reference, not its tokens again.
        body.append(f"{i}: (same as {first_seen[text]})" if text in first_seen else f"{i}: {text}")
        first_seen.setdefault(text, i)
        previous = i
    if previous + 1 < n:
        body.append(f"[lines {previous + 1}-{n - 1} omitted]")
    user = "\n".join([
        f"{n} lines, anomaly score {verdict.score:.2f}, detector category {verdict.category}, "
        "lines weighted most: " + (", ".join(str(i) for i in evidence) or "none"),
        *body,
    ])
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def generation_prompt(tokenizer, messages: Sequence[dict[str, str]]) -> str:
    """The text a chat model continues: the chat template's assistant turn opened, then ANSWER_PREFIX.

    A repair conversation (ending with the user's correction) gets the same prefix: the retry
    must be the JSON object too.
    """
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX


def repair_messages(messages: Sequence[dict[str, str]], bad_answer: str, error: str) -> list[dict[str, str]]:
    """The conversation so far plus the invalid answer and why it is invalid, for one retry."""
    return [*messages, {"role": "assistant", "content": bad_answer[:MAX_ANSWER_CHARS]}, {"role": "user", "content": (
        f"That answer is invalid: {error}. Reply again with only the JSON object with the keys "
        '"category", "summary", "suggestion" (non-empty strings) and "evidence" (a list of line indexes).')}]


def answer_json(answer: dict[str, Any]) -> str:
    """The canonical text of an answer: what training teaches the model to write (no spaces between tokens of syntax)."""
    return json.dumps({k: answer[k] for k in ANSWER_KEYS}, ensure_ascii=False, separators=(",", ":"))


def answer_schema(n_lines: int) -> dict[str, Any]:
    """The answer as a JSON Schema, for servers that constrain generation to it (llama.cpp's
    grammar, vLLM's guided decoding): the keys, their order and types, and the line-index range.

    No string lengths: a grammar spells `maxLength: 600` as 600 optional characters, which made
    llama-cpp-python's server take minutes per answer; parse_answer checks the lengths.
    """
    index: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": max(0, n_lines - 1)}
    return {
        "type": "object",
        "properties": {
            "category": {"type": "string"},
            "evidence": {"type": "array", "items": index},
            "summary": {"type": "string"},
            "suggestion": {"type": "string"},
        },
        "required": list(ANSWER_KEYS),
        "additionalProperties": False,
    }


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise InvalidAnswer(f"duplicate key(s) {', '.join(duplicates)}")
    return dict(pairs)


def _text_field(obj: dict[str, Any], key: str, max_chars: int) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidAnswer(f'"{key}" must be a string, got {type(value).__name__}')
    value = value.strip()
    if not value:
        raise InvalidAnswer(f'"{key}" must not be empty')
    if len(value) > max_chars:
        raise InvalidAnswer(f'"{key}" is {len(value)} characters, more than {max_chars}')
    return value


def parse_answer(text: str, n_lines: int) -> dict[str, Any]:
    """The validated answer {category, summary, suggestion, evidence}, or InvalidAnswer saying what is wrong.

    Accepts surrounding whitespace and one ```json fence (instruct models add it despite being told
    not to); nothing else around the object.
    """
    if n_lines < 0:
        raise ValueError(f"n_lines must be >= 0, got {n_lines}")
    stripped = text.strip()
    if not stripped:
        raise InvalidAnswer("the answer is empty")
    if len(stripped) > MAX_ANSWER_CHARS:
        raise InvalidAnswer(f"the answer is {len(stripped)} characters, more than {MAX_ANSWER_CHARS}")
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        # strict=False: a line break written raw inside a summary is still the summary (grammar-
        # constrained servers let it through); the single-line category is checked below.
        obj = json.loads(stripped, object_pairs_hook=_reject_duplicate_keys, strict=False)
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(obj, dict):
        raise InvalidAnswer(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ANSWER_KEYS if k not in obj]
    extra = sorted(k for k in obj if k not in ANSWER_KEYS)
    if missing:
        raise InvalidAnswer(f"missing key(s) {', '.join(missing)}")
    if extra:
        raise InvalidAnswer(f"unexpected key(s) {', '.join(extra)}")
    category = _text_field(obj, "category", MAX_CATEGORY_CHARS)
    if "\n" in category:
        raise InvalidAnswer('"category" must be a single line')
    summary = _text_field(obj, "summary", MAX_SUMMARY_CHARS)
    suggestion = _text_field(obj, "suggestion", MAX_SUGGESTION_CHARS)
    evidence = obj["evidence"]
    if not isinstance(evidence, list):
        raise InvalidAnswer(f'"evidence" must be a list of line indexes, got {type(evidence).__name__}')
    if len(evidence) > MAX_EVIDENCE:
        raise InvalidAnswer(f'"evidence" has {len(evidence)} indexes, more than {MAX_EVIDENCE}')
    for i in evidence:
        # bool is an int subclass in Python; `true` is not a line index.
        if not isinstance(i, int) or isinstance(i, bool):
            raise InvalidAnswer(f'"evidence" must hold integers, got {json.dumps(i)}')
        if not 0 <= i < n_lines:
            raise InvalidAnswer(f'evidence index {i} is outside the sequence (0..{n_lines - 1})')
    if len(set(evidence)) != len(evidence):
        raise InvalidAnswer('"evidence" repeats an index')
    return {"category": category, "summary": summary, "suggestion": suggestion, "evidence": list(evidence)}
