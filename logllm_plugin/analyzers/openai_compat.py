"""An OpenAI-compatible chat-completions server as the analyzer (vLLM, llama.cpp server, Ollama, ...).

This is how Qwen2.5-7B-Instruct with a LoRA adapter is served in production, e.g.

    vllm serve Qwen/Qwen2.5-7B-Instruct --enable-lora --lora-modules logllm=models/adapter

with `analysis: {analyzer: openai, base_url: http://127.0.0.1:8000/v1, model: logllm}`. The
prompt and the strict answer check are the local analyzer's (analyzers/prompt.py); one repair
attempt when time remains; every failure falls back to the knowledge base with a status saying
why: `timeout` (the deadline passed), `unavailable` (connection refused, HTTP error, a body that
is not a chat completion), `invalid_output` (the answer fails the schema twice).

The API key is read from the environment variable named by `api_key_env` only (never from a
config file), sent as a bearer token, and never logged or put into an error message.

`response_format` asks the server to constrain generation to the answer's JSON Schema
(prompt.answer_schema), in one of two dialects: `json_schema` (OpenAI, vLLM:
{"type": "json_schema", "json_schema": {...}}) or `json_object` (llama-cpp-python's server:
{"type": "json_object", "schema": {...}}). A small model then cannot write anything but the
object; the strict check still runs (a schema cannot say "no repeated index").
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Optional, Sequence

from logllm_plugin.analyzers.base import AnalysisItem, Analyzer, EvidenceLine, Explanation
from logllm_plugin.analyzers.prompt import (DEFAULT_MAX_LINE_CHARS, DEFAULT_MAX_LINES, DEFAULT_MAX_NEW_TOKENS,
                                            InvalidAnswer, answer_schema, build_messages, parse_answer,
                                            repair_messages)
from logllm_plugin.analyzers.qwen import fallback_explanations

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1 << 20  # a chat completion of one answer is a few KB
RESPONSE_FORMATS = ("none", "json_schema", "json_object")


def response_format_field(kind: str, n_lines: int) -> Optional[dict]:
    """The request's `response_format` for the dialect `kind`, or None for `none`."""
    if kind == "none":
        return None
    schema = answer_schema(n_lines)
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "explanation", "schema": schema, "strict": True}}
    if kind == "json_object":
        return {"type": "json_object", "schema": schema}
    raise ValueError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, got {kind!r}")


class _Failure(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


class OpenAIAnalyzer:
    name = "openai"

    def __init__(self, base_url: str, model: str, *, fallback: Analyzer, api_key_env: Optional[str] = "OPENAI_API_KEY",
                 timeout_s: float = 30.0, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, max_lines: int = DEFAULT_MAX_LINES,
                 max_line_chars: int = DEFAULT_MAX_LINE_CHARS, response_format: str = "none") -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("model must name the served model (or LoRA adapter)")
        if not timeout_s > 0 or max_new_tokens < 1:
            raise ValueError("timeout_s must be positive and max_new_tokens at least 1")
        if response_format not in RESPONSE_FORMATS:
            raise ValueError(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, got {response_format!r}")
        self.response_format = response_format
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.fallback = fallback
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_new_tokens = max_new_tokens
        self.max_lines = max_lines
        self.max_line_chars = max_line_chars

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _complete(self, messages: list[dict[str, str]], deadline: float, n_lines: int) -> str:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Failure("timeout", "deadline passed before the request")
        request_body = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_new_tokens}
        constraint = response_format_field(self.response_format, n_lines)
        if constraint is not None:
            request_body["response_format"] = constraint
        body = json.dumps(request_body).encode()
        request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=remaining) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:  # the reason names the status only: no headers, no key
            raise _Failure("unavailable", f"HTTP {exc.code} from {self.url}") from None
        except (socket.timeout, TimeoutError):
            raise _Failure("timeout", f"no answer from {self.url} within {remaining:.1f} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise _Failure("timeout", f"no answer from {self.url} within {remaining:.1f} s") from None
            raise _Failure("unavailable", f"cannot reach {self.url}: {exc.reason}") from None
        except OSError as exc:
            raise _Failure("unavailable", f"cannot reach {self.url}: {exc.strerror or type(exc).__name__}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise _Failure("unavailable", f"response from {self.url} is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Failure("unavailable", f"response from {self.url} is not a chat completion") from None
        if not isinstance(content, str):
            raise _Failure("unavailable", f"response from {self.url} has no text content")
        return content

    def explain_batch(self, items: Sequence[AnalysisItem]) -> list[Explanation]:
        items = list(items)
        deadline = time.monotonic() + self.timeout_s
        answers: list[Optional[Explanation]] = [None] * len(items)
        failed: dict[int, str] = {}
        for i, item in enumerate(items):
            try:
                answers[i] = self._explain_one(item, deadline)
            except _Failure as exc:
                logger.warning("openai analyzer: %s; using the fallback (%s)", exc, exc.status)
                failed[i] = exc.status
        for status in sorted(set(failed.values())):
            indexes = [i for i, s in failed.items() if s == status]
            for i, explanation in zip(indexes, fallback_explanations(self.fallback, [items[i] for i in indexes], status)):
                answers[i] = explanation
        return [a for a in answers if a is not None]

    def _explain_one(self, item: AnalysisItem, deadline: float) -> Explanation:
        messages = build_messages(item, max_lines=self.max_lines, max_line_chars=self.max_line_chars)
        text = self._complete(messages, deadline, len(item.lines))
        try:
            parsed = parse_answer(text, len(item.lines))
        except InvalidAnswer as exc:
            try:
                text = self._complete(repair_messages(messages, text, str(exc)), deadline, len(item.lines))
            except _Failure as again:
                # The first answer was already invalid: that is why it falls back.
                raise _Failure("invalid_output" if again.status == "timeout" else again.status, str(again)) from None
            try:
                parsed = parse_answer(text, len(item.lines))
            except InvalidAnswer as second:
                raise _Failure("invalid_output", f"invalid answer after one repair: {second}") from None
        return Explanation(category=parsed["category"], summary=parsed["summary"], suggestion=parsed["suggestion"],
                           evidence=[EvidenceLine(e, item.lines[e]) for e in parsed["evidence"]],
                           analyzer=self.name, status="ok")
